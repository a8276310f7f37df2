"""`records.json`: every record file as a build last parsed it, trusted while the file is unchanged.

A row per record file, by its name under events/: the file's (mtime_ns, size)
and its `Source` (`publisher.build.cache`), found again by the name and
trusted while the file's times are unchanged. A file changed less than
`RACY_NS` before it was read is not trusted on its times alone (a second
change within the file system's clock tick would keep them): it is parsed
again next time. `records-edits.json` holds the rows changed since
records.json was written whole, for that writing of it (its `base`): a
rebuild after one edit writes a row, not 10,000. Both are decoded and
shape-checked in one pass by msgspec against `RecordsFile`, read as untrusted
like every cache file (`publisher.build.stored`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from publisher.build.cache import CACHE_FOLDER, Shards, Source
from publisher.build.stored import VERSION, record_of, save_bytes, text
from publisher.site.files import FileStat

if TYPE_CHECKING:
    from publisher.site.records import Record

RACY_NS = 1_000_000_000
FileRow = tuple[int, int, Source]  # the file's mtime_ns (-1: not to be trusted on its times), size, source
Found = tuple[str, bool, FileStat | None]  # a file `record_stats` found: its name, whether plain, its stat
_NAME = itemgetter(0)


class RecordsFile(msgspec.Struct):
    """`records.json`: the code the rows were made by, and a row per record file by its name; `base` names
    this writing of it. Or `records-edits.json`: the rows changed since the writing of records.json it names."""

    version: int
    code: str
    rows: dict[str, FileRow]
    base: str = ""


_RECORDS_FILE = msgspec.json.Decoder(RecordsFile)
EDITS_SHARE = 10  # records-edits.json holds at most a tenth of the rows: past that, records.json is written whole


def _read_records(path: Path, code: str) -> RecordsFile | None:
    """A `RecordsFile` of this version and code; None when it is missing, not JSON, or of another shape."""
    try:
        kept = _RECORDS_FILE.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, RecursionError):
        return None
    return kept if kept.version == VERSION and kept.code == code else None


def _parsed_entry(value: Any) -> tuple[str, str]:
    key, blob = value
    return text(key), text(blob)


class RecordFiles:
    """Record files as last parsed, by name under events/: (mtime_ns or -1, size, source row).

    The parsed records themselves (as `record_blob`s, with the key they were
    parsed from) live apart, in shards read only when a build needs them.
    """

    def __init__(self, root: Path, code: str) -> None:
        self.path = root / CACHE_FOLDER / "records.json"
        self.edits_path = root / CACHE_FOLDER / "records-edits.json"
        self.code = code
        self.rows: dict[str, FileRow] = {}
        self.base = ""  # of records.json as read
        self.edited: dict[str, FileRow] = {}  # the rows changed since it was written whole
        kept = _read_records(self.path, code)
        if kept is not None:
            self.rows, self.base = kept.rows, kept.base
            edits = _read_records(self.edits_path, code) if kept.base else None
            if edits is not None and edits.base == kept.base:
                self.rows.update(edits.rows)
                self.edited = edits.rows
        self.parsed = Shards(root / CACHE_FOLDER / "records-parsed", code, _parsed_entry, count=128)
        self.changed = False
        self.found: Sequence[Found] = ()  # the files `trusted` was given, in their order
        self.whole = False  # whether records.json is to be written whole: a row is gone, or a new one out of order

    def trusted(self, found: Sequence[Found]) -> list[Source | None]:
        """The cached source of each file found (`record_stats`) when it provably has not changed since (else
        None: parse it); the files no longer found are forgotten.

        The rows are kept in the order the files are listed in, so that when the files are those of the rows
        (the common case: one compare of two lists of names, in C) each file's row is the next one: looking
        each name up cost half as much again as the compares.
        """
        self.found = found
        rows = self.rows
        kept: Iterable[FileRow | None] = rows.values()
        if list(map(_NAME, found)) != list(rows):
            kept = [rows.get(name) for name, _, _ in found]
            if len(found) - kept.count(None) != len(rows):  # a row's file was not found (each is found once)
                self.keep_only(name for name, _, _ in found)
        return [
            row[2]
            if row is not None and stat is not None and 0 <= row[0] == stat.mtime_ns and row[1] == stat.size
            else None
            for (_, _, stat), row in zip(found, kept, strict=True)
        ]

    def store(self, name: str, stat: FileStat, source: Source, read_at_ns: int, blob: str) -> None:
        """Remember a file as parsed: its source, and the record itself (`blob`: its `record_blob`)."""
        racy = read_at_ns - stat.mtime_ns < RACY_NS
        row: FileRow = (-1 if racy else stat.mtime_ns, stat.size, source)
        kept = self.rows.get(name)
        if kept != row:
            self.rows[name] = self.edited[name] = row
            self.changed = True
            self.whole |= kept is None  # a new row goes last: `save` puts it in its place
        self.parsed.put(name, (source.key, blob))

    def blob(self, source: Source) -> str | None:
        """The record a source was parsed into, as its `record_blob`, when the cache holds it."""
        entry = self.parsed.get(source.name) if source.name is not None else None
        return entry[1] if entry is not None and entry[0] == source.key else None

    def record(self, source: Source) -> Record | None:
        """The record a source was parsed into, when the cache holds it."""
        blob = self.blob(source)
        return record_of(blob) if blob is not None else None

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget the files that are gone."""
        wanted = set(names)
        for name in [n for n in self.rows if n not in wanted]:
            del self.rows[name]
            self.parsed.pop(name)
            self.changed = self.whole = True

    def save(self) -> None:
        """Write the rows changed into records-edits.json, or, when there are too many of them or a row is new
        or gone, records.json whole (in the order of the files found by `trusted`) under a new base.

        Each file is replaced whole or not at all: records.json first, so that edits of the last base left
        by a crash in between are never read over the new one.
        """
        if self.changed and (self.whole or len(self.edited) * EDITS_SHARE > len(self.rows)):
            rows = self.rows
            self.rows = {name: rows[name] for name, _, _ in self.found if name in rows} if self.whole else rows
            self.base, self.edited, self.whole = os.urandom(8).hex(), {}, False
            save_bytes(self.path, msgspec.json.encode(RecordsFile(VERSION, self.code, self.rows, self.base)))
            with contextlib.suppress(OSError):
                self.edits_path.unlink(missing_ok=True)
        elif self.changed:
            save_bytes(self.edits_path, msgspec.json.encode(RecordsFile(VERSION, self.code, self.edited, self.base)))
        self.changed = False
        self.parsed.save()
