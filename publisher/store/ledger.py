"""The delivery ledger: one row per (dispatch, target), written before anything is sent.

A row moves ``pending → sending → sent | failed_temporary | failed_permanent |
unknown``. A worker *claims* rows (they become ``sending`` under its name, with
a lease) before it hands them to a channel, and marks each one right after the
channel answered. After a crash, rows still ``sending`` whose lease ran out are
claimed again: a message the server accepted in the instant before the crash is
the one repeat the ledger cannot rule out. A row marked ``sent`` is never
claimed again, by any worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import sqlalchemy as sa

from publisher.errors import WorkFailed
from publisher.store.database import Database
from publisher.store.tables import DELIVERY_STATES, UtcDateTime, deliveries, dispatches

_CHUNK = 5_000
# Dispatch states in which ledger rows may be held by a worker (`orphaned` looks only there).
RUNNING = ("sending", "partly_sent", "rate_limited")
D = deliveries.c


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ledger row: what happened to one target of one dispatch."""

    id: int
    dispatch_id: str
    target: str
    state: str
    attempts: int
    last_reply: str | None
    message_id: str | None
    remote_id: str | None
    remote_url: str | None
    worker: str | None
    lease_until: dt.datetime | None
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What a channel knows about one accepted message, for `Ledger.mark_sent_each`."""

    id: int
    message_id: str | None = None
    reply: str | None = None
    remote_id: str | None = None
    remote_url: str | None = None


# Built once: a statement object reused keeps its compiled form and cache key.
MARK_SENT = (
    sa.update(deliveries)
    .where(D.id == sa.bindparam("b_id"), D.state != "sent")
    .values(
        state="sent",
        sent_at=sa.bindparam("b_now", type_=UtcDateTime),
        updated_at=sa.bindparam("b_now", type_=UtcDateTime),
        lease_until=None,
        message_id=sa.func.coalesce(sa.bindparam("b_message_id", type_=sa.Text), D.message_id),
        last_reply=sa.func.coalesce(sa.bindparam("b_reply", type_=sa.Text), D.last_reply),
        remote_id=sa.func.coalesce(sa.bindparam("b_remote_id", type_=sa.Text), D.remote_id),
        remote_url=sa.func.coalesce(sa.bindparam("b_remote_url", type_=sa.Text), D.remote_url),
    )
)
"""Marks one delivery sent (never one sent already): `Ledger.mark_sent_each` and `marks.SentMarks` run it.

