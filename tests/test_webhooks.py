"""Provider webhooks on a running `serve` (issue 14): Amazon SES through SNS, signed with a certificate the test
makes, and Mailgun's HMAC-signed events, matched to a real send by its Message-ID; every request not proved
to be the provider's is refused with 403 and changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from publisher.store.dispatches import Store
from publisher.store.tables import feedback
from tests.bounces_support import SOON, bounce_site, sent_issue, statuses
from tests.dispatch_support import command, environment, readers, site_of, store_of
from tests.smtp_support import MailServer
from tests.web_support import Clock, Reply, Web, running
from tests.webhook_support import (
    CERT_PATH,
    MAILGUN_KEY,
    OTHER_TOPIC,
    TOPIC,
    AmazonSide,
    amazon_side,
    confirmation,
    mailgun_event,
    notification,
    ses_event,
    sign,
    signing_pair,
)

AFTER = SOON + dt.timedelta(days=1)
SETTINGS = f"""
[bounces]
sns_topics = ["{TOPIC}"]
sns_url = 'http://127\\.0\\.0\\.1:\\d+'
"""


@dataclass
class Sent:
    """An issue sent to four readers, `serve` running, and SNS's side on loopback."""

    root: Path
    env: dict[str, str]
    people: list[str]
    ids: dict[str, str]
    web: Web
    store: Store
    clock: Clock
    amazon: AmazonSide
    key: rsa.RSAPrivateKey

    def statuses(self) -> dict[str, str]:
        return statuses(self.root, self.env, self.people)

    def feedback(self) -> list[tuple[str, str, str, str]]:
        columns = (feedback.c.target, feedback.c.kind, feedback.c.status, feedback.c.source)
        with self.store.read() as connection:
            rows = connection.execute(feedback.select().with_only_columns(*columns).order_by(feedback.c.id))
            return [(row[0], row[1], row[2], row[3]) for row in rows]

    def sns(self, message: dict[str, str]) -> Reply:
        body = json.dumps(message).encode("utf-8")
        headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": message.get("Type", "")}
        return self.web.request("POST", "/webhooks/ses", body=body, headers=headers)

    def ses(self, event: dict[str, Any], version: str = "1", **more: Any) -> Reply:
        return self.sns(sign(notification(event, self.amazon.url(CERT_PATH), self.clock(), **more), self.key, version))

    def mailgun(self, payload: dict[str, Any]) -> Reply:
        body = json.dumps(payload).encode("utf-8")
        return self.web.request("POST", "/webhooks/mailgun", body=body, headers={"Content-Type": "application/json"})


@pytest.fixture
def sent(example_site: Path) -> Iterator[Sent]:
    bounce_site(example_site, SETTINGS)
    people = readers(4)
    with MailServer() as server:
        env = environment(server, PUBLISHER_MAILGUN_SIGNING_KEY=MAILGUN_KEY)
        ids = sent_issue(example_site, env, server, people)
    key, certificate = signing_pair()
    store = store_of(example_site, env)
    clock = Clock(AFTER)
    try:
        with amazon_side(certificate) as amazon, running(site_of(example_site, env), store, clock) as web:
            yield Sent(example_site, env, people, ids, web, store, clock, amazon, key)
    finally:
        store.close()


def test_ses_bounces_and_complaints_act_on_the_readers_our_message_ids_name(sent: Sent) -> None:
    ana, bo, cy, di = sent.people
    assert sent.ses(ses_event("Bounce", sent.ids[ana], ana), version="1").status == 200
    assert sent.ses(ses_event("Complaint", sent.ids[bo], bo), version="2").status == 200
    reply = sent.ses(ses_event("Bounce", sent.ids[cy], cy, bounce_type="Transient"), version="2")
    assert (reply.status, json.loads(reply.body)) == (200, {"soft": 1})
    assert sent.statuses() == {ana: "bounced", bo: "complained", cy: "active", di: "active"}
    assert sent.feedback() == [
        (ana, "hard", "5.1.1", "ses"),
        (bo, "complaint", "abuse", "ses"),
        (cy, "soft", "4.2.2", "ses"),
    ]
    assert sent.amazon.requests == [CERT_PATH]  # fetched once, then kept


