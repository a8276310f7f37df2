"""The delivery queue: the clock's side of scale-out.

With ``[queue] url`` (or ``PUBLISHER_QUEUE_URL``) at ``none``, the default,
the clock runs what is due in its own process (`publisher.dispatch.runner.run_due`).
With a ``redis://`` or ``amqp://`` URL it sends and posts nothing itself: at due time it
puts one ``publisher.deliver`` task per due dispatch on a Celery queue, and
`publisher worker` processes (see `publisher.dispatch.worker`) take them. (Feed
dispatches stay with the clock: they write the site's own files.) An email
dispatch gets ``PUBLISHER_QUEUE_PARALLEL`` copies (default 4) so that several
workers share a big list: each copy claims ledger batches until none are left.

Tasks are sent at due time, never ahead with an ETA (Redis delivers again a
task not acknowledged within its visibility timeout, an ETA'd one included).
A task is acknowledged only once it ran (``acks_late``), so one whose worker
died is delivered again. No queue gives exactly once: the ledger does (one row
per dispatch and recipient, claimed before the send, marked after it), which
is also why extra copies and repeated deliveries are harmless.

A running clock (`publisher run`) sends a dispatch's tasks again only when a
retry of it fell due after its last send, when some of its rows are held under
a lease that ran out (their worker died: `publisher.dispatch.leases`; at most
every ``ORPHANS_REQUEUE_AFTER``), or ``REQUEUE_AFTER`` later (a task lost with
a broker's data); each `publisher run --once` sends what is due anew.

Settings from the environment (they are per machine):
``PUBLISHER_QUEUE_NAME`` (default ``publisher``: one per site sharing a broker),
``PUBLISHER_QUEUE_PARALLEL`` (copies of an email dispatch, default 4),
``PUBLISHER_QUEUE_VISIBILITY_TIMEOUT`` (seconds, Redis only, default 3600).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from publisher.dispatch.context import Outcome, Runner, wall_clock
from publisher.dispatch.runner import admit, execute, for_each_due, run_due
from publisher.errors import InvalidInput, Problem, PublisherError, WorkFailed
from publisher.site import extras
from publisher.site.config import CONFIG_FILE, Site
from publisher.site.settings import QUEUE_SCHEMES, key_line
from publisher.timeline.plan import Dispatch

TASK = "publisher.deliver"
SCHEMES = QUEUE_SCHEMES
DEFAULT_NAME = "publisher"
DEFAULT_PARALLEL = 4
REQUEUE_AFTER = dt.timedelta(minutes=10)
# A dispatch with rows under leases that ran out (their worker died) goes on the queue again, at most this often.
ORPHANS_REQUEUE_AFTER = dt.timedelta(seconds=20)
CLOCK_CHANNELS = frozenset({"feeds"})  # the site's own feed files: written where the clock (and the site) is


class NoQueue(PublisherError):
    """Workers were asked for but no queue is configured: exit 2, one line."""

    exit_code = 2


@dataclass(frozen=True)
class QueueConfig:
    """Where delivery tasks go: the broker URL, the queue's name, and how they are shared out."""

    url: str
    name: str = DEFAULT_NAME
    parallel: int = DEFAULT_PARALLEL
    visibility_timeout: float | None = None

    @property
    def shown(self) -> str:
        """The URL with any password hidden, fit for a message."""
        from kombu.utils.url import maybe_sanitize_url

        return str(maybe_sanitize_url(self.url))


