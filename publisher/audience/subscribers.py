"""The subscriber list: add, import, list, remove, export.

Addresses are checked and normalised with email-validator (the domain is
lowercased, the local part kept as given) and compared without regard to case.
Someone who unsubscribed, bounced or complained stays in the table as a
suppression entry: no import and no plain ``add`` ever makes them active again.

>>> add(store, "Ana.Perez@Example.org", name="Ana", lists=["news"], now=now, source="cli")  # doctest: +SKIP
Subscriber(id=1, email='Ana.Perez@example.org', ..., status='active', ...)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from defusedcsv import csv as defused_csv

from publisher.audience.recipients import on_list
from publisher.audience.rows import (
    Incoming,
    checked,
    control_character,
    email_key,
    normalise_email,
    read_csv,
    split_lists,
)
from publisher.errors import InvalidInput, Problem
from publisher.store.dispatches import Store
from publisher.store.tables import SUPPRESSED, subscribers

__all__ = [
    "ImportResult",
    "Incoming",
    "Subscriber",
    "add",
    "email_key",
    "export_csv",
    "find",
    "forget_unconfirmed",
    "get",
    "import_csv",
    "list_subscribers",
    "locked",
    "mark_bounced",
    "mark_complained",
    "normalise_email",
    "recipients",
    "remove",
    "save",
    "split_lists",
    "suppress_in",
    "unsubscribe",
]

S = subscribers.c
_CHANGEABLE = ("name", "language", "lists", "status", "consent_at", "consent_source", "updated_at", "unsubscribed_at")
_IN_CHUNK = 500
EXPORT_COLUMNS = ("email", "name", "language", "lists", "status", "consent_at", "consent_source", "created_at")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One person on the list (or on the suppression list, by their status)."""

    id: int
    email: str
    name: str | None
    language: str | None
    lists: tuple[str, ...]
    status: str
    consent_at: dt.datetime | None
    consent_source: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    unsubscribed_at: dt.datetime | None

    @property
    def suppressed(self) -> bool:
        """Unsubscribed, bounced or complained: never to be mailed again."""
        return self.status in SUPPRESSED


def _subscriber(row: sa.Row[Any]) -> Subscriber:
    values = dict(row._mapping)
    values.pop("email_key")
    values["lists"] = tuple(values["lists"])
    return Subscriber(**values)


def merged(existing: Subscriber, incoming: Incoming, now: dt.datetime, source: str, resubscribe: bool) -> Subscriber:
    """`existing` updated with what `incoming` says: lists unioned, given fields replaced.

    A suppressed subscriber stays suppressed unless `resubscribe` (they asked again themselves);
    then they are on the lists they asked for now only: consent is per list.
    """
    if existing.suppressed and not resubscribe:
        return existing
    # A new suppression always counts; otherwise pending may become active, never the reverse.
    takes_over = incoming.status in SUPPRESSED or existing.suppressed or existing.status == "pending"
    status = incoming.status if takes_over else existing.status
    if status in SUPPRESSED:
        lists = existing.lists
    elif existing.suppressed:  # they came back: only to the lists they asked for now, not every old one
        lists = tuple(dict.fromkeys(incoming.lists))
    else:
        lists = tuple(dict.fromkeys(existing.lists + incoming.lists))
    updated = replace(
        existing,
        name=incoming.name or existing.name,
        language=incoming.language or existing.language,
        lists=lists,
        status=status,
    )
    if updated == existing:
        return existing
    if status == "active" and existing.status != "active":
        updated = replace(updated, consent_at=now, consent_source=source, unsubscribed_at=None)
    if status in SUPPRESSED and not existing.suppressed:
        updated = replace(updated, unsubscribed_at=now)
    return replace(updated, updated_at=now)


def _changes(subscriber: Subscriber) -> dict[str, Any]:
    values = {f"b_{name}": getattr(subscriber, name) for name in _CHANGEABLE}
    values["b_lists"] = list(subscriber.lists)
    values["b_id"] = subscriber.id
    return values


def _new(incoming: Incoming, now: dt.datetime, source: str) -> dict[str, Any]:
    subscribed = incoming.status not in SUPPRESSED
    return {
        "email": incoming.email,
        "email_key": incoming.email.lower(),
        "name": incoming.name,
        "language": incoming.language,
        "lists": list(incoming.lists) if subscribed else [],
        "status": incoming.status,
        "consent_at": now if incoming.status == "active" else None,  # pending: nobody has consented yet
        "consent_source": source if subscribed else None,  # where a pending row came from, too
        "created_at": now,
        "updated_at": now,
        "unsubscribed_at": None if subscribed else now,
    }


