"""An email dispatch: one newsletter issue to every subscriber of a list, once each.

The recipient set is fixed in the ledger when the dispatch first starts (one
row per address). Rows are claimed a batch at a time as the channel asks for
more messages; each message is marked sent as soon as the server accepts it,
on a connection kept for those marks (`publisher.store.marks`; answers that arrive
together are committed together), and a connection sends its next message
only after its previous one is marked. So a restart after a kill sends to
everyone not yet marked and to no one marked; the only repeats possible are
the messages accepted in the instant before the kill: at most one per
connection.

The issue's MJML is compiled once per dispatch; each recipient's message is
that one serialisation with its own values filled in (`publisher.render.letters`).

Per recipient: 2xx → sent; 4xx or a lost connection → failed_temporary, tried
again after a backoff with jitter (within ``[email] retry_budget`` of the
dispatch's start, then failed_permanent); 5xx → failed_permanent, and a 5xx to
RCPT marks the subscriber bounced. Someone who unsubscribed (or bounced) after
the recipient set was fixed is not mailed. A refused login stops the
dispatch at once: it is failed, with one error, and nobody's row is spent.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from typing import NamedTuple

from publisher.audience import recipients, subscribers
from publisher.audience.tokens import SECRET_ENV, link_secret
from publisher.channels.email import AuthenticationFailed, EmailChannel, SendResult, retry_delay
from publisher.dispatch import metrics
from publisher.dispatch.archive import archive_issue
from publisher.dispatch.context import Outcome, Runner, duration, final_state
from publisher.dispatch.leases import LeaseKeeper
from publisher.dispatch.verp import enveloped
from publisher.errors import ChannelError, InvalidInput, Problem, WorkFailed
from publisher.render.email import Issue, render_issue
from publisher.render.letters import Letters, WireMessage
from publisher.site.config import Site
from publisher.store.ledger import SentMessage
from publisher.store.marks import SentMarks
from publisher.timeline.plan import Dispatch

BATCH = 500
LEASE_SECONDS = 30.0  # renewed while the worker lives (`publisher.dispatch.leases`): a dead one's rows wait this long
MIN_RETRY_SECONDS = 5.0
SERVER_RETRY = dt.timedelta(minutes=5)
PROGRESS_EVERY = 100
WAITING = ("pending", "sending", "failed_temporary")


def signing_secret(site: Site, channel: EmailChannel) -> str:
    """PUBLISHER_SECRET signs unsubscribe links (`link_secret`); real sending refuses to go without it."""
    secret = link_secret(site, outbox=channel.is_outbox)
    if secret is not None:
        return secret
    raise InvalidInput(
        [Problem("environment", 1, SECRET_ENV, "is not set: it signs unsubscribe links, needed to send mail")]
    )


def send_now(site: Site, message: EmailMessage, address: str) -> SendResult:
    """One message to `address` at once, outside the ledger (a confirmation link asked for on the web)."""
    return EmailChannel.from_site(site).send(message, address)


def list_of(site: Site, d: Dispatch) -> str:
    return d.list or site.settings.newsletter.lists[0]


def issue_for(runner: Runner, d: Dispatch) -> Issue:
    """The dispatch's issue, from the records the store fixed for it (a digest's set stops growing once it starts)."""
    row = runner.store.get_dispatch(d.id)
    wanted = row.record_ids if row is not None and row.record_ids else d.record_ids
    records = [runner.by_id[i] for i in wanted if i in runner.by_id]
    if not records:
        raise WorkFailed(f"dispatch {d.id}: its records {', '.join(wanted)} are gone")
    return render_issue(records, runner.site.settings, runner.templates, list_name=list_of(runner.site, d))


class Claimed(NamedTuple):
    """A ledger row taken for this send: its id, address and attempts so far (this one included)."""

    id: int
    target: str
    attempts: int


class _Feed:
    """Claims ledger rows as the channel asks for messages, and records each answer.

    Both run in the caller's thread (`send_many` reads `items` lazily and calls
    `record` and `flush` there). Messages the server accepted are marked sent
    in one transaction per group of answers that arrived together (`flush`),
    and the channel lets a connection send its next message only after that
    commit: a kill leaves at most one accepted, unmarked message per connection.
    """

    def __init__(self, runner: Runner, d: Dispatch, letters: Letters, marks: SentMarks, total: int) -> None:
        self.runner = runner
        self.store = runner.store
        self.dispatch = d
        self.letters = letters
        self.marks = marks
        self.total = total
        self.unhanded: dict[int, Claimed] = {}  # claimed, not yet given to the channel
        self.handed: dict[int, Claimed] = {}  # given to the channel, not yet answered for
        self.counts: Counter[str] = Counter()
        self.rng = random.Random()
        self.done = 0
        self.accepted: list[SentMessage] = []  # answered "sent", to be marked at the next flush

    def items(self) -> Iterator[tuple[int, WireMessage, str]]:
        runner, store = self.runner, self.store
        while not runner.stopping():
            taken = store.claim_targets(self.dispatch.id, BATCH, runner.worker, runner.clock(), LEASE_SECONDS)
            if not taken:
                return
            batch = [Claimed(*row) for row in taken]
            self.unhanded.update((row.id, row) for row in batch)
            people = recipients.contacts(store, [row.target for row in batch])
            for row in batch:
                if runner.stopping():
                    return
                del self.unhanded[row.id]
                message, why = self._letter(row.target, people.get(row.target))
                if message is None:
                    store.mark_failed(row.id, runner.clock(), permanent=True, reply=why, worker=runner.worker)
                    self.counts["not_sent"] += 1
                    continue
                self.handed[row.id] = row
                yield row.id, message, row.target

    def _letter(self, target: str, contact: recipients.Contact | None) -> tuple[WireMessage | None, str]:
        """The message for `target`, or None and why it must not be sent (anymore)."""
        if contact is None:
            return None, "not sent: no longer a subscriber"
        why = contact.may_receive(self.letters.list_name)
        if why is not None:
            return None, why
        try:
            return self.letters.letter(target, contact.name, self.runner.clock()), ""
        except ValueError as exc:  # HeaderInjection among them: a value that cannot go in a header
            return None, f"not sent: {exc}"

    def record(self, key: int, result: SendResult) -> None:
        row = self.handed.pop(key)
        store, now = self.store, self.runner.clock()
        reply = f"{result.code} {result.text}".strip() if result.code else result.text
        if result.sent:
            self.accepted.append(SentMessage(row.id, message_id=result.message_id, reply=reply))
        elif result.outcome == "auth" or result.stage == "queued":  # never really tried: nobody's attempt is spent
            store.release(self.runner.worker, now, ids=[row.id])
        elif result.retryable:
            wait = dt.timedelta(seconds=max(MIN_RETRY_SECONDS, retry_delay(max(row.attempts, 1), self.rng)))
            store.mark_failed(
                row.id, now, permanent=False, reply=reply, next_attempt_at=now + wait, worker=self.runner.worker
            )
        else:
            store.mark_failed(row.id, now, permanent=True, reply=reply, worker=self.runner.worker)
            if result.recipient_refused:
                subscribers.mark_bounced(store, row.target, now)
        if result.outcome != "auth" and result.stage != "queued":
            metrics.count("email", "sent" if result.sent else "failed")
        self.counts[result.outcome] += 1
        self.done += 1
        if self.runner.on_progress is not None and (self.done % PROGRESS_EVERY == 0):
            self.runner.on_progress(self.dispatch.id, self.done, self.total)

    def flush(self) -> None:
        """Mark what the server accepted since the last flush, in one committed transaction."""
        if self.accepted:
            self.marks.mark_all(self.accepted, self.runner.clock())
            self.accepted.clear()

    def close(self) -> None:
        """Give back rows claimed and never handed to the channel (a stop, an error)."""
        if self.unhanded:
            self.store.release(self.runner.worker, self.runner.clock(), ids=list(self.unhanded))
            self.unhanded.clear()


def send(runner: Runner, d: Dispatch, *, channel: EmailChannel | None = None) -> Outcome:
    """Send dispatch `d` to its list; resumable after any crash or stop."""
    store, site = runner.store, runner.site
    channel = channel or EmailChannel.from_site(site)
    secret = signing_secret(site, channel)
    list_name = list_of(site, d)
    letters = Letters(site, issue_for(runner, d), list_name, d.id, secret)
    store.set_dispatch_state(d.id, "sending", runner.clock())
    if sum(store.counts(d.id).values()) == 0:
        store.fix_recipients(d.id, recipients.active_addresses(store, list_name), runner.clock())
    gave_up = _stop_retrying(runner, d)
    counts = store.counts(d.id)
    total = sum(counts[state] for state in WAITING)
    error: ChannelError | None = None
    with LeaseKeeper(store, d.id, runner.worker, runner.clock, LEASE_SECONDS), SentMarks(store) as marks:
        feed = _Feed(runner, d, letters, marks, total)
        try:
            channel.send_many(enveloped(site, secret, feed.items()), feed.record, feed.flush)
        except ChannelError as exc:
            error = exc
        finally:
            try:
                feed.flush()  # accepted before an error: marked all the same
            finally:
                feed.close()
    if runner.on_progress is not None:
        runner.on_progress(d.id, feed.done, total)
    gave_up = _stop_retrying(runner, d) or gave_up
    outcome = _finish(runner, d, error, sent_now=feed.counts["sent"], gave_up=gave_up)
    if outcome.counts.get("sent"):  # mailed to someone: readers may now find it in the archive
        archive_issue(site, letters.issue, runner.clock())
    return outcome


def _stop_retrying(runner: Runner, d: Dispatch) -> bool:
    """Past the retry budget (``[email] retry_budget``, counted from the dispatch's start), temporary
    failures become permanent: they are not tried again. True when some were."""
    store, now = runner.store, runner.clock()
    row = store.get_dispatch(d.id)
    budget = runner.site.settings.email.retry_budget
    if row is None or row.started_at is None or (now - row.started_at).total_seconds() <= budget:
        return False
    return store.give_up(d.id, now, reply=f"gave up after the retry budget of {duration(budget)}") > 0


def _finish(runner: Runner, d: Dispatch, error: ChannelError | None, *, sent_now: int, gave_up: bool) -> Outcome:
    """Settle the dispatch's state from its ledger: when to try again, and what to say about it."""
    store, now = runner.store, runner.clock()
    budget = runner.site.settings.email.retry_budget
    row = store.get_dispatch(d.id)
    spent = row is not None and row.started_at is not None and (now - row.started_at).total_seconds() > budget
    counts = store.counts(d.id)
    state = final_state(counts)
    retry_at = store.next_retry(d.id)
    if counts["pending"] or counts["sending"]:
        retry_at = now + SERVER_RETRY if error is not None else now
    if error is not None and (isinstance(error, AuthenticationFailed) or error.permanent or spent):
        state = "failed"
    if state in ("sent", "failed", "unknown"):
        retry_at = None
    notes = []
    if not sum(counts.values()):
        notes.append("no active subscribers on the list")
    if gave_up:
        notes.append(f"retries stopped after the retry budget of {duration(budget)}")
    if retry_at is not None:
        notes.append(f"next attempt at {retry_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")  # `now` may be -05:00
    if error is not None:
        notes.append(str(error))
    note = "; ".join(notes)
    store.set_dispatch_state(d.id, state, now, note=note, counts=counts, next_attempt_at=retry_at)
    return Outcome(d.id, d.channel, state, counts, note, error=str(error) if error else None, sent_now=sent_now)


def send_test_issue(site: Site, issue: Issue, address: str, now: dt.datetime) -> SendResult:
    """`publisher send ISSUE --to ADDR`: one message marked as a test, outside the ledger.

    Each test send gets a Message-ID of its own (a random part in its name): Gmail shows a second message
    with a Message-ID it has seen as the first one, so a corrected issue would never appear.
    """
    channel = EmailChannel.from_site(site)
    list_name = issue.list_name or site.settings.newsletter.lists[0]
    name = f"test-{issue.id}-{secrets.token_hex(6)}"
    letters = Letters(site, issue, list_name, name, signing_secret(site, channel), test=True)
    return channel.send(letters.letter(address, "", now), address)
