"""The clock's lock across hosts: a holder is judged by its heartbeat's age in the database, never by a pid.

A holder on "another host" is an owner id naming a host that is not this one,
so only the heartbeat can tell whether it lives. Times are given, not read.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.dispatch import clock_lock
from publisher.dispatch.clock_lock import (
    LOCK,
    STALE_AFTER_SECONDS,
    ClockAlreadyRunning,
    holding_clock,
    take_clock,
    wait_for_clock,
)
from publisher.store.dispatches import Store, open_store
from tests import store_support

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ELSEWHERE = "another-host.invalid:4242:abcdef01"


@pytest.fixture(params=store_support.DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for url in store_support.database_url(request.param, tmp_path):
        opened = open_store(url)
        try:
            yield opened
        finally:
            opened.close()


def test_a_holder_on_another_host_is_taken_over_only_once_its_heartbeat_is_stale(store: Store) -> None:
    assert take_clock(store, ELSEWHERE, START) is None
    fresh = START + dt.timedelta(seconds=STALE_AFTER_SECONDS - 1)
    with pytest.raises(ClockAlreadyRunning, match="--standby"):
        take_clock(store, "here:1:aaaa", fresh)
    stale = START + dt.timedelta(seconds=STALE_AFTER_SECONDS + 1)
    previous = take_clock(store, "here:1:aaaa", stale)
    assert previous is not None and previous.startswith(ELSEWHERE)
    holder = store.lock_holder(LOCK)
    assert holder is not None and holder.owner == "here:1:aaaa"
    assert not store.heartbeat(LOCK, ELSEWHERE, stale)  # the old holder learns it lost the clock


def test_a_standby_waits_while_the_holder_beats_and_takes_over_when_it_stops(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clock_lock, "STANDBY_EVERY_SECONDS", 0.02)
    now = [START]
    said: list[str] = []
    taken = threading.Event()
    stop = threading.Event()
    take_clock(store, ELSEWHERE, now[0])

    def standby() -> None:
        if wait_for_clock(store, "here:2:bbbb", lambda: now[0], stop, said.append):
            taken.set()

    thread = threading.Thread(target=standby)
    thread.start()
    try:
        for second in range(1, 40):  # the holder beats every 5 s for 40 s: the standby never takes over
            now[0] = START + dt.timedelta(seconds=second)
            if second % 5 == 0:
                assert store.heartbeat(LOCK, ELSEWHERE, now[0])
            assert not taken.wait(0.03)
        assert said and said[0].startswith(f"standing by: the clock is held by {ELSEWHERE}")
        now[0] = START + dt.timedelta(seconds=35 + STALE_AFTER_SECONDS + 1)  # its last beat was at 35 s
        assert taken.wait(5)
    finally:
        stop.set()
        thread.join(5)
    assert said[-1].startswith(f"took over the clock from {ELSEWHERE}")
    holder = store.lock_holder(LOCK)
    assert holder is not None and holder.owner == "here:2:bbbb"


def test_a_standby_stopped_while_waiting_never_held_the_clock(store: Store) -> None:
    take_clock(store, ELSEWHERE, START)
    stop = threading.Event()
    stop.set()
    with holding_clock(store, "here:3:cccc", lambda: START, stop.set, 5.0, standby=stop) as held:
        assert held is False
    holder = store.lock_holder(LOCK)
    assert holder is not None and holder.owner == ELSEWHERE  # untouched: the standby gave up nothing it had


def test_a_clock_whose_lock_was_taken_over_stops_before_its_next_tick(example_site: Path) -> None:
    from publisher.dispatch.clock import Clockwork
    from publisher.dispatch.context import wall_clock
    from tests.dispatch_support import PARIS_DUE, configure, environment, site_of
    from tests.test_workers import FEEDS_RULE

    configure(example_site, FEEDS_RULE)
    site = site_of(example_site, environment())
    store = open_store(site.database_url)
    now = PARIS_DUE + dt.timedelta(minutes=10)
    try:
        take_clock(store, "here:4:dddd", wall_clock())
        work = Clockwork(site.root, lambda: now, site, store, "here:4:dddd")
        assert [o.channel for o in work.tick(now)] == ["feeds"]  # holding it: the tick dispatches
        store.release_lock(LOCK, "here:4:dddd")
        take_clock(store, ELSEWHERE, wall_clock())  # taken over while this one stalled
        assert work.tick(now + dt.timedelta(hours=1)) == []
        assert work.stop.is_set()
    finally:
        store.close()
