"""What `publisher status` and the metrics show: is the clock alive, who works, what waits.

A snapshot reads only the database and the broker, never a process list, so it
tells the same from any host: the clock's holder and the age of its heartbeat
(`publisher.dispatch.clock_lock`), the workers that showed they were alive
within ``WORKER_STALE_SECONDS`` (each `publisher worker` renews a ``worker:…``
row of the lock table every ``WORKER_BEAT_SECONDS``, `Presence`), the tasks
waiting on the queue, and the oldest dispatch that is due and not sent (its
lag: how long past its due time it is).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any

from publisher.dispatch.clock_lock import LOCK, STALE_AFTER_SECONDS
from publisher.dispatch.context import Clock, duration, wall_clock
from publisher.dispatch.queue import QueueConfig, depth, queue_config
from publisher.errors import PublisherError
from publisher.site.config import Site
from publisher.store.dispatches import Store

WORKER_PREFIX = "worker:"
WORKER_BEAT_SECONDS = 10.0
WORKER_STALE_SECONDS = 30.0
FORGET_WORKERS_AFTER = dt.timedelta(days=1)  # a dead worker's row is listed as gone, then forgotten
log = logging.getLogger("publisher.dispatch.health")


@dataclass(frozen=True)
class Snapshot:
    """One look at the deployment. Ages and lags are seconds at `now` (the real time)."""

    now: dt.datetime
    clock_owner: str | None
    clock_age: float | None
    workers: dict[str, float]  # live workers' ids → heartbeat age
    queue: str | None  # the queue, password hidden; None in the embedded mode
    queue_depth: int | None  # tasks waiting; None when the broker cannot be asked
    queue_error: str | None
    oldest_id: str | None
    oldest_channel: str | None
    oldest_due: dt.datetime | None
    lag: float | None

    @property
    def clock_alive(self) -> bool:
        return self.clock_age is not None and self.clock_age < STALE_AFTER_SECONDS

    def _clock_json(self) -> dict[str, Any]:
        return {"holder": self.clock_owner, "heartbeat_age": round(self.clock_age or 0.0, 1), "alive": self.clock_alive}

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "clock": None
            if self.clock_owner is None
            else {
                "holder": self.clock_owner,
                "heartbeat_age": round(self.clock_age or 0.0, 1),
                "alive": self.clock_alive,
            },
            "workers": [{"id": name, "heartbeat_age": round(age, 1)} for name, age in sorted(self.workers.items())],
            "queue": None
            if self.queue is None
            else {"url": self.queue, "depth": self.queue_depth, "error": self.queue_error},
            "oldest_unsent": None
            if self.oldest_id is None
            else {
                "id": self.oldest_id,
                "channel": self.oldest_channel,
                "due": self.oldest_due.isoformat() if self.oldest_due else None,
                "lag_seconds": round(self.lag or 0.0, 1),
            },
        }

    def gauges(self) -> dict[str, float]:
        """The values `publisher.dispatch.metrics` serves (an unknown one left out)."""
        values = {
            "publisher_dispatch_lag_seconds": self.lag or 0.0,
            "publisher_workers_alive": float(len(self.workers)),
        }
        if self.queue_depth is not None:
            values["publisher_queue_depth"] = float(self.queue_depth)
        if self.clock_age is not None:
            values["publisher_clock_heartbeat_age_seconds"] = self.clock_age
        return values

    def text(self) -> str:
        if self.clock_owner is None:
            clock = "clock: none running"
        else:
            alive = "" if self.clock_alive else " (stale: a standby takes over)"
            clock = f"clock: {self.clock_owner}, heartbeat {self.clock_age:.0f} s ago{alive}"
        workers = f"workers: {len(self.workers)} alive" + "".join(
            f"\n  {name} (heartbeat {age:.0f} s ago)" for name, age in sorted(self.workers.items())
        )
        if self.queue is None:
            queue = "queue: none (the clock sends by itself)"
        elif self.queue_depth is None:
            queue = f"queue: {self.queue}: cannot be asked ({self.queue_error})"
        else:
            queue = f"queue: {self.queue}: {self.queue_depth} task(s) waiting"
        if self.oldest_id is None or self.oldest_due is None:
            oldest = "oldest due and unsent: none"
        else:
            oldest = (
                f"oldest due and unsent: {self.oldest_id} ({self.oldest_channel}), "
                f"due {self.oldest_due:%Y-%m-%d %H:%M:%S} UTC, {duration(self.lag or 0.0)} ago"
            )
        return "\n".join([clock, workers, queue, oldest])


def snapshot(site: Site, store: Store, now: dt.datetime, config: QueueConfig | None = None) -> Snapshot:
    """Look at the deployment of `site` at `now` (the real time); `config` defaults to the site's queue."""
    holder = store.lock_holder(LOCK)
    workers = {
        name.removeprefix(WORKER_PREFIX): (now - beat.heartbeat_at).total_seconds()
        for name, beat in store.lock_holders(WORKER_PREFIX).items()
    }
    live = {name: age for name, age in workers.items() if age < WORKER_STALE_SECONDS}
    config = config if config is not None else queue_config(site)
    waiting: int | None = None
    error: str | None = None
    if config is not None:
        try:
            waiting = depth(config)
        except PublisherError as exc:
            error = str(exc)
    oldest = store.oldest_unsent(now)
    return Snapshot(
        now=now,
        clock_owner=holder.owner if holder else None,
        clock_age=(now - holder.heartbeat_at).total_seconds() if holder else None,
        workers=live,
        queue=config.shown if config else None,
        queue_depth=waiting,
        queue_error=error,
        oldest_id=oldest.id if oldest else None,
        oldest_channel=oldest.channel if oldest else None,
        oldest_due=oldest.due if oldest else None,
        lag=(now - oldest.due).total_seconds() if oldest else None,
    )


class Presence:
    """A worker shows it is alive: renews its ``worker:<id>`` row every ``WORKER_BEAT_SECONDS`` from a
    thread of its own, and removes it on a clean stop (a killed one's row ages out of `snapshot`)."""

    def __init__(self, store: Store, worker: str, wall: Clock = wall_clock) -> None:
        self.store, self.name, self.wall = store, WORKER_PREFIX + worker, wall
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="publisher-presence", daemon=True)

    def _show(self) -> None:
        now = self.wall()
        self.store.acquire_lock(self.name, self.name, now, 0.0)
        self.store.forget_locks(WORKER_PREFIX, now - FORGET_WORKERS_AFTER)

    def _beat(self) -> None:
        while not self._done.wait(WORKER_BEAT_SECONDS):
            try:
                self._show()
            except Exception:  # a busy database for a moment: shown again at the next beat
                log.warning("could not show this worker alive", exc_info=True)

    def __enter__(self) -> Presence:
        self._show()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.store.release_lock(self.name, self.name)
