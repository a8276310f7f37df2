"""Small truths in what publisher prints: times labelled UTC are in UTC, the run counts posts, a test send is
new to the inbox every time."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dispatch_support import (
    PARIS,
    PARIS_DUE,
    add_people,
    at,
    command,
    configure,
    environment,
    parsed,
    plan_json,
    readers,
)
from tests.smtp_support import MailServer

BOGOTA = dt.timezone(dt.timedelta(hours=-5))


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


def test_the_retry_note_gives_utc_times_in_utc_when_now_has_another_offset(example_site: Path) -> None:
    configure(example_site)
    with MailServer() as gone:  # its port is closed once the block ends: every message has to wait
        env = environment(gone)
    add_people(example_site, env, readers(2))
    now = (PARIS_DUE + dt.timedelta(minutes=30)).astimezone(BOGOTA)
    result = command(example_site, env, "run", "--once", "--now", at(now))
    assert "Traceback" not in result.output
    line = next(v for v in plan_json(example_site, env, now).values() if v["channel"] == "email")
    found = re.search(r"next attempt at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", str(line["note"]))
    assert found is not None, line["note"]
    retry = dt.datetime.fromisoformat(found[1]).replace(tzinfo=dt.UTC)
    assert dt.timedelta(0) <= retry - now <= dt.timedelta(minutes=10)  # labelled -05:00 it would be 5 hours off


def test_the_run_summary_counts_posts_beside_messages(example_site: Path) -> None:
    configure(example_site, rules='[[timeline]]\nwhen = "published"\nchannel = "mastodon"\n')
    result = command(example_site, {}, "run", "--once", "--now", at(PARIS_DUE + dt.timedelta(minutes=5)))
    assert result.exit_code == 0, result.stderr
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("1 dispatches: 0 messages sent, 1 posts sent, 0 failed, 0 skipped"), summary
    assert list((example_site / "outbox" / "posts" / "mastodon").glob("*.json"))


def test_each_test_send_has_a_message_id_of_its_own(example_site: Path, server: MailServer) -> None:
    configure(example_site)
    env = environment(server)
    for _ in range(2):
        result = command(example_site, env, "send", PARIS, "--to", "me@example.org", "--now", at(PARIS_DUE))
        assert result.exit_code == 0, result.stderr
    first, second = (parsed(m)["Message-ID"] for m in server.messages("me@example.org"))
    assert first and second and first != second


def test_build_prints_counts_every_file_under_verbose_and_nothing_under_quiet(example_site: Path) -> None:
    now = ("--now", "2026-01-01T00:00:00+00:00")
    first = command(example_site, {}, "build", "--verbose", *now)
    assert first.exit_code == 0, first.stderr
    assert "wrote feeds/atom.xml" in first.stdout.splitlines()
    (example_site / "events" / "2018-06-01-webinar-cancelled.md").unlink()

    counted = command(example_site, {}, "build", *now)
    assert counted.exit_code == 0, counted.stderr
    lines = counted.stdout.splitlines()
    assert "wrote feeds/atom.xml" not in lines and not any(line.startswith("removed ") for line in lines)
    assert any(re.fullmatch(r"wrote \d+ files in feeds/", line) for line in lines), lines
    assert re.fullmatch(r"4 records → \d+ files written, \d+ unchanged, \d+ removed, in .*", lines[-1]), lines

    (example_site / "events" / "2018-05-21-high-level-forum-bogota.md").unlink()
    quiet = command(example_site, {}, "build", "--quiet", *now)
    assert (quiet.exit_code, quiet.stdout) == (0, "")
    assert not (example_site / "newsletters" / "2018-05-21-high-level-forum-bogota.html").exists()

    both = command(example_site, {}, "build", "--quiet", "--verbose")
    assert both.exit_code == 2
    assert "command line:1: --quiet: cannot be given with --verbose" in both.output


def test_the_outbox_lists_each_message_and_post_with_what_to_open(example_site: Path) -> None:
    assert command(example_site, {}, "outbox").stdout.strip() == "the outbox is empty"
    configure(example_site, rules='[[timeline]]\nwhen = "published"\nchannel = "mastodon"\n')
    assert command(example_site, {}, "run", "--once", "--now", at(PARIS_DUE + dt.timedelta(minutes=5))).exit_code == 0
    sent = command(example_site, {}, "send", PARIS, "--to", "reader@example.org")
    assert sent.exit_code == 0, sent.stderr

    listed = command(example_site, {}, "--json", "outbox")
    assert listed.exit_code == 0, listed.stderr
    entries = {e["kind"]: e for e in json.loads(listed.stdout)["entries"]}
    assert sorted(entries) == ["email", "mastodon"]
    mail = entries["email"]
    assert mail["to"] == "reader@example.org" and "Paris" in mail["subject"] and "[TEST]" in mail["subject"]
    assert Path(mail["path"]).parent.name == "new" and b"Subject:" in Path(mail["path"]).read_bytes()
    post = entries["mastodon"]
    assert Path(post["path"]).suffix == ".json" and post["subject"]
    text = command(example_site, {}, "outbox", "--limit", "1").stdout
    assert text.count("\n          /") == 1 and "… and 1 older (--limit)" in text
