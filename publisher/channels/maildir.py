"""The Maildir transport: each message one file in ``new/``, readable by any mail client.

The default when no SMTP URL is set (``maildir:outbox/mail``): nothing leaves the machine.
"""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path

from publisher.channels.email_url import TransportConfig
from publisher.channels.mail_transport import Outgoing, Sendable, SendResult, prepare
from publisher.channels.signing import Signer
from publisher.errors import ChannelError


class MaildirTransport:
    """Delivers each message as one file in a Maildir's ``new/`` folder; no network. Thread-safe."""

    def __init__(self, config: TransportConfig, *, signer: Signer | None = None, envelope_from: str | None = None):
        if config.kind != "maildir" or config.path is None:
            raise ValueError(f"{config.shown} is not a Maildir URL")
        self.config = config
        self.path: Path = config.path
        self.signer = signer
        self.envelope_from = envelope_from
        self._box: mailbox.Maildir | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            if self._box is None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)  # Maildir makes only the last folder
                    self._box = mailbox.Maildir(self.path, factory=None, create=True)
                except OSError as exc:
                    raise ChannelError(f"cannot open the Maildir {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        with self._lock:
            self._box = None

    def send(self, message: Sendable, recipient: str) -> SendResult:
        return self.deliver(prepare(message, self.signer, self.envelope_from), recipient)

    def deliver(self, outgoing: Outgoing, recipient: str) -> SendResult:
        self.open()
        data = outgoing.data.replace(b"\r\n", b"\n")  # files in a Maildir have Unix line ends
        try:
            with self._lock:
                assert self._box is not None
                key = self._box.add(data)
        except OSError as exc:
            text = f"cannot write to the Maildir {self.path}: {exc.strerror or exc}"
            return SendResult("temporary", None, text, outgoing.message_id, "write")
        return SendResult("sent", None, f"delivered to {self.path} as {key}", outgoing.message_id, "write")
