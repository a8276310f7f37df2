"""Bounces and complaints read from the bounce mailbox (issue 14), on a real send and a real store."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import store_support
from tests.bounces_support import BOUNCES, SOON, bounce_site, drop, expected, fill, sent_issue, statuses
from tests.dispatch_support import at, command, environment, plan_json, readers
from tests.smtp_support import MailServer

AFTER = SOON + dt.timedelta(days=1)
NEXT_ISSUE = dt.datetime(2018, 3, 15, 15, 30, tzinfo=dt.UTC)  # the Agenda 2030 record, published 15:00 UTC
SAMPLES = sorted(path.name for path in (Path(__file__).parent / "reports").glob("*.eml"))
LETTER = (
    b"From: Bea <bea@example.net>\r\nTo: news@cepei.example.org\r\nSubject: Re: A newsletter\r\n"
    b"Message-ID: <letter.1@example.net>\r\n\r\nThanks! My old address bounced, user unknown; use this one.\r\n"
)
STATE = {"hard": "bounced", "soft": "active", "complaint": "complained"}


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


@pytest.fixture(params=store_support.DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield from store_support.database_environment(request.param, tmp_path)


def bounces(site: Path, env: dict[str, str], now: dt.datetime = AFTER) -> dict[str, int]:
    result = command(site, env, "--json", "bounces", "--now", at(now))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    done: dict[str, int] = json.loads(result.stdout)
    return done


def test_bounced_complained_and_soft_readers_and_the_next_issue(
    example_site: Path, server: MailServer, database: dict[str, str]
) -> None:
    box = bounce_site(example_site)
    env = environment(server, **database)
    ana, bo, cy, di = readers(4)
    ids = sent_issue(example_site, env, server, [ana, bo, cy, di])
    drop(box, fill("postfix_hard.eml", ana, ids[ana]))
    drop(box, fill("arf_yahoo.eml", bo, ids[bo]))
    drop(box, fill("gmail_soft.eml", cy, ids[cy]))
    letter = drop(box, LETTER)

    done = bounces(example_site, env)
    assert (done["reports"], done["bounced"], done["complained"], done["soft"], done["other"]) == (3, 1, 1, 1, 1)
    assert statuses(example_site, env, [ana, bo, cy, di]) == {
        ana: "bounced", bo: "complained", cy: "active", di: "active"
    }  # fmt: skip
    assert sorted(p.name for p in (box / "new").iterdir()) == [letter]  # the letter untouched, where it was
    assert (box / "new" / letter).read_bytes() == LETTER
    aside = sorted(p.name for p in (box / "cur").iterdir())
    assert len(aside) == 3 and all(name.endswith(":2,S") for name in aside)  # set aside, never deleted

    again = bounces(example_site, env)
    assert (again["reports"], again["other"]) == (0, 1)  # read once: only the letter is still new

    line = next(line for line in plan_json(example_site, env, AFTER).values() if line["channel"] == "email")
    assert line["feedback"] == "bounces 2 (50.00%), complaints 1 (25.00%): ALARM, complaints past 0.3 %"

    server.received.clear()
    result = command(example_site, env, "run", "--once", "--now", at(NEXT_ISSUE))
    assert result.exit_code == 0, result.output
    assert sorted(r.recipients[0] for r in server.received) == [cy, di]


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_providers_report_is_read_and_acted_on(example_site: Path, server: MailServer, sample: str) -> None:
    box = bounce_site(example_site)
    env = environment(server)
    ana, bo = readers(2)
    ids = sent_issue(example_site, env, server, [ana, bo])
    drop(box, fill(sample, ana, ids[ana]))
    kind, status = expected(sample)

    done = bounces(example_site, env)
    assert done["reports"] == 1 and done["unmatched"] == 0
    assert statuses(example_site, env, [ana, bo]) == {ana: STATE[kind], bo: "active"}
    from publisher.store.tables import feedback
    from tests.dispatch_support import store_of

    store = store_of(example_site, env)
    with store.read() as connection:
        rows = [tuple(row) for row in connection.execute(feedback.select().with_only_columns(
            feedback.c.target, feedback.c.kind, feedback.c.status, feedback.c.source))]  # fmt: skip
    store.close()
    assert rows == [(ana, kind, status, "mailbox")]


def test_malformed_stray_and_forged_reports_are_unmatched_and_change_nothing(
    example_site: Path, server: MailServer
) -> None:
    box = bounce_site(example_site)
    env = environment(server)
    ana, bo = readers(2)
    ids = sent_issue(example_site, env, server, [ana, bo])
    forged = fill("postfix_hard.eml", ana, "<d.0123456789abcdef@cepei.example.org>")  # names Ana, not our message
    never_mailed = fill("gmail_hard.eml", "zed@example.org", "<elsewhere.1@example.net>")
    other_dispatch = fill("arf_yahoo.eml", bo, ids[bo].replace("@", "x@"))
    malformed = (
        b"From: MAILER-DAEMON@example.org\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nAction: ??\r\n--b"
    )
    for data in (forged, never_mailed, other_dispatch, malformed):
        drop(box, data)

    done = bounces(example_site, env)
    assert (done["reports"], done["unmatched"], done["bounced"], done["complained"]) == (4, 4, 0, 0)
    assert statuses(example_site, env, [ana, bo]) == {ana: "active", bo: "active"}


def test_soft_bounces_bounce_once_the_limit_is_reached_within_the_window(
    example_site: Path, server: MailServer
) -> None:
    box = bounce_site(example_site, BOUNCES + "soft_limit = 2\nsoft_window = 7\n")
    env = environment(server)
    ana, bo = readers(2)
    ids = sent_issue(example_site, env, server, [ana, bo])
    drop(box, fill("postfix_delayed.eml", ana, ids[ana]))
    drop(box, fill("gmail_soft.eml", bo, ids[bo]))
    bounces(example_site, env, AFTER)
    drop(box, fill("gmail_soft.eml", ana, ids[ana]))  # the second for Ana, 6 days after her first
    bounces(example_site, env, AFTER + dt.timedelta(days=6))
    assert statuses(example_site, env, [ana, bo]) == {ana: "bounced", bo: "active"}
    drop(box, fill("gmail_soft.eml", bo, ids[bo]))  # the second for Bo, 8 days after his first: out of the window
    bounces(example_site, env, AFTER + dt.timedelta(days=8))
    assert statuses(example_site, env, [ana, bo]) == {ana: "bounced", bo: "active"}
    drop(box, fill("gmail_soft.eml", bo, ids[bo]))
    done = bounces(example_site, env, AFTER + dt.timedelta(days=9))
    assert done["bounced"] == 1 and statuses(example_site, env, [ana, bo]) == {ana: "bounced", bo: "bounced"}


def test_the_same_report_read_twice_counts_once(example_site: Path, server: MailServer) -> None:
    box = bounce_site(example_site)
    env = environment(server)
    (ana,) = readers(1)
    ids = sent_issue(example_site, env, server, [ana])
    report = fill("gmail_soft.eml", ana, ids[ana])
    drop(box, report)
    drop(box, report)  # the same report delivered twice (one Message-ID)
    done = bounces(example_site, env)
    assert (done["soft"], done["repeated"]) == (1, 1)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('mailbox = "pop3://x@host/INBOX"', "bounces.mailbox: is not 'maildir:PATH' or 'imaps://user@host/FOLDER'"),
        ('mailbox = "imaps://ana:secret@host/INBOX"', "bounces.mailbox: carries no password"),
        ("soft_limit = 0", "bounces.soft_limit: Input should be greater than or equal to 1"),
        ("soft_windw = 3", "bounces.soft_windw: unknown key (did you mean 'soft_window'?)"),
    ],
)
def test_bad_bounce_settings_are_refused_with_their_line_by_every_command(
    example_site: Path, setting: str, message: str
) -> None:
    bounce_site(example_site, "\n[bounces]\n" + setting + "\n")
    line = (example_site / "publisher.toml").read_text(encoding="utf-8").splitlines().index(setting) + 1
    for args in (["bounces"], ["check"], ["run", "--once"]):
        result = command(example_site, environment(), *args)
        assert result.exit_code == 2, (args, result.output)
        assert f"publisher.toml:{line}: {message}" in result.stderr


def test_a_mailbox_that_cannot_be_opened_is_one_error_line(example_site: Path) -> None:
    bounce_site(example_site, '\n[bounces]\nmailbox = "maildir:nowhere"\n')
    result = command(example_site, environment(), "bounces")
    assert result.exit_code == 1
    assert result.stderr == "Error: bounce mailbox nowhere: no Maildir there (no new/ folder)\n"


def test_each_tick_of_the_clock_reads_the_mailbox(example_site: Path, server: MailServer) -> None:
    box = bounce_site(example_site)
    env = environment(server)
    ana, bo = readers(2)
    ids = sent_issue(example_site, env, server, [ana, bo])
    drop(box, fill("microsoft_hard.eml", ana, ids[ana]))
    result = command(example_site, env, "run", "--once", "--now", at(AFTER))
    assert result.exit_code == 0, result.output
    assert statuses(example_site, env, [ana, bo]) == {ana: "bounced", bo: "active"}
    assert list((box / "new").iterdir()) == []


def test_a_mailbox_the_clock_cannot_open_is_one_error_line_and_the_run_goes_on(
    example_site: Path, server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    bounce_site(example_site, '\n[bounces]\nmailbox = "maildir:nowhere"\n')
    env = environment(server)
    (ana,) = readers(1)
    sent_issue(example_site, env, server, [ana])  # `run --once` with the mailbox missing: the issue still goes
    caplog.clear()
    result = command(example_site, env, "run", "--once", "--now", at(AFTER))
    assert result.exit_code == 0
    errors = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [("ERROR", "bounces not read: bounce mailbox nowhere: no Maildir there (no new/ folder)")]


@pytest.mark.parametrize(
    ("complaints", "ending"),
    [(0, "complaints 0 (0.00%)"), (1, "complaints 1 (0.10%)"), (2, "warning, complaints past 0.1 %"),
     (3, "warning, complaints past 0.1 %"), (4, "ALARM, complaints past 0.3 %")],
)  # fmt: skip
def test_complaint_rates_warn_past_a_tenth_of_a_percent_and_alarm_past_three_tenths(
    complaints: int, ending: str
) -> None:
    from publisher.audience.bounces import rates_note

    note = rates_note({"hard": 5, "complaint": complaints}, 1000)
    assert note is not None and note.startswith("bounces 5 (0.50%)") and note.endswith(ending)
    assert rates_note({}, 1000) is None


def test_a_verp_address_names_its_ledger_row_only_when_signed_with_our_secret() -> None:
    from publisher.audience.bounces import verp_address, verp_delivery

    address = verp_address("s3cret", 123456789, "cepei.example.org")
    local = address.rpartition("@")[0]
    assert local.startswith("bounces+") and len(local) <= 64  # RFC 5321's limit for a local part
    assert verp_delivery("s3cret", address) == 123456789
    assert verp_delivery("s3cret", f"<{address}>") == 123456789
    assert verp_delivery("other", address) is None
    assert verp_delivery("s3cret", address.replace("bounces+", "bounces+x")) is None
    assert verp_delivery("s3cret", "news@cepei.example.org") is None
