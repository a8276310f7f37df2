"""Email dispatch end to end: `publisher run --once` against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from publisher.audience import subscribers
from publisher.audience.unsubscribe import verify_token
from publisher.render.email import mjml_compiles
from tests import store_support
from tests.dispatch_support import (
    NEWS_RULE,
    PARIS,
    PARIS_DUE,
    SECRET,
    add_people,
    at,
    command,
    configure,
    environment,
    parsed,
    parts,
    plan_json,
    readers,
    store_of,
)
from tests.smtp_support import DROP_AFTER_DATA, DROP_MID_DATA, MailServer

NEWS_RULE_REVIEWED = NEWS_RULE + "review = true\n"
SOON = PARIS_DUE + dt.timedelta(minutes=30)
LATER = SOON + dt.timedelta(minutes=20)  # past any first retry (backoff at most 30 s), within the 1-hour budget
HOST = "cepei.example.org"


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


@pytest.fixture(params=store_support.DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield from store_support.database_environment(request.param, tmp_path)


def news_dispatch(site: Path, env: dict[str, str], now: dt.datetime = SOON) -> dict[str, object]:
    """The plan line of the Paris record's newsletter."""
    lines = [line for line in plan_json(site, env, now).values() if line["channel"] == "email"]
    return next(line for line in lines if line["records"] == [PARIS])


def run_once(site: Path, env: dict[str, str], now: dt.datetime = SOON) -> str:
    result = command(site, env, "run", "--once", "--now", at(now))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def deliveries(site: Path, env: dict[str, str], dispatch_id: str) -> dict[str, tuple[str, str | None]]:
    store = store_of(site, env)
    try:
        return {row.target: (row.state, row.last_reply) for row in store.deliveries(dispatch_id)}
    finally:
        store.close()


def test_a_run_sends_to_every_active_subscriber_once_and_the_next_run_sends_nothing(
    example_site: Path, server: MailServer, database: dict[str, str]
) -> None:
    configure(example_site)
    env = environment(server, **database)
    news = add_people(example_site, env, readers(6))
    add_people(example_site, env, ["weekly.only@example.org"], lists=["weekly"])
    add_people(example_site, env, ["gone@example.org"])
    store = store_of(example_site, env)
    subscribers.remove(store, "gone@example.org", SOON - dt.timedelta(days=1))
    store.close()

    first = run_once(example_site, env)
    assert server.per_recipient() == dict.fromkeys(news, 1)
    assert "6 messages sent" in first

    second = run_once(example_site, env, SOON + dt.timedelta(minutes=5))
    assert server.per_recipient() == dict.fromkeys(news, 1)
    assert second.startswith("0 dispatches")

    line = news_dispatch(example_site, env)
    assert line["state"] == "sent"
    assert line["recipients"] == 6
    counts = line["counts"]
    assert isinstance(counts, dict) and counts["sent"] == 6 and sum(counts.values()) == 6


def test_a_451_recipient_waits_for_its_backoff_and_gets_it_on_a_later_run_exactly_once(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site)
    env = environment(server)
    people = add_people(example_site, env, readers(4))
    slow = people[1]
    server.script(slow, "451 4.7.1 Try again later")
    run_once(example_site, env)
    assert server.per_recipient() == {address: 1 for address in people if address != slow}
    line = news_dispatch(example_site, env)
    assert line["state"] == "partly_sent"
    assert "next attempt at" in str(line["note"])
    state, reply = deliveries(example_site, env, str(line["id"]))[slow]
    assert state == "failed_temporary" and reply is not None and "451" in reply

    run_once(example_site, env, SOON + dt.timedelta(seconds=1))  # before its backoff is over: left alone
    assert server.count(slow) == 0

    run_once(example_site, env, LATER)
    assert server.per_recipient() == dict.fromkeys(people, 1)
    assert news_dispatch(example_site, env, LATER)["state"] == "sent"
    assert server.attempts[slow] == 2


