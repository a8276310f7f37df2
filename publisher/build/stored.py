"""The build cache's files: JSON, read as untrusted.

A file of `.publisher/` may have been written by an older publisher, cut short
by a crash, or put there by anyone who can write the folder. So nothing in it
is ever run (no pickle), and everything read from it is checked for the shape
its reader expects: a file that is not JSON, of another version, or of another
shape reads as nothing (the build is then cold for what it held), never as an
error.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from publisher.site.files import FileInfo, file_stat, unchanged_since

if TYPE_CHECKING:
    from publisher.site.records import Record

VERSION = 6  # of the cache's files: one of another version reads as empty
ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
NOT_THE_SHAPE = (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError)
T = TypeVar("T")


def load_json(path: Path) -> dict[str, Any]:
    """A cache file's content; {} when it is missing, not JSON, or of another version."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return {}
    return data if isinstance(data, dict) and data.get("version") == VERSION else {}


def save_json(path: Path, data: dict[str, Any]) -> None:
    """Write a cache file whole or not at all (a temporary file renamed over it), with the version.

    A cache that cannot be written (a read-only site, a full disk) is left as it was: the next build is
    cold for what it would have held, and `check` in a folder it may only read still checks.
    """
    # msgspec writes the same compact UTF-8 JSON as the standard library's encoder, four times as fast: a
    # cold build writes 25 MB of it at 10,000 records (records-parsed/, whose values are JSON themselves)
    save_bytes(path, msgspec.json.encode({"version": VERSION, **data}))


def save_bytes(path: Path, content: bytes) -> None:
    """`save_json`'s write, of a file already encoded (with its version)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def read_as(convert: Callable[[Any], T], value: Any, empty: T) -> T:
    """`convert(value)`, or `empty` when the value is not of the shape it expects (a file from elsewhere)."""
    try:
        return convert(value)
    except NOT_THE_SHAPE:
        return empty


def text(value: Any) -> str:
    """The value when it is text (else TypeError: a `read_as` conversion then gives up), as below."""
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return tuple(text(v) for v in value)


def out_path(value: Any) -> str:
    """A path the cache names under the output folder ('feeds/a.xml'), else ValueError (not the shape).

    The cache says which files earlier builds wrote, and a build removes
    those it no longer makes: a path that is absolute, has a drive, a ``..``
    part or a backslash could name a file anywhere, so it is never taken.
    """
    path = text(value)
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\0" in path or ".." in parts or _drive(path):
        raise ValueError("not a path under the output folder")
    return path


def _drive(path: str) -> bool:
    """Whether Windows would read a drive at the start of `path` (a path with no backslash, not starting with
    a slash): one takes a colon ("c:x"), so a path without one is spared making a PureWindowsPath (a build
    checks every path its cache names)."""
    return ":" in path and bool(PureWindowsPath(path).drive)


def file_info(value: Any) -> FileInfo:
    """A file as a build wrote it: (size, mtime_ns, digest)."""
    size, mtime_ns, file_digest = value
    return count(size), count(mtime_ns), text(file_digest)


def written_files(value: Any) -> dict[str, FileInfo]:
    """Files a build wrote, by their path under the output folder (`out_path`)."""
    return {out_path(path): file_info(info) for path, info in value.items()}


def remove_unchanged(out: Path, files: Mapping[str, FileInfo]) -> list[str]:
    """Remove these files (path → what a build wrote there) from `out`, unless someone changed them since.

    A file the cache names is removed only when it is still under `out` once
    its links are resolved, and unchanged by size and mtime (else it is
    someone else's now); a folder left empty by the removals goes too, so an
    incremental build leaves the same tree a cold one would. Gives the paths removed.

    Folders are looked at once, after every removal: a folder's first entry is
    found by reading past every entry deleted from it, so asking after each of
    a folder's 40,000 removals (a build after `build --all`) took minutes.
    """
    root = out.resolve()
    resolved: dict[Path, Path] = {}  # a folder → where its links lead: resolved once, not once per file
    removed = []
    folders = set()
    for path in sorted(files):
        target = out / path
        try:
            inside = out_path(path) == path and _resolved(target, resolved).is_relative_to(root)
        except (*NOT_THE_SHAPE, OSError):
            inside = False
        if not inside or not unchanged_since(files[path], file_stat(str(target))):
            continue  # not publisher's to touch, gone already, or changed by someone else: theirs now
        target.unlink()
        removed.append(path)
        folders.add(target.parent)
    _remove_empty(out, folders)
    return removed


def _resolved(target: Path, folders: dict[Path, Path]) -> Path:
    """`target.resolve()`, its folder's resolution kept for the next file in it."""
    if target.is_symlink():
        return target.resolve()
    folder = folders.get(target.parent)
    if folder is None:
        folder = folders[target.parent] = target.parent.resolve()
    return folder / target.name


def _remove_empty(out: Path, folders: set[Path]) -> None:
    """Remove each of these folders under `out` that is empty, and each parent it leaves empty, deepest first."""
    candidates = {parent for folder in folders for parent in (folder, *folder.parents) if out in parent.parents}
    for folder in sorted(candidates, key=lambda f: len(f.parts), reverse=True):
        try:
            with os.scandir(folder) as entries:
                empty = next(entries, None) is None
        except FileNotFoundError:
            continue
        if empty:
            folder.rmdir()


def items_of(convert: Callable[[Any], T]) -> Callable[[Any], dict[str, T]]:
    """A conversion of a JSON object: text keys, each value by `convert`."""

    def items(value: Any) -> dict[str, T]:
        return {text(key): convert(item) for key, item in value.items()}

    return items


def record_blob(record: Record) -> str:
    """A record as JSON its model validates again, with where it came from (which its dump leaves out)."""
    dumped = record.model_dump_json()
    where = ENCODER.encode({"source": record.source, "lines": record.lines})
    return f"{dumped[:-1]},{where[1:]}"


def record_of(blob: str) -> Record | None:
    """The record a `record_blob` holds; None when it holds none (then its file is parsed again)."""
    from publisher.site.records import Record  # pydantic: only when a record is needed

    try:
        return Record.model_validate_json(blob)
    except ValueError:  # pydantic's ValidationError too
        return None


# --- the outputs a build is about to write ------------------------------------------------
# A build records what it wrote in its cache once it is done; one stopped before (a kill, Ctrl-C, a power
# cut after the writes reached the disk) wrote files no cache names, which no later build would remove when
# their record went. So each writer first appends the paths and digests of what it is about to write to a
# journal of its own (`pending-*.jsonl` in the build's folder): the next build removes a file a journal names
# when it no longer makes it and it still holds those very bytes (else it is someone's), then the journals go.

JOURNALS = "pending-*.jsonl"


def journal(path: str | None, files: list[tuple[str, str]]) -> None:
    """Append these (output path, digest of the bytes about to be written) to the journal at `path`, in one
    write (O_APPEND: workers of one build append to one journal)."""
    if path is None or not files:
        return
    line = msgspec.json.encode(files) + b"\n"
    with contextlib.suppress(OSError):  # a cache that cannot be written: as `save_bytes`
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def journalled(journals: list[Path]) -> dict[str, set[str]]:
    """What the journals say builds were about to write: each path's digests. A line cut short by the end of
    its process, or of another shape, says nothing."""
    found: dict[str, set[str]] = {}
    for path in journals:
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                for name, written in msgspec.json.decode(line, type=list[tuple[str, str]]):
                    found.setdefault(out_path(name), set()).add(written)
            except (msgspec.DecodeError, *NOT_THE_SHAPE):
                continue
    return found
