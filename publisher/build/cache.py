"""What a rebuild can skip: record files parsed before, and what the last build wrote.

Three kinds of JSON file live in the site's `.publisher/` folder; any of them
may be deleted at any time (the next build is then a cold one):

- `records.json` (and `records-edits.json`, the rows changed since it was
  written whole): what a build needs to know of every record file without
  parsing it (its id, status, dates and tags as digests, the key its outputs
  are rendered from), found again by the file's name and trusted while its
  (mtime_ns, size) are unchanged (`publisher.build.parsed`).
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
`RecordsFile` type (`publisher.build.parsed`), rather than row by row in
Python: a tenth of the time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

import publisher
from publisher.build.stored import (
    JOURNALS,
    NOT_THE_SHAPE,
    count,
    file_info,
    items_of,
    journalled,
    load_json,
    out_path,
    read_as,
    save_json,
    text,
    texts,
    written_files,
)
from publisher.site.config import Site
from publisher.site.files import FileInfo, digest, read_file
from publisher.site.media import site_image
from publisher.site.templates import default_templates

if TYPE_CHECKING:
    from publisher.site.plain import PlainRecord
    from publisher.site.records import Record

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
        # the journals of builds stopped before they saved this cache, and this build's own (`stored.journal`)
        self.journals = sorted(self.folder.glob(JOURNALS)) if write else []
        self.journal = str(self.folder / f"pending-{os.getpid()}-{os.urandom(4).hex()}.jsonl") if write else None
        if self.journal is not None:
            with contextlib.suppress(OSError):  # a site that cannot be written keeps no cache: as `save_json`
                self.folder.mkdir(parents=True, exist_ok=True)

    def orphans(self, made: set[str]) -> dict[str, FileInfo]:
        """The files a stopped build was about to write, that this one does not make and that still hold what
        it wrote (their size and mtime now, for `remove_unchanged`): publisher's files no cache names."""
        found = {}
        for path, digests in journalled(self.journals).items():
            if path in made:
                continue
            try:  # only a plain file is read: a journal is read as untrusted, and a link could lead to /dev/zero
                if not S_ISREG(os.lstat(f"{self.out}/{path}").st_mode):
                    continue
                stat, content = read_file(f"{self.out}/{path}")
            except OSError:  # gone already, or a folder now
                continue
            if digest(content) in digests:
                found[path] = (stat.size, stat.mtime_ns, "")
        return found

    def fresh(self, id: str) -> Kept | None:
        """A record's entry when its files were rendered in this same context."""
        kept = self.entries.get(id)
        return kept if kept is not None and kept.context == self.context else None

    def save(self, entries: dict[str, Kept], feeds: FeedState, *, settled: bool = True) -> None:
        """Keep what this build wrote; `settled` when it removed what it no longer makes (the stopped builds'
        files among them): their journals go then, and this build's own in any case."""
        for id in [id for id in self.entries if id not in entries]:
            self.records.pop(id)
        for id, kept in entries.items():
            if self.entries.get(id) is not kept:
                self.records.put(id, tuple(kept))
        self.records.save()
        if feeds != self.feeds:
            save_json(self.folder / "feeds.json", {"out": self.out, "feeds": msgspec.structs.astuple(feeds)})
        self.entries, self.feeds = entries, feeds
        for path in [*(self.journals if settled else []), *([Path(self.journal)] if self.journal else [])]:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


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
