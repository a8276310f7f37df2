"""The store: subscribers, dispatches, the delivery ledger and the clock's lock, in one database.

``open_store(url)`` opens (and migrates) SQLite or PostgreSQL. Every method
that writes takes the time as `now`; nothing here reads the clock.

>>> store = open_store("sqlite:///.publisher/publisher.db")  # doctest: +SKIP
>>> store.upsert_dispatch(PlannedDispatch("d1", "email", "rule-1", due, ("2018-paris",), "news"), now)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from publisher.errors import WorkFailed
from publisher.store.database import create_engine, migrate, shown_url
from publisher.store.ledger import Delivery, Ledger, SentMessage
from publisher.store.tables import (
    DISPATCH_STATES,
    FINAL,
    FINISHED,
    UNSTARTED,
    DispatchState,
    UtcDateTime,
    deliveries,
    dispatches,
    scheduler_lock,
)

__all__ = ["Delivery", "DispatchRow", "LockHolder", "PlannedDispatch", "SentMessage", "Store", "open_store"]

T = dispatches.c
_IN_CHUNK = 500
# Columns `set_dispatch_state` may change besides the state and its note.
_SETTABLE = frozenset(
    {
        "attempts",
        "next_attempt_at",
        "started_at",
        "finished_at",
        "review_approved_at",
        "result_id",
        "result_url",
        "counts",
    }
)


class _PlanEntry(Protocol):
    """The fields of `publisher.timeline.plan.Dispatch` the store keeps (the store does not import the timeline)."""

    @property
    def id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def rule_key(self) -> str: ...
    @property
    def due(self) -> dt.datetime: ...
    @property
    def record_ids(self) -> tuple[str, ...]: ...
    @property
    def list(self) -> str | None: ...
    @property
    def review(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class PlannedDispatch:
    """What the timeline says about one dispatch: enough to create or re-plan its row."""

    id: str
    channel: str
    rule_key: str
    due: dt.datetime
    record_ids: tuple[str, ...]
    list_name: str | None = None
    state: str = "planned"  # the state of a new row: "waiting_review" for a rule with review

    @classmethod
    def of(cls, entry: _PlanEntry) -> PlannedDispatch:
        """From a timeline plan entry; a rule with review starts out waiting for it."""
        state = "waiting_review" if entry.review else "planned"
        return cls(entry.id, entry.channel, entry.rule_key, entry.due, tuple(entry.record_ids), entry.list, state)


@dataclass(frozen=True, slots=True)
class DispatchRow:
    """A dispatch as the store knows it: the plan's fields plus what happened."""

    id: str
    channel: str
    rule_key: str
    due: dt.datetime
    record_ids: tuple[str, ...]
    list_name: str | None
    state: str
    note: str | None
    attempts: int
    next_attempt_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    review_approved_at: dt.datetime | None
    result_id: str | None
    result_url: str | None
    counts: dict[str, int] | None
    created_at: dt.datetime
    updated_at: dt.datetime = field(compare=False)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a named lock, since when, and when it last showed it was alive."""

    owner: str
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime


def _dispatch(row: sa.Row[Any]) -> DispatchRow:
    """A row of ``select(dispatches)``, by position: the table's columns are DispatchRow's fields in order
    (tests/test_store.py holds them together), and no dict per row (`publisher plan` reads thousands)."""
    values: list[Any] = list(row)
    values[4] = tuple(values[4])
    return DispatchRow(*values)


def _check_state(state: str) -> None:
    if state not in DISPATCH_STATES:
        raise ValueError(f"unknown dispatch state {state!r}; one of {', '.join(sorted(DISPATCH_STATES))}")


def open_store(url: str) -> Store:
    """Open the database at `url`, creating it (and a SQLite file's folder) and migrating it to the newest schema."""
    engine = create_engine(url)
    try:
        migrate(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise WorkFailed(f"cannot open the database {shown_url(url)}: {exc.orig}") from None
    return Store(engine)


class Store(Ledger):
    """An open store: one database, read and written through three layers of one class.

    `Database` (database.py) is the engine and its two transactions (`read`, `write`);
    `Ledger` (ledger.py) adds the delivery rows (claim, mark, counts); `Store` adds the
    dispatches and the clock's lock. Subscribers are functions over it in
    `publisher.audience.subscribers`, the per-dispatch queries in `audience.recipients`
    (which need only a `Database`), the group commits in `store.marks`.

    Why inheritance and not a Store holding a Database and a Ledger: all three share one
    engine and one transaction style, none keeps state of its own, and a send calls the
    ledger and the dispatch rows side by side (about a hundred ``store.claim``/``store.write``
    calls across dispatch, web, cli and the tests). Composition would make each of them
    ``store.ledger.claim`` for no gain in what a reader must know; the split into files is
    for size and for the layer rule (only `store` and `dispatch` import the ledger). Read a
    method's contract where it is defined: the ledger's in ledger.py, the engine's in
    database.py.
    """

    # --- dispatches -------------------------------------------------------------------------

    def upsert_dispatches(self, planned: Iterable[PlannedDispatch], now: dt.datetime) -> None:
        """Create the rows of new dispatches; re-plan those that have not started.

        A dispatch that has started (or finished) keeps its row as it is: history is never rewritten.
        """
        items = list(planned)
        for item in items:
            _check_state(item.state)
        rows = [
            {
                "id": item.id,
                "channel": item.channel,
                "rule_key": item.rule_key,
                "due": item.due,
                "record_ids": list(item.record_ids),
                "list_name": item.list_name,
                "state": item.state,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for item in items
        ]
        if not rows:
            return
        statement = self.insert(dispatches)
        new = statement.excluded
        changed = sa.or_(*(T[name].is_distinct_from(new[name]) for name in ("channel", "rule_key", "due", "list_name")))
        statement = statement.on_conflict_do_update(
            index_elements=[T.id],
            set_={name: new[name] for name in ("channel", "rule_key", "due", "record_ids", "list_name", "updated_at")},
            # Plain equalities: an IN list would not run as executemany.
            where=sa.or_(*(T.state == state for state in sorted(UNSTARTED)))
            & (changed | T.record_ids.is_distinct_from(new.record_ids)),
        )
        with self.write() as connection:
            connection.execute(statement, rows)

    def upsert_dispatch(self, planned: PlannedDispatch, now: dt.datetime) -> DispatchRow:
        """`upsert_dispatches` for one; returns the row as stored."""
        self.upsert_dispatches([planned], now)
        row = self.get_dispatch(planned.id)
        assert row is not None  # just written
        return row

    def get_dispatch(self, dispatch_id: str) -> DispatchRow | None:
        with self.read() as connection:
            row = connection.execute(sa.select(dispatches).where(T.id == dispatch_id)).first()
        return None if row is None else _dispatch(row)

    def dispatch_states(self, ids: Iterable[str]) -> dict[str, str]:
        """The state of each known dispatch among `ids` (unknown ids are left out)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, str] = {}
        with self.read() as connection:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = connection.execute(sa.select(T.id, T.state).where(T.id.in_(chunk)))
                found.update((row.id, row.state) for row in rows)
        return found

    def set_dispatch_state(
        self,
        dispatch_id: str,
        state: DispatchState,
        now: dt.datetime,
        note: str | None = None,
        *,
        expect: Collection[str] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a dispatch to `state` with `note` (None clears it); returns whether it moved.

        With `expect`, it moves only from one of those states: two processes
        racing to start a dispatch cannot both win. Entering ``sending`` sets
        `started_at` the first time; entering a finished state sets
        `finished_at`. Other columns (`result_url`, `counts`, ...) go in `fields`.
        """
        _check_state(state)
        unknown = sorted(set(fields) - _SETTABLE)
        if unknown:
            raise ValueError(f"set_dispatch_state cannot set {', '.join(unknown)}")
        values: dict[str, Any] = {"state": state, "note": note, "updated_at": now, **fields}
        if state == "sending" and "started_at" not in fields:
            values["started_at"] = sa.func.coalesce(T.started_at, sa.literal(now, UtcDateTime))
        if state in FINISHED and "finished_at" not in fields:
            values["finished_at"] = now
        statement = sa.update(dispatches).where(T.id == dispatch_id).values(values)
        if expect is not None:
            statement = statement.where(T.state.in_(list(expect)))
        with self.write() as connection:
            return connection.execute(statement).rowcount == 1

    def release_dispatch(self, dispatch_id: str, now: dt.datetime) -> bool:
        """Release a dispatch skipped as too late (or about to be): it becomes ``approved`` as of `now`.

        Its lateness then counts from `now` (as an approval's does), so the next
        run sends it. Only a dispatch that never started moves: one with
        ledger rows was sent in part and is `resend`'s business. Returns
        whether it moved.
        """
        started = sa.select(deliveries.c.id).where(deliveries.c.dispatch_id == T.id)
        statement = (
            sa.update(dispatches)
            .where(T.id == dispatch_id, T.state.in_(["skipped", "planned", "due"]), T.started_at.is_(None))
            .where(~sa.exists(started))
            .values(state="approved", note="released", updated_at=now, finished_at=None, review_approved_at=now)
        )
        with self.write() as connection:
            return connection.execute(statement).rowcount == 1

    def list_dispatches(
        self,
        *,
        states: Iterable[str] | None = None,
        channel: str | None = None,
        due_from: dt.datetime | None = None,
        due_before: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[DispatchRow]:
        """Dispatches in due order (then id), filtered by state, channel and due time."""
        query = sa.select(dispatches).order_by(T.due, T.id)
        if states is not None:
            query = query.where(T.state.in_(list(states)))
        if channel is not None:
            query = query.where(T.channel == channel)
        if due_from is not None:
            query = query.where(T.due >= due_from)
        if due_before is not None:
            query = query.where(T.due < due_before)
        if limit is not None:
            query = query.limit(limit)
        with self.read() as connection:
            return [_dispatch(row) for row in connection.execute(query)]

    def remove_unstarted(self, ids: Sequence[str]) -> int:
        """Delete dispatches the plan no longer has, if they never started (no ledger rows)."""
        removed = 0
        with self.write() as connection:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[start : start + _IN_CHUNK])
                started = sa.select(deliveries.c.id).where(deliveries.c.dispatch_id == T.id)
                statement = sa.delete(dispatches).where(T.id.in_(chunk), T.state.in_(UNSTARTED), ~sa.exists(started))
                removed += connection.execute(statement).rowcount
        return removed

    # --- the clock's lock ---------------------------------------------------------------------

    def acquire_lock(self, name: str, owner: str, now: dt.datetime, stale_after: float) -> bool:
        """Take the lock `name` for `owner` if it is free, already `owner`'s, or its holder's
        heartbeat is older than `stale_after` seconds. One statement: two takers cannot both win."""
        table = scheduler_lock.c
        insert = self.insert(scheduler_lock).values(name=name, owner=owner, acquired_at=now, heartbeat_at=now)
        new = insert.excluded
        stale = now - dt.timedelta(seconds=stale_after)
        statement = insert.on_conflict_do_update(
            index_elements=[table.name],
            set_={
                "owner": new.owner,
                "acquired_at": sa.case((table.owner == new.owner, table.acquired_at), else_=new.acquired_at),
                "heartbeat_at": new.heartbeat_at,
            },
            where=(table.owner == owner) | (table.heartbeat_at < stale),
        ).returning(table.owner)
        with self.write() as connection:
            return connection.execute(statement).first() is not None

    def heartbeat(self, name: str, owner: str, now: dt.datetime) -> bool:
        """Show `owner` is alive; False means the lock was lost (taken over as stale): stop."""
        table = scheduler_lock.c
        statement = sa.update(scheduler_lock).where(table.name == name, table.owner == owner).values(heartbeat_at=now)
        with self.write() as connection:
            return connection.execute(statement).rowcount == 1

    def release_lock(self, name: str, owner: str) -> bool:
        """Give the lock up (only its owner can); returns whether `owner` held it."""
        table = scheduler_lock.c
        with self.write() as connection:
            result = connection.execute(sa.delete(scheduler_lock).where(table.name == name, table.owner == owner))
            return result.rowcount == 1

    def lock_holder(self, name: str) -> LockHolder | None:
        """Who holds `name`, to say so when refusing to start a second clock."""
        with self.read() as connection:
            row = connection.execute(sa.select(scheduler_lock).where(scheduler_lock.c.name == name)).first()
        return None if row is None else LockHolder(row.owner, row.acquired_at, row.heartbeat_at)

    def lock_holders(self, prefix: str) -> dict[str, LockHolder]:
        """Every lock whose name starts with `prefix`, by name (workers show they are alive as ``worker:…``)."""
        table = scheduler_lock.c
        with self.read() as connection:
            rows = connection.execute(sa.select(scheduler_lock).where(table.name.startswith(prefix, autoescape=True)))
            return {row.name: LockHolder(row.owner, row.acquired_at, row.heartbeat_at) for row in rows}

    def forget_locks(self, prefix: str, before: dt.datetime) -> int:
        """Delete the locks named `prefix…` whose heartbeat is older than `before` (workers long gone)."""
        table = scheduler_lock.c
        statement = sa.delete(scheduler_lock).where(
            table.name.startswith(prefix, autoescape=True), table.heartbeat_at < before
        )
        with self.write() as connection:
            return connection.execute(statement).rowcount

    def oldest_unsent(self, now: dt.datetime) -> DispatchRow | None:
        """The dispatch due longest ago (by `now`) with someone still to send to: not final, not held for
        review, and not partly sent with no retry to come (one sending or with retries to come counts)."""
        open_states = [state for state in DISPATCH_STATES if state not in FINAL and state != "waiting_review"]
        finished = (T.state == "partly_sent") & T.next_attempt_at.is_(None)
        query = (
            sa.select(dispatches)
            .where(T.state.in_(open_states), ~finished, T.due <= now)
            .order_by(T.due, T.id)
            .limit(1)
        )
        with self.read() as connection:
            row = connection.execute(query).first()
        return None if row is None else _dispatch(row)