def test_an_ses_event_naming_a_reader_without_our_message_id_changes_nothing(sent: Sent) -> None:
    ana = sent.people[0]
    forged = ses_event("Bounce", "<d.0123456789abcdef@cepei.example.org>", ana)  # names Ana, not our message
    reply = sent.ses(forged)
    assert (reply.status, json.loads(reply.body)) == (200, {"unmatched": 1})
    assert set(sent.statuses().values()) == {"active"} and sent.feedback() == []


def _refusals(sent: Sent) -> dict[str, dict[str, str]]:
    ana = sent.people[0]
    event = ses_event("Bounce", sent.ids[ana], ana)
    cert = sent.amazon.url(CERT_PATH)
    good = sign(notification(event, cert, sent.clock()), sent.key)
    other_key, _ = signing_pair()
    unsigned = {k: v for k, v in good.items() if k not in ("Signature", "SignatureVersion")}
    tampered = {**good, "Message": good["Message"].replace("Permanent", "Transient")}
    wrong_host = sign(notification(event, sent.amazon.url(CERT_PATH, host="localhost"), sent.clock()), sent.key)
    https_elsewhere = sign(
        notification(event, "https://sns.eu-west-1.amazonaws.com.evil.example/c.pem", sent.clock()), sent.key
    )
    old = sign(notification(event, cert, sent.clock() - dt.timedelta(hours=2)), sent.key)
    return {
        "wrongly signed": sign(notification(event, cert, sent.clock()), other_key),
        "unsigned": unsigned,
        "altered after signing": tampered,
        "certificate on another host": wrong_host,
        "certificate on a look-alike host": https_elsewhere,
        "another topic": sign(notification(event, cert, sent.clock(), topic=OTHER_TOPIC), sent.key),
        "stale": old,
        "version 3": {**good, "SignatureVersion": "3"},
    }


def test_sns_messages_not_proved_to_be_amazons_are_refused_and_change_nothing(sent: Sent) -> None:
    for name, message in _refusals(sent).items():
        reply = sent.sns(message)
        assert reply.status == 403, (name, reply.text)
        assert "refused" in json.loads(reply.body), name
    assert set(sent.statuses().values()) == {"active"} and sent.feedback() == []
    assert sent.amazon.requests in ([], [CERT_PATH])  # never fetched from any other host


def test_a_replayed_sns_message_is_refused(sent: Sent) -> None:
    cy = sent.people[2]
    message = sign(
        notification(
            ses_event("Bounce", sent.ids[cy], cy, bounce_type="Transient"), sent.amazon.url(CERT_PATH), sent.clock()
        ),
        sent.key,
    )
    assert sent.sns(message).status == 200
    assert sent.sns(message).status == 403
    assert sent.feedback() == [(cy, "soft", "4.2.2", "ses")]


def test_a_subscription_is_confirmed_only_for_a_configured_topic(sent: Sent) -> None:
    cert = sent.amazon.url(CERT_PATH)
    theirs = sign(
        confirmation(
            sent.amazon.url("/?Action=ConfirmSubscription&Token=other"), cert, sent.clock(), topic=OTHER_TOPIC
        ),
        sent.key,
    )
    assert sent.sns(theirs).status == 403
    assert sent.amazon.requests == []
    ours = sign(
        confirmation(sent.amazon.url("/?Action=ConfirmSubscription&Token=ours"), cert, sent.clock()), sent.key, "2"
    )
    reply = sent.sns(ours)
    assert (reply.status, json.loads(reply.body)) == (200, {"confirmed": 1})
    assert sent.amazon.requests == [CERT_PATH, "/?Action=ConfirmSubscription&Token=ours"]
    elsewhere = sign(confirmation("http://localhost:1/?Action=ConfirmSubscription", cert, sent.clock()), sent.key)
    assert sent.sns(elsewhere).status == 403
    assert len(sent.amazon.requests) == 2


def test_mailgun_events_act_on_the_readers_our_message_ids_name(sent: Sent) -> None:
    ana, bo, cy, di = sent.people
    now = sent.clock()
    assert sent.mailgun(mailgun_event("failed", sent.ids[ana], ana, now)).status == 200
    assert sent.mailgun(mailgun_event("complained", sent.ids[bo], bo, now)).status == 200
    assert sent.mailgun(mailgun_event("failed", sent.ids[cy], cy, now, severity="temporary")).status == 200
    reply = sent.mailgun(mailgun_event("delivered", sent.ids[di], di, now))
    assert (reply.status, json.loads(reply.body)) == (200, {"ignored": 1})
    forged = sent.mailgun(mailgun_event("failed", "<elsewhere.1@example.net>", di, now))
    assert (forged.status, json.loads(forged.body)) == (200, {"unmatched": 1})
    assert sent.statuses() == {ana: "bounced", bo: "complained", cy: "active", di: "active"}
    assert sent.feedback() == [
        (ana, "hard", "5.1.1", "mailgun"), (bo, "complaint", "abuse", "mailgun"), (cy, "soft", "4.2.2", "mailgun")
    ]  # fmt: skip


