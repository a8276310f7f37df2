"""`publisher build` publishes the site's images with the output: every image a built issue shows is there."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from publisher.build.builder import build
from publisher.build.cache import CACHE_FOLDER
from publisher.build.media import MEDIA_STATE, publish_media
from publisher.build.stored import VERSION
from publisher.cli.main import cli
from publisher.site.config import load_site
from publisher.site.records import load_records
from tests.test_build import tree

SITE_URL = "https://cepei.example.org"


def _images(out: Path) -> set[str]:
    return {
        src
        for page in (out / "newsletters").glob("*.html")
        for src in re.findall(r'<img [^>]*src="([^"]+)"', page.read_text())
    }


def test_every_image_of_a_built_issue_is_a_file_of_the_output(example_site: Path, tmp_path: Path) -> None:
    (example_site / "media" / "logo.png").write_bytes(b"\x89PNG logo")
    toml = example_site / "publisher.toml"
    toml.write_text(
        toml.read_text().replace(
            'author = "Cepei communications team"\n', 'author = "Cepei"\nlogo = "media/logo.png"\n'
        )
    )
    site = load_site(example_site, {})
    records = load_records(site.events, site.root)
    given = {src for src in re.findall(r"https?://[^\s)\"]+", "".join(r.body for r in records))}  # URLs in bodies
    given |= {r.image.src for r in records if r.image and "://" in r.image.src}
    out = tmp_path / "public"
    manifest = build(site, out, every=True)
    images = _images(out)
    assert f"{SITE_URL}/media/forum-bogota.png" in images and f"{SITE_URL}/media/logo.png" in images
    for src in images - given:  # what a record names by URL is on its own host, not ours to publish
        assert src.startswith(SITE_URL + "/"), src
        published = out / src.removeprefix(SITE_URL + "/")
        assert published.is_file(), src
        assert published.read_bytes() == (example_site / src.removeprefix(SITE_URL + "/")).read_bytes()
    media = [part for part in manifest.parts if getattr(part, "kind", "") == "media"]
    assert sorted(part.path for part in media) == ["media/forum-bogota.png", "media/logo.png"]  # type: ignore[union-attr]


def test_only_the_copies_publisher_wrote_are_removed(example_site: Path, tmp_path: Path) -> None:
    site = load_site(example_site, {})
    out = tmp_path / "public"
    build(site, out, every=True)
    (out / "media" / "theirs.jpg").write_bytes(b"put there by hand")
    shutil.copy(example_site / "media" / "forum-bogota.png", example_site / "media" / "forum-2.png")
    record = example_site / "events" / "2018-05-21-high-level-forum-bogota.md"
    record.write_text(record.read_text().replace("media/forum-bogota.png", "media/forum-2.png"))
    manifest = build(load_site(example_site, {}), out, every=True)
    assert "media/forum-bogota.png" in manifest.removed
    assert sorted(p.name for p in (out / "media").iterdir()) == ["forum-2.png", "theirs.jpg"]


def test_building_into_the_site_folder_copies_nothing(example_site: Path) -> None:
    before = sorted(p.name for p in (example_site / "media").iterdir())
    manifest = build(load_site(example_site, {}), every=True)
    assert sorted(p.name for p in (example_site / "media").iterdir()) == before
    assert not manifest.removed


@pytest.mark.parametrize("files", [[1], {"media/forum-bogota.png": 5}, {"media/forum-bogota.png": [1, "x"]}, "x"])
def test_a_media_state_of_another_shape_reads_as_none(example_site: Path, tmp_path: Path, files: Any) -> None:
    """media.json is read as untrusted, as the other cache files: another shape means copies made afresh."""
    site = load_site(example_site, {})
    out = tmp_path / "public"
    build(site, out, every=True)
    (state,) = (example_site / CACHE_FOLDER).glob(f"build-*/{MEDIA_STATE}")
    state.write_text(json.dumps({"version": VERSION, "files": files}), encoding="utf-8")
    (out / "media" / "forum-bogota.png").unlink()
    manifest = build(load_site(example_site, {}), out, every=True)
    copy, original = out / "media" / "forum-bogota.png", example_site / "media" / "forum-bogota.png"
    assert copy.read_bytes() == original.read_bytes()
    assert not manifest.removed


def test_removing_the_last_copy_leaves_the_tree_a_cold_build_makes(example_site: Path, tmp_path: Path) -> None:
    """A copy no record uses goes, and so does the folder it leaves empty (as with every file a build removes)."""
    out = tmp_path / "public"
    build(load_site(example_site, {}), out, every=True)
    assert (out / "media" / "forum-bogota.png").is_file()
    record = example_site / "events" / "2018-05-21-high-level-forum-bogota.md"
    record.write_text(record.read_text().replace("src: media/forum-bogota.png", "src: https://example.org/forum.png"))
    manifest = build(load_site(example_site, {}), out, every=True)
    assert manifest.removed == ["media/forum-bogota.png"]
    build(load_site(example_site, {}), tmp_path / "cold", every=True)
    assert not (out / "media").exists() and not (tmp_path / "cold" / "media").exists()
    assert tree(out) == tree(tmp_path / "cold")


def test_only_image_files_of_the_site_are_published(example_site: Path, tmp_path: Path) -> None:
    """The media copied into the output are the site's image files: no settings, secrets or databases."""
    (example_site / ".env").write_text("SECRET=1\n")
    (example_site / "media" / "notes.PNG").write_bytes(b"\x89PNG notes")
    out = tmp_path / "public"
    sources = ["publisher.toml", ".env", "media/forum-bogota.png", "media/notes.PNG", "../outside.png"]
    (tmp_path / "outside.png").write_bytes(b"\x89PNG outside")
    files, _ = publish_media(example_site, out, sources, tmp_path / "state")
    assert sorted(part.path for part in files) == ["media/forum-bogota.png", "media/notes.PNG"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "media/forum-bogota.png",
        "media/notes.PNG",
    ]


@pytest.mark.parametrize("src", ["publisher.toml", ".env", "media/site.sqlite"])
def test_build_refuses_a_record_whose_image_is_not_an_image_file(example_site: Path, tmp_path: Path, src: str) -> None:
    (example_site / ".env").write_text("SECRET=1\n")
    (example_site / "media" / "site.sqlite").write_bytes(b"SQLite format 3\x00")
    record = example_site / "events" / "2018-05-21-high-level-forum-bogota.md"
    text = record.read_text()
    record.write_text(text.replace("src: media/forum-bogota.png", f"src: {src}"))
    line = text.splitlines().index("  src: media/forum-bogota.png") + 1
    out = tmp_path / "public"
    result = CliRunner().invoke(cli, ["--site", str(example_site), "build", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"events/2018-05-21-high-level-forum-bogota.md:{line}: image.src: " in result.output
    assert not (out / src).exists()
