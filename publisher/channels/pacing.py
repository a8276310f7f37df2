"""Pacing for channels: a token-bucket rate limit and the backoff between retries.

Neither asks for the time of day: the bucket reads a monotonic clock (given,
so tests can drive it), and the backoff is a pure function of the attempt
number and a random generator the caller owns.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

RETRY_BASE = 30.0
RETRY_CAP = 3600.0


def retry_delay(attempt: int, rng: random.Random, *, base: float = RETRY_BASE, cap: float = RETRY_CAP) -> float:
    """Seconds to wait before retry number `attempt` (1 = the first retry).

    Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**(attempt-1))]``,
    so many recipients deferred at once do not come back at the same instant.

    >>> 0 <= retry_delay(3, random.Random(1)) <= 120
    True
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1 (got {attempt})")
    ceiling = cap if attempt > 64 else min(cap, base * 2 ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


class TokenBucket:
    """At most `rate` acquisitions a second on average, bursts of up to `burst`; thread-safe.

    Each caller reserves its token under the lock and then sleeps (outside the
    lock) until that token is due, so waiting threads are served in order.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be above 0 messages a second (got {rate})")
        if burst < 1:
            raise ValueError(f"burst must be at least 1 (got {burst})")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = burst
        self._updated = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait
