"""The web side's index of public records (`publisher.web.published`): right at each request, cheap at scale."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from publisher.web import published
from publisher.web.published import REFRESH_S, Published

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def record(events: Path, id: str, published_at: dt.datetime, status: str = "published") -> Path:
    path = events / f"{id}.md"
    front = f"title: {id}\npublished: {published_at.isoformat()}\nstatus: {status}\nsummary: About {id}."
    path.write_text(f"---\n{front}\n---\nBody.\n", encoding="utf-8")
    return path


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def events(tmp_path: Path) -> Path:
    folder = tmp_path / "events"
    folder.mkdir()
    record(folder, "out", NOW - dt.timedelta(days=1))
    record(folder, "later", NOW + dt.timedelta(days=1))
    record(folder, "draft", NOW - dt.timedelta(days=1), status="draft")
    return folder


def test_a_record_is_public_from_its_time_and_never_as_a_draft(events: Path) -> None:
    index = Published(events, monotonic=Ticks())

    assert index.is_public("out", NOW)
    assert not index.is_public("later", NOW) and index.is_public("later", NOW + dt.timedelta(days=1))
    assert not index.is_public("draft", NOW + dt.timedelta(days=30))
    assert not index.is_public("nobody", NOW)


def test_the_files_are_looked_at_once_per_interval_and_an_edit_shows_after_it(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks: list[Path] = []
    original = published.record_stats
    monkeypatch.setattr(published, "record_stats", lambda folder: looks.append(folder) or original(folder))
    ticks = Ticks()
    index = Published(events, monotonic=ticks)

    assert all(index.is_public("out", NOW) for _ in range(100))
    assert len(looks) == 1  # a hundred requests, one look at the folder
    record(events, "out", NOW - dt.timedelta(days=1), status="draft")  # taken back
    ticks.now += REFRESH_S / 2
    assert index.is_public("out", NOW) and len(looks) == 1  # within the interval: not looked at yet
    ticks.now += REFRESH_S / 2

    assert not index.is_public("out", NOW)
    assert len(looks) == 2
