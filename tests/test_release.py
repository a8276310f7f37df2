"""Lateness per channel: feeds are never too late; a late email is skipped, and `publisher release` sends it anyway."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli.main import cli
from tests.dispatch_support import (
    NEWS_RULE,
    PARIS,
    PARIS_DUE,
    add_people,
    at,
    command,
    configure,
    environment,
    full_environment,
    plan_json,
    readers,
)
from tests.smtp_support import MailServer

FEEDS_RULE = """
[[timeline]]
when = "published"
channel = "feeds"
"""
LATE = PARIS_DUE + dt.timedelta(hours=7)  # the default grace is 6 hours


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


def line_of(site: Path, env: dict[str, str], channel: str, now: dt.datetime = LATE) -> dict[str, object]:
    return next(line for line in plan_json(site, env, now).values() if line["channel"] == channel)


def release(site: Path, env: dict[str, str], *args: str, answer: str | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(cli, ["--site", str(site), "release", *args], env=full_environment(env), input=answer)


def test_a_feeds_dispatch_is_never_too_late(example_site: Path, server: MailServer) -> None:
    configure(example_site, FEEDS_RULE + NEWS_RULE)
    env = environment(server)
    add_people(example_site, env, readers(1))
    late = PARIS_DUE + dt.timedelta(days=3)
    assert (line_of(example_site, env, "feeds", late)["state"], line_of(example_site, env, "email", late)["state"]) == (
        "due",
        "skipped",
    )
    result = command(example_site, env, "run", "--once", "--now", at(late))
    assert result.exit_code == 0, result.output
    assert line_of(example_site, env, "feeds", late)["state"] == "sent"
    assert line_of(example_site, env, "email", late)["state"] == "skipped"
    assert "Cepei met in Paris" in (example_site / "feeds" / "atom.xml").read_text(encoding="utf-8")


def test_plan_says_how_to_release_a_late_dispatch_and_release_sends_it(example_site: Path, server: MailServer) -> None:
    configure(example_site)
    env = environment(server)
    add_people(example_site, env, readers(2))
    assert command(example_site, env, "run", "--once", "--now", at(LATE)).exit_code == 0
    line = line_of(example_site, env, "email")
    dispatch = str(line["id"])
    assert (line["state"], line["release"]) == ("skipped", f"publisher release {dispatch}")
    human = command(example_site, env, "plan", "--now", at(LATE)).stdout
    assert f"    release it with: publisher release {dispatch}\n" in human

    declined = release(example_site, env, dispatch, "--now", at(LATE), answer="n\n")
    assert declined.exit_code == 1
    assert "is late by 7 hours, past the grace of 6 hours. Send it anyway?" in declined.output
    assert line_of(example_site, env, "email")["state"] == "skipped"

    later = LATE + dt.timedelta(minutes=5)
    accepted = release(example_site, env, dispatch, "--now", at(later), answer="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert f"released {dispatch} (email news, {PARIS}): it goes out at the next run" in accepted.stdout
    assert line_of(example_site, env, "email", later)["state"] == "due"
    assert server.received == []
    assert command(example_site, env, "run", "--once", "--now", at(later)).exit_code == 0
    assert len(server.received) == 2
    assert line_of(example_site, env, "email", later)["state"] == "sent"


def test_release_with_yes_before_any_run_asks_nothing(example_site: Path, server: MailServer) -> None:
    configure(example_site)
    env = environment(server)
    add_people(example_site, env, readers(1))
    dispatch = str(line_of(example_site, env, "email")["id"])
    result = release(example_site, env, dispatch, "--yes", "--now", at(LATE))
    assert (result.exit_code, result.stderr) == (0, "")
    assert command(example_site, env, "run", "--once", "--now", at(LATE)).exit_code == 0
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("now", "dispatch", "message"),
    [
        (PARIS_DUE + dt.timedelta(hours=1), None, "{id} is planned, not skipped as too late"),
        (LATE, "0123456789abcdef", "no dispatch '0123456789abcdef' in the plan (see `publisher plan`)"),
    ],
)
def test_release_refuses_what_is_not_skipped_as_too_late(
    example_site: Path, server: MailServer, now: dt.datetime, dispatch: str | None, message: str
) -> None:
    configure(example_site)
    env = environment(server)
    found = dispatch or str(line_of(example_site, env, "email", now)["id"])
    result = release(example_site, env, found, "--yes", "--now", at(now))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "command line:1: DISPATCH: " + message.format(id=found)
