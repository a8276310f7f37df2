"""A site's files: where its record files are (every `events/**/*.md` but hidden files), reading them, and
writing outputs only where their bytes changed, each with as few system calls as it takes.

A build lists, reads and writes tens of thousands of files on every run: one
`scandir` per folder, where pathlib's glob and `is_file` cost a stat or more
per file; `os.open`, `os.read`/`os.write`, `os.fstat` and `os.close`, where
file objects cost several system calls more per file. Here, below both
`build` and `dispatch`, so that `publisher build` and the feeds dispatch write
the same files the same way without importing each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import NamedTuple

from publisher.errors import InvalidInput, Problem, relative

__all__ = [
    "FileInfo",
    "FileStat",
    "Stamp",
    "digest",
    "file_stat",
    "read_file",
    "record_files",
    "record_names",
    "record_stamps",
    "record_stats",
    "same_stamps",
    "shown_paths",
    "unchanged_since",
    "write_file",
]

FileInfo = tuple[int, int, str]  # size, mtime_ns, digest of a file a build wrote


def record_files(events: Path) -> list[Path]:
    """The record files of a site (`**/*.md`, but hidden files), in a stable order."""
    return [events / name for name, _ in record_names(events)]


def record_names(events: Path) -> list[tuple[str, bool]]:
    """(relative path, no symlink on the way) of each `.md` file under `events`, as `sorted(Path)` sorts them.

    One `scandir` per folder: pathlib's glob and `is_file` cost a stat or more per file. A folder that
    cannot be read raises InvalidInput (its records would otherwise be left out without a word).
    """
    return [(name, plain) for name, plain, _ in _listed(events, stat=False)]


def record_stats(events: Path) -> list[tuple[str, bool, FileStat | None]]:
    """`record_names` with each file's mtime and size (None: it went meanwhile), each stat made as the folder
    is listed, from the listing's own entry: no path is built or looked up again (a build at 10,000 records
    does this; a second pass over the entries, after sorting them, cost half as much again as the stats)."""
    return _listed(events, stat=True)


_Found = tuple[str, bool, "FileStat | None"]  # relative path, no symlink on the way, stat


def _listed(events: Path, *, stat: bool) -> list[_Found]:
    found: list[_Found] = []
    _scan(str(events), "", True, found, stat)
    return found


def _scan(folder: str, prefix: str, plain: bool, found: list[_Found], stat: bool) -> None:
    """Add the record files under `folder` to `found`, in `sorted(Path)`'s order.

    A folder's files and folders are sorted together, each folder by its path with a NUL after it, which no
    name holds and which sorts before every other character, so that they sort as `sorted(Path)` sorts the
    paths' parts; then each folder's files take its place. A folder without folders in it (a site's usual
    `events/`) is one sort of its own paths.
    """
    here, folders = _listing(folder, prefix, plain, stat)
    if not folders:
        here.sort()  # by path: paths differ, so the rest of a tuple is never compared
        found += here
        return
    for path, mine, stated in sorted(here + folders):
        if path.endswith(SEPARATOR):
            inner = path[:-1]
            _scan(f"{folder}/{inner[len(prefix) :]}", inner + "/", mine, found, stat)
        else:
            found.append((path, mine, stated))


def _listing(folder: str, prefix: str, plain: bool, stat: bool) -> tuple[list[_Found], list[_Found]]:
    """The record files right in `folder`, each stated as it is listed when `stat` (its entry's `stat`
    follows a link, as `is_file`), and the folders in it (their paths end with a NUL, as `_scan` sorts them).

    Listed by `_entries`: each entry is let go, with its stat, as the next is listed (holding 10,000 of them
    until the end cost a rebuild a page fault every few files).
    """
    here: list[_Found] = []
    folders: list[_Found] = []
    try:
        with _entries(folder) as entries:
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir():
                        folders.append((prefix + name + SEPARATOR, plain and not entry.is_symlink(), None))
                        continue
                    if not name.endswith(".md") or name.startswith(".") or not entry.is_file():
                        continue
                    mine = plain and not entry.is_symlink()
                except OSError:
                    continue
                here.append((prefix + name, mine, _stat_of(entry) if stat else None))
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    except OSError as exc:  # unreadable: its records would be missing without a word
        raise InvalidInput([Problem(folder, 1, "folder", f"cannot be read ({exc.strerror or exc})")]) from None
    return here, folders


def _stat_of(entry: os.DirEntry[str]) -> FileStat | None:
    try:
        st = entry.stat()
    except OSError:  # it went meanwhile
        return None
    return _made((st.st_mtime_ns, st.st_size))


_BY_DESCRIPTOR = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")


@contextlib.contextmanager
def _entries(folder: str) -> Iterator[Iterator[os.DirEntry[str]]]:
    """The entries of `folder`, listed through its descriptor where the system can, so that each entry's stat
    looks up one name rather than every folder of the path again."""
    listed: int | str = os.open(folder, os.O_RDONLY | os.O_DIRECTORY) if _BY_DESCRIPTOR else folder
    try:
        with os.scandir(listed) as entries:
            yield entries
    finally:
        if not isinstance(listed, str):
            os.close(listed)


SEPARATOR = "\0"  # after a folder's path, as `_scan` sorts it among files


Stamp = tuple[str, int, int]  # a path under the folder, its size and its mtime_ns


def record_stamps(events: Path) -> list[Stamp]:
    """(relative path, size, mtime_ns) of each `.md` file under `events` that `record_names` lists, in the
    order the folders list them (the same while they are unchanged: `same_stamps` compares them).

    What the clock compares between ticks to know whether any record changed: an edit anywhere (its size or
    mtime), an added file and a removed one (whatever their mtimes) each change the list. One `scandir` per
    folder and one stat per file, no `Path` objects: a tick at 10,000 records costs milliseconds. A folder
    that cannot be read is stamped (size and mtime -1) rather than raised: loading the records says why.
    """
    found: list[Stamp] = []
    _stamp(str(events), "", found)
    return found


def same_stamps(these: list[Stamp], those: list[Stamp]) -> bool:
    """Whether two `record_stamps` are of the same files, in whatever order their folders listed them."""
    return these == those or sorted(these) == sorted(those)


def _stamp(folder: str, prefix: str, found: list[Stamp]) -> None:
    """Stamp the record files under `folder`, listed by `_entries` as `_listing` lists them (a fifth less time a
    tick than a list of entries stated by path)."""
    try:
        with _entries(folder) as entries:
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir():
                        _stamp(f"{folder}/{name}", f"{prefix}{name}/", found)
                    elif name.endswith(".md") and not name.startswith(".") and entry.is_file():
                        st = entry.stat()
                        found.append((prefix + name, st.st_size, st.st_mtime_ns))
                except OSError:
                    continue
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError:  # unreadable: stamped so (loading the records says why)
        found.append((prefix, -1, -1))


def shown_paths(events: Path, root: Path | None, names: list[tuple[str, bool]]) -> list[str]:
    """`relative(events / name, root)` for every file, resolving the folder once rather than every file."""
    if root is None:
        return [str(events / name) for name, _ in names]
    try:
        prefix = str(events.resolve().relative_to(root.resolve()))
    except ValueError:  # the folder is outside the site: paths as given
        return [relative(events / name, root) for name, _ in names]
    shown = []
    for name, plain in names:
        if not plain:  # a symlink on the way: resolve this one
            shown.append(relative(events / name, root))
        else:
            shown.append(name if prefix == "." else f"{prefix}/{name}")
    return shown


def digest(*parts: bytes | str) -> str:
    """A short content digest (SHA-256: fast where the CPU has SHA instructions)."""
    # Each part, then a NUL: hashed at once (a build digests 10,000 parts in one call), text encoded at once
    try:
        joined = "\0".join(parts).encode()  # type: ignore[arg-type]  # bytes among them: the TypeError below
    except TypeError:  # bytes among them
        joined = b"\0".join([part.encode() if isinstance(part, str) else part for part in parts])
    return hashlib.sha256(joined + b"\0" if parts else b"").hexdigest()[:32]


class FileStat(NamedTuple):
    mtime_ns: int
    size: int


#: `FileStat(*values)` made in C: a named tuple's own constructor is Python, a third of the cost of listing a file
_made: Callable[[tuple[int, int]], FileStat] = partial(tuple.__new__, FileStat)


def file_stat(path: str) -> FileStat | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileStat(st.st_mtime_ns, st.st_size)


def unchanged_since(info: FileInfo, stat: FileStat | None) -> bool:
    """Whether a file still has the size and mtime it had when a build wrote it."""
    return stat is not None and stat.size == info[0] and stat.mtime_ns == info[1]


def read_file(path: str) -> tuple[FileStat, bytes]:
    """A file's bytes, and its mtime and size as they were when it was opened (fewer system calls than pathlib)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        chunks = []
        while chunk := os.read(fd, max(st.st_size + 1, 65536)):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return FileStat(st.st_mtime_ns, st.st_size), b"".join(chunks)


