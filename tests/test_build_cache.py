"""The build cache is JSON read as untrusted: nothing in `.publisher/` ever runs; a bad file means a cold build."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import shutil
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from publisher.build import builder, work
from publisher.build.builder import build
from publisher.build.cache import CACHE_FOLDER
from publisher.build.stored import out_path, record_blob, record_of, remove_unchanged
from publisher.site.config import load_site
from publisher.site.files import FileInfo, record_names
from publisher.site.records import load_records
from tests.test_build import LIVE, outputs, tree

Count = Callable[[], int]


def cache_files(site: Path) -> list[Path]:
    """The cache's files (not the build's lock, an empty file only ever locked)."""
    files = sorted(path for path in (site / CACHE_FOLDER).rglob("*") if path.is_file() and path.name != "build.lock")
    assert files and all(path.suffix == ".json" for path in files)
    return files


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Count:
    """How many records' issues the builds since the last call rendered (every build here runs in-process)."""
    rendered: list[str] = []
    original = work.render_issues_files

    def counted(records: Sequence[Any], *args: Any) -> Any:
        rendered.extend(r.id for r in records)
        return original(records, *args)

    monkeypatch.setattr(work, "render_issues_files", counted)

    def count() -> int:
        n = len(rendered)
        rendered.clear()
        return n

    return count


def test_a_warm_rebuild_trusts_the_cache_and_a_cold_one_is_the_same(example_site: Path, renders: Count) -> None:
    """The baseline for the tests below: the cache spares the renders, and changes no byte."""
    build(load_site(example_site))
    assert renders() == len(LIVE)
    first = tree(example_site)
    build(load_site(example_site))
    assert renders() == 0 and tree(example_site) == first


