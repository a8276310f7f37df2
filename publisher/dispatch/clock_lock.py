"""The clock's lock: one clock per database, a heartbeat, and a standby that takes over across hosts.

Two APScheduler processes on one job store would each run every job, so
`publisher run` holds a lock row in the database (`Store.acquire_lock`, one
statement: two takers cannot both win) and shows it is alive by renewing its
``heartbeat_at`` every ``HEARTBEAT_SECONDS`` from a thread of its own.

A holder is gone when its heartbeat is ``STALE_AFTER_SECONDS`` old, judged by
the database's rows and the real time, never by a process id: so a clock on
another host is taken over as surely as one on this host. (A holder on this
host whose process has died is taken over at once.) A clock that finds its
lock taken over stops before its next tick: each tick first renews the lock
(`still_holding`), so the old holder, were it only stalled, never dispatches
beside the new one.

A standby (`publisher run --standby`) does not refuse to start when the lock
is held: it tries again every ``STANDBY_EVERY_SECONDS`` and becomes the clock
the moment the holder is gone, within ``STALE_AFTER_SECONDS`` +
``STANDBY_EVERY_SECONDS`` of its last heartbeat (25 s with the defaults).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from publisher.dispatch.context import Clock
from publisher.errors import WorkFailed
from publisher.store.dispatches import LockHolder, Store

LOCK = "scheduler"
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 20.0  # four missed heartbeats
STANDBY_EVERY_SECONDS = 5.0
log = logging.getLogger("publisher.dispatch.clock")
Say = Callable[[str], None]


class ClockAlreadyRunning(WorkFailed):
    """Another `publisher run` holds this database's clock."""


def _alive_here(owner: str) -> bool | None:
    """Whether a lock owner on this host is still running (None: another host, can't tell)."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    if int(pid) == os.getpid():
        return True  # another clock in this very process (a thread): alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(holder: LockHolder, now: dt.datetime) -> str:
    """``host:pid:… (heartbeat 3 s ago)``: who holds the clock and how alive it looked."""
    age = max(0.0, (now - holder.heartbeat_at).total_seconds())
    return f"{holder.owner} (heartbeat {age:.0f} s ago)"


def take_clock(store: Store, owner: str, now: dt.datetime, stale_after: float = STALE_AFTER_SECONDS) -> str | None:
    """Hold the database's clock (`now` is the real time), taking it over from a holder that is gone.

    Returns the previous holder taken over (None if the lock was free or ours);
    ClockAlreadyRunning while a live holder has it.
    """
    before = store.lock_holder(LOCK)
    if store.acquire_lock(LOCK, owner, now, stale_after):
        return None if before is None or before.owner == owner else describe(before, now)
    holder = store.lock_holder(LOCK)
    if holder is not None and _alive_here(holder.owner) is False:
        store.release_lock(LOCK, holder.owner)
        store.release(holder.owner, now)  # its claimed rows were never answered for: claimable again
        if store.acquire_lock(LOCK, owner, now, stale_after):
            return describe(holder, now)
    since = f" since {holder.acquired_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" if holder else ""
    who = holder.owner if holder else "another process"
    raise ClockAlreadyRunning(
        f"another `publisher run` ({who}{since}) is the clock of this database; two clocks would "
        f"send everything twice. Stop it first, or start this one with --standby (a dead one is taken over "
        f"once its heartbeat is {STALE_AFTER_SECONDS:.0f} s old)."
    )


def still_holding(store: Store, owner: str, now: dt.datetime) -> bool:
    """Renew the lock and say whether `owner` still holds it (False: taken over, stop at once)."""
    return store.heartbeat(LOCK, owner, now)


class Heartbeat:
    """Renews the clock's lock every few seconds from its own thread; calls `lost` if it was taken over."""

    def __init__(self, store: Store, owner: str, wall: Clock, lost: Callable[[], None], interval: float) -> None:
        self.store, self.owner, self.wall, self.lost, self.interval = store, owner, wall, lost, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="publisher-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            try:
                alive = still_holding(self.store, self.owner, self.wall())
            except Exception:  # a busy database for a moment: try again at the next beat
                log.warning("heartbeat failed", exc_info=True)
                continue
            if not alive:
                log.error("this process lost the clock to another one; stopping")
                self.lost()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def wait_for_clock(store: Store, owner: str, wall: Clock, stop: threading.Event, say: Say) -> bool:
    """As a standby: try to take the clock every ``STANDBY_EVERY_SECONDS`` until it is ours (True) or
    `stop` is set (False). Says once that it stands by, and whom it took over from."""
    announced = False
    while not stop.is_set():
        try:
            previous = take_clock(store, owner, wall())
        except ClockAlreadyRunning:
            if not announced:
                holder = store.lock_holder(LOCK)
                who = describe(holder, wall()) if holder else "another process"
                say(f"standing by: the clock is held by {who}; taking over when its heartbeat stops")
                announced = True
            stop.wait(STANDBY_EVERY_SECONDS)
            continue
        if previous is not None:
            say(f"took over the clock from {previous}")
        return True
    return False


@contextmanager
def holding_clock(
    store: Store,
    owner: str,
    wall: Clock,
    lost: Callable[[], None],
    beat: float,
    *,
    standby: threading.Event | None = None,
    say: Say = log.warning,
) -> Iterator[bool]:
    """Hold the clock for the block (it gets True): lock, heartbeat, and on the way out release the
    lock and unsent rows. With `standby` (the stop event), wait for a live holder to go instead of
    refusing; the block gets False if stopped before the clock was ours."""
    if standby is not None:
        if not wait_for_clock(store, owner, wall, standby, say):
            yield False
            return
    else:
        previous = take_clock(store, owner, wall())
        if previous is not None:
            say(f"took over the clock from {previous}")
    try:
        with Heartbeat(store, owner, wall, lost, beat):
            yield True
    finally:
        store.release(owner, wall())
        store.release_lock(LOCK, owner)
