"""`publisher run`: one clock per database, keeping APScheduler in step with the plan.

The plan is recomputed on every wake-up; APScheduler (3.x, SQLAlchemy job
store on the site's database) holds two jobs: a regular tick every `poll`
seconds and a one-off wake-up at the next due time. Both run `tick`, which
dispatches what is due. Jobs carry only the site folder (they are pickled).

Misfires: both jobs have `misfire_grace_time=None` (run however late) and
`coalesce=True`, so a wake-up missed while the process was down runs once at
start. Whether a late dispatch is still sent is our policy, not APScheduler's:
late by less than the rule's grace (default 6 hours) → sent, else skipped,
and `plan` says why.

Only one clock may run on a database: `run` takes the store's scheduler lock
and refuses to start while another live process holds it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from publisher.config import CONFIG_FILE, Site, load_site
from publisher.dispatch import Clock, Outcome, Runner, run_due, worker_id
from publisher.errors import WorkFailed
from publisher.records import load_records, record_files
from publisher.store import Store, open_store

LOCK = "scheduler"
log = logging.getLogger("publisher.scheduler")


class ClockAlreadyRunning(WorkFailed):
    """Another `publisher run` holds this database's clock."""


def _alive_here(owner: str) -> bool | None:
    """Whether a lock owner on this host is still running (None: another host, can't tell)."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take_clock(store: Store, owner: str, now: dt.datetime, stale_after: float) -> None:
    """Hold the database's clock, taking it over from a dead process on this host."""
    if store.acquire_lock(LOCK, owner, now, stale_after):
        return
    holder = store.lock_holder(LOCK)
    if holder is not None and _alive_here(holder.owner) is False:
        store.release_lock(LOCK, holder.owner)
        store.release(holder.owner, now)  # its claimed rows were never answered for: claimable again
        if store.acquire_lock(LOCK, owner, now, stale_after):
            return
    since = f" since {holder.acquired_at:%Y-%m-%d %H:%M} UTC" if holder else ""
    who = holder.owner if holder else "another process"
    raise ClockAlreadyRunning(
        f"another `publisher run` ({who}{since}) is the clock of this database; "
        "two clocks would send everything twice. Stop it first, or wait until its heartbeat is stale."
    )


@dataclass
class Clockwork:
    """The state of one running clock: the site, its records, its store."""

    root: Path
    clock: Clock
    site: Site
    store: Store
    owner: str = field(default_factory=worker_id)
    reload_wanted: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    on_outcome: Callable[[Outcome], None] | None = None
    _seen: float = 0.0

    def __post_init__(self) -> None:
        self._seen = self._mtime()
        self.runner = self._runner()

    def _mtime(self) -> float:
        paths = [self.root / CONFIG_FILE, *record_files(self.site.events)]
        return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)

    def _runner(self) -> Runner:
        records = load_records(self.site.events, self.site.root)
        return Runner(self.site, self.store, records, self.clock, worker=self.owner, stopping=self.stop.is_set)

    def refresh(self) -> None:
        """Re-read records and settings when a file changed or SIGHUP asked for it."""
        mtime = self._mtime()
        if self.reload_wanted or mtime != self._seen:
            self.reload_wanted = False
            self._seen = mtime
            self.site = load_site(self.root, self.site.env)
            self.runner = self._runner()
            log.info("records re-read: %d", len(self.runner.records))

    def tick(self) -> list[Outcome]:
        now = self.clock()
        if not self.store.heartbeat(LOCK, self.owner, now):
            self.stop.set()
            raise ClockAlreadyRunning("this process lost the clock to another one; stopping")
        self.refresh()
        outcomes = run_due(self.runner, now)
        for outcome in outcomes:
            if self.on_outcome:
                self.on_outcome(outcome)
        return outcomes

    def next_due(self, now: dt.datetime) -> dt.datetime | None:
        from publisher.timeline import plan

        upcoming = [d.due for d in plan(self.runner.records, self.site.settings, now) if d.due > now]
        return min(upcoming, default=None)


_ACTIVE: dict[str, Clockwork] = {}


def tick(root: str) -> None:
    """The job APScheduler runs (an importable function of plain arguments, so it pickles)."""
    work = _ACTIVE.get(root)
    if work is None or work.stop.is_set():
        return
    try:
        work.tick()
        _schedule_wakeup(work)
    except Exception:  # a job must never take the clock down; the ledger keeps what happened
        log.exception("dispatch run failed")


_SCHEDULERS: dict[str, object] = {}


def _schedule_wakeup(work: Clockwork) -> None:
    scheduler = _SCHEDULERS.get(str(work.root))
    due = work.next_due(work.clock())
    if scheduler is None or due is None:
        return
    scheduler.add_job(  # type: ignore[attr-defined]
        "publisher.scheduler:tick", "date", run_date=due, args=[str(work.root)], id="next-due",
        replace_existing=True, misfire_grace_time=None, coalesce=True,
    )  # fmt: skip


def run_once(site: Site, now: dt.datetime, clock: Clock, *, on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """`publisher run --once`: dispatch everything due at `now`, then stop."""
    store = open_store(site.database_url)
    owner = worker_id()
    try:
        take_clock(store, owner, now, stale_after=site.settings.scheduler.poll * 3)
        work = Clockwork(site.root, clock, site, store, owner=owner, on_outcome=on_outcome)
        _install_signals(work)
        try:
            return run_due(work.runner, now)
        finally:
            store.release(owner, clock())
            store.release_lock(LOCK, owner)
    finally:
        store.close()


def run_forever(site: Site, clock: Clock, *, on_outcome: Callable[[Outcome], None] | None = None) -> None:
    """`publisher run`: the daemon. Returns after SIGTERM/SIGINT, in-flight work finished or released."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    store = open_store(site.database_url)
    owner = worker_id()
    poll = site.settings.scheduler.poll
    take_clock(store, owner, clock(), stale_after=poll * 3)
    work = Clockwork(site.root, clock, site, store, owner=owner, on_outcome=on_outcome)
    _install_signals(work)
    _ACTIVE[str(site.root)] = work
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=site.database_url, tablename="apscheduler_jobs")},
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        timezone=site.settings.site.zone,
    )
    _SCHEDULERS[str(site.root)] = scheduler
    scheduler.add_job(
        "publisher.scheduler:tick", "interval", seconds=poll, args=[str(site.root)], id="tick",
        replace_existing=True, next_run_time=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    scheduler.start()
    try:
        while not work.stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=True)
        store.release(owner, clock())
        store.release_lock(LOCK, owner)
        _ACTIVE.pop(str(site.root), None)
        _SCHEDULERS.pop(str(site.root), None)
        store.close()


def _install_signals(work: Clockwork) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        work.stop.set()

    def reload(signum: int, frame: FrameType | None) -> None:
        work.reload_wanted = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, reload)
