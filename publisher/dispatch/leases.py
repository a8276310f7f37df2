"""Leases that live only as long as their worker.

A worker claims ledger rows under a short lease (`publisher.dispatch.email.LEASE_SECONDS`,
30 s by default) and renews it from a thread of its own every third of a lease
while the send runs. So a live worker never loses its rows, however long a big
batch takes, and the rows of a worker that died (SIGKILL, a lost host) are
claimable again at most one lease after it stopped renewing: a live worker's
next claim takes them, or the clock, which looks for such orphans every few
seconds (`publisher.dispatch.clock`), puts their dispatch on the queue again.
Nothing waits for a broker's redelivery (Redis's visibility timeout is an hour).
"""

from __future__ import annotations

import logging
import threading

from publisher.dispatch.context import Clock
from publisher.store.dispatches import Store

log = logging.getLogger("publisher.dispatch.leases")


class LeaseKeeper:
    """Renews `worker`'s leases on one dispatch's rows every `lease_seconds / 3` until the block ends.

    A renewal that fails (the database busy for a moment) is tried again at the
    next beat: two more chances before the lease can run out.
    """

    def __init__(self, store: Store, dispatch_id: str, worker: str, clock: Clock, lease_seconds: float) -> None:
        self.store, self.dispatch_id, self.worker, self.clock = store, dispatch_id, worker, clock
        self.lease_seconds = lease_seconds
        self.interval = max(0.05, lease_seconds / 3)
        self.renewals = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"publisher-lease-{dispatch_id}", daemon=True)

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.store.renew(self.dispatch_id, self.worker, self.clock(), self.lease_seconds)
            except Exception:  # a busy database for a moment: the lease outlasts two more beats
                log.warning("could not renew the leases on dispatch %s", self.dispatch_id, exc_info=True)
                continue
            self.renewals += 1

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