def write_file(
    target: str, content: bytes, known: FileInfo | None = None, content_digest: str | None = None
) -> tuple[bool, FileInfo]:
    """Write `content` to `target` unless it already holds exactly that; (written?, what is there now).

    `known` is what the last build wrote there: when the file still has its
    size and mtime and the digest matches, the file is not even read. A new
    file is written in place; an existing one is replaced atomically.
    """
    new_digest = digest(content) if content_digest is None else content_digest  # the caller's, when it has it
    if known is not None and known[2] == new_digest and unchanged_since(known, file_stat(target)):
        return False, known
    try:
        return True, _create(target, content, new_digest)
    except FileExistsError:
        pass
    with open(target, "rb") as f:
        if f.read() == content:
            st = os.fstat(f.fileno())
            return False, (st.st_size, st.st_mtime_ns, new_digest)
    folder, _, name = target.rpartition("/")
    tmp = f"{folder}/.{name}.{os.getpid()}.tmp"
    info = _create(tmp, content, new_digest, exclusive=False)
    os.replace(tmp, target)
    return True, info


def _create(target: str, content: bytes, content_digest: str, *, exclusive: bool = True) -> FileInfo:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(target, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(target, flags, 0o666)
    try:  # plain os.write: a file object costs three more system calls per file
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return (st.st_size, st.st_mtime_ns, content_digest)
