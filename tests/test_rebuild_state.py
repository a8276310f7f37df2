"""Incremental rebuilds stay byte-identical to a cold build of the same inputs, whatever happened before.

A Hypothesis state machine edits a small site the way its team would (records
added, edited, renamed, moved, deleted; `[build] previews`, `[feeds]
max_items` and the timeline changed; the build's `now` moved either way;
files touched; outputs deleted or edited by hand) and builds it with
`publisher build` (the CLI in-process, so every cache in `.publisher/` is
used: records.json and its edits, the build cache, the kept settings, the kept
previews plan). After each build, every output file must hold the bytes a
cold build of a fresh copy of the same inputs, `now` and flags writes.

Two documented exceptions are left out of what is compared: an output file
someone changed is never removed (README: "files a removed record had are
removed (never files publisher did not write)"), and a record's previews are
trusted while their files are there (`build.cache.present`: no stat per file),
so the edit rules here change only feeds, which a build checks by size and
mtime (`_Build._intact`), and delete previews, which it must write again.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from publisher.build import builder, media, parsed, previews, stored
from publisher.cli.main import cli
from publisher.site import files
from publisher.site.templates import default_templates
from tests.test_build import tree

BASE = dt.datetime(2024, 3, 20, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
NAMES = [f"r{i:02d}" for i in range(15)]
FOLDERS = ["", "2024/", "2024/talks/"]
TITLES = ["Forum on data", "Webinar: open statistics", "Informe anual", "Call for papers", "Taller en Bogotá"]
BODIES = ["One paragraph.\n", "Two words.\n\nAnd **more** text here.\n", "Texto en español, con acentos: ñandú.\n"]
TAGS = ["data", "events", "sdgs"]
# Dates on a coarse grid (ties in `published` included) around the builds' `now`.
OFFSETS = [dt.timedelta(hours=h) for h in (-240, -49, -25, -24, -1, 0, 1, 23, 24, 25, 72, 200)]
STEPS = [dt.timedelta(seconds=s) for s in (1, 3600, 86399, 86400, 86401, 7 * 86400)]
RULES: list[dict[str, Any]] = [
    {"when": "published", "channel": "feeds"},
    {"when": "published", "channel": "email", "list": "news"},
    {"when": "published + 1 hour", "channel": "mastodon"},
    {"when": "starts - 1 day", "channel": "bluesky", "review": True},
    {"cron": "0 9 * * mon", "timezone": "America/Bogota", "channel": "email", "list": "weekly"},
    {"cron": "0 9 * * *", "timezone": "Europe/Paris", "channel": "email", "list": "weekly", "review": True},
    {"when": "ends + 2 hours", "channel": "x", "review": False},
]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def site_toml(previews: int | None, max_items: int | None, rules: list[dict[str, Any]]) -> str:
    lines = [
        "[site]",
        'title = "Cepei"',
        'url = "https://cepei.example.org"',
        'language = "en"',
        'timezone = "America/Bogota"',
        "",
        "[newsletter]",
        'from = "Cepei <news@cepei.example.org>"',
        'lists = ["news", "weekly"]',
        "",
    ]
    if max_items is not None:
        lines += ["[feeds]", f"max_items = {max_items}", ""]
    if previews is not None:
        lines += ["[build]", f"previews = {previews}", ""]
    for one in rules:
        lines += ["[[timeline]]", *(f"{k} = {toml_value(v)}" for k, v in one.items()), ""]
    return "\n".join(lines)


def record_text(fields: dict[str, Any]) -> str:
    lines = ["---", f'title: "{fields["title"]}"', f"published: {fields['published'].isoformat()}"]
    if fields["id"] is not None:  # else the file's name
        lines.append(f"id: {fields['id']}")
    lines.append(f"language: {fields['language']}")
    if fields["tags"]:
        lines.append(f"tags: [{', '.join(fields['tags'])}]")
    if fields["starts"] is not None:
        lines.append(f"starts: {fields['starts'].isoformat()}")
        lines.append(f"ends: {(fields['starts'] + dt.timedelta(hours=3)).isoformat()}")
    if fields["image"] is not None:
        lines.append(f"image: {{src: {fields['image']}, alt: A picture of the event}}")
    if fields["status"] != "published":
        lines.append(f"status: {fields['status']}")
    return "\n".join([*lines, "---", fields["body"]])


class Killed(BaseException):
    """The end of a build's process, as a kill makes it: no `except Exception` runs."""


