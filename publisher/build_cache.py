"""What a rebuild can skip: record files parsed before, and what the last build wrote.

Three pickles live in the site's `.publisher/` folder; any of them may be
deleted at any time (the next build is then a cold one):

- `records.pickle`: what a build needs to know of every record file without
  parsing it (its id, status, dates and tags as digests, the key its outputs
  are rendered from), found again by the file's name and trusted while its
  (mtime_ns, size) are unchanged. A file changed less than `RACY_NS` before it
  was read is not trusted on its times alone (a second change within the file
  system's clock tick would keep them): it is parsed again next time.
- `records-parsed.pickle`: the parsed records themselves, read only when a
  build needs records it did not parse (feeds that show a changed record).
- `build-<digest of the output folder>.pickle`, one per output folder: each
  record's files with the key they were rendered from (and their lines of the
  `--json` manifest, ready-made), the feeds and the records each shows, and
  every file the builds wrote there (size, mtime_ns, digest). That is what
  lets a build skip identical writes and remove the files of records that are
  gone, and never anyone else's files.

Everything in them is plain tuples, strings and bytes: a site of 10,000
records has 60,000 files, and named tuples or dataclasses unpickle ~4x slower.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import publisher
from publisher.records import Record

CACHE_VERSION = 3
RACY_NS = 1_000_000_000
CACHE_FOLDER = ".publisher"
# The modules a build's outputs depend on, with render/*.py (channels, the store, the web side take no part).
_BUILD_CODE = ("records.py", "config.py", "templates.py", "errors.py", "build.py", "build_render.py")

FileInfo = tuple[int, int, str]  # size, mtime_ns, digest of a file a build wrote
FeedList = tuple[tuple[str, str, tuple[str, ...]], ...]  # (path, format, record ids) of each feed


def digest(*parts: bytes | str) -> str:
    """A short content digest (SHA-256: fast where the CPU has SHA instructions)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:32]


def code_digest() -> str:
    """Changes when the code that renders, or a default template, changes (an upgrade, an edit)."""
    from publisher.templates import default_templates

    package = Path(publisher.__file__).parent
    paths = [package / name for name in _BUILD_CODE]
    paths += sorted((package / "render").glob("*.py")) + sorted(default_templates().rglob("*"))
    h = hashlib.sha256(publisher.__version__.encode())
    for path in paths:
        stat = file_stat(str(path))
        if stat is not None:
            h.update(f"{path.name}:{stat.size}:{stat.mtime_ns}\n".encode())
    return h.hexdigest()[:32]


class FileStat(NamedTuple):
    mtime_ns: int
    size: int


def file_stat(path: str) -> FileStat | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileStat(st.st_mtime_ns, st.st_size)


def unchanged_since(info: FileInfo, stat: FileStat | None) -> bool:
    """Whether a file still has the size and mtime it had when a build wrote it."""
    return stat is not None and stat.size == info[0] and stat.mtime_ns == info[1]


def now_ns() -> int:
    """The wall clock, for racy-file detection only (never for anything rendered)."""
    return time.time_ns()


