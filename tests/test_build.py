"""`build`: every output of the example site, written only where it changed, and nothing else touched."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from publisher.build import builder as build_module
from publisher.build.builder import Manifest, build, check_site
from publisher.errors import InvalidInput
from publisher.site.config import load_site
from publisher.site.records import Record, load_records
from publisher.site.templates import default_templates

PARIS = "2018-02-09-south-south-cooperation-paris"
INFORME = "2018-03-15-informe-agenda-2030"
CALL = "2018-04-02-call-for-papers-data-for-development"
FORUM = "2018-05-21-high-level-forum-bogota"
WEBINAR = "2018-06-01-webinar-cancelled"
LIVE = (PARIS, INFORME, CALL, FORUM, WEBINAR)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` but publisher's own cache, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".publisher" not in path.parts
    }


def outputs(site: Path) -> dict[str, bytes]:
    return {path: data for path, data in tree(site).items() if path.split("/")[0] in ("feeds", "newsletters", "posts")}


def run(site: Path, out: Path | None = None) -> Manifest:
    return build(load_site(site), out)


def written(manifest: Manifest) -> set[str]:
    return {o.path for o in manifest.written}


def test_the_example_site_builds_every_kind_of_file(example_site: Path) -> None:
    manifest = run(example_site)
    files = outputs(example_site)
    assert set(files) == {o.path for o in manifest.outputs} == written(manifest)
    for id in LIVE:  # every record but the draft: an issue in three formats and a post per network
        for suffix in (".html", ".txt", ".eml"):
            assert f"newsletters/{id}{suffix}" in files
        for network in ("x", "mastodon", "bluesky"):
            assert files[f"posts/{network}/{id}.txt"].strip()
    assert not any("draft" in path for path in files)
    # A calendar file for the records with `starts`, but not for the cancelled webinar.
    assert {p for p in files if p.endswith(".ics")} == {f"newsletters/{PARIS}.ics", f"newsletters/{FORUM}.ics"}
    assert {"feeds/atom.xml", "feeds/rss.xml", "feeds/languages/es/atom.xml", "feeds/tags/ods/rss.xml"} <= set(files)
    # The X post of the call for papers is the record's own text, then its thread after `---` lines.
    call_post = files[f"posts/x/{CALL}.txt"].decode()
    assert call_post.startswith("Call for papers: data for development") and call_post.count("\n---\n") == 2


def test_the_manifest_says_what_each_file_is(example_site: Path) -> None:
    manifest = run(example_site)
    by_path = {o.path: o for o in manifest.outputs}
    assert by_path[f"newsletters/{PARIS}.eml"][1:4] == ("issue", "eml", (PARIS,))
    assert by_path[f"newsletters/{PARIS}.ics"][1:4] == ("calendar", "ics", (PARIS,))
    post = by_path[f"posts/bluesky/{INFORME}.txt"]
    assert (post.kind, post.network, post.limit) == ("post", "bluesky", 300)
    assert post.length is not None and 0 < post.length <= 300
    feed = by_path["feeds/languages/es/atom.xml"]
    assert (feed.kind, feed.format, feed.records) == ("feed", "atom", (INFORME,))
    assert by_path["feeds/atom.xml"].records == LIVE[::-1]  # newest first
    assert manifest.records == 5 and manifest.drafts == 1


def test_a_rebuild_writes_nothing_and_a_cold_one_gives_the_same_bytes(example_site: Path, tmp_path: Path) -> None:
    run(example_site)
    first = tree(example_site)
    assert written(run(example_site)) == set()
    shutil.rmtree(example_site / ".publisher")
    again = run(example_site)  # no cache: everything rendered again, nothing different, so nothing written
    assert written(again) == set() and tree(example_site) == first
    elsewhere = run(example_site, tmp_path / "public")
    assert len(written(elsewhere)) == len(elsewhere.outputs) == len(outputs(example_site)) + 1  # + the image
    public = tree(tmp_path / "public")
    assert public.pop("media/forum-bogota.png") == (example_site / "media" / "forum-bogota.png").read_bytes()
    assert public == outputs(example_site)


def test_a_changed_record_rewrites_its_files_and_only_the_feeds_that_show_it(example_site: Path) -> None:
    first = run(example_site)
    path = example_site / "events" / f"{INFORME}.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nUn párrafo más.\n", encoding="utf-8")
    feeds_with_it = {o.path for o in first.outputs if o.kind == "feed" and INFORME in o.records}
    assert feeds_with_it and len(feeds_with_it) < len([o for o in first.outputs if o.kind == "feed"])
    # The body is in the issue and the feeds, not in the posts (title, summary, link, hashtags).
    issue = {f"newsletters/{INFORME}{suffix}" for suffix in (".html", ".txt", ".eml")}
    assert written(run(example_site)) == issue | feeds_with_it


def test_what_a_rebuild_leaves_is_what_a_cold_build_makes(example_site: Path, tmp_path: Path) -> None:
    def same_as_cold(name: str) -> None:
        run(example_site)
        run(example_site, tmp_path / name)  # a folder of its own: nothing of it in the cache
        assert outputs(example_site) == {p: d for p, d in tree(tmp_path / name).items() if not p.startswith("media/")}

    run(example_site)
    informe = example_site / "events" / f"{INFORME}.md"
    informe.write_text(informe.read_text(encoding="utf-8").replace("doce países", "trece países"), encoding="utf-8")
    same_as_cold("content")  # only the feeds that show it are rendered again, from only their records
    forum = example_site / "events" / f"{FORUM}.md"
    forum.write_text(forum.read_text(encoding="utf-8").replace("tags: [financing, sdgs, events]", "tags: [sdgs]"))
    (example_site / "events" / f"{WEBINAR}.md").unlink()
    same_as_cold("tags")  # which records each feed shows changed: every feed is rendered again


def test_a_rebuild_renders_only_the_feeds_that_show_a_changed_record(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publisher.render import feeds

    real, seen = feeds.feed_set, []

    def counted(records: Sequence[Record], *args: Any, **kwargs: Any) -> list[feeds.FeedFile]:
        seen.append(sorted(r.id for r in records))
        return real(records, *args, **kwargs)

    monkeypatch.setattr(feeds, "feed_set", counted)
    config = example_site / "publisher.toml"
    config.write_text(config.read_text().replace("max_items = 50", "max_items = 2"))
    first = run(example_site)
    assert seen == [sorted(LIVE)]
    run(example_site)  # nothing changed: no feed rendered at all
    assert len(seen) == 1
    informe = example_site / "events" / f"{INFORME}.md"
    informe.write_text(informe.read_text(encoding="utf-8") + "\nMás.\n", encoding="utf-8")
    manifest = run(example_site)
    # The site feed shows the newest two; the Spanish record is in its language's and its tags' feeds only.
    assert seen[1] == [INFORME]
    showing = {o.path for o in first.outputs if o.kind == "feed" and INFORME in o.records}
    assert {o.path for o in manifest.written if o.kind == "feed"} == showing
    assert showing == {
        f"feeds/{scope}/{name}"
        for scope in ("languages/es", "tags/agenda-2030", "tags/ods", "tags/informes")
        for name in ("atom.xml", "rss.xml")
    }


def test_a_deleted_record_takes_its_files_away_but_never_anyone_elses(example_site: Path) -> None:
    run(example_site)
    mine = example_site / "newsletters" / "README.txt"
    mine.write_text("our notes, not publisher's\n")
    edited = example_site / "posts" / "x" / f"{CALL}.txt"
    edited.write_text("edited by hand\n")  # publisher wrote it; someone changed it since
    (example_site / "events" / f"{CALL}.md").unlink()
    manifest = run(example_site)
    gone = {f"newsletters/{CALL}{s}" for s in (".html", ".txt", ".eml")} | {
        f"posts/{n}/{CALL}.txt" for n in ("mastodon", "bluesky")
    }
    # Its tag feeds went with it (no record has those tags any more), folders and all.
    gone |= {f"feeds/tags/{tag}/{name}" for tag in ("data", "call-for-papers") for name in ("atom.xml", "rss.xml")}
    assert set(manifest.removed) == gone
    assert not any((example_site / path).exists() for path in gone)
    assert not (example_site / "feeds" / "tags" / "data").exists()
    assert mine.read_text() == "our notes, not publisher's\n" and edited.read_text() == "edited by hand\n"
    assert CALL not in (example_site / "feeds" / "atom.xml").read_text()
    assert run(example_site).removed == []


def test_a_template_of_the_site_overrides_the_default_and_a_change_to_it_renders_again(example_site: Path) -> None:
    run(example_site)
    default = (default_templates() / "issue.txt").read_text()
    override = example_site / "templates" / "issue.txt"
    override.parent.mkdir()
    override.write_text(default + "Sent with love from the test.\n")
    manifest = run(example_site)
    texts = {f"newsletters/{id}.txt" for id in LIVE}
    emls = {f"newsletters/{id}.eml" for id in LIVE}
    assert written(manifest) == texts | emls  # the HTML, posts and feeds rendered again to the same bytes
    assert (example_site / "newsletters" / f"{PARIS}.txt").read_text().endswith("Sent with love from the test.\n")
    override.write_text(default + "Sent with care.\n")
    assert written(run(example_site)) == texts | emls
    override.unlink()
    assert written(run(example_site)) == texts | emls
    assert "Sent with" not in (example_site / "newsletters" / f"{PARIS}.txt").read_text()


def test_the_sites_own_templates_are_used_only_when_they_are_a_folder(example_site: Path) -> None:
    # Site.template_folder is what build, dispatch, the web side and `preview` all render with.
    assert load_site(example_site, {}).template_folder is None  # nothing overridden: the shipped templates
    (example_site / "templates").write_text("a file, not a folder")
    assert load_site(example_site, {}).template_folder is None
    (example_site / "templates").unlink()
    (example_site / "templates").mkdir()
    assert load_site(example_site, {}).template_folder == example_site / "templates"


def test_a_change_to_the_settings_renders_everything_again(example_site: Path) -> None:
    run(example_site)
    config = example_site / "publisher.toml"
    config.write_text(config.read_text().replace('title = "Cepei"', 'title = "Cepei News"'))
    manifest = run(example_site)
    feeds = {o.path for o in manifest.outputs if o.kind == "feed"}
    assert feeds <= written(manifest)  # every feed's title changed
    assert b"Cepei News" in (example_site / "feeds" / "rss.xml").read_bytes()


def test_an_image_of_the_site_goes_into_the_feeds_with_its_size(example_site: Path) -> None:
    run(example_site)
    size = (example_site / "media" / "forum-bogota.png").stat().st_size
    atom = (example_site / "feeds" / "atom.xml").read_text()
    assert f'length="{size}"' in atom and 'rel="enclosure"' in atom


def test_feeds_show_only_what_is_published_by_now_and_the_rest_comes_in_once_it_is(example_site: Path) -> None:
    site = load_site(example_site)
    april = dt.datetime(2018, 4, 10, 12, tzinfo=dt.UTC)  # the call for papers is out, the forum not yet
    manifest = build(site, now=april)
    atom = (example_site / "feeds" / "atom.xml").read_text(encoding="utf-8")
    assert "Call for papers" in atom and "High-level forum" not in atom
    assert f"newsletters/{FORUM}.html" in outputs(example_site)  # its issue and posts are there to review
    assert manifest.scheduled == 2 and "2 records published later are not in the feeds yet" in manifest.report()[-1]
    later = build(site, now=dt.datetime(2018, 7, 1, tzinfo=dt.UTC))
    assert "High-level forum" in (example_site / "feeds" / "atom.xml").read_text(encoding="utf-8")
    assert later.scheduled == 0 and {o.path for o in later.written} == {
        o.path for o in later.outputs if o.kind == "feed" and set(o.records) & {FORUM, WEBINAR}
    }
    assert outputs(example_site)["feeds/atom.xml"] == _fresh_build_atom(example_site)


def _fresh_build_atom(site: Path) -> bytes:
    """The site feed a build with no clock writes into a new folder: every record."""
    out = site / "fresh"
    build(load_site(site), out)
    return (out / "feeds" / "atom.xml").read_bytes()


def test_a_bad_record_stops_the_build_before_anything_is_written(example_site: Path) -> None:
    run(example_site)
    before = outputs(example_site)
    paris = example_site / "events" / f"{PARIS}.md"
    paris.write_text(
        paris.read_text(encoding="utf-8").replace("published: 2018-02-09T18:00:00+01:00", "published: soon")
    )
    informe = example_site / "events" / f"{INFORME}.md"
    informe.write_text(informe.read_text(encoding="utf-8") + "\nMás texto.\n", encoding="utf-8")
    (example_site / "events" / "copy.md").write_text(
        f"---\nid: {FORUM}\ntitle: T\npublished: 2018-01-01T00:00:00Z\n---\nx\n"
    )
    with pytest.raises(InvalidInput) as caught:
        run(example_site)
    lines = [str(p) for p in caught.value.problems]
    assert lines == [
        f"events/{PARIS}.md:9: published: is not a date and time (got 'soon')",
        f"events/copy.md:2: id: '{FORUM}' is already used by events/{FORUM}.md",
    ]
    assert outputs(example_site) == before


def test_a_template_with_a_syntax_error_is_named_with_its_line(example_site: Path) -> None:
    (example_site / "templates").mkdir()
    (example_site / "templates" / "issue.txt").write_text("{{ title }}\n\n{% if kind %}\nno end\n")
    with pytest.raises(InvalidInput) as caught:
        run(example_site)
    [problem] = caught.value.problems
    assert (problem.path, problem.field) == ("templates/issue.txt", "template")
    assert problem.line == 4 and "endif" in problem.message
    assert not (example_site / "newsletters").exists()


def test_a_file_changed_within_the_clock_tick_it_was_read_in_is_read_again(example_site: Path) -> None:
    path = example_site / "events" / f"{INFORME}.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")  # written just now: its time alone cannot be trusted
    run(example_site)
    stat = path.stat()
    path.write_text(text.replace("doce países", "once países"), encoding="utf-8")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time, as within one tick
    assert path.stat().st_size == stat.st_size
    run(example_site)
    assert "once países" in (example_site / "newsletters" / f"{INFORME}.txt").read_text()


def test_the_process_pool_gives_the_same_files(
    example_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(example_site, tmp_path / "one")
    monkeypatch.setattr(build_module, "PARALLEL_FROM", 2)
    seen: list[tuple[int, int]] = []
    manifest = build(
        load_site(example_site), tmp_path / "pool", progress=lambda done, total: seen.append((done, total))
    )
    assert tree(tmp_path / "pool") == tree(tmp_path / "one")
    assert seen and seen[-1][0] == seen[-1][1] and len(manifest.written) == len(manifest.outputs)
    # Problems found in a worker process come back whole.
    informe = example_site / "events" / f"{INFORME}.md"
    text = informe.read_text(encoding="utf-8").replace(
        "  hashtags: [Agenda2030, ODS]\n", "  hashtags: [Agenda2030, ODS]\n  mastodon: " + "a" * 480 + "\n"
    )
    informe.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        build(load_site(example_site), tmp_path / "pool")
    line = text.splitlines().index("  mastodon: " + "a" * 480) + 1
    assert [str(p) for p in caught.value.problems] == [
        f"events/{INFORME}.md:{line}: social.mastodon.text: is {480 + 1 + 23} characters; mastodon allows 500"
    ]


def test_records_given_in_memory_build_the_same_files(example_site: Path, tmp_path: Path) -> None:
    site = load_site(example_site)
    build(site, tmp_path / "files")
    build(site, tmp_path / "memory", records=load_records(site.events, site.root))
    assert tree(tmp_path / "memory") == tree(tmp_path / "files")


def test_check_renders_drafts_posts_too_and_writes_nothing(example_site: Path) -> None:
    draft = example_site / "events" / "2018-06-20-draft-annual-report.md"
    draft.write_text(
        draft.read_text(encoding="utf-8").replace("\n---\n", "\nsocial:\n  x: " + "x" * 300 + "\n---\n", 1)
    )
    run(example_site)  # a draft is not built, so its post is not checked here
    before = tree(example_site)
    with pytest.raises(InvalidInput) as caught:
        check_site(load_site(example_site))
    [problem] = caught.value.problems
    assert problem.path == "events/2018-06-20-draft-annual-report.md" and problem.field == "social.x.text"
    # 300 characters of its own, a space and the record's link, which counts 23 on X.
    assert problem.message == "is 324 characters; x allows 280"
    draft.write_text(draft.read_text(encoding="utf-8").replace("x" * 300, "A short post"))
    assert check_site(load_site(example_site)).records == 5
    assert tree(example_site) == {**before, "events/2018-06-20-draft-annual-report.md": draft.read_bytes()}


def test_a_build_waits_for_another_build_of_the_site_to_end(example_site: Path) -> None:
    """Two builds at once each removed files the other had just written and saved caches the other's files
    contradicted (seen with two `publisher build` processes on 1,500 records: one failed with "cannot write",
    and the next build left out files a cold build writes). The second now waits for the first's lock."""
    lock_file = example_site / ".publisher" / "build.lock"
    lock_file.parent.mkdir()
    with lock_file.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a build of this site is running
        second = subprocess.Popen(
            [sys.executable, "-m", "publisher", "--site", str(example_site), "build"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert second.stderr is not None
        assert second.stderr.readline().strip() == "another build of this site is running: waiting for it to end"
        time.sleep(0.5)  # were it not waiting, it would write its files meanwhile
        assert second.poll() is None and not (example_site / "feeds").exists()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "60 files written" in out and (example_site / "feeds" / "atom.xml").is_file()