# Each write or removal of a build: its outputs, its cache files (records.json, the kept plan, the others),
# the removals of files it no longer makes.
KILL_POINTS = [
    (files, "_create"),
    (stored, "save_bytes"),
    (parsed, "save_bytes"),
    (previews, "save_bytes"),
    (builder, "remove_unchanged"),
    (media, "remove_unchanged"),
]


def publisher_build(site: Path, now: dt.datetime, every: bool, out: Path | None = None) -> tuple[int, str]:
    args = ["--site", str(site), "build", "--now", now.isoformat(), "--quiet", *(["--all"] if every else [])]
    try:
        result = CliRunner().invoke(cli, args + (["--out", str(out)] if out is not None else []))
    finally:
        gc.unfreeze()  # `publisher build` freezes every object as its process ends; this one goes on
    if isinstance(result.exception, Killed):
        raise result.exception
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    said = result.output if out is None else result.output.replace(str(out), "OUT")
    return result.exit_code, said.replace(str(site), "SITE")


INPUTS = ("events/", "media/", "templates/", "publisher.toml")


def built(folder: Path, inputs: tuple[str, ...] = INPUTS) -> dict[str, bytes]:
    """Every file the build wrote there (all but the site's own files and `.publisher/`)."""
    return {p: d for p, d in tree(folder).items() if not p.startswith(inputs)} if folder.is_dir() else {}


FIELDS = ["title", "body", "tags", "published", "starts", "status", "language", "image", "id"]
IMAGES = ["media/a.png", "media/b.png"]
PNG = (Path(__file__).parent.parent / "media" / "forum-bogota.png").read_bytes()
TEMPLATE = "issue_record.txt"
records = st.fixed_dictionaries(
    {
        "title": st.sampled_from(TITLES),
        "body": st.sampled_from(BODIES),
        "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=2),
        "published": st.sampled_from(OFFSETS),
        "starts": st.none() | st.sampled_from(OFFSETS),
        "status": st.sampled_from(["published", "published", "draft", "cancelled"]),
        "language": st.sampled_from(["en", "es"]),
        "image": st.none() | st.sampled_from(IMAGES),
        "id": st.sampled_from([None, None, "forum", "webinar"]),  # two records of one id: an error
    }
)