class Hostile:
    """A pickle that, loaded, creates a file: what an attacker able to write `.publisher/` would leave."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_a_pickle_left_in_the_cache_is_never_run(example_site: Path, tmp_path: Path, renders: Count) -> None:
    build(load_site(example_site))
    first = outputs(example_site)
    renders()
    marker = tmp_path / "ran"
    payload = pickle.dumps({"version": 4, "rows": Hostile(marker)})
    pickle.loads(payload)  # the payload works: loading it makes the marker
    assert marker.exists()
    marker.unlink()
    folder = example_site / CACHE_FOLDER
    old_names = [folder / "records.pickle", *(folder / "records-parsed" / f"{i:02d}.pickle" for i in range(16))]
    for path in [*cache_files(example_site), *old_names]:  # in place of every file, old name or new
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    for output in outputs(example_site):
        (example_site / output).unlink()
    build(load_site(example_site))
    assert not marker.exists()
    assert renders() == len(LIVE)  # cold
    assert outputs(example_site) == first


@pytest.mark.parametrize("spoil", ["truncate", "garbage", "old version", "other shapes"])
def test_a_spoilt_cache_file_means_a_cold_build_with_the_same_bytes(
    example_site: Path, renders: Count, spoil: str
) -> None:
    build(load_site(example_site))
    first = outputs(example_site)
    renders()
    for path in cache_files(example_site):
        data = path.read_bytes()
        if spoil == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif spoil == "garbage":
            path.write_bytes(b"\x80\x04\x95garbage\x00" + data[::-1])
        elif spoil == "old version":
            path.write_text(json.dumps({**json.loads(data), "version": 4}), encoding="utf-8")
        else:  # valid JSON of this version, each value of the wrong shape
            loaded = json.loads(data)
            for key in ("rows", "items"):
                if key in loaded:
                    loaded[key] = {name: [1, "x"] for name in loaded[key]}
            if "feeds" in loaded:
                loaded["feeds"] = ["context", "membership", [["feeds/atom.xml", "atom", 3]], {}]
            path.write_text(json.dumps(loaded), encoding="utf-8")
    shutil.rmtree(example_site / "feeds")
    shutil.rmtree(example_site / "newsletters")
    shutil.rmtree(example_site / "posts")
    build(load_site(example_site))
    assert renders() == len(LIVE)  # cold: every record rendered again
    assert outputs(example_site) == first
    build(load_site(example_site))  # and the cache it wrote instead is trusted again
    assert renders() == 0


# One field of every row of records.json given a value of another type (a bool for a count, text for a
# list, a list for text, a number for text): each makes the whole file read as empty.
WRONG_FIELDS = [(0, True), (1, "12"), ("source", 1, ["x"]), ("source", 3, "2026"), ("source", 8, "a-tag")]


@pytest.mark.parametrize("wrong", WRONG_FIELDS, ids=lambda w: "-".join(map(str, w)))
def test_one_field_of_another_type_in_records_json_means_every_file_is_parsed_again(
    example_site: Path, monkeypatch: pytest.MonkeyPatch, wrong: tuple[Any, ...]
) -> None:
    files = sorted((example_site / "events").rglob("*.md"))
    for file in files:  # old enough for the cache to trust their times
        os.utime(file, ns=(file.stat().st_mtime_ns - 10**10,) * 2)
    parsed: list[Path] = []
    original = work.read_record
    monkeypatch.setattr(work, "read_record", lambda path, *a, **k: parsed.append(path) or original(path, *a, **k))
    build(load_site(example_site))
    first = outputs(example_site)
    build(load_site(example_site))
    assert len(parsed) == len(files)  # the second build trusted every row
    path = example_site / CACHE_FOLDER / "records.json"
    loaded = json.loads(path.read_bytes())
    for row in loaded["rows"].values():
        if wrong[0] == "source":
            row[2][wrong[1]] = wrong[2]
        else:
            row[wrong[0]] = wrong[1]
    path.write_text(json.dumps(loaded), encoding="utf-8")

    build(load_site(example_site))

    assert len(parsed) == 2 * len(files)  # every file parsed again, no row trusted
    assert outputs(example_site) == first


def test_a_file_gone_is_forgotten_also_when_another_came_meanwhile(example_site: Path) -> None:
    """A rebuild keeps a row per record file there, in the order the files are listed in (a file renamed to
    come first included), though the rows are as many as the files before and after."""
    events = example_site / "events"
    build(load_site(example_site))
    last = sorted(events.rglob("*.md"))[-1]
    last.rename(last.with_name(f"0-{last.name}"))

    build(load_site(example_site))

    rows = json.loads((example_site / CACHE_FOLDER / "records.json").read_bytes())["rows"]
    assert list(rows) == [name for name, _ in record_names(events)]
    assert next(iter(rows)).startswith("0-")
    parsed = [
        json.loads(part.read_bytes())["items"] for part in (example_site / CACHE_FOLDER / "records-parsed").iterdir()
    ]
    assert sorted(name for items in parsed for name in items) == sorted(rows)  # the records themselves too


def many_records(site: Path, n: int = 30) -> Path:
    """A site of `n` small records, their files old enough for the cache to trust their times."""
    (site / "events").mkdir(parents=True)
    (site / "publisher.toml").write_text('[site]\ntitle = "Many"\nurl = "https://many.example.org"\n')
    old = time.time() - 100
    for i in range(n):
        path = site / "events" / f"r{i:03d}.md"
        path.write_text(f"---\ntitle: Record {i}\npublished: 2025-01-01T{i % 24:02d}:00:00+01:00\n---\nBody {i}.\n")
        os.utime(path, (old, old))
    return site


def edit(path: Path, text: str) -> None:
    """A new summary in a record file, dated a little later than the others (long enough ago to be trusted)."""
    path.write_text(path.read_text().replace("\n---\n", f"\nsummary: {text}\n---\n", 1))
    when = path.stat().st_mtime - 90 + len(text)
    os.utime(path, (when, when))


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the record files the builds parse."""
    names: list[str] = []
    original = work.read_record
    monkeypatch.setattr(work, "read_record", lambda path, *a, **k: names.append(path.name) or original(path, *a, **k))
    return names


