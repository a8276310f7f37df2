"""What `build` tells: every file of the site's outputs, which ones it wrote and which it removed.

`Manifest.to_json()` is `publisher build --json`; `Manifest.report()` the
human lines. A site of 10,000 records has 60,000 files: the lines of the
files a build left as they were come ready-made from the build cache
(`Kept.json`), so listing them costs a string join, not 60,000 objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from publisher.build.cache import Kept
from publisher.build.work import MANIFEST_SEPARATOR as SEPARATOR
from publisher.build.work import Output, file_json, file_line, manifest_lines

__all__ = ["SEPARATOR", "Made", "Manifest", "file_line", "manifest_lines"]

_UNCHANGED, _CHANGED = '"changed": false}', '"changed": true}'  # how a line of `file_line` ends


class Made(NamedTuple):
    """One record's files rendered by this build: their `--json` lines as `manifest_lines` made them
    ("changed": false, each) and which of them this build wrote (bit i: the i-th line's file).

    One string and one number a record, not an `Output` per file: with `--all` at 10,000 records those
    60,000 tuples were 20 MB of the build's peak. The outputs are read back from the lines when asked for.
    """

    lines: str
    changed: int
    files: int

    @classmethod
    def of(cls, outputs: Sequence[Output], lines: str) -> Made:
        return cls(lines, sum(1 << i for i, output in enumerate(outputs) if output.changed), len(outputs))

    @property
    def outputs(self) -> tuple[Output, ...]:
        entries = json.loads(f"[{self.lines}]")
        return tuple(_output({**entry, "changed": bool(self.changed >> i & 1)}) for i, entry in enumerate(entries))


class Manifest(msgspec.Struct, dict=True):
    """What a build did: every file of the site's outputs, and which ones it wrote or removed.

    `parts` holds, in order, each record's files rendered by this build (`Made`),
    each file rendered by itself (a feed, an image: an `Output`) and, for each
    record left as it was, its files as the last build listed them (`Kept`).
    """

    out: Path
    records: int = 0
    drafts: int = 0
    scheduled: int = 0  # records dated after the build's `now`: rendered, not in the feeds yet
    parts: list[Output | Made | Kept] = msgspec.field(default_factory=list)
    removed: list[str] = msgspec.field(default_factory=list)
    # Each http(s) image URL of a record (drafts too), with where each record names it (path, line):
    # what the CLI fetches ahead of the posts (`publisher.build.images.fetch_images`).
    images: dict[str, list[tuple[str, int]]] = msgspec.field(default_factory=dict)

    @cached_property
    def outputs(self) -> list[Output]:
        """Every file of the site's outputs: each record's (newest first), then the feeds."""
        outputs: list[Output] = []
        for part in self.parts:
            if isinstance(part, Output):
                outputs.append(part)
            elif isinstance(part, Made):
                outputs += part.outputs
            else:
                outputs += [_output(entry) for entry in json.loads(f"[{part.json}]")]
        return outputs

    @property
    def written(self) -> list[Output]:
        return [output for output in self._written() if output.changed]

    def _written(self) -> Iterator[Output]:
        """The files written (and, of a record's, others beside them), one record's outputs read back at a time:
        with `--all`, 60,000 of them at once would add a fifth to the build's peak memory as it reports."""
        for part in self.parts:
            if isinstance(part, Output) and part.changed:
                yield part
            elif isinstance(part, Made) and part.changed:
                yield from part.outputs

    @property
    def written_count(self) -> int:
        return sum(
            part.changed.bit_count() if isinstance(part, Made) else isinstance(part, Output) and part.changed
            for part in self.parts
        )

    @property
    def files(self) -> int:
        return sum(_count(part) for part in self.parts)

    def _head(self) -> dict[str, Any]:
        written = self.written_count
        return {
            "out": str(self.out),
            "records": self.records,
            "scheduled": self.scheduled,
            "written": written,
            "unchanged": self.files - written,
            "removed": self.removed,
        }

    def as_json(self) -> dict[str, Any]:
        return {**self._head(), "files": [file_json(o) for o in self.outputs]}

    def to_json(self) -> str:
        """`as_json()` as text, one line per file; unchanged records' lines come ready-made from the cache."""
        head = json.dumps(self._head(), ensure_ascii=False)[:-1]
        lines = SEPARATOR.join(_lines(part) for part in self.parts)
        return f'{head}, "files": [\n  {lines}\n]}}\n' if lines else f'{head}, "files": []}}\n'

    def report(self, *, verbose: bool = False) -> list[str]:
        """Lines for people: a count of files written per folder, then a summary; `verbose`: every file."""
        written = (o.path for o in self._written() if o.changed)
        lines = [f"wrote {path}" for path in written] if verbose else _per_folder(written)
        if verbose:
            lines += [f"removed {path}" for path in self.removed]
        removed = f", {len(self.removed)} removed" if self.removed else ""
        count = self.written_count
        unchanged = self.files - count
        lines.append(f"{self.records} records → {count} files written, {unchanged} unchanged{removed}, in {self.out}")
        if self.scheduled:
            lines.append(
                f"{self.scheduled} records published later are not in the feeds yet"
                " (their issues and posts are written, for review)"
            )
        return lines


def _per_folder(paths: Iterable[str]) -> list[str]:
    """'wrote 30 files in feeds/', 'wrote 3 files in posts/x/': one line per output folder."""
    counts: dict[str, int] = {}
    for path in paths:
        parts = path.split("/")
        folder = "/".join(parts[:2] if parts[0] == "posts" and len(parts) > 2 else parts[:1])
        counts[folder] = counts.get(folder, 0) + 1
    return [f"wrote {count} files in {folder}/" for folder, count in sorted(counts.items())]


def _count(part: Output | Made | Kept) -> int:
    if isinstance(part, Output):
        return 1
    return part.files if isinstance(part, Made) else part.paths.count("\n") + 1


def _lines(part: Output | Made | Kept) -> str:
    """A part's `--json` lines: a file's made now, a record's as made by its worker ("changed" set as it
    was), or as the last build listed them."""
    if isinstance(part, Output):
        return file_line(part)
    if isinstance(part, Kept):
        return part.json
    if not part.changed:
        return part.lines
    lines = part.lines.split(SEPARATOR)
    flipped = (line[: -len(_UNCHANGED)] + _CHANGED if part.changed >> i & 1 else line for i, line in enumerate(lines))
    return SEPARATOR.join(flipped)


def _output(entry: dict[str, Any]) -> Output:
    return Output(**{**entry, "records": tuple(entry["records"])})
