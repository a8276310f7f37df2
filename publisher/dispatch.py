"""Runs dispatches: claim in the ledger, send through a channel, record the result.

Only this layer writes the ledger. The plan (pure, from `timeline`) is mirrored
into the store's dispatch rows; what is due runs here, once per dispatch id,
whichever process or worker gets to it.

States of a dispatch: planned → (waiting_review → approved →) sending →
sent | partly_sent | failed | unknown | rate_limited, or skipped (with why).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from publisher.config import Site
from publisher.errors import PublisherError
from publisher.records import Record
from publisher.store import PlannedDispatch, Store
from publisher.timeline import Dispatch, plan, rule_grace

Clock = Callable[[], dt.datetime]
FINAL = frozenset({"sent", "failed", "skipped", "unknown"})
UNSTARTED = frozenset({"planned", "due", "waiting_review", "approved"})


def worker_id() -> str:
    """Who is working: host, process and a random part (a restarted process is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def shifted_clock(start: dt.datetime) -> Clock:
    """A clock that reads `start` now and moves on with real time (for `--now T`)."""
    import time

    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


@dataclass(frozen=True)
class Outcome:
    """What one dispatch run did."""

    dispatch_id: str
    channel: str
    state: str
    counts: Mapping[str, int] = field(default_factory=dict)
    note: str = ""
    elapsed: float = 0.0


@dataclass
class Runner:
    """Everything a dispatch needs: the site, its records, the store, a clock and who we are."""

    site: Site
    store: Store
    records: Sequence[Record]
    clock: Clock
    worker: str = field(default_factory=worker_id)
    on_progress: Callable[[str, int, int], None] | None = None
    stopping: Callable[[], bool] = lambda: False

    @property
    def by_id(self) -> dict[str, Record]:
        return {r.id: r for r in self.records}

    @property
    def templates(self) -> Path | None:
        return self.site.templates if self.site.templates.is_dir() else None


def planned(d: Dispatch) -> PlannedDispatch:
    state = "waiting_review" if d.review else "planned"
    return PlannedDispatch(d.id, d.channel, d.rule_key, d.due, d.record_ids, d.list, state)


def sync(store: Store, dispatches: Sequence[Dispatch], now: dt.datetime) -> None:
    """Mirror the plan into the store: new rows, re-planned rows, and future rows that left the plan."""
    store.upsert_dispatches([planned(d) for d in dispatches], now)
    wanted = {d.id for d in dispatches}
    gone = [row.id for row in store.list_dispatches() if row.id not in wanted and row.state in UNSTARTED]
    future = [i for i in gone if (row := store.get_dispatch(i)) is not None and row.due >= now]
    store.remove_unstarted(future)
    for dispatch_id in set(gone) - set(future):
        store.set_dispatch_state(dispatch_id, "skipped", now, note="no longer in the plan (record changed or removed)")


def current_plan(runner: Runner, now: dt.datetime) -> list[Dispatch]:
    dispatches = plan(runner.records, runner.site.settings, now)
    sync(runner.store, dispatches, now)
    return dispatches


def run_due(runner: Runner, now: dt.datetime | None = None) -> list[Outcome]:
    """Dispatch everything due at `now` (default: the runner's clock); return what each did."""
    now = now or runner.clock()
    outcomes = []
    for d in current_plan(runner, now):
        if d.due > now:
            continue
        outcome = run_one(runner, d, now)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def skip_reason(runner: Runner, d: Dispatch, now: dt.datetime) -> str | None:
    """Why a due dispatch will not run, or None when it should."""
    if not d.record_ids:
        return d.note or "nothing to send"
    rule = runner.site.settings.timeline[d.rule_index]
    grace = rule_grace(rule, runner.site.settings)
    late = (now - d.due).total_seconds()
    if late > grace:
        return f"late by {_duration(late)}, past the grace of {_duration(grace)}"
    return None


def run_one(runner: Runner, d: Dispatch, now: dt.datetime) -> Outcome | None:
    """Run one due dispatch unless it is finished, held for review or waiting to retry."""
    row = runner.store.get_dispatch(d.id)
    if row is None or row.state in FINAL or row.state == "waiting_review":
        return None
    if row.next_attempt_at is not None and row.next_attempt_at > now:
        return None
    if row.started_at is None:
        reason = skip_reason(runner, d, now)
        if reason is not None:
            runner.store.set_dispatch_state(d.id, "skipped", now, note=reason)
            return Outcome(d.id, d.channel, "skipped", note=reason)
    return execute(runner, d)


def execute(runner: Runner, d: Dispatch) -> Outcome:
    """Send one dispatch through its channel. A failure is recorded, then raised only if it stops all work."""
    from publisher import dispatch_email, dispatch_feeds, dispatch_social

    senders = {"email": dispatch_email.send, "feeds": dispatch_feeds.publish}
    send = senders.get(d.channel, dispatch_social.post)
    started = runner.clock()
    try:
        outcome = send(runner, d)
    except PublisherError as exc:
        runner.store.set_dispatch_state(d.id, "failed", runner.clock(), note=str(exc), finished_at=runner.clock())
        raise
    elapsed = (runner.clock() - started).total_seconds()
    return Outcome(outcome.dispatch_id, outcome.channel, outcome.state, outcome.counts, outcome.note, elapsed)


def final_state(counts: Mapping[str, int]) -> str:
    """A dispatch's state from its ledger counts."""
    total = sum(counts.values())
    sent = counts.get("sent", 0)
    waiting = counts.get("pending", 0) + counts.get("failed_temporary", 0) + counts.get("sending", 0)
    if total == 0 or sent == total:
        return "sent"
    if counts.get("unknown", 0) and not waiting:
        return "unknown" if sent == 0 else "partly_sent"
    if sent == 0 and not waiting:
        return "failed"
    return "partly_sent"


def _duration(seconds: float) -> str:
    seconds = abs(int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            value = seconds // size
            return f"{value} {unit}{'s' if value != 1 else ''}"
    return f"{seconds} s"
