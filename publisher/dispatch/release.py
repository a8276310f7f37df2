"""`publisher release DISPATCH`: send on purpose a dispatch skipped as too late.

An email or post dispatch late past its grace is skipped (see
:mod:`publisher.dispatch.runner`): mail about a meeting that is over should
not go out by accident. When it should go out anyway, releasing it makes it
``approved`` as of the release, so its lateness counts from then and the next
run sends it. Only what never started can be released, and only what the plan
still holds (a record changed or removed since is planned anew, or not at all).
"""

from __future__ import annotations

import datetime as dt
from typing import NoReturn

from publisher.dispatch.context import Runner
from publisher.dispatch.runner import skip_reason
from publisher.errors import InvalidInput, Problem
from publisher.site.settings import Settings
from publisher.store.dispatches import DispatchRow, PlannedDispatch
from publisher.timeline.plan import Dispatch, plan

#: States a dispatch can be released from: skipped, or due and about to be skipped.
RELEASABLE = frozenset({"skipped", "planned", "due"})


def lateness(settings: Settings, d: Dispatch, row: DispatchRow | None, now: dt.datetime) -> str | None:
    """Why `d` is (or would be, at `now`) skipped as too late, when a release can send it; else None.

    None for a feeds dispatch (never late), one with nothing to send, one that
    started, is held for review, or finished otherwise than skipped.
    """
    if not d.record_ids or d.channel == "feeds" or d.due > now:
        return None
    if row is not None and (row.started_at is not None or row.state not in RELEASABLE):
        return None
    if row is not None and row.state == "skipped" and row.note and row.note.startswith("late by"):
        return row.note
    return skip_reason(settings, d, now)


def late_dispatch(runner: Runner, dispatch_id: str, now: dt.datetime) -> tuple[Dispatch, str]:
    """The dispatch `dispatch_id` of the plan at `now` and its lateness; InvalidInput when it cannot be released."""
    found = next((d for d in plan(runner.records, runner.site.settings, now) if d.id == dispatch_id), None)
    row = runner.store.get_dispatch(dispatch_id)
    if found is None:
        gone = "" if row is None else f" any more ({row.state.replace('_', ' ')})"
        _refuse(f"no dispatch {dispatch_id!r} in the plan{gone} (see `publisher plan`)")
    why = lateness(runner.site.settings, found, row, now)
    if why is None:
        state = row.state if row is not None else ("waiting_review" if found.review else "planned")
        if state == "waiting_review":
            _refuse(f"{dispatch_id} is held for review: publisher approve {dispatch_id}")
        _refuse(f"{dispatch_id} is {state.replace('_', ' ')}, not skipped as too late")
    return found, why


def release(runner: Runner, d: Dispatch, now: dt.datetime) -> None:
    """Release `d` (from :func:`late_dispatch`): the next run sends it. InvalidInput if it moved meanwhile."""
    runner.store.upsert_dispatch(PlannedDispatch.of(d), now)
    if not runner.store.release_dispatch(d.id, now):
        row = runner.store.get_dispatch(d.id)
        state = row.state.replace("_", " ") if row is not None else "gone"
        _refuse(f"{d.id} is {state} now, not skipped as too late")


def _refuse(message: str) -> NoReturn:
    raise InvalidInput([Problem("command line", 1, "DISPATCH", message)])
