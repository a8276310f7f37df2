"""An email dispatch: one newsletter issue to every subscriber of a list, once each.

The recipient set is fixed in the ledger when the dispatch first starts (one
row per recipient). Rows are claimed in batches, each message is marked sent
the moment the server accepts it, so a restart after a kill sends to everyone
not yet marked and to no one marked. The issue's MJML is compiled once; each
recipient only gets placeholders filled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from urllib.parse import urlsplit

from publisher import subscribers
from publisher.channels.email import EmailChannel, SendResult, retry_delay
from publisher.config import Site
from publisher.dispatch import Outcome, Runner, final_state
from publisher.errors import InvalidInput, Problem, WorkFailed
from publisher.ledger import Delivery, SentMessage
from publisher.render.email import Issue, personalise, render_issue
from publisher.render.message import build_message
from publisher.timeline import Dispatch
from publisher.unsubscribe import list_unsubscribe_headers, make_token, unsubscribe_url

BATCH = 500
LEASE_SECONDS = 600.0
OUTBOX_SECRET = "outbox-only: not a secret; set PUBLISHER_SECRET before sending for real"


def message_id(dispatch_id: str, email: str, host: str) -> str:
    """Stable per dispatch and recipient: a resend after a crash carries the same Message-ID."""
    digest = hashlib.blake2b(email.lower().encode(), digest_size=8).hexdigest()
    return f"<{dispatch_id}.{digest}@{host}>"


def signing_secret(site: Site, channel: EmailChannel) -> str:
    """PUBLISHER_SECRET signs unsubscribe links; real sending refuses to go without it."""
    secret = site.secret("PUBLISHER_SECRET")
    if secret:
        return secret
    if channel.is_outbox:
        return OUTBOX_SECRET
    raise InvalidInput(
        [Problem("environment", 1, "PUBLISHER_SECRET", "is not set: it signs unsubscribe links, needed to send mail")]
    )


class Letters:
    """Builds each recipient's message from one compiled issue."""

    def __init__(self, site: Site, issue: Issue, list_name: str, dispatch_id: str, secret: str) -> None:
        self.site = site
        self.issue = issue
        self.list_name = list_name
        self.dispatch_id = dispatch_id
        self.secret = secret
        self.host = urlsplit(site.settings.site.url).hostname or "localhost"
        news = site.settings.newsletter
        self.sender = news.from_
        self.mailto = news.reply_to
        self.common = {"List-Id": f"<{list_name}.{self.host}>"}
        if news.reply_to:
            self.common["Reply-To"] = news.reply_to

    def letter(self, email: str, name: str, date: dt.datetime, *, test: bool = False) -> EmailMessage:
        link = unsubscribe_url(self.site.settings.site.url, make_token(self.secret, email, self.list_name))
        html, text = personalise(self.issue, name=name, unsubscribe_url=link, email=email)
        headers = {**self.common, **list_unsubscribe_headers(link, self._mailto())}
        return build_message(
            self.issue,
            sender=self.sender,
            to=email,
            html=html,
            text=text,
            headers=headers,
            message_id=message_id(self.dispatch_id, email, self.host),
            date=date,
            test=test,
        )

    def _mailto(self) -> str | None:
        return self.mailto.split("<")[-1].rstrip(">").strip() if self.mailto else None


def issue_for(runner: Runner, d: Dispatch) -> Issue:
    records = [runner.by_id[i] for i in d.record_ids if i in runner.by_id]
    if not records:
        raise WorkFailed(f"dispatch {d.id}: its records {', '.join(d.record_ids)} are gone")
    return render_issue(records, runner.site.settings, runner.templates, list_name=d.list)


def send(runner: Runner, d: Dispatch, *, channel: EmailChannel | None = None) -> Outcome:
    """Send dispatch `d` to its list; resumable after any crash."""
    store, now = runner.store, runner.clock()
    channel = channel or EmailChannel.from_site(runner.site)
    list_name = d.list or "news"
    letters = Letters(runner.site, issue_for(runner, d), list_name, d.id, signing_secret(runner.site, channel))
    store.set_dispatch_state(d.id, "sending", now)
    if not store.counts(d.id):
        store.fix_recipients(d.id, [s.email for s in subscribers.recipients(store, list_name)], now)
    total = sum(store.counts(d.id).values())
    names = {s.email: s.name or "" for s in subscribers.list_subscribers(store, list_name)}
    done = 0
    rng = random.Random()
    while not runner.stopping() and (batch := store.claim(d.id, BATCH, runner.worker, runner.clock(), LEASE_SECONDS):
        by_id = {row.id: row for row in batch}

        def items(rows: Sequence[Delivery] = batch) -> Iterator[tuple[int, EmailMessage, str]]:
            for row in rows:
                yield row.id, letters.letter(row.target, names.get(row.target, ""), runner.clock()), row.target

        def record(key: int, result: SendResult) -> None:
            _record(runner, by_id[key], result, rng, d.id)

        try:
            channel.send_many(items(), record)
        finally:
            store.release(runner.worker, runner.clock(), ids=[r.id for r in batch])
        done += len(batch)
        if runner.on_progress:
            runner.on_progress(d.id, done, total)
    return _finish(runner, d)


def _record(runner: Runner, row: Delivery, result: SendResult, rng: random.Random, dispatch_id: str) -> None:
    store, now = runner.store, runner.clock()
    reply = f"{result.code} {result.text}".strip() if result.code else result.text
    if result.sent:
        store.mark_sent_each([SentMessage(row.id, message_id=result.message_id, reply=reply)], now)
    elif result.retryable:
        delay = dt.timedelta(seconds=retry_delay(row.attempts + 1, rng))
        store.mark_failed(row.id, now, permanent=False, reply=reply, next_attempt_at=now + delay)
    else:
        store.mark_failed(row.id, now, permanent=True, reply=reply)
        if result.recipient_refused:
            subscribers.mark_bounced(store, row.target, now)


def _finish(runner: Runner, d: Dispatch) -> Outcome:
    """Settle the dispatch's state from its ledger; give up retrying past the retry budget."""
    store, now = runner.store, runner.clock()
    row = store.get_dispatch(d.id)
    budget = dt.timedelta(seconds=runner.site.settings.email.retry_budget)
    if row is not None and row.started_at is not None and now - row.started_at > budget:
        store.give_up(d.id, now, reply="retry budget spent") if hasattr(store, "give_up") else None
    counts = store.counts(d.id)
    state = final_state(counts)
    retry_at = store.next_retry(d.id) if state == "partly_sent" and hasattr(store, "next_retry") else None
    note = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    store.set_dispatch_state(d.id, state, now, note=note, counts=counts, next_attempt_at=retry_at)
    return Outcome(d.id, d.channel, state, counts, note)


def test_send(site: Site, issue: Issue, address: str, now: dt.datetime) -> SendResult:
    """`publisher send ISSUE --to ADDR`: one message marked as a test, outside the ledger."""
    channel = EmailChannel.from_site(site)
    letters = Letters(site, issue, issue.list_name or "test", f"test-{issue.id}", signing_secret(site, channel))
    return channel.send(letters.letter(address, "", now, test=True), address)
