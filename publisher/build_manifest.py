"""What `build` tells: every file of the site's outputs, which ones it wrote and which it removed.

`Manifest.to_json()` is `publisher build --json`; `Manifest.report()` the
human lines. A site of 10,000 records has 60,000 files: the lines of the
files a build left as they were come ready-made from the build cache
(`Kept.json`), so listing them costs a string join, not 60,000 objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from publisher.build_cache import Kept
from publisher.build_render import Output

SEPARATOR = ",\n  "  # between two files' lines in `build --json`


@dataclass
class Manifest:
    """What a build did: every file of the site's outputs, and which ones it wrote or removed.

    `parts` holds, in order, each file rendered by this build (an `Output`) and,
    for each record left as it was, its files as the last build listed them.
    """

    out: Path
    records: int = 0
    drafts: int = 0
    parts: list[Output | Kept] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @cached_property
    def outputs(self) -> list[Output]:
        """Every file of the site's outputs: each record's (newest first), then the feeds."""
        outputs: list[Output] = []
        for part in self.parts:
            if isinstance(part, Output):
                outputs.append(part)
            else:
                outputs += [_output(entry) for entry in json.loads(f"[{part.json}]")]
        return outputs

    @property
    def written(self) -> list[Output]:
        return [part for part in self.parts if isinstance(part, Output) and part.changed]

    @property
    def files(self) -> int:
        return sum(1 if isinstance(part, Output) else part.paths.count("\n") + 1 for part in self.parts)

    def _head(self) -> dict[str, Any]:
        written = len(self.written)
        return {
            "out": str(self.out),
            "records": self.records,
            "written": written,
            "unchanged": self.files - written,
            "removed": self.removed,
        }

    def as_json(self) -> dict[str, Any]:
        return {**self._head(), "files": [_file_json(o) for o in self.outputs]}

    def to_json(self) -> str:
        """`as_json()` as text, one line per file; unchanged records' lines come ready-made from the cache."""
        head = json.dumps(self._head(), ensure_ascii=False)[:-1]
        lines = SEPARATOR.join(part.json if isinstance(part, Kept) else file_line(part) for part in self.parts)
        return f'{head}, "files": [\n  {lines}\n]}}\n' if lines else f'{head}, "files": []}}\n'

    def report(self, limit: int = 100) -> list[str]:
        """Lines for people: each file written (a count per folder when there are many), then a summary."""
        written = self.written
        lines = [f"wrote {o.path}" for o in written] if len(written) <= limit else _per_folder(written)
        lines += [f"removed {path}" for path in self.removed[:limit]]
        if len(self.removed) > limit:
            lines.append(f"removed {len(self.removed) - limit} more files")
        removed = f", {len(self.removed)} removed" if self.removed else ""
        unchanged = self.files - len(written)
        lines.append(
            f"{self.records} records → {len(written)} files written, {unchanged} unchanged{removed}, in {self.out}"
        )
        return lines


def _per_folder(outputs: Sequence[Output]) -> list[str]:
    """'wrote 30 files in feeds/', 'wrote 3 files in posts/x/': one line per output folder."""
    counts: dict[str, int] = {}
    for output in outputs:
        parts = output.path.split("/")
        folder = "/".join(parts[:2] if parts[0] == "posts" and len(parts) > 2 else parts[:1])
        counts[folder] = counts.get(folder, 0) + 1
    return [f"wrote {count} files in {folder}/" for folder, count in sorted(counts.items())]


def _file_json(o: Output) -> dict[str, Any]:
    if o.network is None:
        return {
            "path": o.path,
            "kind": o.kind,
            "format": o.format,
            "records": o.records,
            "digest": o.digest,
            "changed": o.changed,
        }
    return o._asdict()


def file_line(o: Output) -> str:
    return json.dumps(_file_json(o), ensure_ascii=False)


def _output(entry: dict[str, Any]) -> Output:
    return Output(**{**entry, "records": tuple(entry["records"])})


def manifest_lines(outputs: Iterable[Output]) -> str:
    """The `--json` lines of files as a later build will list them when it leaves them as they are."""
    return SEPARATOR.join(file_line(output._replace(changed=False)) for output in outputs)
