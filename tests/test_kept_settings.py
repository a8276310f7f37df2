"""`publisher build` keeps publisher.toml as it validated it, and a rebuild reads that without pydantic.

The kept settings must never stand in for a file that changed, nor for what
validates it: each test here changes one of those and expects validation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

import publisher
from publisher.build.cache import code_digest
from publisher.build.parsed import RecordFiles
from publisher.cli.main import cli
from publisher.site import config
from publisher.site.config import KEPT_FILE, load_site
from publisher.site.settings import load_settings
from tests.test_build import outputs

LOADED = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["publisher", "build", "--now", "2026-01-01T00:00:00+00:00"]
from publisher.cli.main import main
main()
"""


def _build(site: Path) -> tuple[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", LOADED], cwd=site, capture_output=True, text=True, check=True)
    return done.stdout, json.loads(done.stderr.splitlines()[-1])


def test_a_rebuild_with_the_same_settings_file_imports_no_pydantic(example_site: Path) -> None:
    """For a site without a timeline (planning what is still to come needs the validated rules) nor remote
    images (fetching one asks the settings whether private addresses are allowed)."""
    toml = example_site / "publisher.toml"
    toml.write_text(toml.read_text().split("[[timeline]]")[0])
    remote = example_site / "events" / "2018-02-09-south-south-cooperation-paris.md"
    remote.write_text(
        remote.read_text().replace("https://cepei.example.org/media/2018/paris-panel.jpg", "media/forum-bogota.png")
    )
    old = time.time() - 10
    for path in (example_site / "events").glob("*.md"):
        os.utime(path, (old, old))  # old enough for the build cache to trust their times
    _, first = _build(example_site)
    report, again = _build(example_site)

    assert "pydantic" in first  # the first build validated publisher.toml
    assert (example_site / KEPT_FILE).is_file()
    assert [m for m in again if m.startswith("pydantic")] == []
    assert "0 files written" in report, report


def test_the_kept_site_is_the_validated_one(example_site: Path) -> None:
    validated = load_site(example_site, kept=True)  # validates, and keeps
    kept = load_site(example_site, kept=True)

    assert kept._settings is None  # nothing validated yet
    assert kept.plain == validated.plain
    assert kept.plain["newsletter"]["from"] == "Cepei <news@cepei.example.org>"  # by alias, as the file has it
    assert kept.settings == load_settings(example_site / "publisher.toml") == validated.settings


def test_an_edited_settings_file_is_validated_again(example_site: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--site", str(example_site), "build"]).exit_code == 0
    toml = example_site / "publisher.toml"
    lines = toml.read_text().splitlines()
    line = lines.index("max_items = 50") + 1
    toml.write_text(toml.read_text().replace("max_items = 50", "max_items = 0"))

    result = runner.invoke(cli, ["--site", str(example_site), "build"])

    assert result.exit_code == 2
    assert f"publisher.toml:{line}: feeds.max_items: " in result.output


def test_a_changed_setting_reaches_the_build(example_site: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--site", str(example_site), "build"]).exit_code == 0
    toml = example_site / "publisher.toml"
    toml.write_text(toml.read_text().replace('title = "Cepei"', 'title = "Cepei, renamed"'))

    assert runner.invoke(cli, ["--site", str(example_site), "build"]).exit_code == 0

    assert load_site(example_site, kept=True).plain["site"]["title"] == "Cepei, renamed"
    assert "<title>Cepei, renamed</title>" in (example_site / "feeds" / "rss.xml").read_text()


@pytest.mark.parametrize(
    "spoilt",
    [b"", b"not json", b'{"key": 1}', b"[]", "other-key", "previews", "logo", "no-timeline"],
    ids=["empty", "not-json", "wrong-shape", "array", "other-key", "previews", "logo", "no-timeline"],
)
def test_a_spoilt_or_stale_kept_file_is_validated_again(example_site: Path, spoilt: bytes | str) -> None:
    load_site(example_site, kept=True)
    kept_file = example_site / KEPT_FILE
    if isinstance(spoilt, str):  # well formed, but kept for other bytes, or forged: not of the models' types
        held = msgspec.json.decode(kept_file.read_bytes())
        held["plain"]["site"]["title"] = "Not the file's"
        if spoilt == "other-key":
            held["key"] = "0" * 32
        elif spoilt == "previews":
            held["plain"]["build"]["previews"] = "many"
        elif spoilt == "logo":
            held["plain"]["site"]["logo"] = ["a", "list"]
        else:
            del held["plain"]["timeline"]
        spoilt = msgspec.json.encode(held)
    kept_file.write_bytes(spoilt)

    site = load_site(example_site, kept=True)

    assert site._settings is not None  # validated
    assert site.plain["site"]["title"] == "Cepei"
    assert load_site(example_site, kept=True).plain == site.plain  # and kept again, whole


def test_what_validates_the_settings_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b'[site]\ntitle = "A"\nurl = "https://a.example.org"\n'
    before = config._key(raw)
    assert config._key(raw) == before
    assert config._key(raw + b"\n") != before
    monkeypatch.setattr(publisher, "__version__", "0.0.0-other")
    assert config._key(raw) != before


def test_a_site_folder_that_cannot_be_written_still_builds(example_site: Path) -> None:
    (example_site / ".publisher").write_text("a file where the folder would be")

    site = load_site(example_site, kept=True)

    assert site.settings.site.title == "Cepei"
    assert load_site(example_site, kept=True)._settings is not None  # nothing kept: validated each time


def test_an_edited_record_outside_the_previews_is_parsed_without_pydantic_as_the_model_would(tmp_path: Path) -> None:
    """60 records, no timeline: the oldest is in no preview and no feed. Its edit is taken by the quick check
    (`site.plain`), and what the rebuild leaves is what a cold build of the same files writes."""
    site = tmp_path / "site"
    (site / "events").mkdir(parents=True)
    (site / "publisher.toml").write_text(
        '[site]\ntitle = "Kept"\nurl = "https://kept.example.org"\n\n'
        '[newsletter]\nfrom = "News <news@kept.example.org>"\n'
    )
    for n in range(60):
        (site / "events" / f"r{n:03d}.md").write_text(
            f"---\ntitle: Record {n}\npublished: 2025-01-{1 + n % 28:02d}T{n // 28:02d}:00:00+01:00\n"
            f"summary: The summary of record {n}.\ntags: [kept]\n---\nThe body of record {n}.\n"
        )
    old = time.time() - 10
    for path in (site / "events").glob("*.md"):
        os.utime(path, (old, old))
    _build(site)
    edited = site / "events" / "r000.md"
    edited.write_text(edited.read_text().replace("The summary of record 0.", "An edited summary, with été."))
    os.utime(edited, (old + 5, old + 5))

    report, loaded = _build(site)

    assert "0 files written" in report, report
    assert [m for m in loaded if m.startswith("pydantic")] == []
    assert "publisher.site.plain" in loaded  # the edited file was parsed, by the quick check
    cold = tmp_path / "cold"
    shutil.copytree(site, cold, ignore=shutil.ignore_patterns(".publisher"))
    _build(cold)
    assert outputs(cold) == outputs(site)
    code = code_digest()
    assert RecordFiles(site, code).rows == RecordFiles(cold, code).rows  # records.json and its edits, as read
