"""Runs dispatches: claim in the ledger, send through a channel, record the result.

Only this layer writes the ledger. The plan (pure, from `timeline`) is mirrored
into the store's dispatch rows; what is due runs here, once per dispatch id,
whichever process or worker gets to it.

States of a dispatch: planned → (waiting_review → approved →) sending →
sent | partly_sent | failed | unknown | rate_limited,
or skipped (with why). A dispatch that is partly sent and has a
`next_attempt_at` still has recipients to retry at that time; without one it is
finished.

Lateness: an email or post dispatch that has not started and is late by more
than its rule's grace (``[scheduler] grace``, default 6 hours) is skipped, and
`plan` says why and how to release it (``publisher release``, which counts the
lateness from the release). A feeds dispatch is never late: the feed shows what
is published whenever the clock runs. One that has started is always finished,
however late (its retries have their own budget).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from publisher.errors import InvalidInput, Problem, PublisherError
from publisher.site.config import Site
from publisher.site.records import Record
from publisher.store.dispatches import DispatchRow, PlannedDispatch, Store
from publisher.timeline.plan import LOOKBACK, Dispatch, plan, rule_grace, rule_key

Clock = Callable[[], dt.datetime]
FINAL = frozenset({"sent", "failed", "skipped", "unknown"})
UNSTARTED = frozenset({"planned", "due", "waiting_review", "approved"})


def worker_id() -> str:
    """Who is working: host, process and a random part (a restarted process is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def wall_clock() -> dt.datetime:
    """The real time, for what must not move with `--now` (locks, heartbeats)."""
    return dt.datetime.now(dt.UTC)


def shifted_clock(start: dt.datetime) -> Clock:
    """A clock that reads `start` now and moves on with real time (for `--now T`)."""
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


@dataclass(frozen=True)
class Outcome:
    """What one dispatch run did. `counts` are the ledger's totals; `sent_now` is this run's share."""

    dispatch_id: str
    channel: str
    state: str
    counts: Mapping[str, int] = field(default_factory=dict)
    note: str = ""
    elapsed: float = 0.0
    error: str | None = None
    sent_now: int = 0


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


def sync(store: Store, dispatches: Sequence[Dispatch], now: dt.datetime, since: dt.datetime) -> None:
    """Mirror the plan into the store: new rows, re-planned rows, and rows of the window that left the plan.

    An unstarted row that left the plan (its record changed, was cancelled or
    removed) is deleted if it was still to come, and skipped if it was already due.
    """
    store.upsert_dispatches([PlannedDispatch.of(d) for d in dispatches], now)
    wanted = {d.id for d in dispatches}
    rows = store.list_dispatches(states=UNSTARTED, due_from=since)
    gone = [row for row in rows if row.id not in wanted and row.started_at is None]
    store.remove_unstarted([row.id for row in gone if row.due > now])
    for row in gone:
        if row.due <= now:
            store.set_dispatch_state(row.id, "skipped", now, note="no longer in the plan (record changed or removed)")


def current_plan(runner: Runner, now: dt.datetime) -> list[Dispatch]:
    """The plan at `now`, mirrored into the store."""
    dispatches = plan(runner.records, runner.site.settings, now)
    sync(runner.store, dispatches, now, now - LOOKBACK)
    return dispatches


def run_due(runner: Runner, now: dt.datetime | None = None) -> list[Outcome]:
    """Dispatch everything due at `now` (default: the runner's clock); return what each did.

    A dispatch that fails is recorded and reported in its Outcome (`error`); the
    others still run. Bad configuration (InvalidInput) stops everything.
    """
    now = now or runner.clock()
    return for_each_due(runner, now, run_one)


def for_each_due(
    runner: Runner, now: dt.datetime, act: Callable[[Runner, Dispatch, dt.datetime], Outcome | None]
) -> list[Outcome]:
    """`act` on every dispatch of the plan due at `now`, in due order, until the runner is told to stop."""
    outcomes = []
    for d in current_plan(runner, now):
        if runner.stopping():
            break
        if d.due > now:
            continue
        outcome = act(runner, d, now)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def skip_reason(runner: Runner, d: Dispatch, now: dt.datetime, approved_at: dt.datetime | None = None) -> str | None:
    """Why a due dispatch that has not started will not run, or None when it should.

    A dispatch held for review (or released after a skip) counts its lateness from its approval when that
    came after its due time. A feeds dispatch is never too late: the feed must show what is published.
    """
    if not d.record_ids:
        return d.note or "nothing to send"
    if d.channel == "feeds":
        return None
    rule = runner.site.settings.timeline[d.rule_index]
    grace = rule_grace(rule, runner.site.settings)
    late = (now - max(d.due, approved_at or d.due)).total_seconds()
    if late > grace:
        return f"late by {duration(late)}, past the grace of {duration(grace)}"
    return None


def finished(row: DispatchRow) -> bool:
    """Nothing more to do for this dispatch by itself (`resend` can still retry its failures)."""
    if row.state in FINAL:
        return True
    return row.state == "partly_sent" and row.next_attempt_at is None


def admit(runner: Runner, d: Dispatch, now: dt.datetime) -> Outcome | bool:
    """Whether a due dispatch should run now: True, False (finished, held for review,
    waiting to retry), or the Outcome of skipping it (late past its grace, nothing to send)."""
    row = runner.store.get_dispatch(d.id)
    if row is None or finished(row) or row.state == "waiting_review":
        return False
    if row.next_attempt_at is not None and row.next_attempt_at > now:
        return False
    if row.started_at is None:
        reason = skip_reason(runner, d, now, row.review_approved_at)
        if reason is not None:
            runner.store.set_dispatch_state(d.id, "skipped", now, note=reason)
            return Outcome(d.id, d.channel, "skipped", note=reason)
    return True


def run_one(runner: Runner, d: Dispatch, now: dt.datetime) -> Outcome | None:
    """Run one due dispatch unless it is finished, held for review, waiting to retry or skipped."""
    admitted = admit(runner, d, now)
    if isinstance(admitted, Outcome):
        return admitted
    return execute(runner, d) if admitted else None


def execute(runner: Runner, d: Dispatch) -> Outcome:
    """Send one dispatch through its channel. A failure is recorded and returned (`Outcome.error`).

    InvalidInput (bad configuration, e.g. no PUBLISHER_SECRET) is raised: it
    stops every dispatch alike, and the dispatch stays as it was.
    """
    from publisher.dispatch import email as dispatch_email
    from publisher.dispatch import feeds as dispatch_feeds
    from publisher.dispatch import social as dispatch_social

    senders = {"email": dispatch_email.send, "feeds": dispatch_feeds.publish}
    send = senders.get(d.channel, dispatch_social.post)
    started = time.monotonic()
    try:
        outcome = send(runner, d)
    except InvalidInput:
        raise
    except PublisherError as exc:
        now = runner.clock()
        counts = runner.store.counts(d.id)
        runner.store.set_dispatch_state(d.id, "failed", now, note=str(exc), counts=counts, next_attempt_at=None)
        outcome = Outcome(d.id, d.channel, "failed", counts, str(exc), error=str(exc))
    elapsed = time.monotonic() - started
    return Outcome(**{**vars(outcome), "elapsed": elapsed})


def dispatch_of(site: Site, row: DispatchRow) -> Dispatch:
    """A stored dispatch as a plan entry (for `resend`: its record may have left the plan since)."""
    keys = [rule_key(rule, site.settings) for rule in site.settings.timeline]
    index = keys.index(row.rule_key) if row.rule_key in keys else -1
    kind: Literal["single", "digest"] = "digest" if "cron(" in row.rule_key else "single"
    return Dispatch(
        id=row.id,
        rule_index=index,
        rule_key=row.rule_key,
        channel=row.channel,
        due=row.due,
        record_ids=row.record_ids,
        list=row.list_name,
        review=False,
        kind=kind,
        occurrence=row.due,
    )


def resend_failed(runner: Runner, dispatch_id: str) -> tuple[int, Outcome]:
    """`publisher resend DISPATCH --failed`: its failed recipients become pending and the dispatch runs again.

    Returns how many rows were reset, and the run's Outcome. Recipients marked
    sent are never sent to again; a bounced or unsubscribed one is not mailed.
    """
    store = runner.store
    row = store.get_dispatch(dispatch_id)
    if row is None:
        message = f"no dispatch {dispatch_id!r} (see `publisher plan`)"
        raise InvalidInput([Problem("command line", 1, "DISPATCH", message)])
    if row.started_at is None:
        message = f"{dispatch_id} has not started ({row.state}): nothing failed yet"
        raise InvalidInput([Problem("command line", 1, "DISPATCH", message)])
    reset = store.reset_failed(dispatch_id, runner.clock())
    return reset, execute(runner, dispatch_of(runner.site, row))


def final_state(counts: Mapping[str, int]) -> str:
    """A dispatch's state from its ledger counts.

    All sent (or nobody to send to) → sent; some still to try (or some sent) →
    partly_sent; none sent and nothing left to try → failed, or unknown when
    only unknowable outcomes are left. (Never ``due``: the store counts a due
    dispatch as not started, free to re-plan.)
    """
    total = sum(counts.values())
    sent = counts.get("sent", 0)
    waiting = counts.get("pending", 0) + counts.get("failed_temporary", 0) + counts.get("sending", 0)
    if total == 0 or sent == total:
        return "sent"
    if waiting or sent:
        return "partly_sent"
    return "unknown" if counts.get("unknown", 0) else "failed"


def duration(seconds: float) -> str:
    """``"6 hours"``, ``"1 day"``, ``"45 s"``: a length of time in words (rounded down)."""
    seconds = abs(int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            value = seconds // size
            return f"{value} {unit}{'s' if value != 1 else ''}"
    return f"{seconds} s"
