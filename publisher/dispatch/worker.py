"""`publisher worker`: delivery workers for scale-out.

A worker takes ``publisher.deliver`` tasks from the queue the clock fills (see
`publisher.dispatch.queue`). Each names a site folder, a dispatch id and the clock's
time; the worker loads that site and its records, finds the dispatch in the
plan at that time and runs it as the embedded mode does
(`publisher.dispatch.runner.run_one`), through the ledger in the site's database. So
every worker host needs the site at the same path, and the database (in
practice PostgreSQL) must be the clock's.

Running a task again is harmless: a finished dispatch does nothing; a started
one goes on with the rows still due. Several tasks on one email dispatch share
it: each claims ledger batches (``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL) until none are left, so each recipient is handed to one worker. A
worker holds its claimed rows under a short lease that a thread renews while it
lives (`publisher.dispatch.leases`); a worker that dies stops renewing, and a
lease later (30 s by default) a live task's next claim takes its rows, or the
clock, which looks for such orphaned rows every few seconds, puts the dispatch
on the queue again. (Its own task comes back too, acknowledged only after it
ran, but on Redis only after the visibility timeout: nothing waits for that.)

A task's clock starts at the clock's `now` and moves on with real time from the
moment the task was put on the queue, so leases and lateness agree across
workers whatever ``--now`` the clock was given.

SIGTERM (or Ctrl-C) is a warm shutdown: running tasks hand out no new message,
wait for those in flight, give back what they had claimed, and go back on the
queue for another worker.

Per worker process, from the environment: ``PUBLISHER_QUEUE_BATCH`` (ledger rows
claimed at a time, default 500) and ``PUBLISHER_QUEUE_LEASE`` (seconds before
a dead worker's claimed rows may be claimed again, default 30; renewed every
third of it while the worker lives).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from publisher.dispatch import email as dispatch_email
from publisher.dispatch.context import Clock, Outcome, Runner, wall_clock, worker_id
from publisher.dispatch.health import Presence
from publisher.dispatch.queue import TASK, QueueConfig, celery_app, number
from publisher.dispatch.runner import finished, run_one
from publisher.errors import PublisherError
from publisher.site.config import Site, load_site
from publisher.site.records import load_records
from publisher.store.dispatches import Store, open_store
from publisher.store.tables import FINAL
from publisher.timeline.plan import Dispatch, plan

log = logging.getLogger("publisher.dispatch.worker")
STOPPING = threading.Event()  # set when the worker begins a warm shutdown


def task_clock(now: dt.datetime, enqueued_at: dt.datetime, wall: Clock = wall_clock) -> Clock:
    """A clock that reads `now` at `enqueued_at` (real time) and moves on with real time."""
    offset = now - enqueued_at
    return lambda: wall() + offset


def claim_settings(env: Mapping[str, str]) -> None:
    """This process's claim size and lease (``PUBLISHER_QUEUE_BATCH``, ``PUBLISHER_QUEUE_LEASE``).

    Small batches let several workers share a list; a short lease brings a dead
    worker's rows back sooner (it is renewed while the worker lives, so it need
    not outlast a batch: only a stall of the database for two thirds of it).
    """
    # `dispatch_email` reads these module values at each claim; a worker process sets them once, at start.
    dispatch_email.BATCH = int(number(env, "PUBLISHER_QUEUE_BATCH", dispatch_email.BATCH))
    dispatch_email.LEASE_SECONDS = number(env, "PUBLISHER_QUEUE_LEASE", dispatch_email.LEASE_SECONDS, whole=False)


def find_dispatch(runner: Runner, dispatch_id: str, now: dt.datetime) -> Dispatch | None:
    """The dispatch in the plan at `now` (the clock's time when it sent the task), or None if it left it."""
    return next((d for d in plan(runner.records, runner.site.settings, now) if d.id == dispatch_id), None)


def unsettled(store: Store, dispatch_id: str) -> bool:
    """Every row answered for but the state not final: another task settled it from older counts."""
    row = store.get_dispatch(dispatch_id)
    if row is None or finished(row) or row.started_at is None:
        return False
    counts = store.counts(dispatch_id)
    return counts.get("pending", 0) == 0 and counts.get("sending", 0) == 0


def deliver(
    root: str,
    dispatch_id: str,
    now: str,
    enqueued_at: str | None = None,
    *,
    stopping: Callable[[], bool] = STOPPING.is_set,
) -> Outcome | None:
    """Run dispatch `dispatch_id` of the site in `root` as the clock saw it at `now` (ISO times).

    Returns what the run did, or None when there was nothing to do (finished,
    held for review, waiting to retry, or no longer in the plan).
    """
    moment = dt.datetime.fromisoformat(now)
    clock = task_clock(moment, dt.datetime.fromisoformat(enqueued_at) if enqueued_at else wall_clock())
    site = load_site(Path(root))
    store = open_store(site.database_url)
    try:
        records = load_records(site.events, site.root, keep=True)  # unchanged files from the kept records
        runner = Runner(site, store, records, clock, worker=worker_id(), stopping=stopping)
        d = find_dispatch(runner, dispatch_id, moment)
        if d is None:
            log.info("dispatch %s is no longer in the plan: nothing to do", dispatch_id)
            return None
        outcome = run_one(runner, d, clock())
        if outcome is not None and not stopping() and unsettled(store, d.id):
            outcome = run_one(runner, d, clock()) or outcome
        return outcome
    finally:
        store.close()


def outcome_text(outcome: Outcome) -> str:
    counts = " ".join(f"{state}={n}" for state, n in sorted(outcome.counts.items()) if n)
    text = f"dispatch {outcome.dispatch_id} ({outcome.channel}): {outcome.state}, {outcome.sent_now} sent here"
    return " ".join(part for part in (text, counts, outcome.note) if part)


def register(app: Any) -> Any:
    """Add the ``publisher.deliver`` task to a Celery app; returns the task."""
    from celery.exceptions import Reject

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)  # type: ignore[untyped-decorator]  # celery has no types
    def deliver_task(root: str, dispatch_id: str, now: str, enqueued_at: str | None = None) -> None:
        try:
            outcome = deliver(root, dispatch_id, now, enqueued_at)
        except PublisherError as exc:  # bad settings or records: the clock sends the task again later
            log.error("dispatch %s: %s", dispatch_id, exc)
            return
        if outcome is None:
            return
        log.info("%s", outcome_text(outcome))
        if STOPPING.is_set() and outcome.state not in FINAL:
            raise Reject("the worker is stopping: the dispatch goes back on the queue", requeue=True)

    return deliver_task


def _on_shutdown(**_: Any) -> None:
    STOPPING.set()


def run_worker(site: Site, config: QueueConfig, concurrency: int = 1) -> int:
    """Take tasks from the queue until SIGTERM or Ctrl-C (warm shutdown); returns the exit code.

    `concurrency` tasks run at once, each in a thread (a killed process takes
    every one of them with it: nothing is left running behind its back). The
    worker shows it is alive in the database while it runs (`Presence`).
    """
    claim_settings(site.env)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # each task opens the store: no migration chatter
    store = open_store(site.database_url)  # where this worker shows it is alive (`publisher status`)
    try:
        with Presence(store, f"{socket.gethostname()}:{os.getpid()}"):
            return _work(config, concurrency)
    finally:
        store.close()


def _work(config: QueueConfig, concurrency: int) -> int:
    from celery import signals

    app = celery_app(config)
    register(app)
    signals.worker_shutting_down.connect(_on_shutdown, weak=False)
    worker = app.Worker(
        hostname=f"publisher-{os.getpid()}@{socket.gethostname()}",
        pool_cls="threads",
        concurrency=concurrency,
        queues=[config.name],
        loglevel="INFO",
        quiet=True,
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
