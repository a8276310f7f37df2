"""Who a newsletter goes to, as dispatch needs it: lean queries over the subscriber table.

`publisher.subscribers` is the list as people manage it; this module answers the
two questions a send asks, cheaply enough for 100,000 subscribers: the
addresses to fix in the ledger (addresses only, in id order), and, a batch at a
time, whether each claimed address may still be mailed and by what name.

Ledger targets are the addresses as stored, so a target's lowercase form is its
subscriber's lookup key (``email_key``) and no address is parsed again here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

import sqlalchemy as sa

from publisher.store.database import Database
from publisher.store.tables import subscribers

S = subscribers.c
_IN_CHUNK = 500


class Contact(NamedTuple):
    """What a send needs to know about one address right before mailing it."""

    name: str
    status: str
    lists: tuple[str, ...]

    def may_receive(self, list_name: str) -> str | None:
        """Why this person must not get a message to `list_name` now, or None when they may."""
        if self.status != "active":
            return f"not sent: the subscriber is {self.status}"
        if list_name not in self.lists:
            return f"not sent: the subscriber left the list {list_name!r}"
        return None


def on_list(list_name: str) -> sa.ColumnElement[bool]:
    """A cheap SQL filter for the subscribers on `list_name`: it may keep a few more, never fewer.

    The lists column is JSON text holding each name quoted, so a LIKE on the quoted name finds
    every member; it is not exact on every name, so each caller checks `list_name in lists` on
    the rows it reads. The one filter of this module and `publisher.audience.subscribers`.
    """
    # type_coerce keeps the pattern a plain string (the column's own type would JSON-encode it).
    quoted = json.dumps(list_name, ensure_ascii=False)
    pattern = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.type_coerce(S.lists, sa.Text).like(f"%{pattern}%", escape="\\")


def active_addresses(database: Database, list_name: str) -> list[str]:
    """The addresses of the list's active subscribers, in id order (names are not loaded)."""
    query = sa.select(S.email, S.lists).where(S.status == "active", on_list(list_name)).order_by(S.id)
    with database.read() as connection:
        return [email for email, lists in connection.execute(query) if list_name in lists]


def audience_size(database: Database, list_name: str) -> int:
    """How many `active_addresses` (= `subscribers.recipients`) the list has now (for ``publisher plan``)."""
    query = sa.select(S.lists).where(S.status == "active", on_list(list_name))
    with database.read() as connection:
        return sum(1 for lists in connection.scalars(query) if list_name in lists)


def contacts(database: Database, addresses: Iterable[str]) -> dict[str, Contact]:
    """The subscriber behind each address (ledger targets), keyed by the address as given."""
    given = {address.lower(): address for address in addresses}
    keys = list(given)
    found: dict[str, Contact] = {}
    with database.read() as connection:
        for start in range(0, len(keys), _IN_CHUNK):
            query = sa.select(S.email_key, S.name, S.status, S.lists).where(
                S.email_key.in_(keys[start : start + _IN_CHUNK])
            )
            for key, name, status, lists in connection.execute(query):
                found[given[key]] = Contact(name or "", status, tuple(lists))
    return found
