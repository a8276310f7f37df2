"""The commands `init`, `new`, `check` and `build`: exit codes, exact problem lines, never a traceback."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.cli.context import indented_json
from publisher.cli.main import cli
from publisher.cli.progress import ProgressBars
from tests.conftest import REPO

INFORME = "2018-03-15-informe-agenda-2030"
PARIS = "2018-02-09-south-south-cooperation-paris"
OUTPUT_FOLDERS = ("feeds", "newsletters", "posts")


def publisher(*args: str | Path, code: int = 0) -> Result:
    """Run one command in-process; check its exit code and that no traceback ever shows."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    return result


def manifest(site: Path, *args: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(publisher("--site", site, "--json", "build", *args).stdout)
    return data


def files_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    files = data["files"]
    assert isinstance(files, list)
    return files


def written(data: dict[str, Any]) -> set[str]:
    return {str(f["path"]) for f in files_of(data) if f["changed"]}


def on_disk(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder))
        for name in OUTPUT_FOLDERS
        for p in (folder / name).rglob("*")
        if p.is_file() and (folder / name).is_dir()
    }


def test_a_new_site_checks_and_builds(tmp_path: Path) -> None:
    site = tmp_path / "our-news"
    out = publisher("init", site, "--now", "2026-01-15T10:00:00+00:00").stdout
    assert out.splitlines() == [
        f"wrote {site}/publisher.toml",
        f"wrote {site}/events/2026-01-15-welcome.md",
        f"wrote {site}/templates",
    ]
    assert (site / "templates").is_dir() and not any((site / "templates").iterdir())
    sample = (site / "events" / "2026-01-15-welcome.md").read_text()
    assert 'title: "Welcome to Our News"' in sample and "\nstatus: draft " in sample  # never mailed by a first run
    assert publisher("--site", site, "check").stdout.startswith("ok: 1 records (1 draft), ")
    data = manifest(site)
    assert data["records"] == 0 and data["written"] == len(files_of(data)) == len(on_disk(site))
    plan = json.loads(publisher("--site", site, "--json", "plan", "--now", "2026-01-15T10:00:00+00:00").stdout)
    assert plan["dispatches"] == []
    published = sample.replace("\nstatus: draft ", "\nstatus: published ")
    (site / "events" / "2026-01-15-welcome.md").write_text(published)
    assert publisher("--site", site, "check").stdout.startswith("ok: 1 records (0 drafts), ")
    assert manifest(site)["records"] == 1
    again = publisher("init", site, code=2)
    assert again.stderr.splitlines()[0] == f"{site}/publisher.toml:1: file: already exists; choose an empty folder"


def test_the_real_command_runs_as_a_module(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "publisher", *args], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    assert run("init", "site", "--now", "2026-01-15T10:00:00+00:00").returncode == 0
    assert run("--site", "site", "check").stdout.startswith("ok: 1 records (1 draft)")
    built = run("--site", "site", "--json", "build")
    assert built.returncode == 0 and json.loads(built.stdout)["written"] == 2  # the empty feeds: the sample is a draft
    (tmp_path / "site" / "publisher.toml").write_text('[site]\ntitle = "x"\nurl = "nowhere"\n')
    bad = run("--site", "site", "build")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "publisher.toml:3: site.url: must be an absolute http(s) URL (got 'nowhere')",
        "Error: 1 problem(s); nothing was changed.",
    ]


COLLECTIONS_WHILE_IMPORTING = """
import gc, sys
from publisher import __main__ as entry

during = []  # at each collection: whether the CLI was imported by then
imported = lambda: hasattr(sys.modules.get("publisher.cli.main"), "main")
gc.callbacks.append(lambda phase, _: phase == "start" and during.append(imported()))
sys.argv = ["publisher", "--version"]
try:
    entry.main()
except SystemExit:
    pass
print(during.count(False), gc.isenabled(), gc.get_freeze_count() > 10_000)
"""