def test_mailgun_events_not_signed_with_our_key_stale_or_replayed_are_refused(sent: Sent) -> None:
    ana = sent.people[0]
    now = sent.clock()
    good = mailgun_event("failed", sent.ids[ana], ana, now)
    unsigned = {"event-data": good["event-data"]}
    refusals = {
        "wrongly signed": mailgun_event("failed", sent.ids[ana], ana, now, key="not-our-key"),
        "unsigned": unsigned,
        "signature altered": {**good, "signature": {**good["signature"], "token": "x" + good["signature"]["token"]}},
        "stale": mailgun_event("failed", sent.ids[ana], ana, now - dt.timedelta(minutes=10)),
        "from the future": mailgun_event("failed", sent.ids[ana], ana, now + dt.timedelta(minutes=10)),
    }
    for name, payload in refusals.items():
        assert sent.mailgun(payload).status == 403, name
    assert set(sent.statuses().values()) == {"active"} and sent.feedback() == []
    soft = mailgun_event("failed", sent.ids[ana], ana, now, severity="temporary")
    assert sent.mailgun(soft).status == 200
    assert sent.mailgun(soft).status == 403  # the same token again
    assert sent.feedback() == [(ana, "soft", "4.2.2", "mailgun")]


def test_without_the_signing_key_mailgun_is_refused(example_site: Path) -> None:
    bounce_site(example_site, SETTINGS)
    env = environment()
    store = store_of(example_site, env)
    try:
        with running(site_of(example_site, env), store, Clock(AFTER)) as web:
            (ana,) = readers(1)
            payload = mailgun_event("failed", "<x.1@cepei.example.org>", ana, AFTER)
            reply = web.request("POST", "/webhooks/mailgun", body=json.dumps(payload).encode())
    finally:
        store.close()
    assert reply.status == 403 and "PUBLISHER_MAILGUN_SIGNING_KEY" in reply.text


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('sns_topics = ["my-topic"]', "bounces.sns_topics: is an SNS topic ARN"),
        ("sns_url = 'https://(sns'", "bounces.sns_url: is not a regular expression"),
        ('sns_topic = ["x"]', "bounces.sns_topic: unknown key (did you mean 'sns_topics'?)"),
    ],
)
def test_bad_webhook_settings_are_refused_with_their_line(example_site: Path, setting: str, message: str) -> None:
    bounce_site(example_site, "\n[bounces]\n" + setting + "\n")
    line = (example_site / "publisher.toml").read_text(encoding="utf-8").splitlines().index(setting) + 1
    for args in (["check"], ["bounces"]):
        result = command(example_site, environment(), *args)
        assert result.exit_code == 2, (args, result.output)
        assert f"publisher.toml:{line}: {message}" in result.stderr


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem", True),
        ("https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-0a1b.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0a1b.pem", True),
        ("https://sns.eu-west-1.amazonaws.com/any-file-there.pem", False),  # not how SNS names its certificates
        ("https://sns.s3.amazonaws.com/SimpleNotificationService-0a1b.pem", False),  # S3's bucket "sns", not SNS
        ("http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0a1b.pem", False),
    ],
)
def test_only_sns_certificates_on_sns_hosts_are_fetched(url: str, allowed: bool) -> None:
    from publisher.audience.webhooks import sns_certificate_url_allowed

    assert sns_certificate_url_allowed(url) is allowed


@pytest.mark.parametrize("body", [b'{"Type": ["x"]}', b'{"Type": {"a": 1}}', b"[]", b'{"Type": null}'])
def test_a_hostile_sns_body_is_refused_with_403_never_500(sent: Sent, body: bytes) -> None:
    reply = sent.web.request("POST", "/webhooks/ses", body=body, headers={"Content-Type": "text/plain"})
    assert reply.status == 403, reply.body
    assert CERT_PATH not in sent.amazon.requests
