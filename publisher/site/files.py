"""Where a site's record files are: every `events/**/*.md` (but hidden files), listed fast.

A build lists 10,000 record files on every run: one `scandir` per folder,
where pathlib's glob and `is_file` cost a stat or more per file.
"""

from __future__ import annotations

import os
from pathlib import Path

from publisher.errors import relative

__all__ = ["record_files", "record_names", "shown_paths"]


def record_files(events: Path) -> list[Path]:
    """The record files of a site (`**/*.md`, but hidden files), in a stable order."""
    return [events / name for name, _ in record_names(events)]


def record_names(events: Path) -> list[tuple[str, bool]]:
    """(relative path, no symlink on the way) of each `.md` file under `events`, as `sorted(Path)` sorts them.

    One `scandir` per folder: pathlib's glob and `is_file` cost a stat or more per file.
    """
    found: list[tuple[tuple[str, ...], bool]] = []
    _scan(str(events), (), True, found)
    found.sort()
    return [("/".join(parts), plain) for parts, plain in found]


def _scan(folder: str, parts: tuple[str, ...], plain: bool, found: list[tuple[tuple[str, ...], bool]]) -> None:
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        try:
            if entry.is_dir():
                _scan(entry.path, (*parts, entry.name), plain and not entry.is_symlink(), found)
            elif entry.name.endswith(".md") and not entry.name.startswith(".") and entry.is_file():
                found.append(((*parts, entry.name), plain and not entry.is_symlink()))
        except OSError:
            continue


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
