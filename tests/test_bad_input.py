"""Bad input, as a new user types it: each case gets its exit code and one `path:line: field: message` line.

One row a case: how the site is spoiled (or not), the command, the exit code, and the first line the
user reads on standard error. Never a traceback; nothing half-done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli.main import cli

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
    assert result.stderr.splitlines()[0] == line.format(site=example_site)


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
