"""`publisher run`: one clock per database, keeping APScheduler in step with the plan.

The plan is recomputed on every wake-up; APScheduler (3.x, SQLAlchemy job
store on the site's database) holds two jobs: a regular tick every
``[scheduler] poll`` seconds and a one-off wake-up at the next due time (a
dispatch, or a retry of one). Both run `tick`, which dispatches what is due.
Jobs carry only the site folder (they are pickled), and run one at a time.
Jobs this version cannot load (an older publisher's `publisher.scheduler:tick`)
are removed from the job store when the clock starts.

Misfires: both jobs have ``misfire_grace_time=None`` (run however late) and
``coalesce=True``, so a wake-up missed while the process was down runs once at
start (APScheduler's default grace of 1 s would drop it and delete it from the
job store). Whether a late dispatch is still sent is our policy, not
APScheduler's: late by less than the rule's grace (default 6 hours) → sent,
else skipped, and `plan` says why.

Only one clock may run on a database (two APScheduler processes on one job
store each run every job): `run` takes the store's scheduler lock and refuses
to start while another live process holds it, or with ``--standby`` waits to
take over (`publisher.dispatch.clock_lock`). The holder shows it is alive
every few seconds from a thread of its own and again before each tick; a
holder that is gone (its process has died on this host, or its heartbeat is
20 s old, on any host) is taken over. Lock times are real times, whatever
`--now` says.

Every ``RESCUE_SECONDS`` the running clock also looks for ledger rows held
under a lease that ran out (a worker died mid-send: `publisher.dispatch.leases`)
and, when it finds some, ticks at once, which puts their dispatch on the queue
again: a dead worker's share is sent by the others within a lease and a few
seconds, whatever the scheduler's poll.

Each tick also reads the bounce mailbox when ``[bounces] mailbox`` is set
(`publisher.audience.bounces`), and forgets web sign-ups left pending (never confirmed) once their
confirmation links have expired, by the real time
(`publisher.audience.subscribers.forget_unconfirmed`).

SIGTERM and SIGINT stop the clock: the dispatch in progress hands out no new
message, waits for those in flight, gives back what it had claimed, and the
process exits 0. SIGHUP re-reads records and settings (so does any change of
their files: an edit, an added or a removed record, seen by size and mtime).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa

from publisher.audience import bounces, subscribers
from publisher.audience.confirm import DEFAULT_LIFETIME as CONFIRMATION_LIFETIME
from publisher.dispatch.clock_lock import HEARTBEAT_SECONDS, Say, holding_clock, still_holding
from publisher.dispatch.context import Clock, KeptPlan, Outcome, Runner, wall_clock, worker_id
from publisher.dispatch.queue import dispatch_due
from publisher.dispatch.runner import current_plan
from publisher.errors import InvalidInput, PublisherError
from publisher.site.config import CONFIG_FILE, Site, load_site
from publisher.site.files import Stamp, record_stamps, same_stamps
from publisher.site.records import Record, load_records
from publisher.store.database import create_engine
from publisher.store.dispatches import Store, open_store

RESCUE_SECONDS = 5.0  # how often a running clock looks for rows a dead worker held (`Clockwork.orphans`)
JOB_TABLE = "apscheduler_jobs"
RETRYING = ("partly_sent", "rate_limited", "due")
log = logging.getLogger("publisher.dispatch.clock")
Progress = Callable[[str, int, int], None]


@dataclass
class Clockwork:
    """The state of one running clock: the site, its records, its store, and how to stop it."""

    root: Path
    clock: Clock
    site: Site
    store: Store
    owner: str = field(default_factory=worker_id)
    on_outcome: Callable[[Outcome], None] | None = None
    on_progress: Progress | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    reload_wanted: threading.Event = field(default_factory=threading.Event)  # SIGHUP sets it
    wake_at: dt.datetime | None = None  # when the next one-off wake-up should be (real time)
    wall: Clock = wall_clock  # the real time, whatever `clock` (shifted by --now) says
    _seen: tuple[Stamp | None, list[Stamp]] = (None, [])
    _busy: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._seen = self._stamps()
        self.runner = self._runner(load_records(self.site.events, self.site.root, keep=True))

    def _stamps(self) -> tuple[Stamp | None, list[Stamp]]:
        """The settings file's and every record file's size and mtime: any edit, added or removed record changes
        them (a newest mtime alone misses a removed file and one copied in with an older time)."""
        try:
            st = os.stat(self.root / CONFIG_FILE)
            settings: Stamp | None = (CONFIG_FILE, st.st_size, st.st_mtime_ns)
        except OSError:
            settings = None
        return settings, record_stamps(self.site.events)

    def _runner(self, records: list[Record]) -> Runner:
        return Runner(
            self.site,
            self.store,
            records,
            self.clock,
            worker=self.owner,
            on_progress=self.on_progress,
            stopping=self.stop.is_set,
            kept_plan=KeptPlan(),  # planned once per records and settings, not every tick
        )

    def refresh(self) -> None:
        """Re-read records and settings when a file changed or SIGHUP asked for it."""
        stamps = self._stamps()
        unchanged = stamps[0] == self._seen[0] and same_stamps(stamps[1], self._seen[1])
        if not self.reload_wanted.is_set() and unchanged:
            return
        self.reload_wanted.clear()
        try:
            site = load_site(self.root, self.site.env)
            records = load_records(site.events, site.root, keep=True)
        except InvalidInput as exc:  # keep going with the last good records; say why, once per change
            problems = "\n".join(str(problem) for problem in exc.problems)
            log.error("records and settings not re-read (the last good ones stay in use):\n%s", problems)
        else:
            self.site = site
            self.runner = self._runner(records)
            log.info("records re-read: %d", len(records))
        self._seen = stamps

    def tick(self, now: dt.datetime | None = None) -> list[Outcome]:
        """Dispatch what is due (skipped if a tick is already running in this process)."""
        if not self._busy.acquire(blocking=False):
            return []
        try:
            if self.stop.is_set():
                return []
            if not still_holding(self.store, self.owner, self.wall()):  # taken over while stalled: never two clocks
                log.error("this process lost the clock to another one; stopping")
                self.stop.set()
                return []
            self.refresh()
            outcomes = dispatch_due(self.runner, now or self.clock())  # here, or onto the queue
            for outcome in outcomes:
                if self.on_outcome is not None:
                    self.on_outcome(outcome)
            self.forget_unconfirmed()
            self.read_bounces(now or self.clock())
            return outcomes
        finally:
            self._busy.release()

    def forget_unconfirmed(self) -> None:
        """Forget web sign-ups whose confirmation links have expired, by the real time (never `--now`'s:
        a rehearsal of next month must not delete this week's sign-ups)."""
        try:
            forgotten = subscribers.forget_unconfirmed(self.store, self.wall() - CONFIRMATION_LIFETIME)
        except Exception:  # never worth stopping a tick for: tried again at the next one
            log.exception("could not forget expired sign-ups")
            return
        if forgotten:
            log.info("forgot %d sign-ups never confirmed within %s", forgotten, CONFIRMATION_LIFETIME)

    def read_bounces(self, now: dt.datetime) -> None:
        """Read the bounce mailbox once, when one is set (`publisher.audience.bounces`); a mailbox that cannot
        be opened is one error line, and the clock goes on with its other work."""
        if self.site.settings.bounces.mailbox is None:
            return
        try:
            done = bounces.read_site_mailbox(self.store, self.site, now)
        except PublisherError as exc:
            log.error("bounces not read: %s", exc)
            return
        except Exception:  # never worth stopping a tick for: read again at the next one
            log.exception("bounces not read")
            return
        if done["reports"]:
            log.info("bounces: %s", bounces.summary(done))

    def orphans(self) -> list[str]:
        """Dispatches with rows under leases that ran out (their worker died); [] if the database can't say."""
        try:
            return self.store.orphaned(self.clock())
        except Exception:  # a busy database for a moment: looked at again a few seconds later
            log.warning("could not look for orphaned ledger rows", exc_info=True)
            return []

    def next_wakeup(self, now: dt.datetime) -> dt.datetime | None:
        """The next time anything falls due: a planned dispatch or a retry of a started one."""
        upcoming = [d.due for d in current_plan(self.runner, now) if d.due > now]
        retries = self.store.list_dispatches(states=RETRYING)
        upcoming += [r.next_attempt_at for r in retries if r.next_attempt_at is not None and r.next_attempt_at > now]
        return min(upcoming, default=None)


_ACTIVE: dict[str, Clockwork] = {}


def tick(root: str) -> None:
    """The job APScheduler runs (an importable function of plain arguments, so it pickles)."""
    work = _ACTIVE.get(root)
    if work is None or work.stop.is_set():
        return
    try:
        work.tick()
        now = work.clock()
        due = work.next_wakeup(now)
        # Real time for the job store; `--now` may have shifted ours. The clock's own thread adds
        # the job: adding it from inside a job can deadlock with a shutdown waiting for that job.
        work.wake_at = None if due is None else wall_clock() + (due - now)
    except PublisherError as exc:  # e.g. no PUBLISHER_SECRET: said in one line, tried again at the next tick
        log.error("dispatch run failed: %s", exc)
    except Exception:  # a job must never take the clock down; the ledger keeps what happened
        log.exception("dispatch run failed")


def _schedule_wakeup(scheduler: Any, root: str, when: dt.datetime) -> None:
    scheduler.add_job(
        "publisher.dispatch.clock:tick", "date", run_date=when, args=[root], id="next-due",
        replace_existing=True, misfire_grace_time=None, coalesce=True,
    )  # fmt: skip


def forget_unloadable_jobs(jobs: Any) -> list[str]:
    """Remove from an APScheduler SQLAlchemy job store the jobs this version cannot load; return their ids.

    A job is stored pickled with its function as a ``module:function`` text,
    and an older publisher stored ``publisher.scheduler:tick``, a module that no
    longer exists. Left there, APScheduler would log a traceback for each when
    it falls due, and a far wake-up would hold its place until then: the clock
    removes them before it starts, and adds its own.
    """
    from apscheduler.util import ref_to_obj

    table = jobs.jobs_t
    if not sa.inspect(jobs.engine).has_table(table.name):
        return []
    with jobs.engine.begin() as connection:
        dead = []
        for row in connection.execute(sa.select(table.c.id, table.c.job_state)):
            try:
                ref_to_obj(pickle.loads(row.job_state)["func"])  # APScheduler's own format; it unpickles them too
            except (LookupError, ImportError, AttributeError, pickle.UnpicklingError):
                dead.append(row.id)
        if dead:
            connection.execute(table.delete().where(table.c.id.in_(dead)))
    return dead


def make_scheduler(site: Site) -> Any:
    """The APScheduler 3 scheduler of a site: its job store in the site's database, our misfire policy."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    # Our engine: the SQLite file's folder made, WAL and the busy timeout set, as for the store.
    jobs = SQLAlchemyJobStore(engine=create_engine(site.database_url), tablename=JOB_TABLE)
    forgotten = forget_unloadable_jobs(jobs)
    if forgotten:
        log.info("removed jobs stored by an older publisher (%s); the clock adds its own", ", ".join(forgotten))
    return BackgroundScheduler(
        jobstores={"default": jobs},
        executors={"default": ThreadPoolExecutor(1)},  # one job at a time: ticks never overlap
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        timezone=dt.UTC,
    )


def run_once(
    site: Site,
    now: dt.datetime,
    clock: Clock,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_progress: Progress | None = None,
    wall: Clock = wall_clock,
) -> list[Outcome]:
    """`publisher run --once`: dispatch everything due at `now`, then stop (early on SIGTERM)."""
    store = open_store(site.database_url)
    owner = worker_id()
    stop = threading.Event()
    try:
        with _signals(stop, threading.Event()), holding_clock(store, owner, wall, stop.set, HEARTBEAT_SECONDS):
            work = Clockwork(site.root, clock, site, store, owner, on_outcome, on_progress, stop, wall=wall)
            return work.tick(now)
    finally:
        store.close()


def run_forever(
    site: Site,
    clock: Clock,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_progress: Progress | None = None,
    wall: Clock = wall_clock,
    stop: threading.Event | None = None,
    standby: bool = False,
    say: Say = log.info,
) -> None:
    """`publisher run`: the daemon. Returns after SIGTERM/SIGINT (or `stop`), in-flight work finished or released.

    With `standby`, a clock held by another live process is waited for (`say` tells when it stands by
    and when it took over) instead of refused."""
    store = open_store(site.database_url)
    owner = worker_id()
    stop = stop or threading.Event()
    poll = site.settings.scheduler.poll
    beat = min(HEARTBEAT_SECONDS, poll)
    try:
        reload = threading.Event()
        # Signals first: a SIGTERM at any moment of the start-up (or of a standby's wait) is a clean stop too.
        with (
            _signals(stop, reload),
            holding_clock(store, owner, wall, stop.set, beat, standby=stop if standby else None, say=say) as held,
        ):
            if not held:
                return
            work = Clockwork(site.root, clock, site, store, owner, on_outcome, on_progress, stop, reload, wall=wall)
            _run_scheduler(site, work, poll)
    finally:
        store.close()


def _run_scheduler(site: Site, work: Clockwork, poll: float) -> None:
    scheduler = make_scheduler(site)
    root = str(site.root)
    _ACTIVE[root] = work
    scheduler.add_job(
        "publisher.dispatch.clock:tick", "interval", seconds=poll, args=[root], id="tick",
        replace_existing=True, next_run_time=wall_clock(),
    )  # fmt: skip
    scheduler.start()
    scheduled: dt.datetime | None = None
    rescue_at = time.monotonic() + RESCUE_SECONDS
    try:
        while not work.stop.wait(0.2):
            wanted = work.wake_at
            try:  # the job store is in the database: a hiccup there must not take the clock down
                if wanted is not None and wanted != scheduled:
                    _schedule_wakeup(scheduler, root, wanted)
                    scheduled = wanted
                if time.monotonic() >= rescue_at:
                    rescue_at = time.monotonic() + RESCUE_SECONDS
                    if work.orphans():  # a worker died holding rows: a tick now puts their dispatch on the queue
                        scheduler.add_job(
                            "publisher.dispatch.clock:tick", "date", run_date=wall_clock(), args=[root], id="rescue",
                            replace_existing=True, misfire_grace_time=None, coalesce=True,
                        )  # fmt: skip
            except Exception:  # tried again on the next turn of the loop (0.2 s); the interval tick runs meanwhile
                log.warning("could not schedule the next wake-up", exc_info=True)
    finally:
        scheduler.shutdown(wait=True)  # the tick in progress sees the stop, finishes its in-flight messages
        _ACTIVE.pop(root, None)


@contextmanager
def _signals(stop: threading.Event, reload: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop`, SIGHUP sets `reload`; the old handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        reload.set()

    wanted: dict[int, Callable[[int, FrameType | None], None]] = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = on_reload
    previous = {number: signal.signal(number, handler) for number, handler in wanted.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
