"""A feeds dispatch: publish the site's feeds as of the dispatch's time.

The files are those `publisher build --now T` writes for the same time (the
same records, the same enclosure sizes), so the two never undo each other.
"""

from __future__ import annotations

from publisher.dispatch.context import Outcome, Runner
from publisher.render.feeds import feed_set
from publisher.site.files import write_file
from publisher.site.media import image_sizes, site_image
from publisher.store.ledger import SentMessage
from publisher.timeline.plan import Dispatch

TARGET = "feeds"


def publish(runner: Runner, d: Dispatch) -> Outcome:
    """Write every feed with the records published by now (only files that changed)."""
    store, now = runner.store, runner.clock()
    store.set_dispatch_state(d.id, "sending", now)
    store.fix_recipients(d.id, [TARGET], now)
    claimed = store.claim(d.id, 1, runner.worker, now, 60.0)
    live = [r for r in runner.records if r.published <= max(now, d.due)]
    sizes = image_sizes(runner.site.root, map(site_image, live))
    written = 0
    for feed in feed_set(live, runner.site.settings, sizes=sizes):  # as `publisher build` writes them
        written += write_file(str(runner.site.root / feed.path), feed.content)[0]
    note = f"{written} feed files changed in {runner.site.root / 'feeds'}"
    if claimed:
        store.mark_sent_each([SentMessage(claimed[0].id, reply=note)], runner.clock())
    counts = store.counts(d.id)
    store.set_dispatch_state(d.id, "sent", runner.clock(), note=note, counts=counts)
    return Outcome(d.id, d.channel, "sent", counts, note)
