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
import json
import operator
import os
import pickle
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import publisher
from publisher.site.files import FileInfo, FileStat, digest, file_stat
from publisher.site.media import site_image
from publisher.site.records import Record

CACHE_VERSION = 4
RACY_NS = 1_000_000_000
CACHE_FOLDER = ".publisher"
# The modules a build's outputs depend on, with render/*.py (channels, the store, the web side take no part).
_BUILD_CODE = (
    "site/records.py", "site/front_matter.py", "site/config.py", "site/templates.py", "errors.py",
    "site/media.py", "build/builder.py", "build/work.py", "build/manifest.py",
)  # fmt: skip

FeedList = tuple[tuple[str, str, tuple[str, ...]], ...]  # (path, format, record ids) of each feed


def code_digest() -> str:
    """Changes when the code that renders, or a default template, changes (an upgrade, an edit)."""
    from publisher.site.templates import default_templates

    package = Path(publisher.__file__).parent
    paths = [package / name for name in _BUILD_CODE]
    paths += sorted((package / "render").glob("*.py")) + sorted(default_templates().rglob("*"))
    h = hashlib.sha256(publisher.__version__.encode())
    for path in paths:
        stat = file_stat(str(path))
        if stat is not None:
            h.update(f"{path.name}:{stat.size}:{stat.mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def now_ns() -> int:
    """The wall clock, for racy-file detection only (never for anything rendered)."""
    return time.time_ns()


_ROW = operator.attrgetter(
    "key", "id", "status", "published", "membership", "image", "name", "shown", "tags", "language"
)  # a Source as the cache keeps it: `Source(*row)` makes it again


class Source:
    """One record as a build needs it: what decides its outputs, and the record itself when at hand.

    `key` is a digest of what the record is made from (its file's bytes and
    name), `membership` a digest of what decides which feeds show it; `tags`
    and `language` say which feeds may show it without the record at hand.
    """

    __slots__ = (
        "id",
        "image",
        "key",
        "language",
        "membership",
        "name",
        "published",
        "record",
        "shown",
        "status",
        "tags",
    )

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
        tags: tuple[str, ...] = (),
        language: str | None = None,
        record: Record | None = None,
    ) -> None:
        self.key, self.id, self.status, self.published = key, id, status, published
        self.membership, self.image, self.name, self.shown = membership, image, name, shown
        self.tags, self.language, self.record = tags, language, record

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
        published = record.published.timestamp()
        image = site_image(record)
        source = cls(key, record.id, record.status, published, membership, image, name, record.source, record=record)
        source.tags, source.language = record.tags, record.language
        return source

    @property
    def order(self) -> tuple[float, str]:
        """Sorts as `sort_newest_first` does, reversed."""
        return (self.published, self.id)

    def row(self) -> tuple[Any, ...]:
        row: tuple[Any, ...] = _ROW(self)  # attrgetter of several names: a tuple
        return row

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


