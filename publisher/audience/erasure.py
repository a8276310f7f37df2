"""Forgetting a person (GDPR art. 17): their data goes, a keyed hash of their address stays.

`forget` deletes the subscriber row (name, language, lists, consent record)
and puts a stand-in in place of the address in the ledger and in the
feedback kept on it (`publisher.store.erasure`), in one transaction. What
stays is ``HMAC-SHA256(key, address)`` in the ``erased`` table: enough to
recognise the address if an import or a form brings it again (`Erased.holds`),
never enough to read it back, nor to test guesses without the key. The key
is the site's link secret (``PUBLISHER_SECRET``): a database copied alone
tells nobody who was erased. The team sees how many addresses were erased,
never which.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

import sqlalchemy as sa

from publisher.audience.rows import email_key
from publisher.store.dispatches import Store
from publisher.store.erasure import STAND_IN_PREFIX, erase_targets
from publisher.store.tables import erased, subscribers

__all__ = ["REFUSED", "Erased", "Forgotten", "address_hash", "erased_count", "forget"]

_PURPOSE = b"publisher-erased\x00"
REFUSED = "was erased at its owner's request and cannot be added again"


def address_hash(key: str, email: str) -> str:
    """The keyed hash kept for an erased address (the same for every spelling of its case)."""
    if not key:
        raise ValueError("erasing needs a key (PUBLISHER_SECRET)")
    return hmac.new(key.encode("utf-8"), _PURPOSE + email_key(email).encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Forgotten:
    """What `forget` did: whether a subscriber row went, and how many ledger and feedback rows were rewritten."""

    subscriber: bool
    deliveries: int
    feedback: int
    already: bool  # the address had been erased before


def forget(store: Store, email: str, key: str, now: dt.datetime) -> Forgotten:
    """Erase every personal field about `email` and keep only its keyed hash (idempotent)."""
    digest = address_hash(key, email)
    lookup = email_key(email)
    with store.write() as connection:
        already = connection.execute(sa.select(erased.c.id).where(erased.c.address_hash == digest)).first()
        if already is None:
            connection.execute(sa.insert(erased).values(address_hash=digest, erased_at=now))
        gone = connection.execute(sa.delete(subscribers).where(subscribers.c.email_key == lookup)).rowcount
        changed, noted = erase_targets(connection, lookup, STAND_IN_PREFIX + digest[:16])
    return Forgotten(bool(gone), changed, noted, already is not None)


def erased_count(store: Store) -> int:
    """How many addresses were erased (the team may know that much)."""
    with store.read() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(erased)).scalar_one())


class Erased:
    """The erased addresses, loaded once, to check incoming addresses against (an import, a form)."""

    def __init__(self, store: Store, key: str | None) -> None:
        self.key = key
        with store.read() as connection:
            self.hashes = frozenset(connection.scalars(sa.select(erased.c.address_hash)))

    def holds(self, email: str) -> bool:
        """Whether `email` was erased (False when there is no key: nothing can have been erased with it)."""
        return bool(self.hashes) and self.key is not None and address_hash(self.key, email) in self.hashes

    def refusal(self, email: str) -> str | None:
        """The reason to refuse `email`, or None: the shape `rows.read_csv` takes for its `refuse`."""
        return REFUSED if self.holds(email) else None
