"""A social dispatch: one post (or thread) on one network, with honest outcomes.

Without the network's credentials in the environment, the post goes to
`outbox/posts/<network>/` instead. Outcomes map onto the ledger: posted and
duplicate → sent (with the post's id and URL); unknown → unknown (never
retried blindly); rate_limited → retried at the network's reset time;
failed → failed (retried only when the channel says a retry is safe).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from publisher.channels.remote_image import site_policy, with_images
from publisher.channels.social import AuthFailed, OutboxChannel, Published, SocialChannel, credentials
from publisher.dispatch import email as email_dispatch  # its LEASE_SECONDS, which a worker may set
from publisher.dispatch.context import Outcome, Runner
from publisher.dispatch.leases import LeaseKeeper
from publisher.errors import WorkFailed
from publisher.render.social import Post, render_post
from publisher.site.config import Site
from publisher.store.ledger import SentMessage
from publisher.store.tables import DispatchState
from publisher.timeline.plan import Dispatch

RETRY_AFTER = dt.timedelta(minutes=5)


def is_outbox(site: Site, network: str) -> bool:
    """True when the network's credentials are missing: posts only land in the outbox."""
    return credentials(network, site.env) is None


_OPEN: dict[tuple[str, str], SocialChannel] = {}


def open_channel(site: Site, network: str) -> SocialChannel:
    """The network's channel (its outbox without credentials), one per process and site.

    Reusing it keeps one login: Bluesky allows 30 logins per 5 minutes per handle.
    """
    key = (str(site.root), network)
    if key not in _OPEN:
        from publisher.channels.bluesky import open_bluesky
        from publisher.channels.mastodon import open_mastodon
        from publisher.channels.x import open_x

        openers = {"x": open_x, "mastodon": open_mastodon, "bluesky": open_bluesky}
        _OPEN[key] = openers[network](site)
    return _OPEN[key]


def post_for(runner: Runner, d: Dispatch, channel: SocialChannel) -> Post:
    """The dispatch's post, measured with the instance's own limits when the channel knows them."""
    record = next((runner.by_id[i] for i in d.record_ids if i in runner.by_id), None)
    if record is None:
        raise WorkFailed(f"dispatch {d.id}: its record {', '.join(d.record_ids)} is gone")
    limits = getattr(channel, "limits", None)
    if callable(limits):  # a Mastodon instance says its own max_characters and URL length
        limit, url_length = limits()
        return render_post(
            record, d.channel, runner.site.settings, runner.templates, limit=limit, url_length=url_length
        )
    return render_post(record, d.channel, runner.site.settings, runner.templates)


def post(runner: Runner, d: Dispatch, *, channel: SocialChannel | None = None) -> Outcome:
    """Publish dispatch `d` on its network, once."""
    store, now = runner.store, runner.clock()
    store.set_dispatch_state(d.id, "sending", now)
    store.fix_recipients(d.id, [d.channel], now)
    claimed = store.claim(d.id, 1, runner.worker, now, email_dispatch.LEASE_SECONDS)
    if not claimed:
        counts = store.counts(d.id)
        row = store.get_dispatch(d.id)
        return Outcome(d.id, d.channel, row.state if row else "sending", counts, "already being posted")
    row_id = claimed[0].id
    channel = channel or open_channel(runner.site, d.channel)
    site = runner.site
    # A remote image that cannot be had does not sink the post: it goes out without it. The outbox
    # keeps the image's URL as written, for the person who posts by hand.
    missing: list[str] = []
    # The lease is renewed while the image is fetched and the post (a thread, its retries) goes out: however
    # long that takes, the clock never sees this live worker's row as abandoned and posts it a second time.
    with LeaseKeeper(store, d.id, runner.worker, runner.clock, email_dispatch.LEASE_SECONDS):
        ready = post_for(runner, d, channel)
        if not isinstance(channel, OutboxChannel):
            ready, missing = with_images(ready, site.root, site_policy(site))
        try:
            published = channel.publish(ready, key=d.id, media_root=site.root)
        except AuthFailed as exc:
            store.mark_failed(row_id, runner.clock(), permanent=True, reply=str(exc), worker=runner.worker)
            raise
    return _settle(runner, d, row_id, published, missing)


def _settle(runner: Runner, d: Dispatch, row_id: int, published: Published, missing: list[str]) -> Outcome:
    store, now = runner.store, runner.clock()
    fields: dict[str, Any]
    state: DispatchState
    first_id = published.ids[0] if published.ids else None
    if published.outcome in ("posted", "duplicate"):
        note = published.url or ""
        if published.outcome == "duplicate":
            note = f"already published (the network refused a duplicate) {note}".strip()
        note = "; ".join([*(f"sent without image: {why}" for why in missing), *([note] if note else [])])
        store.mark_sent_each([SentMessage(row_id, remote_id=first_id, remote_url=published.url, reply=note)], now)
        state, fields = "sent", {"result_id": first_id, "result_url": published.url}
    elif published.outcome == "unknown" and published.retryable:
        retry_at = now + RETRY_AFTER
        store.mark_failed(
            row_id, now, permanent=False, reply=published.message, next_attempt_at=retry_at, worker=runner.worker
        )
        note = f"outcome unknown; the network makes a retry safe, retrying at {retry_at.isoformat()}"
        state, fields = "due", {"next_attempt_at": retry_at}
    elif published.outcome == "unknown":
        store.mark_unknown(row_id, now, reply=published.message, worker=runner.worker)
        note = f"outcome unknown, not retried: {published.message}".strip()
        state, fields = "unknown", {"result_id": first_id, "result_url": published.url}
    elif published.outcome == "rate_limited":
        retry_at = published.retry_at or now + RETRY_AFTER
        store.mark_failed(
            row_id, now, permanent=False, reply=published.message, next_attempt_at=retry_at, worker=runner.worker
        )
        note = f"rate-limited until {retry_at.isoformat()}"
        state, fields = "rate_limited", {"next_attempt_at": retry_at}
    elif published.retryable:
        retry_at = now + RETRY_AFTER
        store.mark_failed(
            row_id, now, permanent=False, reply=published.message, next_attempt_at=retry_at, worker=runner.worker
        )
        note = f"failed, retrying at {retry_at.isoformat()}: {published.message}"
        state, fields = "due", {"next_attempt_at": retry_at}
    else:
        store.mark_failed(row_id, now, permanent=True, reply=published.message, worker=runner.worker)
        note = f"failed: {published.message}"
        state, fields = "failed", {}
    counts = store.counts(d.id)
    store.set_dispatch_state(d.id, state, now, note=note, counts=counts, **fields)
    return Outcome(d.id, d.channel, state, counts, note)
