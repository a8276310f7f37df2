"""VERP when sending (issue 14, ``[bounces] verp = true``): through a real SMTP server each recipient's MAIL FROM
is ``bounces+<signed ledger row>@domain`` while the message's bytes stay as they are without VERP, and a DSN
sent back to that address, quoting nothing of ours, marks that row's recipient bounced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.audience.bounces import verp_address, verp_delivery
from publisher.store.tables import deliveries
from tests.bounces_support import bounce_site, drop, sent_issue, statuses
from tests.dispatch_support import SECRET, at, command, environment, readers, store_of
from tests.smtp_support import MailServer
from tests.test_bounces import AFTER

VERP = '\n[bounces]\nmailbox = "maildir:bounces"\nverp = true\n'


def ledger_ids(site: Path, env: dict[str, str]) -> dict[str, int]:
    store = store_of(site, env)
    try:
        with store.read() as connection:
            return {row.target: row.id for row in connection.execute(sa.select(deliveries.c.target, deliveries.c.id))}
    finally:
        store.close()


def dsn(delivered_to: str, final_recipient: str) -> bytes:
    """A DSN as an MTA returns it to the envelope sender, quoting only the returned message's Subject."""
    text = f"""Delivered-To: {delivered_to}
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {delivered_to}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn.{abs(hash(delivered_to))}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

The mail could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {final_recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--b1
Content-Type: text/rfc822-headers

Subject: A newsletter

--b1--
"""
    return text.replace("\n", "\r\n").encode("ascii")


@pytest.mark.parametrize("pipelining", [True, False])
def test_each_recipient_goes_out_from_its_verp_address_and_the_message_is_the_same(
    example_site: Path, pipelining: bool
) -> None:
    plain = example_site.parent / "plain"
    shutil.copytree(example_site, plain)
    bounce_site(example_site, VERP)
    bounce_site(plain, VERP.replace("verp = true", "verp = false"))
    people = readers(3)
    with MailServer(pipelining=pipelining) as server:
        env = environment(server)
        sent_issue(example_site, env, server, people)
        assert (server.pipelined_groups >= len(people)) == pipelining  # MAIL FROM sent with RCPT TO, or alone
        verp = {received.recipients[0]: received for received in server.received}
        server.received.clear()
        sent_issue(plain, env, server, people)
        without = {received.recipients[0]: received for received in server.received}
    rows = ledger_ids(example_site, env)
    assert set(rows) == set(people)
    for person in people:
        sender = verp[person].sender
        local, _, domain = sender.partition("@")
        assert local.startswith("bounces+") and domain == "cepei.example.org"  # [newsletter] from's domain
        assert verp_delivery(SECRET, sender) == rows[person]  # its own ledger row, signed with our secret
        assert without[person].sender == "news@cepei.example.org"
        assert verp[person].data == without[person].data  # not one byte of the message changed
    assert len({verp[person].sender for person in people}) == len(people)


def test_a_dsn_to_a_verp_address_bounces_the_row_it_names_never_the_address_it_quotes(example_site: Path) -> None:
    box = bounce_site(example_site, VERP + 'verp_domain = "bounces.cepei.example.org"\n')
    ana, bo, cy = readers(3)
    with MailServer() as server:
        env = environment(server)
        sent_issue(example_site, env, server, [ana, bo, cy])
        senders = {received.recipients[0]: received.sender for received in server.received}
    rows = ledger_ids(example_site, env)
    assert senders[ana] == verp_address(SECRET, rows[ana], "bounces.cepei.example.org")
    drop(box, dsn(senders[ana], "ana.forwarded@elsewhere.example"))  # the MTA names a forwarded address
    drop(box, dsn(verp_address("not-our-secret", rows[cy], "bounces.cepei.example.org"), cy))  # forged

    result = command(example_site, env, "--json", "bounces", "--now", at(AFTER))
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert (done["reports"], done["bounced"], done["unmatched"]) == (2, 1, 1)
    assert statuses(example_site, env, [ana, bo, cy]) == {ana: "bounced", bo: "active", cy: "active"}


def test_a_bad_verp_domain_is_refused_with_its_line(example_site: Path) -> None:
    setting = 'verp_domain = "not a domain"'
    bounce_site(example_site, VERP + setting + "\n")
    line = (example_site / "publisher.toml").read_text(encoding="utf-8").splitlines().index(setting) + 1
    result = command(example_site, environment(), "check")
    assert result.exit_code == 2, result.output
    assert f"publisher.toml:{line}: bounces.verp_domain: is a domain name" in result.stderr