class Shards:
    """A dict kept in `count` pickles, by a hash of the key: a change rewrites one of them, not all.

    Each part is read when first needed; `tag` (a version of what the values
    mean) must match, or the part is taken as empty.
    """

    def __init__(self, folder: Path, tag: str, count: int = 16) -> None:
        self.folder, self.tag, self.count = folder, tag, count
        self._parts: dict[int, dict[str, Any]] = {}
        self._dirty: set[int] = set()

    def _index(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.count

    def _part(self, index: int) -> dict[str, Any]:
        part = self._parts.get(index)
        if part is None:
            data = _load(self.folder / f"{index:02d}.pickle")
            part = self._parts[index] = data.get("items", {}) if data.get("tag") == self.tag else {}
        return part

    def get(self, key: str) -> Any:
        return self._part(self._index(key)).get(key)

    def put(self, key: str, value: Any) -> None:
        index = self._index(key)
        part = self._part(index)
        if part.get(key) != value:
            part[key] = value
            self._dirty.add(index)

    def pop(self, key: str) -> None:
        index = self._index(key)
        if self._part(index).pop(key, None) is not None:
            self._dirty.add(index)

    def items(self) -> Iterator[tuple[str, Any]]:
        for index in range(self.count):
            yield from self._part(index).items()

    def save(self) -> None:
        for index in sorted(self._dirty):
            _save(self.folder / f"{index:02d}.pickle", {"tag": self.tag, "items": self._parts[index]})
        self._dirty.clear()


class RecordFiles:
    """Record files as last parsed, by name under events/: (mtime_ns or -1, size, source row).

    The parsed records themselves (pickled, with the key they were parsed
    from) live apart, in shards read only when a build needs them.
    """

    def __init__(self, root: Path, code: str) -> None:
        self.path = root / CACHE_FOLDER / "records.pickle"
        data = _load(self.path)
        self.code = code
        rows = data.get("rows", {}) if data.get("code") == code else {}
        self.rows: dict[str, tuple[int, int, tuple[Any, ...]]] = rows
        self.parsed = Shards(root / CACHE_FOLDER / "records-parsed", code)
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
        self.parsed.put(name, (source.key, blob))

    def blob(self, source: Source) -> bytes | None:
        """The record a source was parsed into, pickled, when the cache holds it."""
        entry = self.parsed.get(source.name) if source.name is not None else None
        return entry[1] if entry is not None and entry[0] == source.key else None

    def record(self, source: Source) -> Record | None:
        """The record a source was parsed into, when the cache holds it."""
        blob = self.blob(source)
        record = pickle.loads(blob) if blob is not None else None
        return record if isinstance(record, Record) else None

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget the files that are gone."""
        wanted = set(names)
        for name in [n for n in self.rows if n not in wanted]:
            del self.rows[name]
            self.parsed.pop(name)
            self.changed = True

    def save(self) -> None:
        if self.changed:
            _save(self.path, {"code": self.code, "rows": self.rows})
            self.changed = False
        self.parsed.save()


class Kept(NamedTuple):
    """A record's files as a build left them, and the key and context they were rendered from."""

    key: str
    context: str
    paths: str  # one per line
    stats: tuple[int, ...]  # size and mtime_ns of each file, in turn
    json: str  # their lines of the `--json` manifest, "changed": false

    def infos(self) -> dict[str, FileInfo]:
        """Path → (size, mtime_ns, digest) of each file."""
        lines = [json.loads(line.strip().rstrip(",")) for line in self.json.split("\n")]
        return {
            entry["path"]: (self.stats[2 * i], self.stats[2 * i + 1], entry["digest"]) for i, entry in enumerate(lines)
        }


@dataclass
class FeedState:
    """The feeds of a build: what decided them, which records each shows, and the files as written."""

    context: str
    membership: str
    feeds: FeedList
    files: dict[str, FileInfo] = field(default_factory=dict)


class Outputs:
    """What the builds into one output folder wrote: each record's files, and the feeds."""

    def __init__(self, root: Path, out: Path, context: str, *, write: bool = True) -> None:
        self.folder = root / CACHE_FOLDER / f"build-{digest(str(out))[:12]}"
        self.context, self.out, self.write = context, str(out), write
        data = _load(self.folder / "feeds.pickle") if write else {}
        feeds = data.get("feeds") if data.get("out") == self.out else None
        self.feeds: FeedState | None = FeedState(*feeds) if feeds else None
        self.records = Shards(self.folder, self.out)
        self.entries: dict[str, Kept] = {id: Kept(*entry) for id, entry in self.records.items()} if write else {}

    def fresh(self, id: str) -> Kept | None:
        """A record's entry when its files were rendered in this same context."""
        kept = self.entries.get(id)
        return kept if kept is not None and kept.context == self.context else None

    def save(self, entries: dict[str, Kept], feeds: FeedState) -> None:
        for id in [id for id in self.entries if id not in entries]:
            self.records.pop(id)
        for id, kept in entries.items():
            if self.entries.get(id) is not kept:
                self.records.put(id, tuple(kept))
        self.records.save()
        if feeds != self.feeds:
            _save(self.folder / "feeds.pickle", {"out": self.out, "feeds": astuple(feeds)})
        self.entries, self.feeds = entries, feeds


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
