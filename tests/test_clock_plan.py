"""The clock plans once per records and settings, not every tick; a changed record is planned again."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pytest

from publisher.dispatch import runner as runner_module
from publisher.dispatch.clock import Clockwork
from publisher.dispatch.clock_lock import take_clock
from publisher.dispatch.context import wall_clock
from tests.dispatch_support import site_of, store_of


def test_idle_ticks_reuse_the_plan_and_a_changed_record_is_planned_again(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dt.datetime] = []
    original = runner_module.plan

    def counted(records: Any, settings: Any, now: dt.datetime, **kw: Any) -> Any:
        made.append(now)
        return original(records, settings, now, **kw)

    monkeypatch.setattr(runner_module, "plan", counted)
    now = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)  # every example record long published: nothing due
    site = site_of(example_site, {})
    store = store_of(example_site, {})
    try:
        take_clock(store, "here:1:clock", wall_clock())  # the clock ticks only while it holds the database
        work = Clockwork(example_site, lambda: now, site, store, "here:1:clock")
        for minute in range(4):
            work.tick(now + dt.timedelta(minutes=minute))
            work.next_wakeup(now + dt.timedelta(minutes=minute))
        assert made == [now]
        record = sorted((example_site / "events").rglob("*.md"))[0]
        later = time.time() + 60  # newer than any file of the site
        os.utime(record, (later, later))
        work.tick(now + dt.timedelta(minutes=5))
        assert made == [now, now + dt.timedelta(minutes=5)]
        work.tick(now + dt.timedelta(days=2))  # a day on: planned again for the window and horizon that moved
        assert len(made) == 3
    finally:
        store.close()


def _keep_mtime(path: Path, text: str) -> None:
    """Write `text` to `path` with the file's old mtime: only its size (or its being there) says it changed."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before, before))


def test_the_next_tick_sees_an_edit_in_a_subfolder_an_added_and_a_removed_record_and_new_settings(
    example_site: Path,
) -> None:
    now = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)
    events = example_site / "events"
    names = sorted(p.name for p in events.glob("*.md"))
    (events / "2018").mkdir()
    moved = events / "2018" / names[0]
    (events / names[0]).rename(moved)
    old = 1_000_000_000 * 1_500_000_000  # 2017: older than every file of the site, so no newest mtime moves
    for path in [example_site / "publisher.toml", *events.rglob("*.md")]:
        os.utime(path, ns=(old, old))
    site = site_of(example_site, {})
    store = store_of(example_site, {})
    try:
        take_clock(store, "here:1:clock", wall_clock())
        work = Clockwork(example_site, lambda: now, site, store, "here:1:clock")
        work.tick(now)
        count = len(work.runner.records)
        ids = {r.id for r in work.runner.records}

        text = moved.read_text(encoding="utf-8")
        _keep_mtime(moved, text.replace("title: ", "title: Edited in a subfolder, ", 1))
        work.tick(now + dt.timedelta(minutes=1))
        edited = [r for r in work.runner.records if r.source.endswith(f"2018/{names[0]}")]
        assert [r.title.startswith("Edited in a subfolder, ") for r in edited] == [True]

        added = events / "2018" / "2019-01-01-added-later.md"
        added.write_bytes((events / names[1]).read_bytes())
        os.utime(added, ns=(old, old))
        work.tick(now + dt.timedelta(minutes=2))
        assert len(work.runner.records) == count + 1
        assert {r.id for r in work.runner.records} - ids == {"2019-01-01-added-later"}

        (events / names[1]).unlink()
        work.tick(now + dt.timedelta(minutes=3))
        assert len(work.runner.records) == count
        assert names[1].removesuffix(".md") not in {r.id for r in work.runner.records}

        assert work.site.settings.feeds.max_items != 7
        config = example_site / "publisher.toml"
        _keep_mtime(config, config.read_text(encoding="utf-8").replace("max_items = 50", "max_items = 7"))
        work.tick(now + dt.timedelta(minutes=4))
        assert work.site.settings.feeds.max_items == 7
    finally:
        store.close()


def test_a_tick_acts_only_on_due_dispatches_whose_row_admit_may_let_through(example_site: Path) -> None:
    from publisher.dispatch.context import KeptPlan, Runner
    from publisher.dispatch.runner import current_plan, for_each_due
    from publisher.site.records import load_records

    forum = example_site / "events" / "2018-05-21-high-level-forum-bogota.md"  # published 2018-05-02 14:00 UTC
    for copy in range(3):
        (forum.parent / f"2018-05-0{copy + 2}-forum-copy.md").write_bytes(forum.read_bytes())
    now = dt.datetime(2018, 5, 3, 12, tzinfo=dt.UTC)  # a day on: each copy's dispatches are due
    site = site_of(example_site, {})
    store = store_of(example_site, {})
    try:
        runner = Runner(site, store, load_records(site.events, site.root), lambda: now, kept_plan=KeptPlan())
        due = [d.id for d in current_plan(runner, now) if d.due <= now]
        assert len(due) >= 8
        past, later = now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=5)
        wanted: list[tuple[str, dict[str, Any]]] = [
            ("sent", {}),
            ("waiting_review", {}),
            ("skipped", {}),
            ("partly_sent", {"next_attempt_at": None}),  # finished: only `resend` retries it
            ("rate_limited", {"next_attempt_at": later}),  # waiting to retry
            ("approved", {}),
            ("partly_sent", {"next_attempt_at": past}),
            ("rate_limited", {"next_attempt_at": past}),
        ]
        for dispatch_id, (state, fields) in zip(due, wanted, strict=False):
            assert store.set_dispatch_state(dispatch_id, state, now - dt.timedelta(hours=1), **fields)  # type: ignore[arg-type]
        assert store.remove_unstarted(due[8:9]) == 1  # no row (the kept plan is not mirrored again)
        for dispatch_id in due[9:]:
            store.set_dispatch_state(dispatch_id, "sent", now - dt.timedelta(hours=1))
        acted: list[str] = []
        for_each_due(runner, now, lambda r, d, at: acted.append(d.id))  # type: ignore[func-returns-value]
        assert acted == due[5:8]
    finally:
        store.close()


def test_stamps_compare_the_same_files_in_any_order_and_nothing_else() -> None:
    from publisher.site.files import same_stamps

    stamps = [("a.md", 10, 1), ("sub/b.md", 20, 2)]
    assert same_stamps(stamps, list(reversed(stamps)))
    assert not same_stamps(stamps, [("a.md", 10, 1), ("sub/b.md", 21, 2)])
    assert not same_stamps(stamps, [("a.md", 10, 1), ("sub/b.md", 20, 3)])
    assert not same_stamps(stamps, stamps[:1])
