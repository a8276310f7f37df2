"""What a rebuild can skip: record files parsed before, and what the last build wrote.

Three kinds of JSON file live in the site's `.publisher/` folder; any of them
may be deleted at any time (the next build is then a cold one):

- `records.json`: what a build needs to know of every record file without
  parsing it (its id, status, dates and tags as digests, the key its outputs
  are rendered from), found again by the file's name and trusted while its
  (mtime_ns, size) are unchanged. A file changed less than `RACY_NS` before it
  was read is not trusted on its times alone (a second change within the file
  system's clock tick would keep them): it is parsed again next time.
  `records-edits.json` holds the rows changed since records.json was written
  whole, for that writing of it (its `base`): a rebuild after one edit writes
  a row, not 10,000.
- `records-parsed/NN.json`: the parsed records themselves (each as the JSON
  its model validates again), read only when a build needs records it did not
  parse (feeds that show a changed record).
- `build-<digest of the output folder>/`, one per output folder: each record's
  files with the key they were rendered from (and their lines of the `--json`
  manifest, ready-made), the feeds and the records each shows, and every file
  the builds wrote there (size, mtime_ns, digest). That is what lets a build
  skip identical writes and remove the files of records that are gone, and
  never anyone else's files.

JSON, never pickle: whoever can write `.publisher/` must not get code run by
the next build. Every file is read as untrusted: one that does not parse, is
of another version, or holds anything of another shape is taken as empty (the
build is then cold for what it held), never an error. Values are plain lists,
strings and numbers, turned back into tuples as they are read. `records.json`,
the one that grows with the site (a row per record file, read by every
build), is decoded and shape-checked in one pass by msgspec against the
`RecordsFile` type, rather than row by row in Python: a tenth of the time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

import publisher
from publisher.build.stored import (
    NOT_THE_SHAPE,
    VERSION,
    count,
    file_info,
    items_of,
    load_json,
    out_path,
    read_as,
    record_of,
    save_bytes,
    save_json,
    text,
    texts,
    written_files,
)
from publisher.site.config import Site
from publisher.site.files import FileInfo, FileStat, digest
from publisher.site.media import site_image
from publisher.site.templates import default_templates

if TYPE_CHECKING:
    from publisher.site.plain import PlainRecord
    from publisher.site.records import Record

RACY_NS = 1_000_000_000
CACHE_FOLDER = ".publisher"
# What a build's outputs depend on: whole packages, every module in them found by walking their folders
# (a new module is digested without anyone listing it), and the modules beside them. The store, the
# audience, the channels, dispatch and the web side take no part in what a build writes.
BUILD_PACKAGES = ("site", "render", "build", "timeline")
BUILD_MODULES = ("__init__.py", "errors.py")

FeedList = tuple[tuple[str, str, tuple[str, ...]], ...]  # (path, format, record ids) of each feed


def code_files(package: Path) -> list[Path]:
    """Every module of `package` (publisher's folder) that shapes a build's output, in a stable order."""
    files = [package / name for name in BUILD_MODULES]
    for name in BUILD_PACKAGES:
        files += sorted((package / name).rglob("*.py"))
    return files


def code_digest() -> str:
    """Changes when the code that renders, or a default template, changes (an upgrade, an edit).

    A digest of the bytes of every file `code_files` finds and of every default
    template, with their paths: nothing to keep up to date by hand.
    """
    package = Path(publisher.__file__).parent
    templates = default_templates()
    h = hashlib.sha256(publisher.__version__.encode())
    named = [(str(path.relative_to(package)), path) for path in code_files(package)]
    named += [(f"templates/{path.relative_to(templates)}", path) for path in sorted(templates.rglob("*"))]
    for name, path in named:
        if path.is_file():
            data = path.read_bytes()
            h.update(f"{name}:{len(data)}\n".encode())
            h.update(data)
    return h.hexdigest()[:32]


def now_ns() -> int:
    """The wall clock, for racy-file detection only (never for anything rendered)."""
    return time.time_ns()


class Source(msgspec.Struct, array_like=True):
    """One record as a build needs it: what decides its outputs.

    `key` is a digest of what the record is made from (its file's bytes and
    name), `membership` a digest of what decides which feeds show it; `tags`
    and `language` say which feeds may show it without the record at hand, and
    `published`, `starts` and `ends` (timestamps) what the timeline plans it by.
    `remote` is its image's http(s) URL and the line of its `image.src` (the
    build fetches it ahead of the posts: `publisher.build.images`).

    A row of `records.json` as it is: msgspec decodes the file's 10,000 rows straight into sources (a third
    of the time of decoding tuples and making each source of one).
    """

    key: str
    id: str
    status: str
    published: float
    membership: str
    image: str | None
    name: str | None
    shown: str
    tags: tuple[str, ...] = ()
    language: str | None = None
    starts: float | None = None
    ends: float | None = None
    remote: tuple[str, int] | None = None

    @classmethod
    def of(cls, record: Record, key: str | None = None, name: str | None = None) -> Source:
        """A record's source; `key` defaults to a digest of its content (for records not read from a file)."""
        return cls.parsed(record, digest(record.model_dump_json(), record.source) if key is None else key, name)

    @classmethod
    def parsed(cls, record: Record | PlainRecord, key: str, name: str | None) -> Source:
        """The source of a record parsed from a file (`key`: of its bytes), by the model or the quick check."""
        membership = digest(
            record.status,
            record.published.isoformat(),
            record.updated.isoformat() if record.updated else "",
            record.language or "",
            "\n".join(record.tags),
        )
        src = record.image.src if record.image else ""
        return cls(
            key,
            record.id,
            record.status,
            record.published.timestamp(),
            membership,
            site_image(record),
            name,
            record.source,
            record.tags,
            record.language,
            record.starts.timestamp() if record.starts else None,
            record.ends.timestamp() if record.ends else None,
            (src, record.line("image.src")) if src.startswith(("http://", "https://")) else None,
        )

    @property
    def order(self) -> tuple[float, str]:
        """Sorts as `sort_newest_first` does, reversed."""
        return (self.published, self.id)


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


