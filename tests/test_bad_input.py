"""Bad input, as a new user types it: each case gets its exit code and one `path:line: field: message` line.

One row a case: how the site is spoiled (or not), the command, the exit code, and the first line the
user reads on standard error. Never a traceback; nothing half-done.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli.main import cli
from publisher.errors import InvalidInput
from tests.store_support import DATABASES, database_environment

PARIS_FILE = "2018-02-09-south-south-cooperation-paris.md"
Spoil = Callable[[Path], None]


def publisher(*args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def nothing(site: Path) -> None:
    """The example site as it is."""


CASES: list[tuple[str, Spoil, list[str], int, str]] = [
    (
        "--site after the command",
        nothing,
        ["check", "--site", "{site}/missing"],
        2,
        "publisher.toml:1: file: not found in {site}/missing (run `publisher init DIR` to start a site)",
    ),
    (
        "--site after a subscribers command",
        nothing,
        ["subscribers", "list", "--site", "{site}/missing"],
        2,
        "publisher.toml:1: file: not found in {site}/missing (run `publisher init DIR` to start a site)",
    ),
]


def test_site_and_json_after_the_command_work_as_before_it(example_site: Path) -> None:
    before = json.loads(publisher("--site", str(example_site), "--json", "check").stdout)
    after = json.loads(publisher("check", "--site", str(example_site), "--json").stdout)
    assert before == after and after["ok"] is True
    built = publisher("build", "--site", str(example_site), "--json", "--now", "2018-04-01T00:00:00+00:00")
    assert built.exit_code == 0 and json.loads(built.stdout)["records"] == after["records"] - after["drafts"]


def test_with_json_an_error_is_json_too(example_site: Path) -> None:
    failed = publisher("--json", "--site", str(example_site), "send", "nobody", "--to", "a@example.org")
    assert failed.exit_code == 2 and json.loads(failed.stdout)["problems"][0]["field"] == "ISSUE"
    record = example_site / "events" / PARIS_FILE
    record.write_text(record.read_text(encoding="utf-8").replace("\nlanguage: en\n", "\nlanguage: english\n"), "utf-8")
    line = next(n for n, text in enumerate(record.read_text().splitlines(), 1) if text.startswith("language:"))
    result = publisher("build", "--json", "--site", str(example_site))
    assert result.exit_code == 2 and result.stderr == ""
    assert json.loads(result.stdout) == {
        "problems": [
            {
                "path": f"events/{PARIS_FILE}",
                "line": line,
                "field": "language",
                "message": "is not a BCP 47 language tag (got 'english')",
            }
        ]
    }


def write(name: str, text: str | bytes) -> Spoil:
    """Write `text` into the site file `name` (a record under events/, or any path)."""

    def spoil(site: Path) -> None:
        path = site / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    return spoil


def config_folder(site: Path) -> None:
    (site / "publisher.toml").unlink()
    (site / "publisher.toml").mkdir()


RECORD = "---\ntitle: T\npublished: {published}\nsummary: s\n---\nBody.\n"
CASES += [
    (
        "a key given twice in front matter",
        write("events/twice.md", "---\ntitle: One\nsummary: s\ntitle: Two\npublished: 2018-02-09T18:00:00Z\n---\n"),
        ["check"],
        2,
        "events/twice.md:4: title: is given twice, on lines 2 and 4; keep one",
    ),
    (
        "a UTC offset out of range",
        write("events/offset.md", RECORD.format(published="2018-02-09T18:00:00+25:00")),
        ["check"],
        2,
        "events/offset.md:3: published: is not a date and time "
        "(got '2018-02-09T18:00:00+25:00': a UTC offset is less than 24 hours)",
    ),
    (
        "a value its explicit YAML tag does not fit (PyYAML fails on it with AttributeError)",
        write("events/tagged.md", RECORD.format(published="!!timestamp 'soon'")),
        ["check"],
        2,
        "events/tagged.md:3: published: is not a date and time (got 'soon')",
    ),
    (
        "a YAML bomb: nine lines of aliases of aliases stand for 387 million values (minutes and gigabytes)",
        write(
            "events/bomb.md",
            "---\ntitle: T\npublished: 2018-01-01T00:00:00Z\nsummary: s\na: &a [lol, lol, lol, lol, lol, lol, lol]\n"
            + "".join(f"{x}: &{x} [{', '.join([f'*{p}'] * 9)}]\n" for p, x in zip("abcdefgh", "bcdefghi", strict=True))
            + "---\nBody.\n",
        ),
        ["check"],
        2,
        "events/bomb.md:13: front matter: its YAML aliases (*name) stand for more than 10,000 values; "
        "write the values out",
    ),
    (
        "lists inside lists deeper than Python's recursion (a traceback from the line-of-every-key walk)",
        write(
            "events/deep.md",
            "---\ntitle: T\npublished: 2018-01-01T00:00:00Z\nsummary: s\nx: " + "[" * 990 + "]" * 990 + "\n---\nB.\n",
        ),
        ["check"],
        2,
        "events/deep.md:5: x: nests more lists and mappings inside each other than a record can hold",
    ),
    (
        "aliases nested deeper than Python's recursion",
        write(
            "events/deep.md",
            "---\ntitle: T\npublished: 2018-01-01T00:00:00Z\nsummary: s\nx: &x "
            + "[" * 990
            + "]" * 990
            + "\ny: *x\n---\n",
        ),
        ["check"],
        2,
        "events/deep.md:2: front matter: nests more lists and mappings inside each other than a record can hold",
    ),
    (
        "a file named in words, which its id would be (pydantic said: String should match pattern '^[A-Za-z0-9]…')",
        write("events/Café in Paris.md", RECORD.format(published="2018-01-01T00:00:00Z")),
        ["check"],
        2,
        "events/Café in Paris.md:1: id: the file's name 'Café in Paris' is not an id (letters, digits, '.', '_' "
        "and '-', starting with a letter or a digit): rename the file, or give the record an `id:`",
    ),
    (
        "an id given in words",
        write("events/given.md", "---\nid: Café in Paris\n" + RECORD.format(published="2018-01-01T00:00:00Z")[4:]),
        ["check"],
        2,
        "events/given.md:2: id: must be letters, digits, '.', '_' and '-', starting with a letter or a digit "
        "(got 'Café in Paris')",
    ),
    (
        "a line break in a file's name, which would split its problem in two lines (or forge a second one)",
        write("events/x.md:1: title: forged\nreal.md", RECORD.format(published="2018-01-01T00:00:00Z")),
        ["check"],
        2,
        "events/x.md:1: title: forged\\nreal.md:1: id: the file's name 'x.md:1: title: forged\\nreal' is not an id "
        "(letters, digits, '.', '_' and '-', starting with a letter or a digit): rename the file, or give the record "
        "an `id:`",
    ),
    (
        "a date near year 1",
        write("events/year-one.md", RECORD.format(published="0001-01-01T00:30:00+01:00")),
        ["check"],
        2,
        "events/year-one.md:3: published: is out of the years publisher can plan, 1000 to 8999 "
        "(got '0001-01-01 00:30:00+01:00')",
    ),
    (
        "--now in year 9999",
        nothing,
        ["plan", "--now", "9999-12-31T23:00:00+00:00"],
        2,
        "command line:1: --now: is out of the years publisher can plan, 1000 to 8999 (got '9999-12-31T23:00:00+00:00')",
    ),
    (
        "publisher.toml that is a folder",
        config_folder,
        ["check"],
        2,
        "publisher.toml:1: file: is a folder, not the settings file",
    ),
    (
        "serve --port 99999",
        nothing,
        ["serve", "--port", "99999"],
        2,
        "command line:1: --port: is a port number from 0 to 65535 (got 99999)",
    ),
    (
        "subscribers list --status bogus",
        nothing,
        ["subscribers", "list", "--status", "bogus"],
        2,
        "command line:1: --status: 'bogus' is not one of active, bounced, complained, pending, unsubscribed",
    ),
    (
        "subscribers export --list bogus",
        nothing,
        ["subscribers", "export", "--list", "bogus"],
        2,
        "command line:1: --list: 'bogus' is not one of the newsletter lists (news, weekly)",
    ),
    (
        "a CSV row naming a list that does not exist",
        write("people.csv", "email,lists\nana@example.org,news\nbo@example.org,nwes\n"),
        ["subscribers", "import", "{site}/people.csv"],
        2,
        "{site}/people.csv:3: lists: 'nwes' is not one of the newsletter lists (news, weekly)",
    ),
]


def append(name: str, text: str) -> Spoil:
    """Add `text` at the end of the site file `name`."""

    def spoil(site: Path) -> None:
        with (site / name).open("a", encoding="utf-8") as f:
            f.write(text)

    return spoil


def config_line(site: Path, starts: str) -> int:
    return next(n for n, t in enumerate((site / "publisher.toml").read_text().splitlines(), 1) if t.startswith(starts))


CASES += [
    (
        "serve on a host that is not this machine's",
        nothing,
        ["serve", "--host", "192.0.2.1", "--port", "8080"],
        2,
        "command line:1: --host: cannot listen on 192.0.2.1:8080 (Cannot assign requested address)",
    ),
    (
        "a rule shifting a date past the calendar's end",
        append("publisher.toml", '\n[[timeline]]\nwhen = "published + 100000 weeks"\nchannel = "mastodon"\n'),
        ["check"],
        2,
        "publisher.toml:{when_line}: timeline.5.when: shifts by more than 100 years, past any date publisher plans "
        "(got 'published + 100000 weeks')",
    ),
    (
        "check: a queue that is neither Redis nor RabbitMQ",
        append("publisher.toml", '\n[queue]\nurl = "gopher://queue.example.org"\n'),
        ["check"],
        2,
        "publisher.toml:{queue_line}: queue.url: must be none, redis://… or amqp://… (got a 'gopher' URL)",
    ),
    (
        "a YAML alias inside its own anchor",
        lambda site: (site / "events" / "loop.md").write_text(
            "---\ntitle: T\npublished: 2018-01-01T00:00:00Z\nsummary: s\nx: &a [*a]\n---\n", encoding="utf-8"
        ),
        ["plan"],
        2,
        "events/loop.md:5: x: unknown key",
    ),
    (
        "init of a site under a file",
        nothing,
        ["init", "{site}/publisher.toml/new-site"],
        2,
        "command line:1: DIRECTORY: {site}/publisher.toml is a file, not a folder: choose another place for the site",
    ),
]


def image_link_out(site: Path) -> None:
    outside = site.parent / "private.png"
    outside.write_bytes((site / "media" / "forum-bogota.png").read_bytes())
    (site / "media" / "out.png").symlink_to(outside)
    text = "---\ntitle: T\npublished: 2018-02-09T18:00:00Z\nsummary: s\nimage:\n  src: media/out.png\n  alt: a\n---\n"
    (site / "events" / "out.md").write_text(text, encoding="utf-8")


CASES += [
    (
        "a local image linked from outside the site",
        image_link_out,
        ["check"],
        2,
        "events/out.md:6: image.src: leads out of the site folder, through a link (got 'media/out.png')",
    ),
    (
        "a local image path going up out of the site",
        write(
            "events/up.md",
            "---\ntitle: T\npublished: 2018-02-09T18:00:00Z\nsummary: s\nimage:\n  src: ../x.jpg\n  alt: a\n---\n",
        ),
        ["check"],
        2,
        "events/up.md:6: image.src: is neither an http(s) URL nor a file in the site (got '../x.jpg')",
    ),
]


def replace(name: str, old: str, new: str) -> Spoil:
    """Replace `old` (which must be there) with `new` in the site file `name`."""

    def spoil(site: Path) -> None:
        text = (site / name).read_text(encoding="utf-8")
        assert old in text
        (site / name).write_text(text.replace(old, new), encoding="utf-8")

    return spoil


MAILDIR = 'url = "maildir:outbox/mail"'
CASES += [
    (
        "check: a bad [email] url",
        replace("publisher.toml", MAILDIR, 'url = "bogus://x"'),
        ["check"],
        2,
        "publisher.toml:1: email.url: has an unknown scheme bogus: (use maildir:PATH, smtp://[user@]host:port, "
        "smtp+starttls://[user@]host:port or smtps://[user@]host:port)",
    ),
    (
        "check: a missing DKIM key file",
        replace(
            "publisher.toml", MAILDIR, f'{MAILDIR}\ndkim_selector = "s"\ndkim_domain = "d.org"\ndkim_key = "k.pem"'
        ),
        ["check"],
        2,
        "publisher.toml:1: email.dkim_key: cannot read the key file (No such file or directory)",
    ),
    (
        "check: a Mastodon instance that is not https",
        replace("publisher.toml", "[email]", '[mastodon]\ninstance = "http://mastodon.example.org"\n\n[email]'),
        ["check"],
        2,
        "publisher.toml:24: mastodon.instance: is not an https URL (got 'http://mastodon.example.org')",
    ),
    (
        "check: a Bluesky service that is not an URL",
        replace("publisher.toml", "[email]", '[bluesky]\nservice = "bsky.example.org"\n\n[email]'),
        ["check"],
        2,
        "publisher.toml:24: bluesky.service: is not an https URL (got 'bsky.example.org')",
    ),
    (
        "check: a logo that is neither a URL nor a site file",
        replace("publisher.toml", 'author = "Cepei communications team"', 'author = "C"\nlogo = "javascript:x()"'),
        ["check"],
        2,
        "publisher.toml:10: site.logo: is neither an http(s) URL nor a file in the site (got 'javascript:x()')",
    ),
    (
        "check: a logo file that is not there",
        replace("publisher.toml", 'author = "Cepei communications team"', 'author = "C"\nlogo = "media/logo.png"'),
        ["check"],
        2,
        "publisher.toml:10: site.logo: is neither an http(s) URL nor a file in the site (got 'media/logo.png')",
    ),
]


def test_run_refuses_a_mastodon_instance_that_is_not_https(example_site: Path) -> None:
    replace("publisher.toml", "[email]", '[mastodon]\ninstance = "http://mastodon.example.org"\n\n[email]')(
        example_site
    )
    result = CliRunner(env={"PUBLISHER_MASTODON_TOKEN": "t"}).invoke(
        cli, ["--site", str(example_site), "run", "--once", "--now", "2018-02-09T20:00:00+00:00"]
    )
    assert "Traceback" not in result.output and result.exit_code == 2, result.output
    assert "publisher.toml:24: mastodon.instance: is not an https URL" in result.stderr


def test_an_unquoted_hash_in_a_title_is_a_warning_with_its_line(example_site: Path) -> None:
    text = "---\ntitle: C# for beginners # part 1\npublished: 2018-02-09T18:00:00Z\nsummary: 'a # b'\n---\nBody.\n"
    (example_site / "events" / "hash.md").write_text(text, encoding="utf-8")
    result = publisher("--site", str(example_site), "check")
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if "events/hash.md" in line]
    assert warnings == [
        "warning: events/hash.md:2: title: an unquoted ' #' starts a YAML comment: it reads as 'C# for beginners'; "
        "put the title in quotes"
    ]


def test_a_byte_order_mark_is_not_part_of_a_record(example_site: Path) -> None:
    text = RECORD.format(published="2018-02-09T18:00:00Z").replace("title: T", "title: With a BOM")
    (example_site / "events" / "bom.md").write_bytes(b"\xef\xbb\xbf" + text.encode())
    data = json.loads(publisher("--site", str(example_site), "--json", "check").stdout)
    assert data["ok"] is True
    built = publisher("--site", str(example_site), "--json", "build", "--now", "2018-04-01T00:00:00+00:00")
    assert "With a BOM" in (example_site / "feeds" / "atom.xml").read_text(encoding="utf-8") and built.exit_code == 0


def test_an_import_with_bad_rows_keeps_and_counts_the_good_ones(example_site: Path) -> None:
    (example_site / "people.csv").write_text("email,lists\nana@example.org,news\nbo@example.org,nwes\n")
    result = publisher("--site", str(example_site), "subscribers", "import", str(example_site / "people.csv"))
    assert result.exit_code == 2
    assert result.stdout.splitlines()[-1].startswith("1 added, ")
    listed = publisher("--site", str(example_site), "subscribers", "list").stdout
    assert "ana@example.org" in listed and "bo@example.org" not in listed


def test_serve_on_a_port_in_use_says_so(example_site: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = publisher("--site", str(example_site), "serve", "--port", str(port))
    assert result.exit_code == 2
    assert (
        result.stderr.splitlines()[0]
        == f"command line:1: --port: cannot listen on 127.0.0.1:{port} (Address already in use)"
    )


@pytest.mark.parametrize(("spoil", "args", "code", "line"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_answered_with_its_place(
    example_site: Path, spoil: Spoil, args: list[str], code: int, line: str
) -> None:
    spoil(example_site)
    given = [a.format(site=example_site) for a in args]
    if not any(a.startswith("--site") for a in given):
        given = ["--site", str(example_site), *given]
    result = publisher(*given)
    assert result.exit_code == code, result.output
    when_line = config_line(example_site, 'when = "published + 100000') if "{when_line}" in line else 0
    queue_line = config_line(example_site, 'url = "gopher://') if "{queue_line}" in line else 0
    expected = line.format(site=example_site, when_line=when_line, queue_line=queue_line)
    assert result.stderr.splitlines()[0] == expected


def chmod(name: str, mode: int, *, make: str | None = None) -> Spoil:
    """Make `name` (a site path; created as a folder, or as the file `make` names) have permission bits `mode`."""

    def spoil(site: Path) -> None:
        path = site / name
        if make == "folder":
            path.mkdir(exist_ok=True)
        elif make == "file":
            path.write_text("", encoding="utf-8")
        path.chmod(mode)

    return spoil


def database_read_only(site: Path) -> None:
    assert publisher("--site", str(site), "plan").exit_code == 0  # the database is made
    (site / ".publisher" / "publisher.db").chmod(0o444)


# Each run in a child process as root without CAP_DAC_OVERRIDE: permission bits then hold for root too.
PERMISSION_CASES: list[tuple[str, Spoil, list[str], int, str]] = [
    (
        "publisher.toml unreadable",
        chmod("publisher.toml", 0o000),
        ["check"],
        2,
        "publisher.toml:1: file: cannot be read (Permission denied)",
    ),
    (
        "events/ unreadable",
        chmod("events", 0o000),
        ["check"],
        2,
        "{site}/events:1: folder: cannot be read (Permission denied)",
    ),
    (
        "a site root that cannot be written",
        chmod(".", 0o555),
        ["build"],
        1,
        "Error: cannot write {site}/feeds (Permission denied)",
    ),
    (
        "an output folder that cannot be written",
        chmod("out", 0o555, make="folder"),
        ["build", "--out", "{site}/out"],
        1,
        "Error: cannot write {site}/out/feeds (Permission denied)",
    ),
    (
        "build --out in a place that cannot be made",
        chmod("file", 0o644, make="file"),
        ["build", "--out", "{site}/file/out"],
        2,
        "command line:1: --out: cannot be made (Not a directory): {site}/file/out",
    ),
    (
        "build --out under a folder that cannot be written",
        chmod(".", 0o555),
        ["build", "--out", "{site}/out"],
        2,
        "command line:1: --out: cannot be made (Permission denied): {site}/out",
    ),
    (
        "a database folder that cannot be made",
        chmod(".", 0o555),
        ["plan"],
        1,
        "Error: database: cannot make its folder {site}/.publisher (Permission denied)",
    ),
    (
        "a read-only database",
        database_read_only,
        ["run", "--once", "--now", "2018-02-09T18:00:00+00:00"],
        1,
        "Error: the database sqlite:///{site}/.publisher/publisher.db is read-only: "
        "attempt to write a readonly database",
    ),
]


def without_dac_override(*args: str) -> subprocess.CompletedProcess[str]:
    """`publisher ARGS` in a child process whose capabilities cannot override file permissions."""
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*drop, sys.executable, "-m", "publisher", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("spoil", "args", "code", "line"), [case[1:] for case in PERMISSION_CASES], ids=[c[0] for c in PERMISSION_CASES]
)
def test_a_permission_denied_is_answered_with_its_place(
    example_site: Path, spoil: Spoil, args: list[str], code: int, line: str
) -> None:
    spoil(example_site)
    site = str(example_site.resolve())
    try:
        result = without_dac_override("--site", site, *[a.format(site=site) for a in args])
    finally:
        for path in (example_site, *example_site.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)  # so that pytest can remove it
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    assert result.stderr.splitlines()[0] == line.format(site=site)


def test_a_cache_that_cannot_be_written_does_not_stop_check(example_site: Path) -> None:
    example_site.chmod(0o555)
    try:
        result = without_dac_override("--site", str(example_site), "check")
    finally:
        example_site.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ") and not (example_site / ".publisher").exists()


@pytest.fixture(params=DATABASES)
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield from database_environment(request.param, tmp_path)


def test_control_characters_in_csv_rows_are_refused_by_line_and_the_good_rows_kept(
    example_site: Path, database_env: dict[str, str]
) -> None:
    csv_file = example_site / "people.csv"
    csv_file.write_bytes(
        b"email,name,lists\nana@example.org,Ana,news\nbo@example.org,B\x00o,news\n"
        b"c\x00y@example.org,Cy,news\ndi@example.org,Di,ne\x07ws\neve@example.org,Eve,weekly\n"
    )
    result = CliRunner(env=database_env).invoke(
        cli, ["--site", str(example_site), "subscribers", "import", str(csv_file)]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:3] == [
        f"{csv_file}:3: name: contains a control character (U+0000); remove it",
        f"{csv_file}:4: email: contains a control character (U+0000); remove it",
        f"{csv_file}:5: lists: contains a control character (U+0007); remove it",
    ]
    assert result.stdout.splitlines()[-1] == "2 added, 0 updated, 0 unchanged, 0 left unsubscribed, 3 bad rows"
    listed = CliRunner(env=database_env).invoke(cli, ["--site", str(example_site), "subscribers", "list"]).stdout
    assert "ana@example.org" in listed and "eve@example.org" in listed and "\x00" not in listed


@pytest.mark.parametrize(
    ("args", "field", "code"),
    [
        (["--name", "Ana\x01"], "name", "U+0001"),
        (["--name", "Ana\x00B"], "name", "U+0000"),
    ],
)
def test_subscribers_add_refuses_control_characters(example_site: Path, args: list[str], field: str, code: str) -> None:
    result = publisher("--site", str(example_site), "subscribers", "add", "ana@example.org", *args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"command line:1: {field}: contains a control character ({code}); remove it"
    assert "ana@example.org" not in publisher("--site", str(example_site), "subscribers", "list").stdout


def test_no_control_character_reaches_the_store_through_the_library(tmp_path: Path) -> None:
    from publisher.audience import subscribers
    from publisher.store.dispatches import open_store

    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        now = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
        for email, name, lists in [
            ("a\x00b@example.org", None, ["news"]),
            ("ab@example.org", "A\x7fB", ["news"]),
            ("ab@example.org", "A\x00B", ["news"]),
            ("ab@example.org", "AB", ["ne\x1bws"]),
        ]:
            with pytest.raises(InvalidInput, match="contains a control character"):
                subscribers.add(store, email, name=name, lists=lists, now=now, source="web", status="pending")
        assert subscribers.list_subscribers(store) == []
        folded = subscribers.add(store, "ab@example.org", name="A\r\n\tB", now=now, source="web")
        assert folded.name == "A B"  # line breaks and tabs in a name fold into one space, as the web form does
    finally:
        store.close()


def test_plan_names_a_bad_rules_own_line_as_check_does(example_site: Path) -> None:
    append("publisher.toml", '\n[[timeline]]\nwhen = "published + 3 fortnights"\nchannel = "mastodon"\n')(example_site)
    line = config_line(example_site, 'when = "published + 3 fortnights"')
    answers = [publisher("--site", str(example_site), command).stderr.splitlines()[0] for command in ("check", "plan")]
    assert answers[0] == answers[1]
    assert answers[1].startswith(f"publisher.toml:{line}: timeline.5.when: is 'published', 'starts' or 'ends'")