def test_a_550_recipient_fails_for_good_and_bounces_while_the_others_are_sent(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site)
    env = environment(server)
    people = add_people(example_site, env, readers(4))
    bad = people[2]
    server.always(bad, "550 5.1.1 No such user")
    run_once(example_site, env)
    assert server.per_recipient() == {address: 1 for address in people if address != bad}
    line = news_dispatch(example_site, env)
    assert line["state"] == "partly_sent"
    assert "next attempt" not in str(line["note"])  # nothing left to retry
    state, reply = deliveries(example_site, env, str(line["id"]))[bad]
    assert state == "failed_permanent" and reply is not None and reply.startswith("550")
    store = store_of(example_site, env)
    assert subscribers.get(store, bad).status == "bounced"  # type: ignore[union-attr]
    store.close()
    run_once(example_site, env, LATER)
    assert server.attempts[bad] == 1


def test_a_connection_dropped_mid_data_is_retried_later(example_site: Path, server: MailServer) -> None:
    configure(example_site)
    env = environment(server)
    people = add_people(example_site, env, readers(3))
    cut = people[0]
    server.script(cut, DROP_MID_DATA, at="data")
    run_once(example_site, env)
    assert server.count(cut) == 0  # the server kept nothing of the cut message
    line = news_dispatch(example_site, env)
    state, reply = deliveries(example_site, env, str(line["id"]))[cut]
    assert state == "failed_temporary" and reply is not None and "connection" in reply
    run_once(example_site, env, LATER)
    assert server.per_recipient() == dict.fromkeys(people, 1)


def test_a_rejected_login_stops_the_dispatch_with_one_error_and_spends_nobody(example_site: Path) -> None:
    configure(example_site)
    with MailServer(reject_auth=True) as server:
        env = environment(None, PUBLISHER_EMAIL_URL=server.url("news"), PUBLISHER_SMTP_PASSWORD="wrong")
        add_people(example_site, env, readers(5))
        result = command(example_site, env, "run", "--once", "--now", at(SOON))
        assert result.exit_code == 1
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1, result.stderr
        assert errors[0].startswith("Error: dispatch ") and "refused the login for user 'news'" in errors[0]
        assert "wrong" not in result.stderr
        assert server.received == [] and server.connections_opened == 1  # one login tried, not one per recipient
    line = news_dispatch(example_site, env)
    assert line["state"] == "failed"
    counts = line["counts"]
    assert isinstance(counts, dict) and counts["pending"] == 5 and sum(counts.values()) == 5


def test_resend_failed_retries_only_the_failed(example_site: Path, server: MailServer) -> None:
    configure(example_site)
    env = environment(server)
    people = add_people(example_site, env, readers(5))
    slow, bad = people[0], people[1]
    server.always(slow, "451 4.3.0 Mailbox busy")
    server.always(bad, "550 5.1.1 No such user")
    run_once(example_site, env)
    dispatch_id = str(news_dispatch(example_site, env)["id"])
    server.always(slow, "250 OK")  # the mailbox is free again

    result = command(example_site, env, "resend", dispatch_id, "--failed", "--now", at(SOON + dt.timedelta(minutes=1)))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("2 failed recipients retried")
    assert server.per_recipient() == {address: 1 for address in people if address != bad}
    state, reply = deliveries(example_site, env, dispatch_id)[bad]
    assert state == "failed_permanent" and reply == "not sent: the subscriber is bounced"
    assert server.attempts[bad] == 1


def test_every_message_carries_the_list_headers_and_its_own_unsubscribe_link(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site)
    env = environment(server)
    people = add_people(example_site, env, readers(3))
    twice = people[0]
    server.script(twice, DROP_AFTER_DATA, at="data")  # taken, but the reply is lost: sent again later
    run_once(example_site, env)
    run_once(example_site, env, LATER)
    dispatch_id = str(news_dispatch(example_site, env)["id"])
    ids = []
    for address in people:
        for data in server.messages(address):
            head = data.split(b"\r\n\r\n", 1)[0]
            assert re.search(rb"^List-Unsubscribe: <https://cepei\.example\.org/unsubscribe/", head, re.M)
            assert b"=?" not in head  # nothing had to be encoded: every value is plain ASCII
            message = parsed(data)
            unsubscribe = str(message["List-Unsubscribe"])
            url, mailto = re.fullmatch(r"<(https://[^>]+)>,\s*<(mailto:[^>]+)>", unsubscribe).groups()  # type: ignore[union-attr]
            assert verify_token(SECRET, url.rsplit("/", 1)[1]) == (address, "news")
            assert mailto == "mailto:comms@cepei.example.org?subject=unsubscribe"
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert message["List-Id"] == f"<news.{HOST}>"
            assert message["To"] == address and message["From"] == "Cepei <news@cepei.example.org>"
            sent_at = parsedate_to_datetime(str(message["Date"]))
            assert SOON <= sent_at <= LATER + dt.timedelta(minutes=1)
            text, html = parts(message)
            assert url in text and url in html
            greeting = address.split("@")[0].title()
            assert greeting in text and greeting in html
            ids.append((address, str(message["Message-ID"])))
    assert [address for address, _ in ids].count(twice) == 2
    assert len({ident for address, ident in ids if address == twice}) == 1  # a repeat carries the same Message-ID
    assert len({ident for _, ident in ids}) == len(people)
    assert all(ident.startswith(f"<{dispatch_id}.") and ident.endswith(f"@{HOST}>") for _, ident in ids)


def test_no_header_can_be_injected_through_a_subscriber_name(example_site: Path, server: MailServer) -> None:
    configure(example_site)
    env = environment(server)
    from publisher.audience.rows import Incoming

    store = store_of(example_site, env)
    evil = Incoming("eve@example.org", "Eve\r\nBcc: mallory@example.org", None, ("news",))
    subscribers.save(store, [evil], SOON - dt.timedelta(days=1), "test")
    store.close()
    run_once(example_site, env)
    (data,) = server.messages("eve@example.org")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head and b"mallory" not in head
    for line in head.split(b"\r\n"):  # every line starts a header or continues one
        assert re.match(rb"^([!-9;-~]+: |[ \t])", line), line
    text, _ = parts(parsed(data))
    assert "Eve Bcc: mallory@example.org" in text  # the name, on one line, in the body only
    assert server.per_recipient() == {"eve@example.org": 1}


def test_mjml_is_compiled_once_per_dispatch_whatever_the_number_of_recipients(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site)
    env = environment(server)
    people = add_people(example_site, env, readers(60))
    before = mjml_compiles()
    run_once(example_site, env)
    assert mjml_compiles() - before == 1
    assert len(server.received) == len(people)


@pytest.mark.parametrize(
    ("grace", "late", "sent"),
    [
        (None, dt.timedelta(hours=5), True),
        (None, dt.timedelta(hours=7), False),
        ('"30 minutes"', dt.timedelta(minutes=20), True),
        ('"30 minutes"', dt.timedelta(minutes=45), False),
    ],
)
def test_a_dispatch_later_than_its_grace_is_skipped_and_plan_says_why(
    example_site: Path, server: MailServer, grace: str | None, late: dt.timedelta, sent: bool
) -> None:
    configure(example_site, extra=f"[scheduler]\ngrace = {grace}\n" if grace else "")
    env = environment(server)
    add_people(example_site, env, readers(2))
    now = PARIS_DUE + late
    shown = news_dispatch(example_site, env, now)
    run_once(example_site, env, now)
    line = news_dispatch(example_site, env, now)
    if sent:
        assert (shown["state"], line["state"], len(server.received)) == ("due", "sent", 2)
        return
    limit = "6 hours" if grace is None else "30 minutes"
    why = f"late by {int(late.total_seconds() // 3600) or int(late.total_seconds() // 60)}"
    for one in (shown, line):  # what `plan` says before the run, and after it
        assert one["state"] == "skipped"
        assert str(one["note"]).startswith(why) and str(one["note"]).endswith(f"past the grace of {limit}")
    assert server.received == []


