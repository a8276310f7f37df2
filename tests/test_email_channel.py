"""The email channel against a real SMTP server on loopback (aiosmtpd), and a real Maildir."""

from __future__ import annotations

import email
import email.policy
import mailbox
import random
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from publisher.channels.email import (
    AuthenticationFailed,
    EmailChannel,
    SenderRejected,
    SendResult,
    ServerUnavailable,
    parse_email_url,
    retry_delay,
)
from publisher.channels.pacing import TokenBucket
from tests.smtp_support import (
    DROP_AFTER_DATA,
    DROP_MID_DATA,
    MailServer,
    TlsFiles,
    free_port,
    make_tls_files,
    sample_message,
)

# aiosmtpd itself sets its deprecated Session.login_data on every successful AUTH.
pytestmark = pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")

PASSWORD = "correct horse battery staple"


def send_all(channel: EmailChannel, recipients: list[str]) -> dict[str, SendResult]:
    results: dict[str, SendResult] = {}
    items = ((r, sample_message(i, r), r) for i, r in enumerate(recipients))
    channel.send_many(items, lambda key, result: results.__setitem__(key, result))
    return results


def smtp_channel(server: MailServer, user: str | None = None, **kwargs: object) -> EmailChannel:
    config = parse_email_url(server.url(user), password=PASSWORD if user else None)
    return EmailChannel(config, timeout=5.0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def server(request: pytest.FixtureRequest) -> Iterator[MailServer]:
    """A server offering PIPELINING (as Postfix does) and one that does not: the client's two ways."""
    with MailServer(pipelining=request.param) as running:
        yield running


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
        EmailChannel(config).send(sample_message(1, "ana@example.org"), "ana@example.org")
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
    result = smtp_channel(server).send(sample_message(1, "ana@example.org"), "ana@example.org")
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


def test_mail_rcpt_and_data_go_out_as_one_group_when_the_server_offers_pipelining(server: MailServer) -> None:
    results = send_all(smtp_channel(server, connections=1), [f"r{n}@example.org" for n in range(5)])
    assert {r.outcome for r in results.values()} == {"sent"}
    assert server.pipelined_groups == (5 if server.pipelining else 0)


class _CarelessServer:
    """A raw SMTP server (no aiosmtpd: it would never do this) that answers DATA with 354 although it
    refused the only RCPT, as RFC 2920 forbids; it logs every line it reads."""

    def __init__(self, data_reply: bytes = b"354 Go ahead") -> None:
        self.data_reply = data_reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection, connection.makefile("rb") as reader:
            connection.sendall(b"220 careless.test ESMTP\r\n")
            in_data = False
            for line in reader:
                self.lines.append(line)
                command = line.strip().upper()
                if in_data:
                    if command == b".":
                        in_data = False
                        connection.sendall(b"554 5.5.1 No valid recipients\r\n")
                    continue
                if command.startswith(b"EHLO"):
                    connection.sendall(b"250-careless.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif command.startswith(b"RCPT"):
                    connection.sendall(b"550 5.1.1 No such user\r\n")
                elif command == b"DATA":
                    connection.sendall(self.data_reply + b"\r\n")
                    if self.data_reply.startswith(b"421"):
                        return  # and it hangs up, as Postfix does after too many errors
                    in_data = True
                elif command == b"QUIT":
                    connection.sendall(b"221 Bye\r\n")
                    return
                else:  # MAIL, RSET
                    connection.sendall(b"250 OK\r\n")


def test_a_354_after_a_refused_rcpt_gets_an_empty_message_and_a_reset() -> None:
    careless = _CarelessServer()
    channel = EmailChannel(parse_email_url(f"smtp://127.0.0.1:{careless.port}"), timeout=5.0)
    result = channel.send(sample_message(1, "gone@example.org"), "gone@example.org")
    careless.thread.join(timeout=5)
    assert (result.outcome, result.code, result.stage) == ("permanent", 550, "rcpt")
    commands = [line.strip().split(b":")[0].split(b" ")[0].upper() for line in careless.lines]
    assert commands == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b".", b"RSET", b"QUIT"]  # not one line of the message


def test_a_421_after_a_refused_rcpt_still_reports_the_refusal() -> None:
    """The address was refused (a bounce); that the server then hung up changes nothing about it."""
    careless = _CarelessServer(data_reply=b"421 4.7.0 Too many errors, closing")
    channel = EmailChannel(parse_email_url(f"smtp://127.0.0.1:{careless.port}"), timeout=5.0)
    result = channel.send(sample_message(1, "gone@example.org"), "gone@example.org")
    careless.thread.join(timeout=5)
    assert (result.outcome, result.code, result.stage) == ("permanent", 550, "rcpt")
    assert result.recipient_refused


def test_421_at_rcpt_drops_the_connection_and_the_next_message_goes_on_a_new_one(server: MailServer) -> None:
    server.script("ana@example.org", "421 4.3.2 Shutting down")
    results = send_all(smtp_channel(server, connections=1), ["ana@example.org", "bo@example.org"])
    assert (results["ana@example.org"].outcome, results["ana@example.org"].code) == ("temporary", 421)
    assert results["bo@example.org"].outcome == "sent"
    assert server.per_recipient() == {"bo@example.org": 1}
    assert server.connections_opened == 2


def test_an_address_smtplib_must_quote_goes_the_careful_way(server: MailServer) -> None:
    message = sample_message(1, "ana@example.org")
    result = smtp_channel(server).send(message, "Ana <ana@example.org>")  # a display name: smtplib quotes it
    assert result.outcome == "sent"
    assert server.per_recipient() == {"ana@example.org": 1}
    assert server.pipelined_groups == 0


BIG_BODY = ("x" * 76 + "\n") * 80_000  # 6 MB: more than the socket buffers hold, so a drop is seen while sending


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def narrow_server(request: pytest.FixtureRequest) -> Iterator[MailServer]:
    with MailServer(small_window=True, pipelining=request.param) as running:
        yield running


def test_a_drop_mid_data_is_reconnected_once_at_once(narrow_server: MailServer) -> None:
    server, body = narrow_server, BIG_BODY
    server.script("ana@example.org", DROP_MID_DATA, at="data")
    channel = smtp_channel(server, connections=1)
    result = channel.send(sample_message(1, "ana@example.org", body=body), "ana@example.org")
    assert result.outcome == "sent"
    assert server.count("ana@example.org") == 1
    assert server.connections_opened == 2


def test_a_drop_mid_data_twice_is_temporary_and_the_next_message_goes_out(narrow_server: MailServer) -> None:
    server, body = narrow_server, BIG_BODY
    server.script("ana@example.org", DROP_MID_DATA, DROP_MID_DATA, at="data")
    channel = smtp_channel(server, connections=1)
    results: dict[str, SendResult] = {}
    items = [
        ("ana@example.org", sample_message(1, "ana@example.org", body=body), "ana@example.org"),
        ("bo@example.org", sample_message(2, "bo@example.org"), "bo@example.org"),
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
        items = ((n, sample_message(n, f"r{n}@example.org"), f"r{n}@example.org") for n in range(50))
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
        assert {r.outcome for _, r in calls} <= {"auth", "temporary"} and all(r.retryable for _, r in calls)
        assert all(r.stage == "queued" for _, r in calls if r.outcome == "temporary")


def test_a_refused_sender_stops_everything(server: MailServer) -> None:
    server.always("news@cepei.example.org", "553 5.7.1 Sender address rejected: not owned by user", at="mail")
    with pytest.raises(SenderRejected, match=r"refused the sender news@cepei\.example\.org: 553"):
        send_all(smtp_channel(server, connections=2), [f"r{n}@example.org" for n in range(10)])
    assert server.received == []


def test_a_message_that_cannot_be_built_stops_the_run_after_reporting_what_went_out(server: MailServer) -> None:
    def items() -> Iterator[tuple[int, EmailMessage, str]]:
        for n in range(5):
            yield n, sample_message(n, f"r{n}@example.org"), f"r{n}@example.org"
        raise LookupError("subscriber 5 is gone")

    reported: dict[int, SendResult] = {}
    with pytest.raises(LookupError, match="subscriber 5"):
        smtp_channel(server, connections=2).send_many(items(), reported.__setitem__)
    assert sorted(reported) == [0, 1, 2, 3, 4]
    sent = {f"r{n}@example.org" for n, r in reported.items() if r.sent}
    assert set(server.per_recipient()) == sent  # whatever went out was reported as sent, and nothing else


def test_no_server_at_all_is_server_unavailable() -> None:
    config = parse_email_url(f"smtp://127.0.0.1:{free_port()}")
    results: list[SendResult] = []
    items = [(n, sample_message(n, f"r{n}@example.org"), f"r{n}@example.org") for n in range(20)]
    with pytest.raises(ServerUnavailable, match="cannot open a connection"):
        EmailChannel(config, connections=3, timeout=2.0).send_many(items, lambda _, result: results.append(result))
    assert 0 < len(results) <= 6 and {r.outcome for r in results} == {"temporary"}


@pytest.mark.parametrize("connections", [1, 3])
def test_a_connection_sends_again_only_after_its_last_answer_is_flushed(server: MailServer, connections: int) -> None:
    """The repeat window after a kill: accepted by the server but not yet recorded, at most one per connection."""
    reported: list[str] = []
    flushed: list[str] = []
    ahead: list[int] = []

    def on_result(key: str, result: SendResult) -> None:
        assert result.sent
        reported.append(key)
        time.sleep(0.01)  # time for a connection to run ahead, were it allowed to

    def flush() -> None:
        flushed.extend(reported[len(flushed) :])
        ahead.append(len(server.received) - len(flushed))  # accepted, not recorded: only what is in flight

    recipients = [f"r{n}@example.org" for n in range(30)]
    items = ((r, sample_message(i, r), r) for i, r in enumerate(recipients))
    smtp_channel(server, connections=connections).send_many(items, on_result, flush)
    assert sorted(flushed) == sorted(recipients)
    assert max(ahead) <= connections - 1  # those answered are recorded; each other connection: one at most


@pytest.mark.parametrize("failing", ["on_result", "flush"])
def test_an_error_recording_an_answer_stops_the_run_without_hanging(server: MailServer, failing: str) -> None:
    """Workers may still hold queued items when the caller's side fails: every one must see the stop."""

    def on_result(key: int, result: SendResult) -> None:
        if failing == "on_result":
            raise RuntimeError("the ledger is gone")

    def flush() -> None:
        if failing == "flush":
            raise RuntimeError("the ledger is gone")

    caught: list[BaseException] = []

    def run() -> None:
        items = ((n, sample_message(n, f"r{n}@example.org"), f"r{n}@example.org") for n in range(40))
        try:
            smtp_channel(server, connections=3).send_many(items, on_result, flush)
        except RuntimeError as exc:
            caught.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "send_many hung"
    assert [str(exc) for exc in caught] == ["the ledger is gone"]
    assert len(server.received) <= 3 * 2  # what was in flight (the window) at the most, nothing after


def test_four_connections_deliver_400_messages_each_exactly_once(server: MailServer) -> None:
    recipients = [f"reader{n:03}@example.org" for n in range(400)]
    threads: set[str] = set()
    results: dict[str, SendResult] = {}

    def on_result(key: str, result: SendResult) -> None:
        threads.add(threading.current_thread().name)
        assert key not in results
        results[key] = result

    items = ((r, sample_message(n, r), r) for n, r in enumerate(recipients))
    counts = smtp_channel(server, connections=4).send_many(items, on_result)
    assert counts == {"sent": 400}
    assert set(results) == set(recipients)
    assert server.per_recipient() == dict.fromkeys(recipients, 1)
    assert server.connections_opened == 4 and server.peak_connections == 4
    assert threads == {threading.current_thread().name}  # the ledger is written from the caller's thread


def test_connections_are_kept_between_runs_and_reopened_when_the_server_closed_them(server: MailServer) -> None:
    with smtp_channel(server, connections=2) as channel:
        for run in range(3):
            results = send_all(channel, [f"run{run}-{n}@example.org" for n in range(10)])
            assert {r.outcome for r in results.values()} == {"sent"}
            if run == 1:
                assert server.connections_opened == 2  # the second run reused the first run's two
                server.disconnect_all()  # the server's idle timeout, say
        assert server.connections_opened == 4 and server.connections_open == 2
    assert sum(server.per_recipient().values()) == 30 and set(server.per_recipient().values()) == {1}
    server.wait_until_idle()  # close() said QUIT on both


def test_non_ascii_addresses_go_with_smtputf8(server: MailServer) -> None:
    result = smtp_channel(server).send(sample_message(1, "josé@ejemplo.org"), "josé@ejemplo.org")
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
        counts = channel.send_many(
            ((n, sample_message(n, "ana@example.org"), "ana@example.org") for n in range(60)), lambda *_: None
        )
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
    parsed = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.iterkeys()]
    assert sorted(m["To"] for m in parsed) == ["ana@example.org", "bo@example.org", "cy@example.org"]
    assert {m.get_content() for m in parsed} == {"Hello.\n.A line that starts with a dot\nÁlvaro, ¿qué tal?\n"}
