"""The email channel: sends built messages through the transport its URL names.

Transport only: messages arrive built (headers, parts, per-recipient text);
this module turns each into bytes once, signs it (DKIM) when asked, and hands
it over, over N reused SMTP connections at most `rate` messages a second.

`send_many` reports every message to the caller as soon as the server has
answered for it, in the caller's own thread, so the ledger can be marked at
once; answers that arrive together are reported together and then `flush`ed
(one commit for the lot). A connection sends its next message only once its
previous answer has been reported and flushed: so at any instant at most one
message per connection has been accepted by the server and not yet recorded
by the caller (the repeat window after a kill). The other window in which a
message can be repeated: a connection lost after the message went out and
before the server's reply (``unknown``), at most one message per connection.

    with EmailChannel.from_site(site) as channel:  # connections kept from batch to batch
        for batch in batches:
            channel.send_many(((row.id, message(row), row.email) for row in batch), mark_ledger)
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from publisher.channels.email_url import (
    DEFAULT_URL,
    PASSWORD_ENV,
    URL_ENV,
    EmailUrlError,
    TransportConfig,
    parse_email_url,
)
from publisher.channels.mail_transport import (
    AuthenticationFailed,
    Enveloped,
    Sendable,
    SenderRejected,
    SendOutcome,
    SendResult,
    ServerUnavailable,
    SmtpTransport,
    Transport,
    classify,
)
from publisher.channels.maildir import MaildirTransport
from publisher.channels.pacing import TokenBucket, retry_delay
from publisher.channels.signing import Signer, dkim_sign, site_signer
from publisher.site.config import CONFIG_FILE, Site

__all__ = [
    "DEFAULT_URL",
    "PASSWORD_ENV",
    "AuthenticationFailed",
    "EmailChannel",
    "EmailUrlError",
    "Enveloped",
    "MaildirTransport",
    "SendOutcome",
    "SendResult",
    "Sendable",
    "SenderRejected",
    "ServerUnavailable",
    "SmtpTransport",
    "Transport",
    "TransportConfig",
    "classify",
    "dkim_sign",
    "parse_email_url",
    "retry_delay",
]

K = TypeVar("K")
Item = tuple[K, Sendable, str]


@dataclass(frozen=True)
class _Retired:
    """A worker left: its connection could not be opened (or it crashed)."""


class _Answer(NamedTuple, Generic[K]):
    """A worker's answer for one item."""

    key: K
    result: SendResult
    worker: int


