"""Previews (issues, posts) are written for the newest `[build] previews` records and what the timeline will send."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.build.builder import build, check_site
from publisher.cli.main import cli
from publisher.site.config import load_site
from tests.test_build import outputs, tree

NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
CONFIG = """[site]
title = "Previews"
url = "https://previews.example.org"

[newsletter]
from = "News <news@previews.example.org>"
{build}
[[timeline]]
when = "starts - 1 day"
channel = "email"
list = "news"

[[timeline]]
when = "published + 2 hours"
channel = "mastodon"
review = true
"""


def record(site: Path, n: int, published: dt.datetime, starts: dt.datetime | None = None) -> str:
    id = f"r{n:03d}"
    lines = ["---", f"title: Record {n}", f"published: {published.isoformat()}", f"summary: The summary of record {n}."]
    if starts is not None:
        lines.append(f"starts: {starts.isoformat()}")
    (site / "events" / f"{id}.md").write_text("\n".join([*lines, "---", f"The body of record {n}.", ""]))
    return id


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """200 records, one a day up to NOW (r199 the newest), and three old ones whose events are still to come."""
    root = tmp_path / "site"
    (root / "events").mkdir(parents=True)
    (root / "publisher.toml").write_text(CONFIG.format(build=""), encoding="utf-8")
    for n in range(200):
        starts = NOW + dt.timedelta(days=10 + n) if n in (3, 40, 90) else None
        record(root, n, NOW - dt.timedelta(days=200 - n), starts)
    return root


def previewed(folder: Path) -> set[str]:
    """The ids of the records with an issue (and, checked, their posts) in `folder`."""
    files = outputs(folder) if (folder / "events").exists() else tree(folder)
    ids = {path[len("newsletters/") : -len(".html")] for path in files if path.endswith(".html")}
    for id in ids:
        assert {f"newsletters/{id}.txt", f"posts/mastodon/{id}.txt", f"posts/x/{id}.txt"} <= set(files)
    assert {path.split("/")[2].split(".")[0] for path in files if path.startswith("posts/")} == ids
    return ids


NEWEST = {f"r{n:03d}" for n in range(150, 200)}
TO_COME = {"r003", "r040", "r090"}  # a reminder the day before each event


def test_previews_are_written_for_the_newest_and_what_is_still_to_come(site: Path) -> None:
    manifest = build(load_site(site), now=NOW)
    assert previewed(site) == NEWEST | TO_COME
    feeds = {o.path: o for o in manifest.outputs if o.kind == "feed"}
    assert len(feeds["feeds/atom.xml"].records) == 50  # the feeds show the newest, as [feeds] max_items says
    assert manifest.records == 200


def test_a_dispatch_held_for_review_keeps_its_records_previews(site: Path) -> None:
    """Two hours after r199 was published its mastodon post (`review = true`) may wait for approval."""
    (site / "publisher.toml").write_text(CONFIG.format(build="\n[build]\npreviews = 1\n"), encoding="utf-8")
    build(load_site(site), now=NOW)
    held = {f"r{n:03d}" for n in range(193, 200)}  # due within the plan's look-back of a week: may be held
    assert previewed(site) == {"r199"} | TO_COME | held


def test_all_writes_every_records_previews(site: Path, tmp_path: Path) -> None:
    build(load_site(site), tmp_path / "all", now=NOW, every=True)
    assert previewed(tmp_path / "all") == {f"r{n:03d}" for n in range(200)}
    result = CliRunner().invoke(cli, ["--site", str(site), "build", "--all", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    assert previewed(site) == {f"r{n:03d}" for n in range(200)}


def test_a_record_leaving_the_previews_takes_its_files_and_only_those(site: Path, tmp_path: Path) -> None:
    build(load_site(site), now=NOW)
    mine = site / "newsletters" / "r150.notes.txt"
    mine.write_text("my own notes", encoding="utf-8")
    later = NOW + dt.timedelta(hours=1)
    record(site, 200, later)  # newer than all: r150 is the 51st newest now
    manifest = build(load_site(site), now=later)
    assert previewed(site) == (NEWEST - {"r150"}) | {"r200"} | TO_COME
    assert {path for path in manifest.removed if "r150" in path} == {
        "newsletters/r150.html",
        "newsletters/r150.txt",
        "newsletters/r150.eml",
        "posts/x/r150.txt",
        "posts/mastodon/r150.txt",
        "posts/bluesky/r150.txt",
    }
    assert mine.read_text(encoding="utf-8") == "my own notes"
    # What the rebuild left is what a cold build of the same inputs makes, byte for byte.
    build(load_site(site), tmp_path / "cold", now=later)
    assert outputs(site) == tree(tmp_path / "cold") | {"newsletters/r150.notes.txt": b"my own notes"}
    # And back: time passes, r003's event is over; the window is the newest 50 and the two events to come.
    much_later = NOW + dt.timedelta(days=20)
    build(load_site(site), now=much_later)
    build(load_site(site), tmp_path / "cold-later", now=much_later)
    assert previewed(tmp_path / "cold-later") == (NEWEST - {"r150"}) | {"r200", "r040", "r090"}
    assert outputs(site) == tree(tmp_path / "cold-later") | {"newsletters/r150.notes.txt": b"my own notes"}


def test_check_renders_what_build_would_and_with_all_everything(site: Path) -> None:
    some = check_site(load_site(site), now=NOW)
    every = check_site(load_site(site), now=NOW, every=True)
    issues = {o.records[0] for o in some.outputs if o.kind == "issue"}
    assert issues == NEWEST | TO_COME
    assert {o.records[0] for o in every.outputs if o.kind == "issue"} == {f"r{n:03d}" for n in range(200)}
    assert not (site / "newsletters").exists()


@pytest.mark.parametrize("value", ["0", "-1", "2.5", '"50"', "true"])
def test_a_bad_previews_setting_is_named_with_its_line(site: Path, value: str) -> None:
    (site / "publisher.toml").write_text(CONFIG.format(build=f"\n[build]\npreviews = {value}\n"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--site", str(site), "build"])
    assert result.exit_code == 2
    line = CONFIG.format(build=f"\n[build]\npreviews = {value}\n").splitlines().index(f"previews = {value}") + 1
    assert f"publisher.toml:{line}: build.previews: must be a positive integer" in result.output


def test_an_edit_to_a_record_the_feeds_show_but_not_the_previews_renders_its_feeds_again(
    site: Path, tmp_path: Path
) -> None:
    (site / "publisher.toml").write_text(CONFIG.format(build="\n[build]\npreviews = 1\n"), encoding="utf-8")
    build(load_site(site), now=NOW)
    assert "r185" not in previewed(site)
    path = site / "events" / "r185.md"
    path.write_text(path.read_text().replace("title: Record 185", "title: Record 185, retitled"))
    build(load_site(site), now=NOW)
    build(load_site(site), tmp_path / "cold", now=NOW)
    feeds = {path: data for path, data in outputs(site).items() if path.startswith("feeds/")}
    cold = {path: data for path, data in tree(tmp_path / "cold").items() if path.startswith("feeds/")}
    assert feeds and feeds == cold
    assert b"Record 185, retitled" in feeds["feeds/atom.xml"]


RENDERERS = (
    "jinja2", "mjml", "feedgen", "lxml", "markdown_it", "icalendar", "concurrent.futures.process", "httpx", "PIL",
    "sqlalchemy", "publisher.render.email", "publisher.render.feeds", "publisher.render.social", "publisher.channels",
)  # fmt: skip
LOADED = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["publisher", "build", "--now", sys.argv[1]]
from publisher.cli.main import main
main()
"""


def test_a_rebuild_that_renders_nothing_loads_no_renderer(site: Path) -> None:
    """The edit of a record outside the previews and the feeds: one file parsed, nothing rendered, and none of
    the rendering libraries loaded (a rebuild at 10,000 records is mostly the time of its imports)."""
    old = dt.datetime.now(dt.UTC).timestamp() - 10
    for path in (site / "events").glob("*.md"):
        os.utime(path, (old, old))  # old enough for the build cache to trust their times
    command = [sys.executable, "-c", LOADED, NOW.isoformat()]
    first = subprocess.run(command, cwd=site, capture_output=True, text=True, check=True)
    edited = site / "events" / "r010.md"
    edited.write_text(edited.read_text().replace("The summary of record 10.", "An edited summary."))
    os.utime(edited, (old + 5, old + 5))

    again = subprocess.run(command, cwd=site, capture_output=True, text=True, check=True)

    assert "publisher.render.email" in json.loads(first.stderr.splitlines()[-1])  # the cold build rendered
    assert "0 files written" in again.stdout, again.stdout
    loaded = json.loads(again.stderr.splitlines()[-1])
    assert [m for m in loaded if m.startswith(RENDERERS)] == []
