"""The email channel against a real SMTP server on loopback (aiosmtpd), and a real Maildir."""

from __future__ import annotations

import email
import email.policy
import mailbox
import random
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from publisher.channels.email import (
    AuthenticationFailed,
    EmailChannel,
    EmailUrlError,
    SenderRejected,
    SendResult,
    ServerUnavailable,
    dkim_sign,
    parse_email_url,
    retry_delay,
)
from publisher.channels.mail_transport import classify, smtp_payload
from publisher.channels.pacing import TokenBucket
from publisher.config import EmailSettings, Site, load_site
from tests.smtp_support import DROP_AFTER_DATA, DROP_MID_DATA, MailServer, TlsFiles, free_port, make_tls_files

# aiosmtpd itself sets its deprecated Session.login_data on every successful AUTH.
pytestmark = pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")

PASSWORD = "correct horse battery staple"


def message(n: int, to: str, *, body: str = "Hello.\n.A line that starts with a dot\nÁlvaro, ¿qué tal?\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Cepei <news@cepei.example.org>"
    msg["To"] = to
    msg["Subject"] = f"Issue {n}"
    msg["Date"] = "Fri, 09 Feb 2018 18:00:00 +0100"
    msg["Message-ID"] = f"<issue-{n}.{to.replace('@', '.')}@cepei.example.org>"
    msg.set_content(body)
    return msg


def send_all(channel: EmailChannel, recipients: list[str]) -> dict[str, SendResult]:
    results: dict[str, SendResult] = {}
    items = ((r, message(i, r), r) for i, r in enumerate(recipients))
    channel.send_many(items, lambda key, result: results.__setitem__(key, result))
    return results


def smtp_channel(server: MailServer, user: str | None = None, **kwargs: object) -> EmailChannel:
    config = parse_email_url(server.url(user), password=PASSWORD if user else None)
    return EmailChannel(config, timeout=5.0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


# -- the URL -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "host", "port", "user"),
    [
        ("smtp://127.0.0.1:2525", "smtp", "127.0.0.1", 2525, None),
        ("smtp://relay.example.org", "smtp", "relay.example.org", 25, None),
        ("smtp+starttls://news%40cepei.org@mail.example.org:587", "smtp+starttls", "mail.example.org", 587, "news@cepei.org"),
        ("SMTPS://news@mail.example.org", "smtps", "mail.example.org", 465, "news"),
        ("smtp://news@localhost:1025", "smtp", "localhost", 1025, "news"),
    ],
)
def test_smtp_urls_parse(url: str, kind: str, host: str, port: int, user: str | None) -> None:
    config = parse_email_url(url, password="pw" if user else None)
    assert (config.kind, config.host, config.port, config.username) == (kind, host, port, user)
    assert config.password == ("pw" if user else None)


def test_maildir_urls_are_taken_from_the_site_folder(tmp_path: Path) -> None:
    assert parse_email_url("maildir:outbox/mail", root=tmp_path).path == tmp_path / "outbox/mail"
    assert parse_email_url("maildir:/var/mail/news", root=tmp_path).path == Path("/var/mail/news")
    assert parse_email_url("maildir:///var/mail/news").path == Path("/var/mail/news")


@pytest.mark.parametrize(
    ("url", "password", "words"),
    [
        ("ftp://mail.example.org", None, "unknown scheme ftp:"),
        ("mail.example.org:25", None, "unknown scheme"),
        ("smtp://", None, "names no host"),
        ("smtp://mail.example.org:99999", None, "not a valid URL"),
        ("smtp://mail.example.org/inbox", None, "no path"),
        ("smtps://news@mail.example.org", None, "PUBLISHER_SMTP_PASSWORD is not set"),
        ("smtps://mail.example.org", "pw", "no user is named"),
        ("smtp://news@mail.example.org", "pw", "unencrypted"),
        ("maildir:", None, "names no folder"),
        ("", None, "is empty"),
    ],
)
def test_bad_urls_name_the_setting(url: str, password: str | None, words: str) -> None:
    with pytest.raises(EmailUrlError) as caught:
        parse_email_url(url, password=password)
    assert isinstance(caught.value, ValueError)
    (problem,) = caught.value.problems
    assert problem.field == "email.url"
    assert words in problem.message
    assert str(caught.value).startswith("publisher.toml:1: email.url: ")


def test_a_password_is_never_shown() -> None:
    with pytest.raises(EmailUrlError) as caught:
        parse_email_url("smtps://news:hunter2secret@mail.example.org")
    assert "hunter2secret" not in str(caught.value)
    assert "PUBLISHER_SMTP_PASSWORD" in str(caught.value)
    config = parse_email_url("smtps://news@mail.example.org", password="hunter2secret")
    assert "hunter2secret" not in repr(config)
    assert "hunter2secret" not in str(config)
    assert config.shown == "smtps://news@mail.example.org:465"


def test_reply_codes_are_classified() -> None:
    assert [classify(c) for c in (250, 251, 421, 450, 451, 452, 454, 471)] == ["sent"] * 2 + ["temporary"] * 6
    assert [classify(c) for c in (550, 551, 552, 553, 554)] == ["permanent"] * 5
    assert [classify(c) for c in (530, 535)] == ["auth", "auth"]


def test_the_payload_is_dot_stuffed_with_crlf_lines() -> None:
    assert smtp_payload(b".a\r\nb\r\n..c") == b"..a\r\nb\r\n...c\r\n.\r\n"
    assert smtp_payload(b"a\nb\r.c\r\n") == b"a\r\nb\r\n..c\r\n.\r\n"


# -- sending over SMTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_plain_smtp_with_auth(mechanism: str) -> None:
    with MailServer(users={"news": PASSWORD}, mechanisms=[mechanism]) as server:
        results = send_all(smtp_channel(server, "news", connections=1), ["ana@example.org", "bo@example.org"])
        assert {r: res.outcome for r, res in results.items()} == {"ana@example.org": "sent", "bo@example.org": "sent"}
        assert results["ana@example.org"].message_id == "<issue-0.ana.example.org@cepei.example.org>"
        assert server.auth_attempts == [(mechanism, "news")]
        assert server.connections_opened == 1  # both messages over one connection
        (received,) = server.messages("ana@example.org")
        assert b"\r\n..A line" not in received and b"\r\n.A line" in received  # dot-stuffing undone by the server
        parsed = email.message_from_bytes(received.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert parsed["Subject"] == "Issue 0"
        assert parsed.get_content() == "Hello.\n.A line that starts with a dot\nÁlvaro, ¿qué tal?\n"
        assert {m.sender for m in server.received} == {"news@cepei.example.org"}
        assert {m.login for m in server.received} == {"news"}


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_tls_with_auth(tls: TlsFiles, implicit: bool) -> None:
    with MailServer(tls=tls, implicit_tls=implicit, users={"news": PASSWORD}) as server:
        assert server.url().startswith("smtps://" if implicit else "smtp+starttls://")
        channel = smtp_channel(server, "news", ssl_context=tls.client_context())
        results = send_all(channel, ["ana@example.org"])
        assert results["ana@example.org"].outcome == "sent"
        (received,) = server.received
        assert received.tls and received.login == "news"


def test_an_untrusted_certificate_stops_before_anything_is_sent(tls: TlsFiles) -> None:
    with MailServer(tls=tls, users={"news": PASSWORD}) as server:
        channel = smtp_channel(server, "news")  # the system's CAs: they do not know the test CA
        with pytest.raises(AuthenticationFailed, match="TLS"):
            send_all(channel, ["ana@example.org"])
        assert server.received == [] and server.auth_attempts == []


def test_starttls_is_required_when_the_url_asks_for_it(server: MailServer) -> None:
    config = parse_email_url(f"smtp+starttls://{server.host}:{server.port}")
    with pytest.raises(AuthenticationFailed, match="does not offer STARTTLS"):
        EmailChannel(config).send(message(1, "ana@example.org"), "ana@example.org")
    assert server.received == []


def test_451_then_250(server: MailServer) -> None:
    server.script("ana@example.org", "451 4.7.1 Greylisted, try again later")
    channel = smtp_channel(server)
    first = send_all(channel, ["ana@example.org", "bo@example.org"])
    assert first["ana@example.org"] == SendResult(
        "temporary", 451, "4.7.1 Greylisted, try again later", "<issue-0.ana.example.org@cepei.example.org>", "rcpt"
    )
    assert first["ana@example.org"].retryable and not first["ana@example.org"].recipient_refused
    assert first["bo@example.org"].outcome == "sent"  # the connection went on after the 451
    second = send_all(channel, ["ana@example.org"])
    assert second["ana@example.org"].outcome == "sent"
    assert server.per_recipient() == {"ana@example.org": 1, "bo@example.org": 1}
    assert server.attempts["ana@example.org"] == 2


def test_451_after_the_message_is_temporary_too(server: MailServer) -> None:
    server.script("ana@example.org", "451 4.3.0 Queue full", at="data")
    result = smtp_channel(server).send(message(1, "ana@example.org"), "ana@example.org")
    assert (result.outcome, result.code, result.stage) == ("temporary", 451, "data")
    assert server.received == []


def test_550_for_one_address(server: MailServer) -> None:
    server.always("gone@example.org", "550 5.1.1 No such user")
    recipients = ["ana@example.org", "gone@example.org", "bo@example.org", "cy@example.org"]
    results = send_all(smtp_channel(server, connections=2), recipients)
    gone = results.pop("gone@example.org")
    assert (gone.outcome, gone.code, gone.text) == ("permanent", 550, "5.1.1 No such user")
    assert gone.recipient_refused and not gone.retryable
    assert {r.outcome for r in results.values()} == {"sent"}
    assert server.per_recipient() == {"ana@example.org": 1, "bo@example.org": 1, "cy@example.org": 1}


BIG_BODY = ("x" * 76 + "\n") * 80_000  # 6 MB: more than the socket buffers hold, so a drop is seen while sending


@pytest.fixture
def narrow_server() -> Iterator[MailServer]:
    with MailServer(small_window=True) as running:
        yield running


def test_a_drop_mid_data_is_reconnected_once_at_once(narrow_server: MailServer) -> None:
    server, body = narrow_server, BIG_BODY
    server.script("ana@example.org", DROP_MID_DATA, at="data")
    channel = smtp_channel(server, connections=1)
    result = channel.send(message(1, "ana@example.org", body=body), "ana@example.org")
    assert result.outcome == "sent"
    assert server.count("ana@example.org") == 1
    assert server.connections_opened == 2


def test_a_drop_mid_data_twice_is_temporary_and_the_next_message_goes_out(narrow_server: MailServer) -> None:
    server, body = narrow_server, BIG_BODY
    server.script("ana@example.org", DROP_MID_DATA, DROP_MID_DATA, at="data")
    channel = smtp_channel(server, connections=1)
    results: dict[str, SendResult] = {}
    items = [
        ("ana@example.org", message(1, "ana@example.org", body=body), "ana@example.org"),
        ("bo@example.org", message(2, "bo@example.org"), "bo@example.org"),
    ]
    channel.send_many(items, lambda key, result: results.__setitem__(key, result))
    assert (results["ana@example.org"].outcome, results["ana@example.org"].stage) == ("temporary", "data")
    assert results["bo@example.org"].outcome == "sent"
    assert server.per_recipient() == {"bo@example.org": 1}
    assert server.connections_opened == 3  # the first, its one reconnection, a new one for bo


def test_a_drop_after_the_message_is_unknown_and_not_retried(server: MailServer) -> None:
    server.script("ana@example.org", DROP_AFTER_DATA, at="data")
    results = send_all(smtp_channel(server, connections=1), ["ana@example.org", "bo@example.org"])
    unknown = results["ana@example.org"]
    assert (unknown.outcome, unknown.stage, unknown.code) == ("unknown", "reply", None)
    assert unknown.retryable and "may have been accepted" in unknown.text
    assert results["bo@example.org"].outcome == "sent"
    # The server did take it: this is the repeat window a retry of "unknown" opens.
    assert server.per_recipient() == {"ana@example.org": 1, "bo@example.org": 1}
    assert server.connections_opened == 2


def test_rejected_auth_stops_everything_once() -> None:
    with MailServer(reject_auth=True) as server:
        channel = smtp_channel(server, "news", connections=4)
        calls: list[tuple[int, SendResult]] = []
        items = ((n, message(n, f"r{n}@example.org"), f"r{n}@example.org") for n in range(50))
        with pytest.raises(AuthenticationFailed) as caught:
            channel.send_many(items, lambda key, result: calls.append((key, result)))
        assert not isinstance(caught.value, SenderRejected)
        assert "refused the login for user 'news'" in str(caught.value)
        assert "535" in str(caught.value) and PASSWORD not in str(caught.value)
        assert server.received == []
        assert {login for _, login in server.auth_attempts} == {"news"}
        assert server.connections_opened == 1  # one login refused (each mechanism tried once), then stop
        keys = [key for key, _ in calls]
        assert len(keys) == len(set(keys)) and len(keys) <= 8  # each taken item reported once; the rest never read
        assert {r.outcome for _, r in calls} <= {"auth", "temporary"}
        assert all(r.stage == "queued" for _, r in calls if r.outcome == "temporary")


def test_a_refused_sender_stops_everything(server: MailServer) -> None:
    server.always("news@cepei.example.org", "553 5.7.1 Sender address rejected: not owned by user", at="mail")
    with pytest.raises(SenderRejected, match="refused the sender news@cepei.example.org: 553"):
        send_all(smtp_channel(server, connections=2), [f"r{n}@example.org" for n in range(10)])
    assert server.received == []


def test_no_server_at_all_is_server_unavailable() -> None:
    config = parse_email_url(f"smtp://127.0.0.1:{free_port()}")
    results: list[SendResult] = []
    items = [(n, message(n, f"r{n}@example.org"), f"r{n}@example.org") for n in range(20)]
    with pytest.raises(ServerUnavailable, match="cannot open a connection"):
        EmailChannel(config, connections=3, timeout=2.0).send_many(items, lambda _, result: results.append(result))
    assert 0 < len(results) <= 6 and {r.outcome for r in results} == {"temporary"}


def test_four_connections_deliver_400_messages_each_exactly_once(server: MailServer) -> None:
    recipients = [f"reader{n:03}@example.org" for n in range(400)]
    threads: set[str] = set()
    results: dict[str, SendResult] = {}

    def on_result(key: str, result: SendResult) -> None:
        threads.add(threading.current_thread().name)
        assert key not in results
        results[key] = result

    items = ((r, message(n, r), r) for n, r in enumerate(recipients))
    counts = smtp_channel(server, connections=4).send_many(items, on_result)
    assert counts == {"sent": 400}
    assert set(results) == set(recipients)
    assert server.per_recipient() == dict.fromkeys(recipients, 1)
    assert server.connections_opened == 4 and server.peak_connections == 4
    assert threads == {threading.current_thread().name}  # the ledger is written from the caller's thread


def test_non_ascii_addresses_go_with_smtputf8(server: MailServer) -> None:
    result = smtp_channel(server).send(message(1, "josé@ejemplo.org"), "josé@ejemplo.org")
    assert result.outcome == "sent"
    assert server.count("josé@ejemplo.org") == 1


# -- pacing --------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def test_token_bucket_counts() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(25)]
    assert waits[:5] == [0.0] * 5  # the burst
    assert clock.now == pytest.approx(2.0)  # 20 more at 10 a second
    clock.now += 100.0  # idle for long: the bucket refills to the burst, not beyond
    assert [bucket.acquire() for _ in range(6)][-2:] == [0.0, pytest.approx(0.1)]


@pytest.mark.parametrize("connections", [1, 4])
def test_the_rate_limit_holds_across_connections(connections: int) -> None:
    clock = FakeClock()
    rate = 200.0
    with MailServer(clock=clock) as server:
        channel = smtp_channel(server, connections=connections, rate=rate, clock=clock, sleep=clock.sleep)
        counts = channel.send_many(((n, message(n, "ana@example.org"), "ana@example.org") for n in range(60)), lambda *_: None)
        assert counts == {"sent": 60}
        stamps = sorted(m.at for m in server.received if m.at is not None)
    assert len(stamps) == 60
    for sent_so_far, at in enumerate(stamps, start=1):
        assert sent_so_far <= 1 + rate * at + 1e-9, f"message {sent_so_far} at {at:.4f}s"
    assert clock.now >= 59 / rate - 1e-9
    if connections == 1:
        assert clock.now == pytest.approx(59 / rate)


def test_retry_delay_is_exponential_with_full_jitter() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (30, 3600), (1000, 3600)]:
        delays = [retry_delay(attempt, rng) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9  # spread over the whole range
    assert retry_delay(4, random.Random(1)) == retry_delay(4, random.Random(1))
    with pytest.raises(ValueError):
        retry_delay(0, rng)


# -- Maildir -------------------------------------------------------------------------------------


def test_maildir_delivers_one_file_per_message_into_new(tmp_path: Path) -> None:
    channel = EmailChannel(parse_email_url("maildir:outbox/mail", root=tmp_path), connections=8)
    assert channel.is_outbox and channel.connections == 1
    results = send_all(channel, ["ana@example.org", "bo@example.org", "cy@example.org"])
    assert {r.outcome for r in results.values()} == {"sent"}
    assert results["bo@example.org"].message_id == "<issue-1.bo.example.org@cepei.example.org>"
    files = sorted((tmp_path / "outbox/mail/new").iterdir())
    assert len(files) == 3 and not list((tmp_path / "outbox/mail/tmp").iterdir())
    assert all(b"\r\n" not in f.read_bytes() for f in files)
    box = mailbox.Maildir(tmp_path / "outbox/mail", factory=None, create=False)
    parsed = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]
    assert sorted(m["To"] for m in parsed) == ["ana@example.org", "bo@example.org", "cy@example.org"]
    assert {m.get_content() for m in parsed} == {"Hello.\n.A line that starts with a dot\nÁlvaro, ¿qué tal?\n"}


def test_the_site_default_is_the_maildir_and_the_environment_overrides_it(example_site: Path) -> None:
    site = load_site(example_site, env={})
    channel = EmailChannel.from_site(site)
    assert channel.is_outbox and channel.config.path == site.root / "outbox/mail"
    env = {"PUBLISHER_EMAIL_URL": "smtps://news@mail.example.org", "PUBLISHER_SMTP_PASSWORD": "pw"}
    channel = EmailChannel.from_site(load_site(example_site, env=env))
    assert channel.config.shown == "smtps://news@mail.example.org:465" and channel.config.password == "pw"
    with pytest.raises(EmailUrlError, match=r"^PUBLISHER_EMAIL_URL:1: email.url: .*PUBLISHER_SMTP_PASSWORD"):
        EmailChannel.from_site(load_site(example_site, env={"PUBLISHER_EMAIL_URL": "smtps://news@mail.example.org"}))


# -- DKIM ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    """(private key PEM, DNS TXT record) for selector `news`, domain cepei.example.org."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns_for(record: bytes) -> object:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"news._domainkey.cepei.example.org." else None

    return lookup


def newsletter(to: str) -> EmailMessage:
    msg = message(1, to)
    msg["List-Id"] = "<news.cepei.example.org>"
    msg["List-Unsubscribe"] = "<https://cepei.example.org/unsubscribe/abc>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(dkim_key: tuple[bytes, bytes]) -> None:
    pem, record = dkim_key
    signed = dkim_sign(newsletter("ana@example.org").as_bytes(policy=email.policy.SMTP), "news", "cepei.example.org", pem)
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    header = email.message_from_bytes(signed, policy=email.policy.default)["DKIM-Signature"]
    signed_names = {h.strip() for h in header.split("h=")[1].split(";")[0].split(":")}
    assert {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post"} <= signed_names
    for old, new in [(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nothing"), (b"Issue 1", b"Issue 2")]:
        assert not dkim.verify(signed.replace(old, new), dnsfunc=dns_for(record))


def test_dkim_signed_mail_arrives_verifiable(server: MailServer, dkim_key: tuple[bytes, bytes], example_site: Path) -> None:
    pem, record = dkim_key
    key_file = example_site / "dkim.pem"
    key_file.write_bytes(pem)
    site = load_site(example_site, env={"PUBLISHER_EMAIL_URL": server.url()})
    email_settings = EmailSettings(url="maildir:x", dkim_selector="news", dkim_domain="cepei.example.org", dkim_key="dkim.pem")
    site = Site(root=site.root, settings=site.settings.model_copy(update={"email": email_settings}), env=site.env)
    channel = EmailChannel.from_site(site)
    assert channel.signer is not None and not channel.is_outbox
    assert channel.send(newsletter("ana@example.org"), "ana@example.org").outcome == "sent"
    (received,) = server.messages("ana@example.org")
    assert received.startswith(b"DKIM-Signature: ")
    assert dkim.verify(received, dnsfunc=dns_for(record))