def _by_key(connection: sa.Connection, keys: Sequence[str]) -> dict[str, Subscriber]:
    found: dict[str, Subscriber] = {}
    for start in range(0, len(keys), _IN_CHUNK):
        rows = connection.execute(sa.select(subscribers).where(S.email_key.in_(keys[start : start + _IN_CHUNK])))
        found.update((row.email_key, _subscriber(row)) for row in rows)
    return found


_UPDATE = (
    sa.update(subscribers)
    .where(S.id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}", type_=S[name].type) for name in _CHANGEABLE})
)


@dataclass(frozen=True)
class Saved:
    """What `save` did with each incoming subscriber."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # suppressed: left unsubscribed, bounced or complained


def save(
    store: Store, people: Sequence[Incoming], now: dt.datetime, source: str, *, resubscribe: bool = False
) -> Saved:
    """Add or merge `people` (one entry per address) in one transaction.

    Two callers adding one new address at once (two sign-ups on PostgreSQL) both find no row; the
    second to insert breaks the address's unique key, its transaction rolls back, and it is run again:
    then it finds the row the first made and merges into it, as for any address already there.
    """
    try:
        return _save(store, people, now, source, resubscribe)
    except sa.exc.IntegrityError:
        return _save(store, people, now, source, resubscribe)


def _save(store: Store, people: Sequence[Incoming], now: dt.datetime, source: str, resubscribe: bool) -> Saved:
    counts = {"added": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    with store.write() as connection:
        existing = _by_key(connection, [person.email.lower() for person in people])
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for person in people:
            old = existing.get(person.email.lower())
            if old is None:
                inserts.append(_new(person, now, source))
                counts["added"] += 1
                continue
            new = merged(old, person, now, source, resubscribe)
            if new is not old:
                updates.append(_changes(new))
            kind = "updated" if new is not old else "skipped" if old.suppressed else "unchanged"
            counts[kind] += 1
        if inserts:
            connection.execute(sa.insert(subscribers), inserts)
        if updates:
            connection.execute(_UPDATE, updates)
    return Saved(**counts)


def add(
    store: Store,
    email: str,
    *,
    name: str | None = None,
    language: str | None = None,
    lists: Iterable[str] = (),
    now: dt.datetime,
    source: str,
    status: str = "active",
    resubscribe: bool = False,
    refuse: Callable[[str], str | None] | None = None,
) -> Subscriber:
    """Add one subscriber, or merge into the one with that address; returns the stored subscriber.

    Someone suppressed comes back unchanged (look at `.status`) unless `resubscribe`.
    `refuse` gives the reason an address must not be added (erased on request): InvalidInput.
    """
    incoming, problems = checked(email, name, language, lists, status)
    why_not = refuse(incoming.email) if incoming is not None and refuse is not None else None
    if why_not is not None:
        incoming, problems = None, [*problems, ("email", why_not)]
    if incoming is None:
        raise InvalidInput([Problem("command line", 1, field, message) for field, message in problems])
    save(store, [incoming], now, source, resubscribe=resubscribe)
    found = get(store, incoming.email)
    assert found is not None  # just saved
    return found


@dataclass(frozen=True)
class ImportResult:
    """What an import did: counts per address, and every bad row (left out)."""

    added: int
    updated: int
    skipped: int  # unsubscribed, bounced or complained: left as they are
    problems: list[Problem]
    unchanged: int = 0
    duplicates: int = 0  # rows that repeated an address of the file, merged into it


def import_csv(
    store: Store,
    path: Path,
    now: dt.datetime,
    default_lists: Iterable[str] = (),
    *,
    shown: str | None = None,
    source: str | None = None,
    known_lists: Sequence[str] | None = None,
    refuse: Callable[[str], str | None] | None = None,
) -> ImportResult:
    """Import a CSV of subscribers (see `publisher.audience.rows`); good rows go in, bad rows are reported.

    `default_lists` are added to every row's lists. Raises InvalidInput only when
    the file as a whole cannot be read (missing, not UTF-8, no email column).
    """
    shown = shown or str(path)
    people, problems, repeats = read_csv(path, shown, default_lists, known_lists, refuse)
    name = "".join("?" if control_character(char) else char for char in path.name)  # a file name may hold one
    saved = save(store, people, now, source or f"import:{name}")
    return ImportResult(saved.added, saved.updated, saved.skipped, problems, saved.unchanged, repeats)


def get(store: Store, email: str) -> Subscriber | None:
    """The subscriber with this address, in any spelling of its case."""
    with store.read() as connection:
        row = connection.execute(sa.select(subscribers).where(S.email_key == email_key(email))).first()
    return None if row is None else _subscriber(row)


def find(store: Store, emails: Iterable[str]) -> dict[str, Subscriber]:
    """The subscribers behind `emails` (e.g. ledger targets), keyed by the address as given."""
    given = {email_key(email): email for email in emails}
    with store.read() as connection:
        found = _by_key(connection, list(given))
    return {given[key]: subscriber for key, subscriber in found.items()}


def locked(connection: sa.Connection, email: str) -> Subscriber | None:
    """The subscriber with this address, read in `connection` (a write transaction) to be changed in it.

    On PostgreSQL the row stays locked until the transaction ends (``FOR UPDATE``), so two changes made
    at once follow each other instead of each writing back what it read; SQLite's write transaction
    (``BEGIN IMMEDIATE``) already holds the whole database, and ignores the clause.
    """
    query = sa.select(subscribers).where(S.email_key == email_key(email)).with_for_update()
    row = connection.execute(query).first()
    return None if row is None else _subscriber(row)


def suppress_in(connection: sa.Connection, email: str, now: dt.datetime, status: str) -> None:
    """Give `email` the suppressed `status`, in `connection`; the first time it left stays."""
    # A bounce or complaint after an unsubscribe is still recorded; the first time stays.
    first = sa.func.coalesce(S.unsubscribed_at, sa.literal(now, S.unsubscribed_at.type))
    values = {"status": status, "updated_at": now, "unsubscribed_at": first}
    where = (S.email_key == email_key(email), S.status != status)
    connection.execute(sa.update(subscribers).where(*where).values(values))


def _suppress(store: Store, email: str, now: dt.datetime, status: str) -> Subscriber | None:
    with store.write() as connection:
        suppress_in(connection, email, now, status)
        row = connection.execute(sa.select(subscribers).where(S.email_key == email_key(email))).first()
    return None if row is None else _subscriber(row)


def remove(store: Store, email: str, now: dt.datetime) -> Subscriber | None:
    """Unsubscribe (the row stays, as a suppression entry); None when there is no such subscriber."""
    return _suppress(store, email, now, "unsubscribed")


def unsubscribe(store: Store, email: str, now: dt.datetime) -> Subscriber | None:
    """The person asked to stop (an unsubscribe link): the same as `remove`."""
    return _suppress(store, email, now, "unsubscribed")


def mark_bounced(store: Store, email: str, now: dt.datetime) -> Subscriber | None:
    """A permanent failure (5xx) for this address: no more mail to it."""
    return _suppress(store, email, now, "bounced")


def mark_complained(store: Store, email: str, now: dt.datetime) -> Subscriber | None:
    """A spam complaint for this address: no more mail to it."""
    return _suppress(store, email, now, "complained")


def forget_unconfirmed(store: Store, before: dt.datetime, source: str = "web") -> int:
    """Delete the sign-ups from `source` still pending (never confirmed) since before `before`; how many.

    Nobody keeps the address of someone who never confirmed: once their links
    have expired, the row serves nothing (a confirmation carries everything it
    needs in its token, and makes the row again). Pending rows the team put
    there itself (another source) are the team's to remove.
    """
    with store.write() as connection:
        query = sa.delete(subscribers).where(S.status == "pending", S.consent_source == source, S.updated_at < before)
        return int(connection.execute(query).rowcount or 0)


def list_subscribers(store: Store, list_name: str | None = None, status: str | None = None) -> list[Subscriber]:
    """Subscribers in id order, of one list and/or one status when given."""
    query = sa.select(subscribers).order_by(S.id)
    if list_name is not None:
        query = query.where(on_list(list_name))
    if status is not None:
        query = query.where(S.status == status)
    with store.read() as connection:
        found = [_subscriber(row) for row in connection.execute(query)]
    return [one for one in found if list_name is None or list_name in one.lists]


def recipients(store: Store, list_name: str) -> list[Subscriber]:
    """Who a newsletter to `list_name` goes to: its active subscribers, in id order."""
    return list_subscribers(store, list_name, "active")


def _defused(cell: str) -> str:
    # defusedcsv quotes = + - @ | %; a leading tab or carriage return starts a formula in some spreadsheets too.
    return "'" + cell if cell[:1] in ("\t", "\r") else cell


def export_csv(store: Store, out: TextIO, list_name: str | None = None, status: str | None = None) -> int:
    """Write subscribers as CSV (the columns `import_csv` reads, plus status and consent); returns rows written.

    Names and addresses come from strangers (the subscribe form): a cell that
    a spreadsheet would take for a formula (starting with ``= + - @``, a tab
    or a carriage return) gets a leading ``'``, as `defusedcsv` writes it, so
    opening the export never runs what someone typed into the form.
    """
    writer = defused_csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    people = list_subscribers(store, list_name, status)
    for one in people:
        consent = [one.consent_at.isoformat() if one.consent_at else "", one.consent_source or ""]
        lists = ";".join(one.lists)
        row = [one.email, one.name or "", one.language or "", lists, one.status, *consent, one.created_at.isoformat()]
        writer.writerow([_defused(cell) for cell in row])
    return len(people)
