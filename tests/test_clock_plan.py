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