WEEKLY = """
[[timeline]]
cron = "0 9 * * mon"
timezone = "America/Bogota"
channel = "email"
list = "weekly"
"""
EXTRA_RECORD = """---
title: Workshop notes on open data portals
published: 2018-03-28T10:00:00-05:00
summary: What we heard at the workshop.
---
Notes from the workshop.
"""


def test_the_weekly_digest_sends_what_was_published_since_the_last_one_and_skips_an_empty_week(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site, WEEKLY)
    (example_site / "events" / "2018-03-28-workshop.md").write_text(EXTRA_RECORD, encoding="utf-8")
    env = environment(server)
    people = add_people(example_site, env, readers(2), lists=["weekly"])
    monday = dt.datetime(2018, 4, 2, 14, 10, tzinfo=dt.UTC)  # 09:10 in Bogotá
    run_once(example_site, env, monday)
    assert server.per_recipient() == dict.fromkeys(people, 1)
    text, _ = parts(parsed(server.messages(people[0])[0]))
    assert "Workshop notes on open data portals" in text
    assert "Call for papers: data for development" in text
    assert "informe sobre la implementación" not in text  # published 15 March: the digest of 19 March had it

    next_monday = monday + dt.timedelta(days=7)
    run_once(example_site, env, next_monday)
    assert server.per_recipient() == dict.fromkeys(people, 1)
    digest = next(
        line for line in plan_json(example_site, env, next_monday).values() if line["due"].startswith("2018-04-09")
    )
    assert digest["state"] == "skipped"
    assert digest["note"] == "no new records since 2018-04-02T09:00-05:00"
    assert digest["records"] == []


def test_a_test_send_goes_to_one_address_marked_as_a_test_and_leaves_the_ledger_alone(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site)
    env = environment(server)
    add_people(example_site, env, readers(3))
    result = command(example_site, env, "send", PARIS, "--to", "me@example.org", "--now", at(SOON))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert server.per_recipient() == {"me@example.org": 1}
    message = parsed(server.messages("me@example.org")[0])
    assert str(message["Subject"]).startswith("[TEST] Cepei met in Paris")
    store = store_of(example_site, env)
    try:
        assert store.list_dispatches() == []
    finally:
        store.close()


def test_a_test_send_to_something_that_is_no_address_is_refused_and_nothing_is_sent(
    example_site: Path, server: MailServer
) -> None:
    result = command(example_site, environment(server), "send", PARIS, "--to", "not-an-address")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith("command line:1: --to: An email address must have an @-sign")
    assert server.received == []


def test_without_an_smtp_url_mail_goes_to_the_outbox_maildir_and_plan_says_so(example_site: Path) -> None:
    configure(example_site)
    env: dict[str, str] = {}  # no URL, no secret: nothing can leave the machine
    people = add_people(example_site, env, readers(3))
    shown = command(example_site, env, "plan", "--now", at(SOON))
    assert "outbox only: mail goes to maildir:outbox/mail (no SMTP URL set)" in shown.stdout
    run_once(example_site, env)
    files = sorted((example_site / "outbox" / "mail" / "new").iterdir())
    assert len(files) == 3
    assert sorted(str(parsed(path.read_bytes())["To"]) for path in files) == people
    assert news_dispatch(example_site, env)["state"] == "sent"