def _kept_entry(value: Any) -> tuple[Any, ...]:
    """A record's entry; its paths each an `out_path` (a build removes them when the record goes)."""
    key, context, paths, stats, lines = value
    if not isinstance(stats, list):
        raise TypeError("not a list")
    for path in text(paths).split("\n"):
        out_path(path)
    return text(key), text(context), paths, tuple(count(n) for n in stats), text(lines)


def _feed_state(value: Any) -> FeedState:
    context, membership, feeds, files, keys = value
    listed = tuple((out_path(path), text(fmt), texts(ids)) for path, fmt, ids in feeds)
    return FeedState(text(context), text(membership), listed, written_files(files), items_of(text)(keys))


def templates_digest(site: Site) -> str:
    """A digest of every template that can take part in a render (the site's and the defaults)."""
    parts: list[bytes | str] = []
    for folder in (site.templates, default_templates()):
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    parts += [str(path.relative_to(folder)), path.read_bytes()]
    return digest(*parts)


class Shards:
    """A dict kept in `count` JSON files, by a hash of the key: a change rewrites one of them, not all.

    Each part is read when first needed and each value checked by `convert`;
    `tag` (a version of what the values mean) must match, or the part is taken
    as empty, as is a part holding anything `convert` refuses.
    """

    def __init__(self, folder: Path, tag: str, convert: Callable[[Any], Any], count: int = 16) -> None:
        self.folder, self.tag, self.convert, self.count = folder, tag, convert, count
        self._parts: dict[int, dict[str, Any]] = {}
        self._dirty: set[int] = set()

    def _index(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.count

    def _part(self, index: int) -> dict[str, Any]:
        part = self._parts.get(index)
        if part is None:
            data = load_json(self.folder / f"{index:02d}.json")
            items = data.get("items") if data.get("tag") == self.tag else None
            part = self._parts[index] = read_as(items_of(self.convert), items, {}) if items is not None else {}
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
            save_json(self.folder / f"{index:02d}.json", {"tag": self.tag, "items": self._parts[index]})
        self._dirty.clear()


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


class Kept(NamedTuple):
    """A record's files as a build left them, and the key and context they were rendered from."""

    key: str
    context: str
    paths: str  # one per line
    stats: tuple[int, ...]  # size and mtime_ns of each file, in turn
    json: str  # their lines of the `--json` manifest, "changed": false

    def infos(self) -> dict[str, FileInfo]:
        """Path → (size, mtime_ns, digest) of each file ({} when the cache held something else).

        The manifest lines must name the very paths of `paths` (each checked as it was read).
        """
        try:
            lines = [json.loads(line.strip().rstrip(",")) for line in self.json.split("\n")]
            infos = {
                entry["path"]: file_info([self.stats[2 * i], self.stats[2 * i + 1], entry["digest"]])
                for i, entry in enumerate(lines)
            }
        except NOT_THE_SHAPE:
            return {}
        return infos if list(infos) == self.paths.split("\n") else {}


class FeedState(msgspec.Struct):
    """The feeds of a build: what decided them, which records each shows, and the files as written.

    `keys` holds the key of each record a feed shows: a feed is rendered again
    when one of them changed, whether or not that record's previews were.
    """

    context: str
    membership: str
    feeds: FeedList
    files: dict[str, FileInfo] = msgspec.field(default_factory=dict)
    keys: dict[str, str] = msgspec.field(default_factory=dict)


class Outputs:
    """What the builds into one output folder wrote: each record's files, and the feeds."""

    def __init__(self, root: Path, out: Path, context: str, *, write: bool = True) -> None:
        self.folder = root / CACHE_FOLDER / f"build-{digest(str(out))[:12]}"
        self.context, self.out, self.write = context, str(out), write
        data = load_json(self.folder / "feeds.json") if write else {}
        feeds = data.get("feeds") if data.get("out") == self.out else None
        self.feeds: FeedState | None = read_as(_feed_state, feeds, None) if feeds else None
        self.records = Shards(self.folder, self.out, _kept_entry)
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
            save_json(self.folder / "feeds.json", {"out": self.out, "feeds": msgspec.structs.astuple(feeds)})
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