def test_a_rebuild_after_one_edit_writes_its_row_apart_and_the_next_trusts_it(
    tmp_path: Path, parsed: list[str]
) -> None:
    site = many_records(tmp_path / "site")
    build(load_site(site))
    whole = (site / CACHE_FOLDER / "records.json").read_bytes()
    edit(site / "events" / "r007.md", "Edited.")
    parsed.clear()

    build(load_site(site))

    assert parsed == ["r007.md"]
    assert (site / CACHE_FOLDER / "records.json").read_bytes() == whole
    edits = json.loads((site / CACHE_FOLDER / "records-edits.json").read_bytes())
    assert list(edits["rows"]) == ["r007.md"] and edits["base"] == json.loads(whole)["base"] != ""
    parsed.clear()
    build(load_site(site))
    assert parsed == []  # the edited file's row trusted from the edits


@pytest.mark.parametrize("spoil", ["another base", "garbage", "another shape"])
def test_edits_of_another_writing_of_records_json_or_spoilt_are_never_read(
    tmp_path: Path, parsed: list[str], spoil: str
) -> None:
    """Edits left by a crash between the two writes, or written by someone else: the edited file is parsed
    again (its row in records.json is of its old times), and the rest is trusted still."""
    site = many_records(tmp_path / "site")
    build(load_site(site))
    edit(site / "events" / "r007.md", "Edited.")
    build(load_site(site))
    path = site / CACHE_FOLDER / "records-edits.json"
    edits = json.loads(path.read_bytes())
    if spoil == "another base":
        path.write_text(json.dumps({**edits, "base": "0" * 16}), encoding="utf-8")
    elif spoil == "garbage":
        path.write_bytes(path.read_bytes()[::-1])
    else:
        path.write_text(json.dumps({**edits, "rows": {"r007.md": [1, "x"]}}), encoding="utf-8")
    parsed.clear()

    build(load_site(site))

    assert parsed == ["r007.md"]


def test_past_a_tenth_of_the_rows_edited_records_json_is_written_whole(tmp_path: Path) -> None:
    site = many_records(tmp_path / "site", n=30)
    build(load_site(site))
    first = json.loads((site / CACHE_FOLDER / "records.json").read_bytes())
    for n in range(3):
        edit(site / "events" / f"r{n:03d}.md", f"Edit {n}.")
        build(load_site(site))
    assert len(json.loads((site / CACHE_FOLDER / "records-edits.json").read_bytes())["rows"]) == 3
    edit(site / "events" / "r003.md", "Edit 3.")

    build(load_site(site))

    assert not (site / CACHE_FOLDER / "records-edits.json").exists()
    whole = json.loads((site / CACHE_FOLDER / "records.json").read_bytes())
    assert whole["base"] != first["base"] and list(whole["rows"]) == list(first["rows"])
    assert [whole["rows"][f"r{n:03d}.md"] != first["rows"][f"r{n:03d}.md"] for n in range(5)] == [True] * 4 + [False]


