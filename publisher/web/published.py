"""Which records are public at a given time: published (not a draft) and with a publication time past.

`build` writes previews of records scheduled for later (for the team to
review), and their ids are guessable (``YYYY-MM-DD-slug``): the web side must
not hand them to anyone before their time. This index reads the records'
files (only the ones that changed since the last look: by name, mtime and
size) and says, for an id, whether it is public at `now`. A file that does not
parse, or an id no record has, is not public: the team's login opens it.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

from publisher.errors import PublisherError
from publisher.site.files import record_names
from publisher.site.records import load_record

_Stat = tuple[int, int]


class Published:
    """id → (status, published), kept up to date with the files under `events`."""

    def __init__(self, events: Path) -> None:
        self.events = events
        self._files: dict[str, tuple[_Stat, str | None, str, dt.datetime | None]] = {}
        self._lock = threading.Lock()

    def is_public(self, record_id: str, now: dt.datetime) -> bool:
        """True when a record with this id is published (not a draft) at or before `now`."""
        with self._lock:
            self._refresh()
            for _, found_id, status, published in self._files.values():
                if found_id == record_id:
                    return status != "draft" and published is not None and published <= now
        return False

    def _refresh(self) -> None:
        names = [name for name, _ in record_names(self.events)] if self.events.is_dir() else []
        kept: dict[str, tuple[_Stat, str | None, str, dt.datetime | None]] = {}
        for name in names:
            path = self.events / name
            try:
                info = os.stat(path)
            except OSError:
                continue
            stat = (info.st_mtime_ns, info.st_size)
            old = self._files.get(name)
            if old is not None and old[0] == stat:
                kept[name] = old
                continue
            try:
                record = load_record(path, self.events)
            except (PublisherError, OSError):
                kept[name] = (stat, None, "unreadable", None)
                continue
            kept[name] = (stat, record.id, record.status, record.published)
        self._files = kept
