"""The send loop's fast ledger calls mean what the plain ones mean: `claim_targets` and `SentMarks`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.store.dispatches import PlannedDispatch, SentMessage, Store
from publisher.store.marks import SentMarks
from tests import store_support
from tests.store_support import NOW

SECOND = dt.timedelta(seconds=1)


@pytest.fixture(params=store_support.DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for url in store_support.database_url(request.param, tmp_path):
        yield from store_support.opened(url)


def two_dispatches(store: Store, targets: list[str]) -> None:
    """Two dispatches with the same recipients in the same states: one for each way of claiming."""
    for name in ("plain", "fast"):
        store.upsert_dispatch(PlannedDispatch(name, "email", "email:news", NOW, ("r",), "news"), NOW)
        store.fix_recipients(name, targets, NOW)
        rows = store.deliveries(name)
        store.claim(name, 2, "gone-worker", NOW - 1000 * SECOND, lease_seconds=10)  # a dead worker's lapsed lease
        store.mark_failed(rows[3].id, NOW, permanent=False, next_attempt_at=NOW - SECOND)  # due again
        store.mark_failed(rows[4].id, NOW, permanent=False, next_attempt_at=NOW + SECOND)  # not yet
        store.mark_failed(rows[5].id, NOW, permanent=True)
        store.mark_sent(rows[6].id, NOW)


def test_claim_targets_takes_the_same_rows_the_same_way_as_claim(store: Store) -> None:
    targets = [f"r{n}@example.org" for n in range(12)]
    two_dispatches(store, targets)
    for limit in (3, 4, 100):
        plain = store.claim("plain", limit, "w", NOW, lease_seconds=60)
        fast = store.claim_targets("fast", limit, "w", NOW, lease_seconds=60)
        assert [(row.target, row.attempts) for row in plain] == [(target, n) for _, target, n in fast]
    assert store.counts("plain") == store.counts("fast")
    assert [(r.target, r.state, r.worker, r.lease_until) for r in store.deliveries("plain")] == [
        (r.target, r.state, r.worker, r.lease_until) for r in store.deliveries("fast")
    ]
    assert store.claim_targets("fast", 0, "w", NOW, 60) == []


def test_sent_marks_change_a_row_as_mark_sent_each_does(store: Store) -> None:
    two_dispatches(store, [f"r{n}@example.org" for n in range(8)])
    plain, fast = store.claim("plain", 2, "w", NOW, 60), store.claim("fast", 2, "w", NOW, 60)
    when = NOW + 3 * SECOND
    sent = [SentMessage(row.id, message_id=f"<{n}@x>", reply="250 2.0.0 Ok") for n, row in enumerate(plain)]
    store.mark_sent_each(sent, when)
    with SentMarks(store) as marks:
        assert [marks.mark(SentMessage(row.id, f"<{n}@x>", "250 2.0.0 Ok"), when) for n, row in enumerate(fast)] == [
            True,
            True,
        ]
        assert marks.mark(SentMessage(fast[0].id, "<other@x>"), when + SECOND) is False  # sent stays as it was
    keep = ("target", "state", "message_id", "last_reply", "sent_at", "updated_at", "lease_until", "worker")
    ids = {row.id for row in plain} | {row.id for row in fast}
    rows = {name: [r for r in store.deliveries(name) if r.id in ids] for name in ("plain", "fast")}
    assert [tuple(getattr(r, k) for k in keep) for r in rows["plain"]] == [
        tuple(getattr(r, k) for k in keep) for r in rows["fast"]
    ]
    assert rows["fast"][0].sent_at == when


def test_a_group_of_marks_commits_together_and_means_what_one_mark_means(store: Store) -> None:
    two_dispatches(store, [f"r{n}@example.org" for n in range(10)])
    plain, fast = store.claim("plain", 4, "w", NOW, 60), store.claim("fast", 4, "w", NOW, 60)
    when = NOW + 3 * SECOND
    store.mark_sent_each([SentMessage(row.id, f"<{n}@x>", "250 Ok") for n, row in enumerate(plain)], when)
    with SentMarks(store) as marks:
        marks.mark_all([SentMessage(row.id, f"<{n}@x>", "250 Ok") for n, row in enumerate(fast)], when)
        # Committed at once: another connection (the store's own) sees every one of them.
        assert store.counts("fast")["sent"] == store.counts("plain")["sent"] == 1 + len(fast)
        marks.mark_all([SentMessage(fast[0].id, "<again@x>")], when + SECOND)  # sent stays as it was
    keep = ("target", "state", "message_id", "last_reply", "sent_at", "lease_until", "worker")
    ids = {row.id for row in plain} | {row.id for row in fast}
    rows = {name: [r for r in store.deliveries(name) if r.id in ids] for name in ("plain", "fast")}
    assert [tuple(getattr(r, k) for k in keep) for r in rows["plain"]] == [
        tuple(getattr(r, k) for k in keep) for r in rows["fast"]
    ]