class EmailChannel:
    """Email out through one transport URL: N parallel connections, a shared rate limit."""

    def __init__(
        self,
        config: TransportConfig,
        *,
        connections: int = 4,
        rate: float | None = None,
        signer: Signer | None = None,
        envelope_from: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if connections < 1:
            raise ValueError(f"connections must be at least 1 (got {connections})")
        self.config = config
        self.connections = connections if config.is_smtp else 1  # a Maildir gains nothing from threads
        self.signer = signer
        self.envelope_from = envelope_from
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.bucket = TokenBucket(rate, clock=clock, sleep=sleep) if rate else None
        self._idle: list[SmtpTransport | MaildirTransport] = []
        self._idle_lock = threading.Lock()
        self._sessions = 0

    @classmethod
    def from_site(cls, site: Site, *, ssl_context: ssl.SSLContext | None = None) -> EmailChannel:
        """The channel `site` is configured for (``[email]`` and the ``PUBLISHER_*`` environment)."""
        settings = site.settings.email
        from_env = site.secret(URL_ENV) is not None
        config = parse_email_url(
            site.email_url,
            password=site.secret(PASSWORD_ENV),
            username=settings.username,
            root=site.root,
            source=URL_ENV if from_env else CONFIG_FILE,
        )
        return cls(
            config,
            connections=settings.connections,
            rate=settings.rate,
            signer=site_signer(site),
            ssl_context=ssl_context,
        )

    @property
    def is_outbox(self) -> bool:
        """True when mail only goes into a local Maildir (nothing is sent)."""
        return not self.config.is_smtp

    def transport(self) -> SmtpTransport | MaildirTransport:
        """A new transport (one connection) for this channel's URL."""
        if self.config.is_smtp:
            return SmtpTransport(
                self.config,
                signer=self.signer,
                envelope_from=self.envelope_from,
                ssl_context=self.ssl_context,
                timeout=self.timeout,
            )
        return MaildirTransport(self.config, signer=self.signer, envelope_from=self.envelope_from)

    def close(self) -> None:
        """Close the connections kept open between `send_many` calls (QUIT on each)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for transport in idle:
            transport.close()

    def __enter__(self) -> EmailChannel:
        """Inside ``with channel:`` good connections outlive each `send_many`, for the next one."""
        with self._idle_lock:
            self._sessions += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._idle_lock:
            self._sessions -= 1
        self.close()

    def _take(self) -> SmtpTransport | MaildirTransport:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return self.transport()

    def _keep(self, transport: SmtpTransport | MaildirTransport) -> None:
        with self._idle_lock:
            if self._sessions:
                self._idle.append(transport)
                return
        transport.close()

    def send(self, message: Sendable, recipient: str) -> SendResult:
        """One message over its own connection (a test send). Raises AuthenticationFailed on ``auth``."""
        transport = self.transport()
        try:
            if self.bucket is not None:
                self.bucket.acquire()
            result = transport.send(message, recipient)
        finally:
            transport.close()
        if result.outcome == "auth":
            raise result.error()
        return result

    def send_many(
        self,
        items: Iterable[Item[K]],
        on_result: Callable[[K, SendResult], None],
        flush: Callable[[], None] | None = None,
    ) -> Counter[str]:
        """Send every ``(key, message, recipient)``; call ``on_result(key, result)`` as each is answered.

        A message is an EmailMessage, or bytes already in wire form (its From or
        Sender gives the envelope sender unless the channel has `envelope_from`).

        `items` is read lazily (a few per connection ahead), and `on_result` runs in
        the calling thread, one call at a time, in the order answers arrive. Each
        item taken from `items` gets exactly one `on_result` call (unless
        `on_result` itself raises); when reading `items` raises, the messages
        already handed over are still reported before the exception goes on.
        Answers that arrived together are reported in a row, then `flush()` is
        called (the caller commits what `on_result` gathered); only then may the
        connections that gave those answers send their next message.

        After an ``auth`` outcome no further message is attempted: those left get
        a ``temporary`` result at stage ``queued``, and AuthenticationFailed (or
        SenderRejected) is raised once every connection is closed. When no
        connection can be opened at all, ServerUnavailable is raised the same way.
        Returns the count per outcome.

        Connections are closed at the end, unless the call is inside ``with
        channel:``, where good ones are kept for the next call (a dispatch that
        sends in batches) until the block ends.
        """
        return _Run(self, on_result, flush).run(items)


class _Run(Generic[K]):
    """One `send_many`: the worker threads, their queues, and the loop in the caller's thread.

    The first worker sends the first message alone; the others start once it is
    through. So a wrong password costs one login, not one per connection, and a
    server that cannot be reached is tried once.

    Each worker holds a turn (a semaphore) to send a message, given back by the
    caller's thread once that message's answer is reported and flushed: a
    worker has at most one answered message the caller has not recorded.
    """

    def __init__(
        self,
        channel: EmailChannel,
        on_result: Callable[[K, SendResult], None],
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.channel = channel
        self.on_result = on_result
        self.flush = flush
        self.work: queue.SimpleQueue[Item[K] | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[_Answer[K] | _Retired] = queue.SimpleQueue()
        self.turns = [threading.Semaphore(1) for _ in range(channel.connections)]
        self.stop = threading.Event()
        self.first_done = threading.Event()
        self.reached_server = threading.Event()
        self.counts: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._error_lock = threading.Lock()
        self._last_connect_failure = ""

    def run(self, items: Iterable[Item[K]]) -> Counter[str]:
        workers = self.channel.connections
        threads = [
            threading.Thread(target=self._work, args=(n,), name=f"publisher-email-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        window = workers * 2
        try:
            self._loop(iter(items), alive=workers, window=window)
        finally:
            self.stop.set()
            self.first_done.set()
            for turn in self.turns:  # nobody records answers any more: let every worker through to see the stop,
                turn.release(window + 1)  # however many items it still finds queued (at most the window)
            for _ in threads:
                self.work.put(None)
            for thread in threads:
                thread.join()
        if self.error is not None:
            raise self.error
        return self.counts

    def _fail(self, error: BaseException) -> None:
        """Stop the run; the first error is the one raised to the caller."""
        with self._error_lock:
            if self.error is None:
                self.error = error
        self.stop.set()

    def _loop(self, iterator: Iterator[Item[K]], alive: int, window: int) -> None:
        in_flight = 0
        exhausted = False
        while True:
            while not exhausted and not self.stop.is_set() and in_flight < window:
                try:
                    item = next(iterator, None)
                except Exception as exc:  # building a message failed: report what is in flight, then raise
                    self._fail(exc)
                    item = None
                if item is None:
                    exhausted = True
                else:
                    self.work.put(item)
                    in_flight += 1
            if in_flight == 0:
                return
            if alive == 0:  # nobody left to take what is queued: hand it back unsent
                queued = self.work.get_nowait()
                assert queued is not None
                self._report(queued[0], self._unsent())
                self._flush()
                in_flight -= 1
                continue
            events = [self.results.get()]
            while True:  # and every other answer already there: reported, then flushed, together
                try:
                    events.append(self.results.get_nowait())
                except queue.Empty:
                    break
            answered = []
            for event in events:
                if isinstance(event, _Retired):
                    alive -= 1
                    if alive == 0:
                        self._fail(ServerUnavailable(self._last_connect_failure or "no connection to the mail server"))
                    continue
                in_flight -= 1
                self._report(event.key, event.result)
                answered.append(event.worker)
            self._flush()
            for worker in answered:
                self.turns[worker].release()

    def _report(self, key: K, result: SendResult) -> None:
        self.counts[result.outcome] += 1
        self.on_result(key, result)

    def _flush(self) -> None:
        if self.flush is not None:
            self.flush()

    def _unsent(self) -> SendResult:
        why = str(self.error) if self.error is not None else "the run was stopped"
        return SendResult("temporary", None, f"not attempted: {why}", None, "queued")

    def _work(self, index: int) -> None:
        transport = self.channel._take()
        bucket = self.channel.bucket
        healthy = False
        if index > 0:
            self.first_done.wait()
        try:
            while (item := self.work.get()) is not None:
                key, message, recipient = item
                self.turns[index].acquire()  # the previous answer is recorded (or the run is over)
                if self.stop.is_set():
                    self.results.put(_Answer(key, self._unsent(), index))
                    continue
                if bucket is not None:
                    bucket.acquire()
                try:
                    result = transport.send(message, recipient)
                except Exception as exc:  # a bad message or a bug: stop the run, re-raised to the caller
                    self._fail(exc)
                    self.results.put(_Answer(key, self._unsent(), index))
                    return
                carry_on = self._judge(result)
                self.results.put(_Answer(key, result, index))
                if not carry_on:
                    return
                self.first_done.set()
            healthy = self.error is None
        finally:
            if healthy:
                self.channel._keep(transport)
            else:
                transport.close()
            self.first_done.set()
            self.results.put(_Retired())

    def _judge(self, result: SendResult) -> bool:
        """Stop the run on ``auth``; retire this worker when its connection cannot be had. False: retire."""
        if result.outcome == "auth":
            self._fail(result.error())
        elif result.stage == "connect":
            self._last_connect_failure = result.text
            if not self.reached_server.is_set():  # never got through in this run: the server is not there
                self._fail(ServerUnavailable(result.text))
            return False
        else:
            self.reached_server.set()
        return True