Its parameters are ``b_id``, ``b_now``, ``b_message_id``, ``b_reply``, ``b_remote_id`` and
``b_remote_url``; the group commits in `marks` compile it once for the driver, so both ways of
marking a message sent write the same row.
"""


def _ids(ids: int | Iterable[int]) -> list[int]:
    return [ids] if isinstance(ids, int) else list(ids)


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Ledger(Database):
    """The ledger's operations over one `Database`; never opened alone.

    The middle layer of `publisher.store.dispatches.Store`, which adds the dispatches and the
    clock's lock (see there why the three are one class over three files).
    """

    def fix_recipients(self, dispatch_id: str, targets: Iterable[str], now: dt.datetime) -> int:
        """Write one pending row per target; returns how many rows were written.

        The set is fixed by the first call for a dispatch: once it has rows, a
        later call writes nothing and returns 0. Duplicate targets count once.
        """
        with self.write() as connection:
            # On PostgreSQL the dispatch row's lock makes two starters queue here.
            found = connection.execute(
                sa.select(dispatches.c.id).where(dispatches.c.id == dispatch_id).with_for_update()
            ).first()
            if found is None:
                raise WorkFailed(f"no dispatch {dispatch_id!r} in the store")
            if connection.execute(sa.select(D.id).where(D.dispatch_id == dispatch_id).limit(1)).first():
                return 0
            statement = self.insert(deliveries).on_conflict_do_nothing(index_elements=["dispatch_id", "target"])
            for chunk in _chunks(targets, _CHUNK):
                rows = [
                    {
                        "dispatch_id": dispatch_id,
                        "target": target,
                        "state": "pending",
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for target in chunk
                ]
                connection.execute(statement, rows)
            return connection.scalar(sa.select(sa.func.count()).where(D.dispatch_id == dispatch_id)) or 0

    def claim(
        self, dispatch_id: str, limit: int, worker: str, now: dt.datetime, lease_seconds: float
    ) -> list[Delivery]:
        """Take up to `limit` rows that are due for a send, in ledger order.

        Due means: pending; failed_temporary whose retry time has come; or
        sending under a lease that has run out (its worker is gone). Each taken
        row is ``sending`` for `worker` until `now + lease_seconds`.
        """
        taken = self._take(dispatch_id, limit, worker, now, lease_seconds, tuple(deliveries.c))
        return sorted((Delivery(**row._mapping) for row in taken), key=lambda delivery: delivery.id)

    def _take(
        self,
        dispatch_id: str,
        limit: int,
        worker: str,
        now: dt.datetime,
        lease_seconds: float,
        columns: tuple[Any, ...],
    ) -> list[sa.Row[Any]]:
        """The one way rows are claimed: stale leases, then due retries, then pending; `columns` come back."""
        if limit <= 0:
            return []
        wanted = (
            (D.state == "sending") & (D.lease_until.is_(None) | (D.lease_until <= now)),
            (D.state == "failed_temporary") & (D.next_attempt_at.is_(None) | (D.next_attempt_at <= now)),
            D.state == "pending",
        )
        with self.write() as connection:
            ids: list[int] = []
            for condition in wanted:
                if len(ids) >= limit:
                    break
                query = (
                    sa.select(D.id)
                    .where(D.dispatch_id == dispatch_id, condition)
                    .order_by(D.id)
                    .limit(limit - len(ids))
                    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
                )
                ids.extend(connection.scalars(query))
            if not ids:
                return []
            lease = now + dt.timedelta(seconds=lease_seconds)
            return list(
                connection.execute(
                    sa.update(deliveries)
                    .where(D.id.in_(ids))
                    .values(state="sending", worker=worker, lease_until=lease, attempts=D.attempts + 1, updated_at=now)
                    .returning(*columns)
                ).all()
            )

    def _update(self, ids: int | Iterable[int], values: dict[str, Any], *conditions: Any) -> int:
        wanted = _ids(ids)
        if not wanted:
            return 0
        with self.write(lazy_flush=True) as connection:
            result = connection.execute(sa.update(deliveries).where(D.id.in_(wanted), *conditions).values(values))
            return result.rowcount

    def mark_sent(
        self,
        ids: int | Iterable[int],
        now: dt.datetime,
        *,
        reply: str | None = None,
        message_id: str | None = None,
        remote_id: str | None = None,
        remote_url: str | None = None,
    ) -> int:
        """The channel accepted these: they are sent, for good. Returns rows changed.

        Fast enough to call once per message (about 0.1 ms on SQLite here)."""
        return self.mark_sent_each(
            (SentMessage(one, message_id, reply, remote_id, remote_url) for one in _ids(ids)),
            now,
        )

    def mark_sent_each(self, sent: Iterable[SentMessage], now: dt.datetime) -> int:
        """Mark a batch sent in one transaction, each row with its own Message-ID and reply."""
        rows = [
            {
                "b_id": item.id,
                "b_now": now,
                "b_message_id": item.message_id,
                "b_reply": item.reply,
                "b_remote_id": item.remote_id,
                "b_remote_url": item.remote_url,
            }
            for item in sent
        ]
        if not rows:
            return 0
        with self.write(lazy_flush=True) as connection:
            return connection.execute(MARK_SENT, rows[0] if len(rows) == 1 else rows).rowcount

    def mark_failed(
        self,
        ids: int | Iterable[int],
        now: dt.datetime,
        *,
        permanent: bool,
        reply: str | None = None,
        next_attempt_at: dt.datetime | None = None,
        worker: str | None = None,
    ) -> int:
        """Not delivered. A temporary failure is claimable again from `next_attempt_at`.

        With `worker`, only rows that worker still holds (``sending`` under its name) change: a late
        answer to a worker whose lease ran out must not make claimable a row another worker now sends.
        """
        values: dict[str, Any] = {
            "state": "failed_permanent" if permanent else "failed_temporary",
            "last_reply": reply,
            "lease_until": None,
            "next_attempt_at": None if permanent else next_attempt_at,
            "updated_at": now,
        }
        return self._update(ids, values, D.state != "sent", *_held_by(worker))

    def mark_unknown(
        self, ids: int | Iterable[int], now: dt.datetime, *, reply: str | None = None, worker: str | None = None
    ) -> int:
        """The outcome cannot be known (a timeout after sending): never claimed again by itself.
        With `worker`, only rows that worker still holds (see `mark_failed`)."""
        values = {"state": "unknown", "last_reply": reply, "lease_until": None, "updated_at": now}
        return self._update(ids, values, D.state != "sent", *_held_by(worker))

    def release(self, worker: str, now: dt.datetime, ids: Iterable[int] | None = None) -> int:
        """Give back rows `worker` claimed and has *not* handed to a channel (clean shutdown)."""
        conditions = [D.worker == worker, D.state == "sending"]
        if ids is not None:
            conditions.append(D.id.in_(list(ids)))
        values = {
            "state": "pending",
            "worker": None,
            "lease_until": None,
            "attempts": sa.case((D.attempts > 0, D.attempts - 1), else_=0),
            "updated_at": now,
        }
        with self.write() as connection:
            return connection.execute(sa.update(deliveries).where(*conditions).values(values)).rowcount

    def renew(self, dispatch_id: str, worker: str, now: dt.datetime, lease_seconds: float) -> int:
        """Extend to `now + lease_seconds` the leases `worker` holds on a dispatch's rows; returns how many.

        A worker renews its leases while it lives (`publisher.dispatch.leases`), so a lease can be short:
        the rows of a worker that died are claimable again a lease after its last renewal."""
        lease = now + dt.timedelta(seconds=lease_seconds)
        with self.write(lazy_flush=True) as connection:
            result = connection.execute(
                sa.update(deliveries)
                .where(D.dispatch_id == dispatch_id, D.state == "sending", D.worker == worker)
                .values(lease_until=lease)
            )
            return result.rowcount

    def orphaned(self, now: dt.datetime, dispatch_id: str | None = None) -> list[str]:
        """The dispatches (among those started and not finished) with rows ``sending`` under a lease
        that ran out by `now`: their worker died, and nobody is running them. Walks the ledger's
        (dispatch, state) index one running dispatch at a time, never the whole ledger."""
        running = sa.select(dispatches.c.id).where(dispatches.c.state.in_(RUNNING))
        if dispatch_id is not None:
            running = running.where(dispatches.c.id == dispatch_id)
        expired = (
            sa.select(D.id)
            .where(D.dispatch_id == dispatches.c.id, D.state == "sending")
            .where(D.lease_until.is_(None) | (D.lease_until <= now))
        )
        query = running.where(sa.exists(expired)).order_by(dispatches.c.id)
        with self.read() as connection:
            return list(connection.scalars(query))

    def reset_failed(self, dispatch_id: str, now: dt.datetime) -> int:
        """Make every failed row of a dispatch pending again (``resend --failed``)."""
        with self.write() as connection:
            result = connection.execute(
                sa.update(deliveries)
                .where(D.dispatch_id == dispatch_id, D.state.in_(["failed_temporary", "failed_permanent"]))
                .values(state="pending", next_attempt_at=None, lease_until=None, worker=None, updated_at=now)
            )
            return result.rowcount

    def give_up(self, dispatch_id: str, now: dt.datetime, *, reply: str | None = None) -> int:
        """Stop retrying a dispatch: its temporary failures become permanent (e.g. the retry budget is spent).

        `reply` is put before each row's last reply, which is kept."""
        values: dict[str, Any] = {"state": "failed_permanent", "next_attempt_at": None, "updated_at": now}
        if reply is not None:
            values["last_reply"] = sa.case(
                (D.last_reply.is_(None), sa.literal(reply)),
                else_=sa.literal(reply + " (last reply: ") + D.last_reply + ")",
            )
        with self.write() as connection:
            result = connection.execute(
                sa.update(deliveries).where(D.dispatch_id == dispatch_id, D.state == "failed_temporary").values(values)
            )
            return result.rowcount

    def next_retry(self, dispatch_id: str) -> dt.datetime | None:
        """When the dispatch's earliest temporary failure may be tried again; None when it has none."""
        due = sa.func.coalesce(D.next_attempt_at, D.updated_at)
        query = sa.select(sa.func.min(due)).where(D.dispatch_id == dispatch_id, D.state == "failed_temporary")
        with self.read() as connection:
            found: dt.datetime | None = connection.execute(query).scalar()
        return found

    def counts(self, dispatch_id: str) -> dict[str, int]:
        """How many rows of the dispatch are in each state (every state listed, zeros too)."""
        found = dict.fromkeys(DELIVERY_STATES, 0)
        with self.read() as connection:
            rows = connection.execute(
                sa.select(D.state, sa.func.count()).where(D.dispatch_id == dispatch_id).group_by(D.state)
            )
            for state, number in rows:
                found[state] = number
        return found

    def deliveries(
        self, dispatch_id: str, *, states: Iterable[str] | None = None, after_id: int = 0, limit: int | None = None
    ) -> list[Delivery]:
        """The per-target send log of a dispatch, in ledger order (page with `after_id`)."""
        query = sa.select(deliveries).where(D.dispatch_id == dispatch_id, D.id > after_id).order_by(D.id)
        if states is not None:
            query = query.where(D.state.in_(list(states)))
        if limit is not None:
            query = query.limit(limit)
        with self.read() as connection:
            return [Delivery(**row._mapping) for row in connection.execute(query)]

    def claim_targets(
        self, dispatch_id: str, limit: int, worker: str, now: dt.datetime, lease_seconds: float
    ) -> list[tuple[int, str, int]]:
        """`claim`, for a send loop's hot path: the same rows, taken the same way, but only
        ``(id, target, attempts)`` of each comes back (about a quarter of `claim`'s cost per row)."""
        taken = self._take(dispatch_id, limit, worker, now, lease_seconds, (D.id, D.target, D.attempts))
        return sorted((row.id, row.target, row.attempts) for row in taken)


def _held_by(worker: str | None) -> tuple[Any, ...]:
    """The conditions of a row `worker` holds now (none when no worker is named)."""
    return () if worker is None else (D.worker == worker, D.state == "sending")
