"""What a sender is given and gives back: the Runner (site, records, store, clock, who) and the Outcome.

Its own module so that the runner, which picks a sender for each dispatch
(`publisher.dispatch.senders`), and the senders, which use these, import it and
never each other: no import circle between the runner and the senders.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from publisher.site.config import Site
from publisher.site.records import Record
from publisher.store.dispatches import Store
from publisher.store.tables import DispatchState

Clock = Callable[[], dt.datetime]


def worker_id() -> str:
    """Who is working: host, process and a random part (a restarted process is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def wall_clock() -> dt.datetime:
    """The real time, for what must not move with `--now` (locks, heartbeats)."""
    return dt.datetime.now(dt.UTC)


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
    #: The clock's plan kept between ticks (`runner.current_plan`): a runner is made anew whenever records or
    #: settings are re-read, so what is kept here never outlives them. None: planned afresh every time.
    kept_plan: KeptPlan | None = None

    @property
    def by_id(self) -> dict[str, Record]:
        return {r.id: r for r in self.records}

    @property
    def templates(self) -> Path | None:
        return self.site.template_folder


@dataclass
class KeptPlan:
    """A plan made at `made_at` and whether the store mirrors it yet (see `runner.current_plan`)."""

    made_at: dt.datetime | None = None
    dispatches: Sequence[Any] = ()
    synced: bool = False


def final_state(counts: Mapping[str, int]) -> DispatchState:
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
