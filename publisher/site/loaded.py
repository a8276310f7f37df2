"""Records parsed before, kept as JSON in `.publisher/records-loaded.json` and reused while their files stay.

`publisher plan` (and every command that loads all records) at 10,000 records
spends most of its time parsing YAML and validating: a record whose file has
the same size and mtime_ns as when it was parsed, by the same code, is taken
from here instead (its model validated again from its own JSON, much faster).
A file changed less than `RACY_NS` before it was read is not kept (a second
change within the file system's clock tick would keep its times), and a record
with a problem is never kept: its file is parsed every time, so every
``path:line`` message is the parser's own.

The file is read as untrusted, as the build cache's are (`build.stored`): JSON,
never pickle; one that does not parse, is of another version or code, or holds
anything of another shape reads as empty (everything is parsed again), never as
an error; one that cannot be written is left as it was.

Its first line is a JSON header (version, code, and each record's file name,
mtime_ns, size and shown path, and its id, status and dates: what the timeline
plans by); then one line per record, in the header's order, of that record's
JSON. A record's JSON is thus read once, by pydantic when it is validated, not
first decoded as a string inside another JSON document (a second pass over 26
MB at 10,000 records). JSON escapes every line break within its strings, so a
line is one record. `publisher plan` reads only the header (`dated`): decoded
and shape-checked in one pass by msgspec, with no record validated again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec

import publisher
from publisher.errors import InvalidInput
from publisher.site.files import FileStat, read_file
from publisher.site.planned import Planned

LOADED_FILE = Path(".publisher") / "records-loaded.json"
VERSION = 3
RACY_NS = 1_000_000_000
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
# A record's id, status, and its published, starts and ends as ISO text (as the record has them, offset included)
Dates = tuple[str, str, str, str | None, str | None]
# The file's mtime_ns and size, its shown path, the record's JSON (None: not read, see `LoadedRecords`), its dates
Entry = tuple[int, int, str, bytes | None, Dates]
# A header's line for one file: its name, mtime_ns, size and shown path, then its record's `Dates`.
FileLine = tuple[str, int, int, str, str, str, str, str | None, str | None]


class Header(msgspec.Struct):
    version: int
    code: str
    records: list[FileLine]


_HEADER = msgspec.json.Decoder(Header)


class Kept(Planned, Protocol):
    """What is kept of a record: its model's JSON, where it came from (which that JSON leaves out), and
    what the timeline plans it by (in the header)."""

    @property
    def source(self) -> str: ...

    @property
    def lines(self) -> dict[str, int]: ...

    def model_dump_json(self) -> str: ...


R = TypeVar("R", bound=Kept)


def code_tag() -> str:
    """Changes with the code that parses and validates records (the site package, errors) or the version."""
    package = Path(publisher.__file__).parent
    h = hashlib.sha256(publisher.__version__.encode())
    for path in [package / "errors.py", *sorted((package / "site").glob("*.py"))]:
        data = path.read_bytes()
        h.update(f"{path.name}:{len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()[:32]


class LoadedRecords:
    """The kept records of one site, by file name under events/; `save` writes them back when they changed.

    With `records=False` only the header is read (`dated` needs no more): `get` then keeps nothing but
    what this process `put`, and `save` takes the other records' lines from the file as it is then, when its
    header is still the one read here (else those records are not kept: they are parsed next time).
    """

    def __init__(self, root: Path, *, records: bool = True) -> None:
        self.path = root / LOADED_FILE
        self.code = code_tag()
        self.entries: dict[str, Entry] = {}
        self.changed = False
        self._header = b""  # as read, with the file names in its order: what `_read_records` matches
        self._names: list[str] = []
        try:
            if records:
                lines = self.path.read_bytes().split(b"\n")  # one copy of 26 MB, not two (partition, then split)
            else:
                with self.path.open("rb") as file:
                    lines = [file.readline().rstrip(b"\n")]
            header = _HEADER.decode(lines[0])
        except (OSError, msgspec.DecodeError, RecursionError):  # missing, not JSON, or not of the shape
            return
        if header.version != VERSION or header.code != self.code:
            return
        if records and len(header.records) != len(lines) - 1:
            return
        self._header, self._names = lines[0], [f[0] for f in header.records]
        blobs: list[bytes | None] = [*lines[1:]] if records else [None] * len(header.records)
        files = zip(header.records, blobs, strict=True)
        self.entries = {f[0]: (f[1], f[2], f[3], blob, f[4:]) for f, blob in files}

    def get(self, name: str, path: str, shown: str, revive: Callable[[bytes], R]) -> R | None:
        """The record kept for `name` when its file provably has not changed since (else None: parse it).

        `revive` validates the kept JSON again (`Record.model_validate_json`): what it refuses reads as nothing.
        """
        entry = self.entries.get(name)
        if entry is None or entry[2] != shown:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if entry[0] != st.st_mtime_ns or entry[1] != st.st_size or entry[3] is None:
            return None
        try:
            return revive(entry[3])
        except ValueError:  # pydantic's ValidationError too
            return None

    def dated(self, name: str, stat: FileStat, shown: str) -> Dates | None:
        """The id, status and dates kept for `name` when its file (of `stat`) provably has not changed since."""
        entry = self.entries.get(name)
        if entry is None or entry[2] != shown or entry[0] != stat.mtime_ns or entry[1] != stat.size:
            return None
        return entry[4]

    def load(
        self, events: Path, name: str, shown: str, parse: Callable[[Path, str, bytes], R], revive: Callable[[bytes], R]
    ) -> R:
        """The record of the file `name` under `events`: kept, or parsed by `parse(path, shown, its bytes)`
        (InvalidInput as it raises it, and then nothing is kept) and kept. The file's Path is made only to
        parse it: 10,000 kept records need none."""
        record = self.get(name, f"{events}/{name}", shown, revive)
        if record is not None:
            return record
        path = events / name
        stat, data = read_file(str(path))
        read_at = time.time_ns()
        try:
            record = parse(path, shown, data)
        except InvalidInput:
            self.forget(name)
            raise
        self.put(name, stat, record, read_at)
        return record

    def put(self, name: str, stat: FileStat, record: Kept, read_at_ns: int) -> None:
        """Keep a record just parsed from a file of `stat` (as it was when opened, read at `read_at_ns`),
        unless the file changed too lately to be sure its times would show the next change."""
        if read_at_ns - stat.mtime_ns < RACY_NS:
            self.forget(name)
            return
        dumped = record.model_dump_json()
        where = _ENCODER.encode({"source": record.source, "lines": record.lines})
        blob = f"{dumped[:-1]},{where[1:]}".encode()
        self.entries[name] = (stat.mtime_ns, stat.size, record.source, blob, dates_of(record))
        self.changed = True

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.changed = True

    def keep_only(self, names: set[str]) -> None:
        """Forget the files that are gone."""
        for name in [n for n in self.entries if n not in names]:
            self.forget(name)

    def save(self) -> None:
        """Write the file whole or not at all; a site folder that cannot be written keeps it as it was."""
        if not self.changed:
            return
        self._read_records()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        files = [(name, *entry[:3], *entry[4]) for name, entry in self.entries.items()]
        header = msgspec.json.encode(Header(VERSION, self.code, files))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(b"\n".join([header, *(entry[3] or b"" for entry in self.entries.values())]))
            tmp.replace(self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self.changed = False

    def _read_records(self) -> None:
        """The lines of the records not read yet (`records=False`), from the file when its header is still the
        one read first; the records whose lines cannot be had so are no longer kept."""
        if all(entry[3] is not None for entry in self.entries.values()):
            return
        try:
            lines = self.path.read_bytes().split(b"\n")
        except OSError:
            lines = []
        if lines and lines[0] == self._header and len(self._names) == len(lines) - 1:
            found = dict(zip(self._names, lines[1:], strict=True))
            for name, entry in self.entries.items():
                if entry[3] is None and name in found:
                    self.entries[name] = (*entry[:3], found[name], entry[4])
        self.entries = {name: entry for name, entry in self.entries.items() if entry[3] is not None}


def dates_of(record: Kept) -> Dates:
    """What the timeline plans a record by, as the header keeps it."""
    starts, ends = record.starts, record.ends
    iso = (record.published.isoformat(), starts.isoformat() if starts else None, ends.isoformat() if ends else None)
    return (record.id, record.status, *iso)
