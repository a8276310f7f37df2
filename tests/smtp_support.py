"""A real SMTP server (aiosmtpd) on loopback for tests, with scripted misbehaviour.

    with MailServer() as server:
        server.script("slow@example.org", "451 4.7.1 Try again later")   # once, then accept
        server.always("gone@example.org", "550 5.1.1 No such user")
        ... send to server.url() ...
        assert server.count("ana@example.org") == 1

What it can do:
- record every message per recipient (raw bytes as received, after dot-unstuffing);
- scripted replies per address, one per attempt (`script`) or on every attempt
  (`always`), at RCPT (`at="rcpt"`, the default), after the message (`at="data"`)
  or at MAIL FROM for a sender address (`at="mail"`);
- drop the connection in the middle of DATA (`DROP_MID_DATA`: after the 354, before
  the final dot; nothing is recorded). The client notices while still sending only
  if the message outgrows the socket buffers: with `small_window=True` (4 KB receive
  buffers) a message of 6 MB or more does, on Linux loopback (whose send buffer
  grows to about 4 MB); smaller ones see the drop as a lost reply; or after the final dot before the reply
  (`DROP_AFTER_DATA`: the message is recorded, the client never hears so);
- AUTH PLAIN and LOGIN against `users` ({login: password}), or refuse every login
  (`reject_auth=True`); with either, MAIL before AUTH gets 530;
- STARTTLS (`tls=TlsFiles`) or SMTPS (`tls=..., implicit_tls=True`) with a
  certificate made for 127.0.0.1 by `make_tls_files`;
- close every connection from its side (`disconnect_all`, as an idle timeout does);
- offer PIPELINING in its EHLO reply, as Postfix does (`pipelining=False`: not);
- count connections (opened, open now, most open at once) and stamp each message
  with `clock()` (any callable; a test's fake clock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DROP_MID_DATA = "DROP-MID-DATA"
DROP_AFTER_DATA = "DROP-AFTER-DATA"
SERVER_NAME = "mail.test"  # never let aiosmtpd ask DNS for its own name


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (aiosmtpd's Controller cannot start on port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (hostname checking on)."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls_files(folder: Path) -> TlsFiles:
    """Generate the CA and server certificate into `folder` (cryptography; EC P-256, fast)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)  # certificate validity is checked against the real clock by OpenSSL
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "publisher test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(ca=folder / "ca.pem", cert=folder / "cert.pem", key=folder / "key.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@dataclass(frozen=True)
class Received:
    """One message as the server took it."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    at: float | None
    login: str | None
    tls: bool


class _Handler:
    """aiosmtpd hooks: scripted replies, recording. Runs in the server's event-loop thread."""

    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """Offer PIPELINING (RFC 2920) as Postfix does, unless told not to.

        aiosmtpd reads commands one line at a time in order, so a pipelined group
        is answered in order; it only does not say so in its EHLO reply."""
        session.host_name = hostname
        if self.server.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reader = getattr(smtp, "_reader", None)  # aiosmtpd's StreamReader: what came with MAIL, unread yet
        if b"RCPT TO:" in bytes(getattr(reader, "_buffer", b"")):
            with self.server._lock:
                self.server.pipelined_groups += 1
        if self.server.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = self.server._next_reply(address, "mail")
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.server._next_reply(address, "rcpt")
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return reply or "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        plan = getattr(envelope, "publisher_plan", None)
        if plan is not None and not plan.startswith("2") and plan != DROP_AFTER_DATA:
            return str(plan)
        content = envelope.original_content or b""
        self.server._record(
            Received(
                sender=str(envelope.mail_from),
                recipients=tuple(envelope.rcpt_tos),
                data=bytes(content),
                at=self.server.clock() if self.server.clock else None,
                login=session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
                tls=smtp.transport is not None and smtp.transport.get_extra_info("ssl_object") is not None,
            )
        )
        if plan == DROP_AFTER_DATA:
            assert isinstance(smtp, _ScriptedSMTP)
            await smtp.drop()
        return plan or "250 OK"


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP with connection counting and the two kinds of dropped connection."""

    mail_server: MailServer
    dropped = False

    def connection_made(self, transport: Any) -> None:
        upgrade = self._original_transport is not None  # STARTTLS re-enters here: same connection
        super().connection_made(transport)
        if not upgrade:
            self.mail_server._connected(+1, self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.mail_server._connected(-1, self)

    async def drop(self) -> None:
        """Cut the line at once (RST, unread data discarded) and wait to be cancelled by aiosmtpd."""
        self.dropped = True
        if isinstance(self.transport, asyncio.Transport):
            self.transport.abort()
        await asyncio.Event().wait()  # connection_lost() cancels this handler; read nothing more

    async def push(self, status: Any) -> None:
        if not self.dropped:
            await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos and not arg:
            plan = next((p for r in envelope.rcpt_tos if (p := self.mail_server._next_reply(r, "data"))), None)
            if plan == DROP_MID_DATA and isinstance(self.transport, asyncio.Transport):
                self.transport.pause_reading()  # read nothing more: the client blocks once the buffers are full
                await self.push("354 End data with <CR><LF>.<CR><LF>")
                await asyncio.sleep(0.05)
                await self.drop()
            envelope.publisher_plan = plan  # type: ignore[attr-defined]  # read back in handle_DATA
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, mail_server: MailServer, **kwargs: Any) -> None:
        self.mail_server = mail_server
        super().__init__(_Handler(mail_server), **kwargs)

    def factory(self) -> SMTP:
        smtp = _ScriptedSMTP(self.handler, **self.SMTP_kwargs)
        smtp.mail_server = self.mail_server
        return smtp


class MailServer:
    """An aiosmtpd server on 127.0.0.1; a context manager. See the module docs."""

    def __init__(
        self,
        *,
        tls: TlsFiles | None = None,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        reject_auth: bool = False,
        mechanisms: Iterable[str] = ("PLAIN", "LOGIN"),
        clock: Callable[[], float] | None = None,
        small_window: bool = False,
        pipelining: bool = True,
    ) -> None:
        if implicit_tls and tls is None:
            raise ValueError("implicit TLS (SMTPS) needs tls=make_tls_files(...)")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.users = dict(users or {})
        self.reject_auth = reject_auth
        self.clock = clock
        self.small_window = small_window
        self.pipelining = pipelining
        self.auth_required = bool(users or reject_auth)
        self.received: list[Received] = []
        self.auth_attempts: list[tuple[str, str]] = []  # (mechanism, login)
        self.attempts: Counter[str] = Counter()  # RCPT commands per address
        self.pipelined_groups = 0  # MAIL commands that arrived with their RCPT (a pipelined client)
        self.connections_opened = 0
        self.connections_open = 0
        self.peak_connections = 0
        self._lock = threading.Lock()
        self._live: set[_ScriptedSMTP] = set()
        self._scripts: dict[tuple[str, str], deque[str]] = defaultdict(deque)
        self._always: dict[tuple[str, str], str] = {}
        kwargs: dict[str, Any] = {"server_hostname": SERVER_NAME, "ready_timeout": 5.0}
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls.server_context()
        elif tls is not None:
            kwargs["tls_context"] = tls.server_context()
        if users or reject_auth:
            kwargs.update(
                authenticator=self._authenticate,
                auth_require_tls=False,  # AUTH over plain SMTP is tested too (loopback only)
                auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in set(mechanisms)],
            )
        self._controller = _Controller(self, hostname=self.host, port=self.port, **kwargs)

    # -- life --
    def start(self) -> MailServer:
        self._controller.start()
        server = self._controller.server
        if self.small_window and isinstance(server, asyncio.Server):  # accepted sockets inherit the buffer size
            for listener in server.sockets:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with self._lock:  # forget the Controller's own start-up probe
            self.connections_opened = 0
            self.peak_connections = self.connections_open
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, user: str | None = None) -> str:
        """The email URL a client should use for this server."""
        scheme = "smtps" if self.implicit_tls else "smtp+starttls" if self.tls else "smtp"
        return f"{scheme}://{user + '@' if user else ''}{self.host}:{self.port}"

    # -- scripting --
    def script(self, address: str, *replies: str, at: str = "rcpt") -> None:
        """Replies for the next attempts to `address`, one per attempt; then the usual answer."""
        with self._lock:
            self._scripts[(address, at)].extend(replies)

    def always(self, address: str, reply: str, *, at: str = "rcpt") -> None:
        """`reply` on every attempt to `address` (after any scripted ones)."""
        with self._lock:
            self._always[(address, at)] = reply

    def _next_reply(self, address: str, at: str) -> str | None:
        with self._lock:
            if at == "rcpt":
                self.attempts[address] += 1
            queue = self._scripts.get((address, at))
            if queue:
                return queue.popleft()
            return self._always.get((address, at))

    # -- what happened --
    def _record(self, message: Received) -> None:
        with self._lock:
            self.received.append(message)

    def _connected(self, change: int, session: _ScriptedSMTP) -> None:
        with self._lock:
            self.connections_open += change
            if change > 0:
                self.connections_opened += 1
                self.peak_connections = max(self.peak_connections, self.connections_open)
                self._live.add(session)
            else:
                self._live.discard(session)

    def disconnect_all(self, timeout: float = 5.0) -> None:
        """Close every open connection from the server side (as an idle timeout would); wait until they are gone."""
        with self._lock:
            live = list(self._live)
        loop = self._controller.loop
        for session in live:
            if session.transport is not None:
                loop.call_soon_threadsafe(session.transport.close)
        self.wait_until_idle(timeout)

    def wait_until_idle(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout` seconds) until no connection is open; AssertionError if one still is."""
        deadline = time.monotonic() + timeout
        while self.connections_open and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.connections_open == 0, f"{self.connections_open} connections still open"

    def messages(self, recipient: str) -> list[bytes]:
        with self._lock:
            return [m.data for m in self.received if recipient in m.recipients]

    def count(self, recipient: str) -> int:
        return len(self.messages(recipient))

    def per_recipient(self) -> Counter[str]:
        with self._lock:
            return Counter(r for m in self.received for r in m.recipients)

    def _authenticate(self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        login = data.login.decode() if isinstance(data, LoginPassword) else ""
        with self._lock:
            self.auth_attempts.append((mechanism, login))
        ok = (
            not self.reject_auth and isinstance(data, LoginPassword) and self.users.get(login) == data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


def sample_message(
    n: int, to: str, *, body: str = "Hello.\n.A line that starts with a dot\nÁlvaro, ¿qué tal?\n"
) -> EmailMessage:
    """A small message from Cepei's newsletter address, with a dot-led line and non-ASCII text."""
    msg = EmailMessage()
    msg["From"] = "Cepei <news@cepei.example.org>"
    msg["To"] = to
    msg["Subject"] = f"Issue {n}"
    msg["Date"] = "Fri, 09 Feb 2018 18:00:00 +0100"
    msg["Message-ID"] = f"<issue-{n}.{to.replace('@', '.')}@cepei.example.org>"
    msg.set_content(body)
    return msg
