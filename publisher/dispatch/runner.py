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

import bisect
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Literal

from publisher.dispatch import metrics
from publisher.dispatch.context import Clock, Outcome, Runner, duration
from publisher.errors import InvalidInput, Problem, PublisherError
from publisher.site.config import Site
from publisher.site.settings import Settings
from publisher.store.dispatches import DispatchRow, PlannedDispatch, Store
from publisher.store.tables import DISPATCH_STATES, FINAL, UNSTARTED
from publisher.timeline.plan import LOOKBACK, Dispatch, plan, rule_grace, rule_key


def shifted_clock(start: dt.datetime) -> Clock:
    """A clock that reads `start` now and moves on with real time (for `--now T`)."""
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


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


#: How long a kept plan serves: it lists digests up to `made_at` + HORIZON, a day less still reaches far enough.
KEPT_FOR = dt.timedelta(days=1)
# The states `admit` may let through (`_turned_away` has the rest of its row checks).
OPEN_STATES = tuple(state for state in DISPATCH_STATES if state not in FINAL and state != "waiting_review")


def current_plan(runner: Runner, now: dt.datetime) -> list[Dispatch]:
    """The plan at `now`, mirrored into the store.

    With `runner.kept_plan` (the clock's), the plan is made and mirrored once and kept while records and settings
    stay (the runner is made anew when they change) for up to a day of `now` moving forward: a plan depends on
    `now` only through its window, so the kept one, less what fell out of the lookback, is the plan at `now`
    (digests to a horizon up to a day shorter). Mirroring it again would change nothing: only a new plan is.
    """
    kept = runner.kept_plan
    if kept is None:
        dispatches = plan(runner.records, runner.site.settings, now)
        sync(runner.store, dispatches, now, now - LOOKBACK)
        return dispatches
    if kept.made_at is None or not kept.made_at <= now <= kept.made_at + KEPT_FOR:
        kept.made_at, kept.dispatches, kept.synced = now, plan(runner.records, runner.site.settings, now), False
    start = now - LOOKBACK
    # the plan is sorted by due time: what fell out of the lookback is a head to cut, found by bisection
    dispatches = list(kept.dispatches[bisect.bisect_right(kept.dispatches, start, key=lambda d: d.due) :])
    if not kept.synced:
        sync(runner.store, dispatches, now, start)
        kept.synced = True
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
    """`act` on every dispatch of the plan due at `now` that `admit` may let through, in due order, until the
    runner is told to stop.

    One read of the window's rows, of only the states `admit` may let through: those it would turn away now
    (no row, finished, held for review, waiting to retry) are passed over here rather than read one query each,
    and an idle tick at 10,000 records × 50 rules reads a handful of rows rather than thousands.
    """
    outcomes = []
    dispatches = current_plan(runner, now)
    rows = runner.store.list_dispatches(
        states=OPEN_STATES, due_from=now - LOOKBACK, due_before=now + dt.timedelta(microseconds=1)
    )
    open_ids = {row.id for row in rows if not _turned_away(row, now)}
    for d in dispatches:  # sorted by due time: the first one not due yet ends the round
        if d.due > now or runner.stopping():
            break
        if d.id not in open_ids:
            continue
        outcome = act(runner, d, now)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def skip_reason(
    settings: Settings, d: Dispatch, now: dt.datetime, approved_at: dt.datetime | None = None
) -> str | None:
    """Why a due dispatch that has not started will not run, or None when it should.

    A dispatch held for review (or released after a skip) counts its lateness from its approval when that
    came after its due time. A feeds dispatch is never too late: the feed must show what is published.
    """
    if not d.record_ids:
        return d.note or "nothing to send"
    if d.channel == "feeds":
        return None
    rule = settings.timeline[d.rule_index]
    grace = rule_grace(rule, settings)
    late = (now - max(d.due, approved_at or d.due)).total_seconds()
    if late > grace:
        return f"late by {duration(late)}, past the grace of {duration(grace)}"
    return None


def finished(row: DispatchRow) -> bool:
    """Nothing more to do for this dispatch by itself (`resend` can still retry its failures)."""
    if row.state in FINAL:
        return True
    return row.state == "partly_sent" and row.next_attempt_at is None


def _turned_away(row: DispatchRow, now: dt.datetime) -> bool:
    """Whether `admit` returns False for this row whatever the dispatch (its first checks, on the row alone)."""
    if finished(row) or row.state == "waiting_review":
        return True
    return row.next_attempt_at is not None and row.next_attempt_at > now


def admit(runner: Runner, d: Dispatch, now: dt.datetime) -> Outcome | bool:
    """Whether a due dispatch should run now: True, False (finished, held for review,
    waiting to retry), or the Outcome of skipping it (late past its grace, nothing to send)."""
    row = runner.store.get_dispatch(d.id)
    if row is None or _turned_away(row, now):
        return False
    if row.started_at is None:
        reason = skip_reason(runner.site.settings, d, now, row.review_approved_at)
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
    from publisher.dispatch.senders import sender_for  # loads every channel's code: only when sending

    started = time.monotonic()
    try:
        outcome = sender_for(d.channel)(runner, d)
    except InvalidInput:
        raise
    except PublisherError as exc:
        now = runner.clock()
        counts = runner.store.counts(d.id)
        runner.store.set_dispatch_state(d.id, "failed", now, note=str(exc), counts=counts, next_attempt_at=None)
        outcome = Outcome(d.id, d.channel, "failed", counts, str(exc), error=str(exc))
    elapsed = time.monotonic() - started
    if d.channel != "email":  # one post or feed write; an email dispatch counts each recipient as it is answered
        failed = bool(outcome.error) or outcome.state in ("failed", "unknown")
        metrics.count(d.channel, "failed" if failed else "sent", 1 if failed or outcome.state == "sent" else 0)
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