def test_a_build_lets_its_objects_go_as_one_cycle_that_the_collector_frees(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Returning from `build` frees none of a build's objects one by one; the next collection frees them all."""
    builds: list[weakref.ref[Any]] = []
    run = builder._Build.run
    monkeypatch.setattr(builder._Build, "run", lambda self: builds.append(weakref.ref(self)) or run(self))

    build(load_site(example_site))

    assert builds[0]() is not None
    gc.collect()
    assert builds[0]() is None


def test_a_record_read_back_from_the_cache_is_the_record(example_site: Path) -> None:
    """Every example record, its source and the line of each key survive the trip through JSON."""
    records = load_records(example_site / "events", example_site, drafts=True)
    for record in records:
        again = record_of(record_blob(record))
        assert again is not None
        assert again == record and repr(again) == repr(record)
        assert (again.source, again.lines) == (record.source, record.lines) and record.lines
    assert record_of('{"id": "x"}') is None and record_of("not json") is None


def test_a_crafted_cache_never_removes_a_file_outside_the_output_folder(example_site: Path, tmp_path: Path) -> None:
    """Paths the cache names as written by a build (a record's files, the feeds, the media copies) are
    taken only when relative, without `..` or a drive: anything else is ignored, whatever size and mtime it gives."""
    out = tmp_path / "public" / "out"
    build(load_site(example_site), out, every=True)
    victims = [tmp_path / "victim.txt", tmp_path / "victim2.txt", tmp_path / "victim3.txt"]
    infos = []
    for victim in victims:
        victim.write_text("not publisher's")
        stat = victim.stat()
        infos.append([stat.st_size, stat.st_mtime_ns, "0" * 64])
    (shard,) = [p for p in cache_files(example_site) if p.parent.name.startswith("build-") and p.name[0].isdigit()][:1]
    data = json.loads(shard.read_bytes())
    line = json.dumps({"path": "../../victim2.txt", "digest": infos[1][2]})
    data["items"]["ghost"] = ["key", "context", "../../victim2.txt", infos[1][:2], line]
    shard.write_text(json.dumps(data), encoding="utf-8")
    feeds = shard.parent / "feeds.json"
    data = json.loads(feeds.read_bytes())
    data["feeds"][3][str(victims[0])] = infos[0]  # an absolute path
    feeds.write_text(json.dumps(data), encoding="utf-8")
    media = shard.parent / "media.json"
    data = json.loads(media.read_bytes())
    data["files"]["../../victim3.txt"] = infos[2]
    media.write_text(json.dumps(data), encoding="utf-8")
    manifest = build(load_site(example_site), out, every=True)
    assert all(victim.read_text() == "not publisher's" for victim in victims)
    assert not [path for path in manifest.removed if "victim" in path]


@pytest.mark.parametrize("path", ["c:victim.txt", "C:/victim.txt", "z:", "feeds/../c:x"])
def test_a_path_with_a_drive_is_never_under_the_output_folder(path: str) -> None:
    with pytest.raises(ValueError):
        out_path(path)
    assert out_path("feeds/a:b.xml") == "feeds/a:b.xml"  # a colon further on names no drive


def test_a_digest_is_of_each_part_then_a_nul() -> None:
    from publisher.site.files import digest

    assert digest("a", "b") == hashlib.sha256(b"a\0b\0").hexdigest()[:32]
    assert digest("ab") != digest("a", "b")
    assert digest(b"\xff", "\u00fc") == hashlib.sha256(b"\xff\0\xc3\xbc\0").hexdigest()[:32]
    assert digest() == hashlib.sha256(b"").hexdigest()[:32]


def test_a_records_manifest_lines_say_which_of_its_files_changed() -> None:
    """`build --json` lists a record rendered by this build from the lines its worker made ("changed": false),
    with "changed" set for each file written: the same text as each file's own line."""
    from publisher.build.manifest import Made, Manifest, manifest_lines
    from publisher.build.work import Output, file_line

    files = [
        Output("newsletters/a.html", "issue", "html", ("a",), digest="d1", changed=True),
        Output("newsletters/a.txt", "issue", "text", ("a",), digest="d2"),
        Output("posts/x/a.txt", "post", "text", ("a",), "x", 12, 280, digest="d3", changed=True),
    ]
    manifest = Manifest(Path("out"), 1)
    manifest.parts.append(Made.of(files, manifest_lines(files)))
    manifest.parts.append(Made.of([f.done(f.digest, changed=False) for f in files], manifest_lines(files)))

    data = json.loads(manifest.to_json())

    assert data["files"] == [json.loads(file_line(f)) for f in files] + [
        {**json.loads(file_line(f)), "changed": False} for f in files
    ]
    assert [f.path for f in manifest.written] == ["newsletters/a.html", "posts/x/a.txt"]
    assert manifest.files == 6 and data["written"] == 2 and data["unchanged"] == 4
    assert manifest.outputs == [*files, *(f.done(f.digest, changed=False) for f in files)]  # read back from the lines


def test_the_builds_sort_key_is_a_sources_order() -> None:
    from publisher.build.builder import ORDER
    from publisher.build.cache import Source

    made = [("b", 1.0), ("a", 1.0), ("c", 0.5)]
    sources = [Source("k", id, "published", at, "m", None, None, f"events/{id}.md") for id, at in made]
    assert [ORDER(s) for s in sources] == [s.order for s in sources]
    assert [s.id for s in sorted(sources, key=ORDER, reverse=True)] == ["b", "a", "c"]


@pytest.mark.parametrize(("extra", "quick"), [("", True), ("people:\n  - name: Ana\n", False)], ids=["plain", "model"])
def test_a_changed_file_is_validated_once_to_render_its_posts(
    example_site: Path, monkeypatch: pytest.MonkeyPatch, extra: str, quick: bool
) -> None:
    """The quick check's record is made from its blob to be rendered; the model's is rendered as it is."""
    (example_site / "events" / "once.md").write_text(
        f"---\ntitle: Once\npublished: 2018-03-01T10:00:00Z\nsummary: Said once.\n{extra}---\nThe body.\n"
    )
    site = load_site(example_site)
    work.start(work.Job(site.root, site.events, site.root, site, None, {}, False, False))
    made: list[str] = []
    original = work.record_of
    monkeypatch.setattr(work, "record_of", lambda blob: made.append(blob) or original(blob))

    [prepared] = work.prepare([work.Item("events/once.md", "once.md", posts=True)])

    assert prepared.problems == [] and prepared.posts  # its posts rendered
    assert len(made) == (1 if quick else 0)


def test_removing_many_files_looks_at_each_folder_once_and_keeps_what_is_not_publishers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build after `build --all` removes tens of thousands of files from one folder. Asking after each
    removal whether the folder was empty read past every entry deleted so far (minutes at 10,000 records):
    each folder is now looked at once. Folders left empty go, deepest first; a changed file, a folder
    holding someone's file, and a path whose link leads out of the output folder stay."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.txt").write_text("not publisher's")
    files: dict[str, FileInfo] = {}
    for folder in ("posts/x", "posts/mastodon", "newsletters"):
        for i in range(50):
            path = out / folder / f"{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(i))
            files[f"{folder}/{i}.txt"] = (path.stat().st_size, path.stat().st_mtime_ns, "")
    (out / "newsletters" / "mine.txt").write_text("someone's")
    changed = out / "posts" / "mastodon" / "7.txt"
    changed.write_text("edited by hand")
    os.utime(changed, ns=(1, 1))
    (out / "linked").symlink_to(outside)
    stat = (outside / "kept.txt").stat()
    files["linked/kept.txt"] = (stat.st_size, stat.st_mtime_ns, "")
    looked: list[str] = []

    def counted(list_folder: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def listed(path: Any) -> Any:
            looked.append(str(path))
            return list_folder(path)

        return listed

    monkeypatch.setattr(os, "scandir", counted(os.scandir))
    monkeypatch.setattr(os, "listdir", counted(os.listdir))
    removed = remove_unchanged(out, files)
    assert sorted(looked) == sorted(str(out / f) for f in ("posts/x", "posts/mastodon", "posts", "newsletters"))
    assert len(removed) == 149 and "posts/mastodon/7.txt" not in removed and "linked/kept.txt" not in removed
    assert not (out / "posts" / "x").exists()
    assert sorted(p.name for p in (out / "posts" / "mastodon").iterdir()) == ["7.txt"]
    assert sorted(p.name for p in (out / "newsletters").iterdir()) == ["mine.txt"]
    assert (outside / "kept.txt").read_text() == "not publisher's"
