"""Mail transports and what they report; here the SMTP one (plain, STARTTLS, SMTPS; AUTH).

A transport hands one message to one recipient and says what happened, as a
:class:`SendResult`. It never retries later on its own (the dispatcher does,
from the ledger); it only reconnects once, at once, when a connection it was
reusing turns out to be dead before the message was handed over.

What an outcome means:

- ``sent``: the server answered 2xx after the message (or it is in the Maildir).
- ``temporary``: a 4xx reply, or no connection, or a connection lost before the
  final ``.`` of the message went out: nothing was delivered, retry later.
- ``permanent``: a 5xx reply about this recipient or this message. `stage`
  says when: ``rcpt`` (the address is refused: a bounce) or ``data`` (the
  message was refused, at the DATA command or after its final dot).
- ``auth``: the server refuses *us*: login rejected, no AUTH, no STARTTLS, an
  untrusted certificate, or the envelope sender refused. Stop the dispatch.
- ``unknown``: the connection was lost after the whole message went out and
  before the server's reply. The server may have accepted it. Retrying it may
  repeat it: this is the one repeat window, at most one message per connection.
"""

from __future__ import annotations

import dataclasses
import smtplib
import socket
import ssl
from collections.abc import Callable
from typing import Literal, Protocol

from publisher.channels.email_url import TransportConfig
from publisher.channels.signing import Signer
from publisher.channels.wire import Enveloped, Outgoing, Sendable, prepare, smtp_payload
from publisher.errors import ChannelError

__all__ = [
    "AuthenticationFailed",
    "Enveloped",
    "Outgoing",
    "SendOutcome",
    "SendResult",
    "Sendable",
    "SenderRejected",
    "ServerUnavailable",
    "SmtpTransport",
    "Transport",
    "classify",
    "prepare",
    "smtp_payload",
]

SendOutcome = Literal["sent", "temporary", "permanent", "auth", "unknown"]
#: Where the answer came: opening the connection, MAIL FROM, RCPT TO, DATA (the command or the
#: reply to the message), `reply` (the line was lost while awaiting that reply), a Maildir `write`,
#: or `queued` (never attempted: the run stopped first).
Stage = Literal["connect", "mail", "rcpt", "data", "reply", "write", "queued"]
AUTH_CODES = frozenset({530, 534, 535, 538})


class AuthenticationFailed(ChannelError):
    """The server refuses this sender as a whole (login, TLS, AUTH): the dispatch stops, nothing more is sent."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        self.code = code
        super().__init__(message, permanent=True)


class SenderRejected(AuthenticationFailed):
    """The server refused the envelope sender (MAIL FROM) with a 5xx: not one recipient's fault."""


class ServerUnavailable(ChannelError):
    """No connection to the mail server could be opened: nothing more was sent, try the dispatch later."""


@dataclasses.dataclass(frozen=True)
class SendResult:
    """What happened to one message for one recipient."""

    outcome: SendOutcome
    code: int | None = None
    text: str = ""
    message_id: str | None = None
    stage: Stage = "reply"

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"

    @property
    def retryable(self) -> bool:
        """Not sent, and nothing wrong with the recipient: worth another attempt later.

        ``unknown`` is included (see the module docs on repeats), and so is ``auth``:
        once the login or the sender is fixed, these recipients are still owed the message.
        """
        return self.outcome in ("temporary", "unknown", "auth")

    @property
    def recipient_refused(self) -> bool:
        """A 5xx about the address itself (RCPT): the subscriber bounced."""
        return self.outcome == "permanent" and self.stage == "rcpt"

    def error(self) -> AuthenticationFailed:
        """The exception that stops a dispatch on an ``auth`` outcome."""
        kind = SenderRejected if self.stage == "mail" and self.code not in AUTH_CODES else AuthenticationFailed
        return kind(self.text, code=self.code)


def classify(code: int) -> SendOutcome:
    """The outcome of a server reply code."""
    if 200 <= code < 300:
        return "sent"
    if code in AUTH_CODES:
        return "auth"
    if 500 <= code < 600:
        return "permanent"
    return "temporary"  # 4xx, and anything a sane server would not say


class Transport(Protocol):
    """Hands messages to a mail system, one recipient at a time."""

    def open(self) -> None: ...

    def send(self, message: Sendable, recipient: str) -> SendResult: ...

    def close(self) -> None: ...


def _reply_text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply).replace("\n", " ").strip()


def _envelope_address(address: str) -> str | None:
    """`address` as it goes between ``<`` and ``>`` in MAIL FROM or RCPT TO; None when it needs
    smtplib's quoting (a display name, angle brackets, spaces) or is no address at all."""
    plain = "@" in address and address.isprintable() and not any(c in '<>"' or c.isspace() for c in address)
    return address if plain else None