def test_the_command_imports_its_modules_without_collecting_garbage_and_freezes_them() -> None:
    """What `publisher` and `python -m publisher` run: no collection before the CLI is imported, its objects out
    of every collection after, collection on again for the command."""
    done = subprocess.run(
        [sys.executable, "-c", COLLECTIONS_WHILE_IMPORTING], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1].split() == ["0", "True", "True"]  # after the version


def test_one_kind_of_progress_bar_shows_only_long_builds_and_sends() -> None:
    with ProgressBars(enabled=True) as bars:
        build, send = bars.for_build(), bars.for_send()
        assert build is not None and send is not None
        build(10, 300)  # a build of 300 records is quick
        send("small", 10, 499)
        assert bars.shown == []
        build(10, 301)
        send("big", 10, 500)
        send("big", 20, 500)
        send("small", 20, 499)
        assert bars.shown == ["rendering", "big"]
    with ProgressBars(enabled=False) as off:
        assert off.for_build() is None and off.for_send() is None  # --json or no terminal: no callback at all


def test_a_build_of_hundreds_of_records_shows_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    import os
    import pty

    site = tmp_path / "site"
    assert publisher("init", site, "--now", "2026-01-15T10:00:00+00:00").exit_code == 0
    for n in range(310):
        (site / "events" / f"record-{n:03d}.md").write_text(
            f"---\ntitle: Record {n}\npublished: 2026-01-{1 + n % 28:02d}T09:00:00+00:00\n---\nBody {n}.\n"
        )

    def build(terminal: bool) -> str:
        for output in ("feeds", "newsletters", "posts", ".publisher"):
            subprocess.run(["rm", "-rf", str(site / output)], check=True)
        leader, follower = pty.openpty() if terminal else (None, subprocess.PIPE)
        done = subprocess.Popen(
            [sys.executable, "-m", "publisher", "--site", str(site), "build"],
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env={**os.environ, "COLUMNS": "80", "TERM": "xterm"},
        )
        if leader is None:
            _, err = done.communicate(timeout=120)
            return err.decode()
        assert isinstance(follower, int)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the build is over
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert done.wait(timeout=120) == 0
        os.close(leader)
        return b"".join(chunks).decode(errors="replace")

    assert "rendering" in build(terminal=True)
    assert "rendering" not in build(terminal=False)


