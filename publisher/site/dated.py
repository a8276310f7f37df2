"""Records as the timeline sees them: id, status and dates, without validating the rest again.

`publisher plan` at 10,000 records needs of each record only what the timeline
plans by. `load_dated` gives what `load_records(..., keep=True)` would (the
same records, drafts left out, in the same order, with the same problems), each
as a `Dated`: a record whose file is unchanged since it was kept is read from
the kept file's header (`publisher.site.loaded`), decoded and shape-checked by
msgspec in one pass, and no record model is validated again; a changed file
is parsed, and kept, as `load_records` would.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from publisher.errors import InvalidInput, Problem
from publisher.site.files import record_stats, shown_paths
from publisher.site.loaded import Dates, LoadedRecords, dates_of
from publisher.site.rules import unique_ids

if TYPE_CHECKING:
    from publisher.site.records import Record


class Dated(NamedTuple):
    """A record as the timeline plans it (`publisher.timeline.plan.Planned`), and the file it is from."""

    id: str
    status: str
    published: dt.datetime
    starts: dt.datetime | None
    ends: dt.datetime | None
    source: str


def load_dated(events: Path, root: Path) -> list[Dated]:
    """Every record under `events` but drafts, newest first, as `Dated`; InvalidInput with all problems."""
    kept = LoadedRecords(root, records=False)
    found = record_stats(events)
    names = [(name, plain) for name, plain, _ in found]
    problems: list[Problem] = []
    dated: list[Dated] = []
    files: dict[str, str] = {}  # shown path → file name, to find a duplicate id's line

    def parse(path: Path, shown: str, data: bytes) -> Record:
        from publisher.site.records import load_record

        return load_record(path, root, data=data, shown=shown)

    def record(name: str, shown: str) -> Record:
        from publisher.site.records import Record  # pydantic: only for a file not kept as it is

        return kept.load(events, name, shown, parse, Record.model_validate_json)

    for (name, _, stat), shown in zip(found, shown_paths(events, root, names), strict=True):
        dates = kept.dated(name, stat, shown) if stat is not None else None
        one = _dated(dates, shown) if dates is not None else None  # None: not kept, or not of the shape
        if one is None:
            try:
                one = _dated(dates_of(record(name, shown)), shown)
            except InvalidInput as exc:
                problems.extend(exc.problems)
                continue
            assert one is not None, "a record's own dates"
        files[shown] = name
        dated.append(one)
    dated, duplicates = unique_ids(
        dated,
        id_of=lambda d: d.id,
        shown=lambda d: d.source,
        id_line=lambda d: record(files[d.source], d.source).line("id"),  # a duplicate: its record, for the line
    )
    kept.keep_only({name for name, _ in names})
    kept.save()
    problems.extend(duplicates)
    if problems:
        raise InvalidInput(problems)
    live = [d for d in dated if d.status != "draft"]
    return sorted(live, key=lambda d: (d.published.timestamp(), d.id), reverse=True)


def _dated(dates: Dates, shown: str) -> Dated | None:
    """The kept dates as times with their offsets; None when the kept file holds a time that is not one."""
    id, status, published, starts, ends = dates
    try:
        times = [dt.datetime.fromisoformat(text) if text is not None else None for text in (published, starts, ends)]
    except ValueError:
        return None
    first, begins, finishes = times
    if first is None or any(t is not None and t.utcoffset() is None for t in times):
        return None
    return Dated(id, status, first, begins, finishes, shown)