class _Dropped(Exception):
    def __init__(self, stage: Stage, reason: str) -> None:
        self.stage = stage
        self.reason = reason
        super().__init__(reason)


class _NoConnection(Exception):
    def __init__(self, result: SendResult) -> None:
        self.result = result
        super().__init__(result.text)


class SmtpTransport:
    """One SMTP connection, opened on first use, kept open between messages; not shared between threads."""

    def __init__(
        self,
        config: TransportConfig,
        *,
        signer: Signer | None = None,
        envelope_from: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        helo_name: str | None = None,
        pipelining: bool = True,
    ) -> None:
        if not config.is_smtp:
            raise ValueError(f"{config.shown} is not an SMTP URL")
        self.config = config
        self.signer = signer
        self.envelope_from = envelope_from
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.helo_name = helo_name or socket.gethostname() or "localhost"  # getfqdn() would ask DNS
        self.pipelining = pipelining  # used when the server offers it (RFC 2920)
        self._smtp: smtplib.SMTP | None = None
        self.connections_opened = 0

    @property
    def where(self) -> str:
        return f"the SMTP server at {self.config.host}:{self.config.port}"

    def open(self) -> None:
        """Connect (and STARTTLS, and log in) unless already connected.

        Raises AuthenticationFailed when the server refuses us, _NoConnection otherwise.
        """
        if self._smtp is None:
            self._smtp = self._connect()
            self.connections_opened += 1

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: Sendable, recipient: str) -> SendResult:
        return self.deliver(prepare(message, self.signer, self.envelope_from), recipient)

    def deliver(self, outgoing: Outgoing, recipient: str) -> SendResult:
        """Send prepared bytes to one recipient; a connection lost before DATA ends is reopened once."""
        payload = smtp_payload(outgoing.data, crlf=outgoing.crlf)
        for attempt in (1, 2):
            try:
                self.open()
            except AuthenticationFailed as exc:
                return SendResult("auth", exc.code, str(exc), outgoing.message_id, "connect")
            except _NoConnection as exc:
                if attempt == 2:
                    return dataclasses.replace(exc.result, message_id=outgoing.message_id)
                continue
            try:
                return self._transaction(outgoing, payload, recipient)
            except _Dropped as drop:
                self._discard()
                if drop.stage == "reply":
                    text = (
                        f"{self.where} closed the connection after the message was sent, before its reply:"
                        f" it may have been accepted ({drop.reason})"
                    )
                    return SendResult("unknown", None, text, outgoing.message_id, "reply")
                if attempt == 2:
                    text = f"{self.where} closed the connection before the whole message was sent ({drop.reason})"
                    return SendResult("temporary", None, text, outgoing.message_id, drop.stage)
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(self, outgoing: Outgoing, payload: bytes, recipient: str) -> SendResult:
        smtp = self._smtp
        assert smtp is not None
        options = []
        if not outgoing.data.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (outgoing.sender.isascii() and recipient.isascii()):
            if not smtp.has_extn("smtputf8"):
                text = f"{self.where} does not accept non-ASCII addresses (no SMTPUTF8)"
                return SendResult("permanent", None, text, outgoing.message_id, "rcpt")
            options.append("SMTPUTF8")
        sender, to = _envelope_address(outgoing.sender), _envelope_address(recipient)
        if self.pipelining and smtp.has_extn("pipelining") and sender is not None and to is not None:
            refused = self._envelope_pipelined(smtp, outgoing, (sender, to), options)
        else:  # one command at a time (smtplib quotes an address that needs it)
            refused = self._envelope(smtp, outgoing, recipient, options)
        if refused is not None:
            return refused
        stage: Stage = "data"
        try:
            smtp.send(payload)
            stage = "reply"  # the whole message is out: from here on a lost line leaves it unknown
            code, reply = smtp.getreply()
        except OSError as exc:  # smtplib's own errors are OSErrors too: all mean the line is gone
            raise _Dropped(stage, str(exc) or type(exc).__name__) from exc
        if code == 421:
            self._discard()
        return SendResult(classify(code), code, _reply_text(reply), outgoing.message_id, "data")

    def _envelope(
        self, smtp: smtplib.SMTP, outgoing: Outgoing, recipient: str, options: list[str]
    ) -> SendResult | None:
        """MAIL, RCPT and DATA one by one: None once DATA is answered 354, else the refusal."""
        steps: tuple[tuple[Stage, Callable[[], tuple[int, bytes]], tuple[int, ...]], ...] = (
            ("mail", lambda: smtp.mail(outgoing.sender, options), (250,)),
            ("rcpt", lambda: smtp.rcpt(recipient), (250, 251)),
            ("data", lambda: smtp.docmd("DATA"), (354,)),
        )
        stage: Stage = "mail"
        try:
            for stage, command, accepted in steps:
                code, reply = command()
                if code not in accepted:
                    return self._refused(code, reply, outgoing, stage)
        except OSError as exc:
            raise _Dropped(stage, str(exc) or type(exc).__name__) from exc
        return None

    def _envelope_pipelined(
        self, smtp: smtplib.SMTP, outgoing: Outgoing, envelope: tuple[str, str], options: list[str]
    ) -> SendResult | None:
        """MAIL, RCPT and DATA in one write (PIPELINING, RFC 2920): None once DATA is answered 354.

        Two round trips a message instead of four. Every reply of the group is
        read, in order, before anything else is sent; the first refusal is the
        one reported. A server that answers DATA with 354 although MAIL or RCPT
        was refused gets an empty message (just the final dot), which it must
        refuse for want of a recipient, then RSET.
        """
        sender, to = envelope
        mail = f"MAIL FROM:<{sender}>{''.join(' ' + option for option in options)}"
        group = f"{mail}\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode("utf-8" if "SMTPUTF8" in options else "ascii")
        stage: Stage = "mail"
        refusal: tuple[int, bytes, Stage] | None = None
        try:
            smtp.send(group)
            for stage, accepted in (("mail", (250,)), ("rcpt", (250, 251)), ("data", (354,))):
                code, reply = smtp.getreply()
                if code == 421:  # the server is closing the connection: nothing more will be read
                    self._discard()
                    if refusal is not None:  # what it refused before it closed still stands (a bounce, a sender)
                        return self._refused(*refusal[:2], outgoing, refusal[2])
                    return self._refused(code, reply, outgoing, stage)
                if code not in accepted and refusal is None:
                    refusal = (code, reply, stage)
            if refusal is not None and code == 354:  # DATA accepted with no recipient: end the empty message
                smtp.send(b".\r\n")
                smtp.getreply()
        except OSError as exc:
            raise _Dropped(stage, str(exc) or type(exc).__name__) from exc
        return None if refusal is None else self._refused(*refusal[:2], outgoing, refusal[2])

    def _refused(self, code: int, reply: bytes, outgoing: Outgoing, stage: Stage) -> SendResult:
        """A refusal before the message went out: reset the transaction (or drop a closing connection)."""
        outcome = classify(code)
        if stage == "mail" and outcome == "permanent":
            outcome = "auth"  # the sender itself is refused: every recipient would be
        text = _reply_text(reply)
        if outcome == "auth":
            text = f"{self.where} refused {'the sender ' + outgoing.sender if stage == 'mail' else 'us'}: {code} {text}"
        if code == 421:
            self._discard()
        elif self._smtp is not None:  # (gone already when the server closed after refusing)
            try:
                self._smtp.rset()
            except OSError:
                self._discard()
        return SendResult(outcome, code, text, outgoing.message_id, stage)

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        context = self.ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP | None = None
        try:
            if config.kind == "smtps":
                smtp = smtplib.SMTP_SSL(
                    config.host, config.port, local_hostname=self.helo_name, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, local_hostname=self.helo_name, timeout=self.timeout)
            smtp.ehlo_or_helo_if_needed()
            if config.kind == "smtp+starttls":
                if not smtp.has_extn("starttls"):
                    raise AuthenticationFailed(f"{self.where} does not offer STARTTLS; nothing is sent unencrypted")
                smtp.starttls(context=context)
                smtp.ehlo()
            if config.username:
                self._login(smtp)
            return smtp
        except AuthenticationFailed:
            self._close_quietly(smtp)
            raise
        except ssl.SSLError as exc:
            self._close_quietly(smtp)
            reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            raise AuthenticationFailed(f"TLS with {self.where} failed: {reason}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self._close_quietly(smtp)
            code = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else None
            text = f"cannot open a connection to {self.where}: {_reply_text(str(exc)) or type(exc).__name__}"
            raise _NoConnection(SendResult("temporary", code, text, None, "connect")) from None

    def _login(self, smtp: smtplib.SMTP) -> None:
        user = self.config.username or ""
        try:
            smtp.login(user, self.config.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.smtp_code < 500:  # 454: temporary authentication failure
                raise smtplib.SMTPResponseException(exc.smtp_code, exc.smtp_error) from None
            reply = _reply_text(exc.smtp_error)
            raise AuthenticationFailed(
                f"{self.where} refused the login for user {user!r}: {exc.smtp_code} {reply}", code=exc.smtp_code
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise AuthenticationFailed(f"{self.where} does not offer AUTH; cannot log in as {user!r}") from None
        except smtplib.SMTPException as exc:
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                raise
            raise AuthenticationFailed(f"{self.where}: cannot log in as {user!r}: {exc}") from None

    @staticmethod
    def _close_quietly(smtp: smtplib.SMTP | None) -> None:
        if smtp is not None:
            smtp.close()