class Source:
    """One record as a build needs it: what decides its outputs, and the record itself when at hand.

    `key` is a digest of what the record is made from (its file's bytes and
    name), `membership` a digest of what decides which feeds show it.
    """

    __slots__ = ("id", "image", "key", "membership", "name", "published", "record", "shown", "status")

    def __init__(
        self,
        key: str,
        id: str,
        status: str,
        published: float,
        membership: str,
        image: str | None,
        name: str | None,
        shown: str,
        record: Record | None = None,
    ) -> None:
        self.key, self.id, self.status, self.published = key, id, status, published
        self.membership, self.image, self.name, self.shown = membership, image, name, shown
        self.record = record

    @classmethod
    def of(cls, record: Record, key: str | None = None, name: str | None = None) -> Source:
        """A record's source; `key` defaults to a digest of its content (for records not read from a file)."""
        if key is None:
            key = digest(record.model_dump_json(), record.source)
        membership = digest(
            record.status,
            record.published.isoformat(),
            record.updated.isoformat() if record.updated else "",
            record.language or "",
            "\n".join(record.tags),
        )
        image = record.image.src if record.image and "://" not in record.image.src else None
        published = record.published.timestamp()
        return cls(key, record.id, record.status, published, membership, image, name, record.source, record)

    @property
    def order(self) -> tuple[float, str]:
        """Sorts as `sort_newest_first` does, reversed."""
        return (self.published, self.id)

    def row(self) -> tuple[Any, ...]:
        return (self.key, self.id, self.status, self.published, self.membership, self.image, self.name, self.shown)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Source:
        return cls(*row)


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError, IndexError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def _save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump({"version": CACHE_VERSION, **data}, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


class RecordFiles:
    """Record files as last parsed, by name under events/: (mtime_ns or -1, size, source row)."""

    def __init__(self, root: Path, code: str) -> None:
        self.path = root / CACHE_FOLDER / "records.pickle"
        self.parsed_path = root / CACHE_FOLDER / "records-parsed.pickle"
        data = _load(self.path)
        self.code = code
        self.rows: dict[str, tuple[int, int, tuple[Any, ...]]] = (
            data.get("rows", {}) if data.get("code") == code else {}
        )
        self._parsed: dict[str, tuple[str, bytes]] | None = None
        self.changed = False

    def trusted(self, name: str, stat: FileStat) -> Source | None:
        """The cached source of `name` when its file provably has not changed since."""
        row = self.rows.get(name)
        if row is None or row[0] < 0 or row[0] != stat.mtime_ns or row[1] != stat.size:
            return None
        return Source.from_row(row[2])

    def store(self, name: str, stat: FileStat, source: Source, read_at_ns: int, blob: bytes) -> None:
        """Remember a file as parsed: its source, and the record itself (`blob`: pickled)."""
        racy = read_at_ns - stat.mtime_ns < RACY_NS
        row = (-1 if racy else stat.mtime_ns, stat.size, source.row())
        if self.rows.get(name) != row:
            self.rows[name] = row
            self.changed = True
        if self.parsed.get(name) != (source.key, blob):
            self.parsed[name] = (source.key, blob)
            self.changed = True

    @property
    def parsed(self) -> dict[str, tuple[str, bytes]]:
        """Name → (key, pickled record), read from disk when first needed."""
        if self._parsed is None:
            data = _load(self.parsed_path)
            self._parsed = data.get("records", {}) if data.get("code") == self.code else {}
        return self._parsed

    def record(self, source: Source) -> Record | None:
        """The record a source was parsed into, when this cache holds it."""
        entry = self.parsed.get(source.name) if source.name is not None else None
        if entry is None or entry[0] != source.key:
            return None
        record = pickle.loads(entry[1])
        return record if isinstance(record, Record) else None

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget the files that are gone."""
        wanted = set(names)
        for name in [n for n in self.rows if n not in wanted]:
            del self.rows[name]
            self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        _save(self.path, {"code": self.code, "rows": self.rows})
        if self._parsed is not None:
            parsed = {name: entry for name, entry in self._parsed.items() if name in self.rows}
            _save(self.parsed_path, {"code": self.code, "records": parsed})
        self.changed = False


class Kept(NamedTuple):
    """A record's files as an earlier build left them: their paths and their `--json` manifest lines."""

    key: str
    paths: str  # one per line
    json: str  # one file per line, as `Manifest.to_json` writes them, "changed": false


@dataclass
class FeedState:
    """The feeds of the last build: a digest of what decided them, and which records each one shows."""

    membership: str
    feeds: FeedList


@dataclass
class Outputs:
    """What the last build into one output folder wrote."""

    path: Path
    context: str
    records: dict[str, Kept] = field(default_factory=dict)
    files: dict[str, FileInfo] = field(default_factory=dict)
    feeds: FeedState | None = None

    @classmethod
    def load(cls, root: Path, out: Path, context: str) -> Outputs:
        path = root / CACHE_FOLDER / f"build-{digest(str(out))[:12]}.pickle"
        data = _load(path)
        files = data.get("files", {}) if data.get("out") == str(out) else {}
        if data.get("context") != context:  # settings, templates or code changed: render everything again
            return cls(path, context, files=files)
        records = {id: Kept(*entry) for id, entry in data.get("records", {}).items()}
        feeds = FeedState(*data["feeds"]) if data.get("feeds") else None
        return cls(path, context, records, files, feeds)

    def save(self, out: Path) -> None:
        data = {
            "out": str(out),
            "context": self.context,
            "records": {id: tuple(kept) for id, kept in self.records.items()},
            "files": self.files,
            "feeds": (self.feeds.membership, self.feeds.feeds) if self.feeds else None,
        }
        _save(self.path, data)


def present(out: Path, folders: Iterable[str]) -> set[str]:
    """Every file in these folders under `out` ('posts/x/a.txt'): one listing per folder, no stat per file."""
    found: set[str] = set()
    for folder in folders:
        try:
            names = os.listdir(out / folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        found.update(f"{folder}/{name}" for name in names)
    return found