def test_a_site_folder_without_settings_is_named_with_a_hint(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-site"
    result = publisher("--site", missing, "check", code=2)
    assert result.stderr.splitlines() == [
        f"publisher.toml:1: file: not found in {missing} (run `publisher init DIR` to start a site)",
        "Error: 1 problem(s); nothing was changed.",
    ]


def test_new_writes_a_draft_dated_in_the_sites_time_zone(example_site: Path) -> None:
    # 03:00 UTC on 2 March is still 1 March in Bogotá, the example site's time zone.
    out = publisher("--site", example_site, "new", "Informe 2030: ¿qué sigue?", "--now", "2018-03-02T03:00:00+00:00")
    path = example_site / "events" / "2018-03-01-informe-2030-que-sigue.md"
    assert out.stdout.strip() == f"wrote {path}"
    text = path.read_text(encoding="utf-8")
    assert 'title: "Informe 2030: ¿qué sigue?"\n' in text
    assert "published: 2018-03-01T22:00:00-05:00\n" in text and "status: draft" in text
    assert publisher("--site", example_site, "check").stdout.startswith("ok: 7 records (2 drafts), ")
    assert not any("que-sigue" in p for p in written(manifest(example_site)))  # a draft is not built
    again = publisher(
        "--site", example_site, "new", "Informe 2030: ¿qué sigue?", "--now", "2018-03-01T12:00:00-05:00", code=2
    )
    assert again.stderr.splitlines()[0] == f"{path}:1: file: already exists; choose another title"
    naive = publisher("--site", example_site, "new", "T", "--now", "2018-03-01T12:00", code=2)
    assert naive.stderr.splitlines()[0] == (
        "command line:1: --now: needs a UTC offset, e.g. 2018-03-01T12:00+00:00 (got '2018-03-01T12:00')"
    )


def test_check_says_the_example_site_is_ok(example_site: Path) -> None:
    result = publisher("--site", example_site, "check")
    assert result.stdout.startswith("ok: 6 records (1 draft), ")
    data = json.loads(publisher("--site", example_site, "--json", "check").stdout)
    assert data["ok"] is True and data["records"] == 6 and data["drafts"] == 1
    assert not any((example_site / name).exists() for name in OUTPUT_FOLDERS)


BAD_RECORDS = {
    "a-naive.md": "---\ntitle: Naive\npublished: 2018-02-09 18:00\nsummary: s\n---\n",
    "b-typo.md": "---\ntittle: Typo\npublished: 2018-02-09T18:00:00Z\nsummary: s\n---\n",
    "c-url.md": "---\ntitle: U\npublished: 2018-02-09T18:00:00Z\nurl: www.cepei.org/news\nsummary: s\n---\n",
    "d-lang.md": "---\ntitle: L\npublished: 2018-02-09T18:00:00Z\nlanguage: espanol\nsummary: s\n---\n",
    "e-ends.md": (
        "---\ntitle: E\npublished: 2018-02-09T18:00:00Z\nsummary: s\n"
        "starts: 2018-03-01T10:00:00Z\nends: 2018-03-01T09:00:00Z\n---\n"
    ),
    "f-yaml.md": "---\ntitle: [unclosed\npublished: 2018-02-09T18:00:00Z\n---\nbody\n",
    "g-no-title.md": "---\npublished: 2018-02-09T18:00:00Z\nsummary: s\n---\n",
    "h-duplicate.md": f"---\nid: {PARIS}\ntitle: D\npublished: 2018-02-09T18:00:00Z\nsummary: s\n---\n",
    "i-image.md": (
        "---\ntitle: I\npublished: 2018-02-09T18:00:00Z\nsummary: s\nimage:\n  src: media/missing.png\n  alt: A\n---\n"
    ),
    "j-tag.md": '---\ntitle: T\npublished: 2018-02-09T18:00:00Z\nsummary: s\ntags: [ok, "two words"]\n---\n',
    "k-status.md": "---\ntitle: S\npublished: 2018-02-09T18:00:00Z\nsummary: s\nstatus: live\n---\n",
    "l-empty.md": "---\ntitle: Empty\npublished: 2018-02-09T18:00:00Z\n---\n\n",
    "n-nothing.md": "---\n---\nAn empty front matter.\n",
    "m-people.md": (
        "---\ntitle: P\npublished: 2018-02-09T18:00:00Z\nsummary: s\npeople:\n  - name: A\n    rol: C\n---\n"
    ),
}

BAD_RECORD_LINES = [
    "events/a-naive.md:3: published: needs a UTC offset or time zone (got '2018-02-09 18:00')",
    "events/b-typo.md:2: title: is required",
    "events/b-typo.md:2: tittle: unknown key (did you mean 'title'?)",
    "events/c-url.md:4: url: must be an absolute http(s) URL (got 'www.cepei.org/news')",
    "events/d-lang.md:4: language: is not a BCP 47 language tag (got 'espanol')",
    "events/e-ends.md:6: ends: is before starts",
    "events/f-yaml.md:2: front matter: bad YAML: did not find expected ',' or ']'",
    "events/g-no-title.md:2: title: is required",
    f"events/h-duplicate.md:2: id: '{PARIS}' is already used by events/{PARIS}.md",
    "events/i-image.md:6: image.src: no such file in the site (got 'media/missing.png')",
    "events/j-tag.md:5: tags: a tag is letters, digits, '-', '_' or '.' (got 'two words')",
    "events/k-not-utf8.md:1: file: is not UTF-8 text (invalid continuation byte)",
    "events/k-status.md:5: status: Input should be 'draft', 'published' or 'cancelled'",
    "events/l-empty.md:5: summary: a record needs a body or a summary",
    "events/m-people.md:7: people.0.rol: unknown key (did you mean 'role'?)",
    "events/n-nothing.md:2: published: is required",
    "events/n-nothing.md:2: title: is required",
]


@pytest.mark.parametrize("command", ["check", "build"])
def test_bad_records_are_each_named_at_their_line(example_site: Path, command: str) -> None:
    for name, text in BAD_RECORDS.items():
        (example_site / "events" / name).write_text(text, encoding="utf-8")
    (example_site / "events" / "k-not-utf8.md").write_bytes(b"---\ntitle: Caf\xe9\n---\n")
    result = publisher("--site", example_site, command, code=2)
    # The first file in name order keeps an id (the example record's); the later one is told.
    assert result.stderr.splitlines() == [
        *BAD_RECORD_LINES,
        f"Error: {len(BAD_RECORD_LINES)} problem(s); nothing was changed.",
    ]
    assert result.stdout == ""
    assert not any((example_site / name).exists() for name in OUTPUT_FOLDERS)


def test_bad_settings_are_named_at_their_line_with_a_hint(example_site: Path) -> None:
    config = example_site / "publisher.toml"
    text = config.read_text()
    text = text.replace('url = "https://cepei.example.org"', 'url = "cepei.example.org"')
    text = text.replace('timezone = "America/Bogota"', 'timezone = "America/Bogata"', 1)  # [site]'s
    text = text.replace("max_items = 50", "max_item = 50")
    config.write_text(text)
    lines = text.splitlines()
    url = lines.index('url = "cepei.example.org"') + 1
    zone = lines.index('timezone = "America/Bogata"') + 1
    items = lines.index("max_item = 50") + 1
    expected = [
        f"publisher.toml:{url}: site.url: must be an absolute http(s) URL (got 'cepei.example.org')",
        f"publisher.toml:{zone}: site.timezone: is not an IANA time zone (got 'America/Bogata')",
        f"publisher.toml:{items}: feeds.max_item: unknown key (did you mean 'max_items'?)",
        "Error: 3 problem(s); nothing was changed.",
    ]
    for command in ("check", "build"):
        assert publisher("--site", example_site, command, code=2).stderr.splitlines() == expected
    config.write_text("[site\ntitle = 1\n")
    assert publisher("--site", example_site, "build", code=2).stderr.splitlines()[0] == (
        "publisher.toml:1: toml: Expected ']' at the end of a table declaration (at line 1, column 6)"
    )


def test_a_time_zone_that_is_a_region_of_the_tz_database_is_named_at_its_line(example_site: Path) -> None:
    """A folder of the tz database ("America", "Europe") is not a zone: zoneinfo raises IsADirectoryError for it,
    which came out as "Error: …/tzdata/zoneinfo/America: Is a directory" and exit 1."""
    config = example_site / "publisher.toml"
    text = config.read_text()
    text = text.replace('timezone = "America/Bogota"', 'timezone = "America"', 1)  # [site]'s
    text = text.replace('timezone = "America/Bogota"', 'timezone = "Europe"', 1)  # a timeline rule's
    config.write_text(text)
    lines = text.splitlines()
    site, rule = (number for number, line in enumerate(lines, start=1) if line.startswith("timezone = "))
    index = sum(1 for line in lines[:rule] if line.strip() == "[[timeline]]") - 1
    expected = [
        f"publisher.toml:{site}: site.timezone: is not an IANA time zone (got 'America')",
        f"publisher.toml:{rule}: timeline.{index}.timezone: is not an IANA time zone (got 'Europe')",
        "Error: 2 problem(s); nothing was changed.",
    ]
    for command in ("check", "plan"):
        assert publisher("--site", example_site, command, code=2).stderr.splitlines() == expected


def test_build_json_lists_every_file_with_what_it_is(example_site: Path) -> None:
    data = manifest(example_site)
    files = files_of(data)
    assert set(data) == {"out", "records", "scheduled", "written", "unchanged", "removed", "files"}
    assert data["scheduled"] == 0  # every example record is from 2018: all in the feeds
    assert data["out"] == str(example_site) and data["records"] == 5 and data["removed"] == []
    assert data["written"] == len(files) and data["unchanged"] == 0
    assert {str(f["path"]) for f in files} == on_disk(example_site)
    formats = {"feed": {"atom", "rss"}, "issue": {"html", "text", "eml"}, "post": {"text"}, "calendar": {"ics"}}
    for f in files:
        assert f["format"] in formats[str(f["kind"])] and f["records"] and len(str(f["digest"])) == 32
        if f["kind"] == "post":
            assert f["network"] in ("x", "mastodon", "bluesky") and 0 < int(f["length"]) <= int(f["limit"])
            assert f["path"] == f"posts/{f['network']}/{f['records'][0]}.txt"
        else:
            assert "network" not in f and "length" not in f
    kinds = [f["kind"] for f in files]
    assert kinds.count("issue") == 15 and kinds.count("post") == 15 and kinds.count("calendar") == 2
    x_limits = {f["limit"] for f in files if f.get("network") == "x"}
    assert x_limits == {280}


def test_a_second_build_writes_nothing_and_one_change_rewrites_only_what_shows_it(example_site: Path) -> None:
    first = manifest(example_site)
    second = manifest(example_site)
    assert second["written"] == 0 and second["unchanged"] == len(files_of(first))
    assert "0 files written" in publisher("--site", example_site, "build").stdout
    record = example_site / "events" / f"{INFORME}.md"
    record.write_text(record.read_text(encoding="utf-8").replace("doce países", "trece países"), encoding="utf-8")
    shows_it = {str(f["path"]) for f in files_of(first) if f["kind"] == "feed" and INFORME in f["records"]}
    # The summary changed: the issue, the posts (they carry the summary when it fits) and those feeds.
    own = {str(f["path"]) for f in files_of(first) if f["records"] == [INFORME]}
    assert written(manifest(example_site)) == own | shows_it


def test_build_out_writes_elsewhere_and_leaves_the_site_alone(example_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "public"
    data = manifest(example_site, "--out", out)
    assert data["out"] == str(out) and not any((example_site / name).exists() for name in OUTPUT_FOLDERS)
    assert {str(f["path"]) for f in files_of(data)} == on_disk(out) | {"media/forum-bogota.png"}
    text = publisher("--site", example_site, "build", "--out", out).stdout
    assert text.strip().endswith(f"0 files written, {len(files_of(data))} unchanged, in {out}")


def test_a_post_override_that_does_not_fit_is_an_error_at_its_line(example_site: Path) -> None:
    record = example_site / "events" / f"{INFORME}.md"
    text = record.read_text(encoding="utf-8")
    own = " ".join(["palabra"] * 34)
    text = text.replace("  hashtags: [Agenda2030, ODS]\n", f"  hashtags: [Agenda2030, ODS]\n  x: {own}\n")
    record.write_text(text, encoding="utf-8")
    line = text.splitlines().index(f"  x: {own}") + 1
    # 34 words of 7 letters and 33 spaces, then a space and the record's link, which X counts as 23.
    expected = f"events/{INFORME}.md:{line}: social.x.text: is {34 * 7 + 33 + 1 + 23} characters; x allows 280"
    for command in ("build", "check"):
        result = publisher("--site", example_site, command, code=2)
        assert result.stderr.splitlines() == [expected, "Error: 1 problem(s); nothing was changed."]
    assert not (example_site / "newsletters").exists()


def test_the_bundled_example_site_is_where_the_repository_says(tmp_path: Path) -> None:
    assert (REPO / "publisher.toml").is_file() and len(list((REPO / "events").glob("*.md"))) >= 6


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_json_output_is_the_standard_librarys_indented_json_byte_for_byte(value: Any) -> None:
    assert indented_json(value) == json.dumps(value, indent=2, ensure_ascii=False, default=str)


def test_json_output_writes_what_json_cannot_hold_as_text() -> None:
    when = dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.UTC)
    expected = json.dumps({"at": when, "path": Path("a")}, indent=2, ensure_ascii=False, default=str)
    assert indented_json({"at": when, "path": Path("a")}) == expected
    assert '"at": "2026-12-06 09:30:00+00:00"' in expected