class RebuildMachine(RuleBasedStateMachine):
    """The site as its files say (`records`: name → (folder, fields)), and the builds of it."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="rebuild-"))
        self.site = self.root / "site"
        (self.site / "events").mkdir(parents=True)
        (self.site / "media").mkdir()
        for image in IMAGES:
            (self.site / image).write_bytes(PNG)
        self.records: dict[str, tuple[str, dict[str, Any]]] = {}
        self.previews: int | None = 2
        self.max_items: int | None = None
        self.timeline: list[int] = []
        self.now = BASE
        self.colds = 0
        self.built = False
        self.theirs: dict[str, bytes] = {}  # outputs edited by hand since publisher last wrote them

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # --- writing the inputs ---------------------------------------------------------------

    def path_of(self, name: str) -> Path:
        folder, _ = self.records[name]
        return self.site / "events" / f"{folder}{name}.md"

    def write_record(self, name: str) -> None:
        fields = self.records[name][1]
        data = {**fields, "published": BASE + fields["published"]}
        data["starts"] = None if fields["starts"] is None else BASE + fields["starts"]
        path = self.path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(record_text(data), encoding="utf-8")

    def write_settings(self) -> None:
        text = site_toml(self.previews, self.max_items, [RULES[i] for i in sorted(self.timeline)])
        (self.site / "publisher.toml").write_text(text, encoding="utf-8")

    @initialize(first=st.lists(records, min_size=1, max_size=4))
    def start(self, first: list[dict[str, Any]]) -> None:
        for name, fields in zip(NAMES, first, strict=False):
            self.records[name] = ("", fields)
            self.write_record(name)
        self.write_settings()

    # --- the team's edits -----------------------------------------------------------------

    @precondition(lambda self: len(self.records) < len(NAMES))
    @rule(data=st.data(), fields=records, folder=st.sampled_from(FOLDERS))
    def add(self, data: st.DataObject, fields: dict[str, Any], folder: str) -> None:
        name = data.draw(st.sampled_from([n for n in NAMES if n not in self.records]))
        self.records[name] = (folder, fields)
        self.write_record(name)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), field=st.sampled_from(FIELDS))
    def edit(self, data: st.DataObject, field: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.records)))
        fresh = data.draw(records)
        folder, fields = self.records[name]
        self.records[name] = (folder, {**fields, field: fresh[field]})
        self.write_record(name)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def edit_keeping_the_size(self, data: st.DataObject) -> None:
        """One letter of the body for another: the same size, maybe the same mtime tick as the last build."""
        name = data.draw(st.sampled_from(sorted(self.records)))
        folder, fields = self.records[name]
        body = fields["body"]
        at = body.index("o") if "o" in body else 0
        swapped = body[:at] + ("0" if body[at] != "0" else "o") + body[at + 1 :]
        self.records[name] = (folder, {**fields, "body": swapped})
        self.write_record(name)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.records)))
        free = [n for n in NAMES if n not in self.records]
        if not free:
            return
        self.relocate(name, data.draw(st.sampled_from(free)), self.records[name][0])

    @precondition(lambda self: self.records)
    @rule(data=st.data(), folder=st.sampled_from(FOLDERS))
    def move(self, data: st.DataObject, folder: str) -> None:
        self.relocate(data.draw(st.sampled_from(sorted(self.records))), None, folder)

    def relocate(self, name: str, new: str | None, folder: str) -> None:
        """Move record `name`'s file to `folder`, under the name `new` (its own when None)."""
        old = self.path_of(name)
        new = new or name
        self.records[new] = (folder, self.records.pop(name)[1])
        target = self.path_of(new)
        target.parent.mkdir(parents=True, exist_ok=True)
        old.rename(target)

    @precondition(lambda self: len(self.records) > 1)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.records)))
        self.path_of(name).unlink()
        del self.records[name]

    @precondition(lambda self: self.records)
    @rule(data=st.data(), seconds=st.sampled_from([-7200, -1, 1, 3600]))
    def touch(self, data: st.DataObject, seconds: int) -> None:
        """The same bytes, another mtime."""
        path = self.path_of(data.draw(st.sampled_from(sorted(self.records))))
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))

    @rule()
    def time_passes(self) -> None:
        """Every input an hour older: a build trusts a record file's row once it was read a second or more
        after the file's mtime (`build.parsed.RACY_NS`), and the steps here take milliseconds."""
        for name in INPUTS:
            for path in [self.site / name, *(self.site / name).rglob("*")]:
                if path.is_file():
                    stat = path.stat()
                    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 3600 * 10**9))

    @rule(previews=st.none() | st.integers(0, 4), max_items=st.none() | st.integers(1, 4))
    def settings_change(self, previews: int | None, max_items: int | None) -> None:
        self.previews, self.max_items = previews, max_items
        self.write_settings()

    @rule(index=st.integers(0, len(RULES) - 1))
    def toggle_rule(self, index: int) -> None:
        self.timeline = [i for i in self.timeline if i != index] if index in self.timeline else [*self.timeline, index]
        self.write_settings()

    @rule(step=st.sampled_from(STEPS), forward=st.booleans())
    def move_now(self, step: dt.timedelta, forward: bool) -> None:
        self.now = self.now + step if forward else self.now - step

    @rule(image=st.sampled_from(IMAGES), extra=st.none() | st.integers(0, 3))
    def change_image(self, image: str, extra: int | None) -> None:
        """Another image of another size in its place (None: the image is removed)."""
        path = self.site / image
        if extra is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(PNG + b"\0" * extra)

    @rule(variant=st.none() | st.integers(0, 2))
    def site_template(self, variant: int | None) -> None:
        """The site's own template of an issue's record, or none (the default is used)."""
        folder = self.site / "templates"
        if variant is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.mkdir(exist_ok=True)
            default = (default_templates() / TEMPLATE).read_text(encoding="utf-8")
            (folder / TEMPLATE).write_text(default + f"\nA note of the site, version {variant}.\n", encoding="utf-8")

    # --- someone at the output ------------------------------------------------------------

    @precondition(lambda self: self.built)
    @rule(data=st.data(), delete=st.booleans())
    def meddle_with_an_output(self, data: st.DataObject, delete: bool) -> None:
        """Delete an output (it is written again), or edit a feed by hand (a feed is checked by size and mtime,
        so the build writes it again)."""
        files = sorted(p for p in tree(self.site) if p.startswith(("feeds/", "newsletters/", "posts/")))
        if not delete:
            files = [p for p in files if p.startswith("feeds/")]
        if not files:
            return
        path = self.site / data.draw(st.sampled_from(files))
        if delete:
            path.unlink()
            self.theirs.pop(str(path.relative_to(self.site)), None)
        else:
            edited = path.read_bytes().replace(b"<", b"< ", 1)
            path.write_bytes(edited)
            self.theirs[str(path.relative_to(self.site))] = edited

    # --- building -------------------------------------------------------------------------

    @rule(every=st.booleans(), elsewhere=st.booleans())
    def build(self, every: bool, elsewhere: bool) -> None:
        """`publisher build` into the site, or into a folder of its own (`--out`: the images are copied)."""
        out = self.root / "public" if elsewhere else None
        code, said = publisher_build(self.site, self.now, every, out)
        cold = self.root / f"cold{self.colds}"
        self.colds += 1
        shutil.copytree(self.site, cold, ignore=shutil.ignore_patterns(".publisher", "feeds", "newsletters", "posts"))
        cold_out = self.root / f"public{self.colds}" if elsewhere else None
        cold_code, cold_said = publisher_build(cold, self.now, every, cold_out)
        assert (code, said) == (cold_code, cold_said.replace(str(cold), "SITE"))
        if elsewhere and code == 0:
            assert out is not None and cold_out is not None
            assert built(out, ()) == built(cold_out, ())
        elif code == 0:
            self.built = True
            warm, fresh = built(self.site), built(cold)
            for path in sorted(self.theirs.keys() - fresh.keys()):  # edited by hand, no longer made: left as it is
                assert warm.pop(path) == self.theirs[path]
            self.theirs = {path: data for path, data in self.theirs.items() if path not in fresh}
            differ = sorted(p for p in warm.keys() | fresh.keys() if warm.get(p) != fresh.get(p))
            assert not differ, f"not as a cold build: {differ}"
        shutil.rmtree(cold)
        if cold_out is not None:
            shutil.rmtree(cold_out, ignore_errors=True)

    @rule(every=st.booleans(), after=st.integers(1, 40))
    def build_killed(self, every: bool, after: int) -> None:
        """A build stopped right after its `after`-th write (an output, a cache file, a removal), as by a kill:
        nothing after it runs, not even the saving of the caches. The next build must make up for it."""
        steps = [0]
        patches = [(module, name, getattr(module, name)) for module, name in KILL_POINTS]

        def stopping(original: Any) -> Any:
            def step(*args: Any, **kwargs: Any) -> Any:
                result = original(*args, **kwargs)
                steps[0] += 1
                if steps[0] == after:
                    raise Killed
                return result

            return step

        try:
            for module, name, original in patches:
                setattr(module, name, stopping(original))
            publisher_build(self.site, self.now, every)
        except Killed:
            pass
        finally:
            for module, name, original in patches:
                setattr(module, name, original)
        # a file edited by hand that the stopped build wrote again is publisher's again
        self.theirs = {
            p: data
            for p, data in self.theirs.items()
            if (self.site / p).is_file() and data == (self.site / p).read_bytes()
        }

    @invariant()
    def inputs_are_what_the_model_says(self) -> None:
        found = sorted(str(p.relative_to(self.site / "events")) for p in (self.site / "events").rglob("*.md"))
        assert found == sorted(f"{folder}{name}.md" for name, (folder, _) in self.records.items())


RebuildMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("REBUILD_EXAMPLES", "20")),
    stateful_step_count=int(os.environ.get("REBUILD_STEPS", "30")),
    deadline=None,
    derandomize=not os.environ.get("REBUILD_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRebuilds = RebuildMachine.TestCase


FORUM = {
    "title": "Forum on data",
    "body": "One paragraph.\n",
    "tags": [],
    "published": -dt.timedelta(days=10),
    "starts": None,
    "status": "published",
    "language": "en",
    "image": None,
    "id": None,
}


def stopped_then_renamed(after: int) -> RebuildMachine:
    """A site of one record, a build of it stopped after `after` writes, then the record's file renamed (its
    id with it): the stopped build's files of the old id are no record's any more."""
    machine = RebuildMachine()
    machine.start([FORUM])
    machine.build_killed(every=False, after=after)
    old = machine.path_of("r00")
    machine.records["r01"] = machine.records.pop("r00")
    old.rename(machine.path_of("r01"))
    return machine


@pytest.mark.parametrize("after", [7, 9, 11])  # one, three and five of the record's files written
def test_the_files_of_a_build_stopped_part_way_go_when_their_record_goes(after: int) -> None:
    """Found by the machine above: a build killed after writing some of a record's files, before it saved
    its cache, left files no cache named; once the record was renamed, no build ever removed them."""
    machine = stopped_then_renamed(after)
    try:
        assert any(path.startswith("newsletters/r00.") for path in built(machine.site))
        machine.build(every=False, elsewhere=False)  # the same files as a cold build
        assert not any("r00" in path for path in built(machine.site))
        assert not list((machine.site / ".publisher").rglob("pending-*"))  # the journals went with them
    finally:
        machine.teardown()


def test_a_file_of_a_stopped_build_that_someone_changed_stays() -> None:
    machine = stopped_then_renamed(10)
    try:
        mine = machine.site / "newsletters" / "r00.txt"
        mine.write_text("my notes on the forum\n", encoding="utf-8")
        assert publisher_build(machine.site, machine.now, every=False)[0] == 0
        assert mine.read_text(encoding="utf-8") == "my notes on the forum\n"
        assert not (machine.site / "newsletters" / "r00.html").exists()  # publisher's bytes: removed
    finally:
        machine.teardown()


def test_a_forged_journal_naming_a_link_to_an_endless_file_is_not_read() -> None:
    """A journal is read as untrusted: a path it names that is a link (here to /dev/zero, whose reading never
    ends) is not publisher's file, and is neither read nor removed."""
    machine = RebuildMachine()
    machine.start([FORUM])
    try:
        machine.build(every=False, elsewhere=False)
        link = machine.site / "feeds" / "endless.xml"
        link.symlink_to("/dev/zero")
        [folder] = (machine.site / ".publisher").glob("build-*")
        (folder / "pending-1-forged.jsonl").write_text('[["feeds/endless.xml", "0"]]\n', encoding="utf-8")
        assert publisher_build(machine.site, machine.now, every=False)[0] == 0
        assert link.is_symlink()
    finally:
        machine.teardown()
