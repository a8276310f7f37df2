"""Rate limits through the `limits` library: in Redis when serve processes share one, else in this process.

A limit allows `limit` hits per key in each window of the clock passed in
(the clock's time picks the window, so tests move it by hand and every serve
process sharing a Redis counts in the same windows). The counters live in
the `limits` storage: Redis when ``PUBLISHER_QUEUE_URL`` is a ``redis://`` or
``rediss://`` URL (every serve process behind one proxy shares the counts),
else memory (one process). A counter expires from the storage by itself once
its window is over.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from publisher.site.config import Site

REDIS_SCHEMES = ("redis://", "rediss://")


def storage_for(site: Site) -> Storage:
    """Redis (keys prefixed by the site's URL, so two sites never share counts) or memory."""
    url = site.queue_url
    if url.lower().startswith(REDIS_SCHEMES):
        prefix = "publisher-limits:" + hashlib.blake2b(site.settings.site.url.encode(), digest_size=6).hexdigest()
        storage = storage_from_string(url, key_prefix=prefix)
        assert isinstance(storage, Storage)  # a synchronous URL: a synchronous storage
        return storage
    return MemoryStorage()


class Limit:
    """At most `limit` hits per key in each `window` of the clock (a fixed window)."""

    def __init__(self, storage: Storage, name: str, limit: int, window: dt.timedelta) -> None:
        self.name = name
        self.seconds = max(1, int(window.total_seconds()))
        self.item = RateLimitItemPerSecond(limit, self.seconds)
        self.limiter = FixedWindowRateLimiter(storage)

    def _window(self, now: dt.datetime) -> str:
        return str(int(now.timestamp()) // self.seconds)

    def hit(self, key: str, now: dt.datetime) -> bool:
        """Count a hit for `key` and say whether it is within the limit (a refused hit is not counted)."""
        return bool(self.limiter.hit(self.item, self.name, key, self._window(now)))

    def full(self, key: str, now: dt.datetime) -> bool:
        """True when `key` has used up this window (nothing counted)."""
        return not self.limiter.test(self.item, self.name, key, self._window(now))

    def retry_after(self, now: dt.datetime) -> int:
        """Seconds until the next window, when every key may try again."""
        return self.seconds - int(now.timestamp()) % self.seconds
