"""What a rebuild can skip: record files parsed before, and what the last build wrote.

Two kinds of pickle live in the site's `.publisher/` folder:

- `records.pickle`: every record file as last parsed, found again by its name
  and trusted while its (mtime_ns, size) are unchanged. A file changed less
  than `RACY_NS` before it was read is not trusted on its times alone (a second
  change within the file system's clock tick would keep them): its bytes are
  read and compared by digest, which still saves the parse.
- `build-<digest of the output folder>.pickle`, one per output folder: the
  outputs of each record under the key it was rendered from, the feeds with
  their record ids, and every file the builds wrote there (size, mtime_ns,
  digest), which is what lets a build skip identical writes and remove the
  files of records that are gone, never anyone else's.

Either file may be deleted at any time: the next build is a cold one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import publisher
from publisher.records import Record

CACHE_VERSION = 2
RACY_NS = 1_000_000_000
CACHE_FOLDER = ".publisher"


def digest(*parts: bytes | str) -> str:
    """A short content digest (SHA-256, fast where the CPU has SHA instructions)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:32]


# The modules a build's outputs depend on (channels, the store, the web side do not take part).
_BUILD_CODE = ("records.py", "config.py", "templates.py", "errors.py", "build.py", "build_render.py")


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


class Source:
    """One record as a build needs it: what decides its outputs, and the record itself on demand.

    The record travels pickled (`blob`) between the caches and the worker
    processes and is unpickled only where it is rendered.
    """

    __slots__ = ("_blob", "_record", "id", "image", "key", "membership", "order", "status")

    def __init__(
        self,
        key: str,
        id: str,
        status: str,
        order: tuple[float, str],
        membership: str,
        image: str | None,
        *,
        blob: bytes | None = None,
        record: Record | None = None,
    ) -> None:
        self.key, self.id, self.status, self.order = key, id, status, order
        self.membership, self.image = membership, image
        self._blob, self._record = blob, record

    @classmethod
    def of(cls, record: Record, key: str | None = None) -> Source:
        """A source for a record; `key` (a digest of what it was made from) defaults to its content."""
        if key is None:
            key = digest(record.model_dump_json(), record.source)
        membership = digest(
            record.id,
            record.status,
            record.published.isoformat(),
            record.updated.isoformat() if record.updated else "",
            record.language or "",
            "\n".join(record.tags),
        )
        image = record.image.src if record.image and "://" not in record.image.src else None
        order = (record.published.timestamp(), record.id)
        return cls(key, record.id, record.status, order, membership, image, record=record)

    @property
    def record(self) -> Record:
        if self._record is None:
            assert self._blob is not None
            self._record = pickle.loads(self._blob)
        return self._record

    @property
    def blob(self) -> bytes:
        if self._blob is None:
            self._blob = pickle.dumps(self.record, protocol=pickle.HIGHEST_PROTOCOL)
        return self._blob

    def row(self) -> tuple[Any, ...]:
        return (self.key, self.id, self.status, self.order, self.membership, self.image, self.blob)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Source:
        key, id, status, order, membership, image, blob = row
        return cls(key, id, status, order, membership, image, blob=blob)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Source.from_row, (self.row(),))


class FileStat(NamedTuple):
    mtime_ns: int
    size: int


def file_stat(path: str) -> FileStat | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileStat(st.st_mtime_ns, st.st_size)


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
    """Record files as last parsed: name under events/ → (mtime_ns, size, source row)."""

    FILE = "records.pickle"

    def __init__(self, root: Path, code: str) -> None:
        self.path = root / CACHE_FOLDER / self.FILE
        data = _load(self.path)
        self.rows: dict[str, tuple[int, int, tuple[Any, ...]]] = (
            data.get("rows", {}) if data.get("code") == code else {}
        )
        self.code = code
        self.changed = False

    def trusted(self, name: str, stat: FileStat) -> Source | None:
        """The cached source of `name` when its file provably has not changed since."""
        row = self.rows.get(name)
        if row is None or row[0] < 0 or (row[0], row[1]) != stat:
            return None
        return Source.from_row(row[2])

    def known(self, name: str) -> tuple[Any, ...] | None:
        """The source row last parsed from `name`, to reuse when its bytes turn out the same."""
        row = self.rows.get(name)
        return None if row is None else row[2]

    def store(self, name: str, stat: FileStat, source: Source, read_at_ns: int) -> None:
        racy = read_at_ns - stat.mtime_ns < RACY_NS
        row = (-1 if racy else stat.mtime_ns, stat.size, source.row())
        if self.rows.get(name) != row:
            self.rows[name] = row
            self.changed = True

    def keep_only(self, names: Iterable[str]) -> None:
        wanted = set(names)
        for name in [n for n in self.rows if n not in wanted]:
            del self.rows[name]
            self.changed = True

    def save(self) -> None:
        if self.changed:
            _save(self.path, {"code": self.code, "rows": self.rows})
            self.changed = False


# Plain tuples, not named ones: 100,000 of them unpickle four times faster.
OutputRow = tuple[str, str, str, str | None, int | None, int | None]  # path, kind, format, network, length, limit
FileInfo = tuple[int, int, str]  # size, mtime_ns, digest of a file a build wrote


def unchanged_since(info: FileInfo, stat: FileStat | None) -> bool:
    """Whether a file still has the size and mtime it had when a build wrote it."""
    return stat is not None and stat.size == info[0] and stat.mtime_ns == info[1]


@dataclass
class FeedState:
    """The feeds of the last build: which records decided them, and which each one shows."""

    membership: str
    feeds: tuple[tuple[str, str, tuple[str, ...]], ...]  # (path, format, record ids)


@dataclass
class Outputs:
    """What the last build into one output folder wrote."""

    path: Path
    context: str
    records: dict[str, tuple[str, tuple[OutputRow, ...]]] = field(default_factory=dict)
    files: dict[str, FileInfo] = field(default_factory=dict)
    feeds: FeedState | None = None

    @classmethod
    def load(cls, root: Path, out: Path, context: str) -> Outputs:
        path = root / CACHE_FOLDER / f"build-{digest(str(out))[:12]}.pickle"
        data = _load(path)
        files = data.get("files", {}) if data.get("out") == str(out) else {}
        if data.get("context") != context:
            return cls(path, context, files=files)
        return cls(path, context, data.get("records", {}), files, data.get("feeds"))

    def save(self, out: Path) -> None:
        _save(
            self.path,
            {
                "out": str(out),
                "context": self.context,
                "records": self.records,
                "files": self.files,
                "feeds": self.feeds,
            },
        )


def now_ns() -> int:
    """The wall clock, for racy-file detection only (never for anything rendered)."""
    return time.time_ns()


def present(out: Path, paths: Iterable[str], listings: dict[str, frozenset[str]]) -> bool:
    """Whether every path exists under `out`, by one directory listing per folder (no stat per file)."""
    for path in paths:
        folder, _, name = path.rpartition("/")
        names = listings.get(folder)
        if names is None:
            try:
                names = frozenset(os.listdir(out / folder if folder else out))
            except (FileNotFoundError, NotADirectoryError):
                names = frozenset()
            listings[folder] = names
        if name not in names:
            return False
    return True


def sizes_digest(sizes: Mapping[str, int]) -> str:
    return digest(*(f"{src}={size}" for src, size in sorted(sizes.items())))