def number(env: Mapping[str, str], name: str, default: float, *, whole: bool = True) -> float:
    """A positive number from the environment variable `name` (the default when unset)."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = 0
    if value <= 0:
        kind = "a whole number" if whole else "a number"
        raise InvalidInput([Problem("environment", 1, name, f"must be {kind} above 0 (got {text!r})")])
    return value


def queue_config(site: Site, url: str | None = None) -> QueueConfig | None:
    """The site's queue (`url` overrides the settings), or None for the embedded mode."""
    where = "command line" if url is not None else "environment" if site.secret("PUBLISHER_QUEUE_URL") else None
    url = (url if url is not None else site.queue_url).strip()
    if url.lower() == "none":
        return None
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        message = f"must be none, redis://… or amqp://… (got a {scheme or 'bare'!r} URL)"
        raise InvalidInput([_problem(site, where, message)])
    extras.require_queue(scheme)
    env = site.env
    return QueueConfig(
        url=url,
        name=env.get("PUBLISHER_QUEUE_NAME", "").strip() or DEFAULT_NAME,
        parallel=int(number(env, "PUBLISHER_QUEUE_PARALLEL", DEFAULT_PARALLEL)),
        visibility_timeout=number(env, "PUBLISHER_QUEUE_VISIBILITY_TIMEOUT", 0, whole=False) or None,
    )


def _problem(site: Site, where: str | None, message: str) -> Problem:
    """The problem, placed where the URL came from: the flag, the environment or the line in the file."""
    if where == "command line":
        return Problem(where, 1, "--queue-url", message)
    if where == "environment":
        return Problem(where, 1, "PUBLISHER_QUEUE_URL", message)
    path = site.root / CONFIG_FILE
    line = key_line(path.read_text(encoding="utf-8"), ["queue", "url"]) if path.exists() else 1
    return Problem(CONFIG_FILE, line, "queue.url", message)


def require_queue(site: Site, url: str | None = None) -> QueueConfig:
    """The site's queue; NoQueue when it is ``none`` (workers would have nothing to take work from)."""
    config = queue_config(site, url)
    if config is None:
        raise NoQueue(
            "no queue is configured, so there is nothing for a worker to take: set PUBLISHER_QUEUE_URL "
            "(or [queue] url, or --queue-url) to redis://… or amqp://… (with none, `publisher run` sends by itself)"
        )
    return config


_APPS: dict[QueueConfig, Any] = {}
_APPS_LOCK = threading.Lock()


def celery_app(config: QueueConfig) -> Any:
    """The Celery app for `config` (one per process and config): built in code, no celeryconfig file."""
    with _APPS_LOCK:
        if config not in _APPS:
            _APPS[config] = _new_app(config)
        return _APPS[config]


def _new_app(config: QueueConfig) -> Any:
    from celery import Celery

    app = Celery("publisher", broker=config.url, set_as_current=False)
    options: dict[str, Any] = {}
    if config.visibility_timeout is not None and config.url.startswith("redis"):
        timeout = config.visibility_timeout
        options = {
            "visibility_timeout": timeout,
            # kombu sweeps for unacknowledged tasks every interval × throttle seconds (100 s by default)
            "unacked_restore_interval": max(1.0, timeout / 3),
            "unacked_restore_throttle": 1,
            # the sweep's lock (300 s by default) stays taken if its worker is killed mid-sweep
            "unacked_mutex_expire": int(min(300.0, max(5.0, timeout))),
        }
    app.conf.update(
        task_acks_late=True,  # acknowledged after the run: a task whose worker died is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds no more tasks than it runs
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # no result backend: the store says what happened
        broker_connection_retry_on_startup=True,
        task_default_queue=config.name,
        broker_transport_options=options,
    )
    return app


@dataclass(frozen=True)
class DeliveryTask:
    """One `publisher.deliver` task's arguments (plain strings: they travel as JSON); not a ledger `Delivery` row."""

    root: str
    dispatch_id: str
    now: str  # the tick's time: which plan the dispatch is in
    enqueued_at: str  # the real time it was sent: a worker's clock moves on from `now` by the time since

    def args(self) -> list[str]:
        return [self.root, self.dispatch_id, self.now, self.enqueued_at]


def dispatch_due(runner: Runner, now: dt.datetime) -> list[Outcome]:
    """What the clock does at `now`: run what is due here (no queue), or put it on the queue."""
    config = queue_config(runner.site)
    if config is None:
        return run_due(runner, now)
    return enqueue_due(runner, now, config)


