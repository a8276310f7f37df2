"""Which records are public at a given time: published (not a draft) and with a publication time past.

`build` writes previews of records scheduled for later (for the team to
review), and their ids are guessable (``YYYY-MM-DD-slug``): the web side must
not hand them to anyone before their time. This index reads the records'
files (only the ones that changed since the last look: by name, mtime and
size) and says, for an id, whether it is public at `now`. A file that does not
parse, or an id no record has, is not public: the team's login opens it.

The files are looked at again at most every `REFRESH_S` seconds, not on every
request: at 10,000 records a look is 10,000 stats (tens of milliseconds, under
a lock every request would queue on). Whether a record is public is still
decided at each request's `now`; only an edit of a record file shows up to
`REFRESH_S` late.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

from publisher.errors import PublisherError
from publisher.site.files import FileStat, record_stats
from publisher.site.records import load_record

REFRESH_S = 2.0
_Entry = tuple[FileStat, str | None, str, dt.datetime | None]  # the file's stat, its record's id, status, published


class Published:
    """id → (status, published), kept up to date with the files under `events`.

    `monotonic` (seconds) paces the looks at the files; the tests pass their own.
    """

    def __init__(self, events: Path, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.events, self.monotonic = events, monotonic
        self._files: dict[str, _Entry] = {}
        self._ids: dict[str, _Entry] = {}
        self._looked_at: float | None = None
        self._lock = threading.Lock()

    def is_public(self, record_id: str, now: dt.datetime) -> bool:
        """True when a record with this id is published (not a draft) at or before `now`."""
        with self._lock:
            moment = self.monotonic()
            if self._looked_at is None or moment - self._looked_at >= REFRESH_S:
                self._refresh()
                self._looked_at = moment
            entry = self._ids.get(record_id)
        if entry is None:
            return False
        _, _, status, published = entry
        return status != "draft" and published is not None and published <= now

    def _refresh(self) -> None:
        found = record_stats(self.events) if self.events.is_dir() else []
        kept: dict[str, _Entry] = {}
        for name, _, stat in found:
            if stat is None:
                continue
            old = self._files.get(name)
            if old is not None and old[0] == stat:
                kept[name] = old
                continue
            try:
                record = load_record(self.events / name, self.events)
            except (PublisherError, OSError):
                kept[name] = (stat, None, "unreadable", None)
                continue
            kept[name] = (stat, record.id, record.status, record.published)
        self._files = kept
        ids: dict[str, _Entry] = {}
        for entry in kept.values():  # the first file of an id, as the loop over the files found it before
            if entry[1] is not None:
                ids.setdefault(entry[1], entry)
        self._ids = ids
