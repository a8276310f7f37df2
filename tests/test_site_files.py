"""Listing a site's record files: `record_stats` lists what `record_names` lists, in `sorted(Path)`'s order."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.site.files import FileStat, record_names, record_stats

PART = st.text(alphabet="ab-._ /é0", min_size=1, max_size=6).filter(lambda p: "/" not in p and p not in (".", ".."))
TREE = st.lists(st.lists(PART, min_size=1, max_size=3), min_size=0, max_size=25)


@settings(max_examples=150, deadline=None)
@given(TREE)
def test_record_stats_lists_the_record_names_in_sorted_path_order(paths: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        events = Path(folder) / "events"
        events.mkdir()
        for parts in paths:
            *dirs, name = parts
            target = events.joinpath(*dirs)
            try:
                target.mkdir(parents=True, exist_ok=True)
                (target / f"{name}.md").write_text(name)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a file where a folder would be, or the reverse: not this tree
        (events / "notes.txt").write_text("not a record")

        stats = record_stats(events)

        files = [p for p in events.rglob("*.md") if p.is_file() and not p.name.startswith(".")]
        assert [name for name, _, _ in stats] == [str(p.relative_to(events)) for p in sorted(files)]
        assert [(name, plain) for name, plain, _ in stats] == record_names(events)
        for name, _, stat in stats:
            raw = os.stat(events / name)
            assert stat == FileStat(raw.st_mtime_ns, raw.st_size)


def test_a_file_behind_a_link_is_not_plain_and_a_gone_folder_lists_nothing(tmp_path: Path) -> None:
    events = tmp_path / "events"
    (events / "real").mkdir(parents=True)
    (events / "real" / "a.md").write_text("a")
    (events / "linked").symlink_to(events / "real")
    (events / "b.md").symlink_to(events / "real" / "a.md")

    assert [(name, plain) for name, plain, _ in record_stats(events)] == [
        ("b.md", False),
        ("linked/a.md", False),
        ("real/a.md", True),
    ]
    assert record_stats(tmp_path / "none") == []