# Per clock (its owner id: a daemon keeps it, each `run --once` is a new one): (site, dispatch) → its `now`
# when the dispatch's tasks were last sent. Only the newest few clocks are remembered.
_SENT: dict[str, dict[tuple[str, str], dt.datetime]] = {}
_CLOCKS_REMEMBERED = 4


def _sent_by(owner: str) -> dict[tuple[str, str], dt.datetime]:
    if owner not in _SENT:
        for old in list(_SENT)[: max(0, len(_SENT) - _CLOCKS_REMEMBERED + 1)]:
            del _SENT[old]
        _SENT[owner] = {}
    return _SENT[owner]


def enqueue_due(runner: Runner, now: dt.datetime, config: QueueConfig) -> list[Outcome]:
    """Put every due dispatch that has work left on the queue; mark late unstarted ones skipped."""
    return for_each_due(runner, now, lambda r, d, at: _enqueue_one(r, d, at, config))


def _enqueue_one(runner: Runner, d: Dispatch, now: dt.datetime, config: QueueConfig) -> Outcome | None:
    admitted = admit(runner, d, now)
    if isinstance(admitted, Outcome):
        return admitted
    if not admitted:
        return None
    if d.channel in CLOCK_CHANNELS:
        return execute(runner, d)
    row = runner.store.get_dispatch(d.id)
    assert row is not None  # admitted: it exists
    sent = _sent_by(runner.worker)
    key = (str(runner.site.root), d.id)
    last = sent.get(key)
    retry_since = row.next_attempt_at is not None and last is not None and row.next_attempt_at > last
    orphaned = last is not None and now - last >= ORPHANS_REQUEUE_AFTER and bool(runner.store.orphaned(now, d.id))
    if last is not None and not retry_since and not orphaned and now - last < REQUEUE_AFTER:
        return None  # its tasks are on the queue or running
    copies = config.parallel if d.channel == "email" else 1
    # Read in one instant: a worker's clock is `task_now` at `enqueued` and moves on with real time, so its
    # leases keep the offset every process of this run has from real time (a lag here would make a live
    # worker's rows look abandoned to the clock, and send them twice).
    enqueued, task_now = wall_clock(), runner.clock()
    task = DeliveryTask(str(runner.site.root), d.id, task_now.isoformat(), enqueued.isoformat())
    send(config, task, copies)
    sent[key] = now
    note = f"{copies} task(s) on queue {config.name!r} at {config.shown}"
    if orphaned:
        note += " (again: rows of a worker that stopped renewing its lease)"
    return Outcome(d.id, d.channel, "queued", note=note)


def send(config: QueueConfig, task: DeliveryTask, copies: int = 1) -> None:
    """Put `copies` copies of `task` on the queue; WorkFailed when the broker cannot be reached."""
    from kombu.exceptions import KombuError, OperationalError

    app = celery_app(config)
    try:
        with app.producer_or_acquire() as producer:
            for _ in range(copies):
                app.send_task(TASK, args=task.args(), queue=config.name, producer=producer)
    except (OperationalError, KombuError, OSError) as exc:
        raise WorkFailed(f"cannot put dispatch {task.dispatch_id} on the queue at {config.shown}: {exc}") from None


def depth(config: QueueConfig) -> int:
    """How many tasks wait on the queue (taken, unacknowledged ones not counted); WorkFailed when the
    broker cannot be reached. A queue that does not exist yet (nothing ever sent) holds 0."""
    from kombu.exceptions import KombuError, OperationalError

    app = celery_app(config)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            try:
                return int(channel.queue_declare(queue=config.name, passive=True).message_count)
            except Exception as exc:  # Redis: no such list; RabbitMQ: 404 NOT_FOUND
                if "404" in str(exc) or "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower():
                    return 0
                raise
            finally:
                with contextlib.suppress(Exception):  # RabbitMQ closed the channel after a 404 itself
                    channel.close()
    except (OperationalError, KombuError, OSError) as exc:
        raise WorkFailed(f"cannot ask the queue at {config.shown} how many tasks wait: {exc}") from None