def test_sending_for_real_without_the_signing_secret_is_bad_input(example_site: Path, server: MailServer) -> None:
    configure(example_site)
    env = {"PUBLISHER_EMAIL_URL": server.url()}
    add_people(example_site, env, readers(2))
    result = command(example_site, env, "run", "--once", "--now", at(SOON))
    assert result.exit_code == 2
    assert "environment:1: PUBLISHER_SECRET: is not set" in result.stderr
    assert server.received == []
    assert news_dispatch(example_site, env)["state"] == "due"  # untouched: it goes once the secret is set
    run_once(example_site, environment(server))
    assert len(server.received) == 2


def test_a_rule_with_review_waits_for_approval(example_site: Path, server: MailServer) -> None:
    configure(example_site, NEWS_RULE_REVIEWED)
    env = environment(server)
    add_people(example_site, env, readers(2))
    line = news_dispatch(example_site, env)
    assert line["state"] == "waiting_review"
    run_once(example_site, env)
    assert server.received == []
    approved = command(example_site, env, "approve", str(line["id"]), "--now", at(SOON))
    assert approved.exit_code == 0, approved.stderr
    run_once(example_site, env, SOON + dt.timedelta(minutes=1))
    assert len(server.received) == 2
    assert news_dispatch(example_site, env)["state"] == "sent"


FEEDS_RULE = """
[[timeline]]
when = "published"
channel = "feeds"
"""


def test_the_feeds_rule_publishes_the_feeds_as_of_its_time(example_site: Path) -> None:
    configure(example_site, FEEDS_RULE)
    run_once(example_site, {})
    atom = (example_site / "feeds" / "atom.xml").read_text(encoding="utf-8")
    assert "<title>Cepei met in Paris" in atom
    assert "Agenda 2030" not in atom  # published on 15 March: not yet
    (line,) = [one for one in plan_json(example_site, {}, SOON).values() if one["records"] == [PARIS]]
    assert line["state"] == "sent" and line["channel"] == "feeds"


def test_the_feeds_rule_and_build_write_the_same_feeds_for_the_same_time(example_site: Path) -> None:
    configure(example_site, FEEDS_RULE)
    may = dt.datetime(2018, 5, 2, 14, 30, tzinfo=dt.UTC)  # the Bogotá forum, with its image file, just out
    run_once(example_site, {}, may)
    by_dispatch = {p: p.read_bytes() for p in sorted((example_site / "feeds").rglob("*.xml"))}
    assert b"forum-bogota.png" in by_dispatch[example_site / "feeds" / "atom.xml"]
    built = command(example_site, {}, "--json", "build", "--now", at(may))
    assert built.exit_code == 0, built.stderr
    assert [f["path"] for f in json.loads(built.stdout)["files"] if f["kind"] == "feed" and f["changed"]] == []
    assert {p: p.read_bytes() for p in sorted((example_site / "feeds").rglob("*.xml"))} == by_dispatch


def test_temporary_failures_are_not_retried_past_the_retry_budget(example_site: Path, server: MailServer) -> None:
    configure(example_site, email="retry_budget = 600\n")
    env = environment(server)
    people = add_people(example_site, env, readers(3))
    busy = people[0]
    server.always(busy, "451 4.3.0 Mailbox busy")
    run_once(example_site, env)
    assert server.attempts[busy] == 1
    line = news_dispatch(example_site, env)
    assert line["state"] == "partly_sent" and "next attempt at" in str(line["note"])

    run_once(example_site, env, SOON + dt.timedelta(minutes=20))  # 10 minutes past the budget: not tried again
    assert server.attempts[busy] == 1
    line = news_dispatch(example_site, env, SOON + dt.timedelta(minutes=20))
    assert line["state"] == "partly_sent"
    assert str(line["note"]) == "retries stopped after the retry budget of 10 minutes"
    state, reply = deliveries(example_site, env, str(line["id"]))[busy]
    assert state == "failed_permanent"
    assert reply == "gave up after the retry budget of 10 minutes (last reply: 451 4.3.0 Mailbox busy)"
