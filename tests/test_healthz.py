"""GET /healthz on a running `publisher serve`: what a load balancer may know, and nothing more."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.dispatch.clock_lock import take_clock
from publisher.dispatch.context import wall_clock
from publisher.site.config import load_site
from publisher.store.dispatches import Store, open_store
from publisher.web.http import Looks
from publisher.web.pages import HEALTH_EVERY_S
from tests.web_support import Clock, running

OWNER = "clock-host-7f3a:4242:abcd"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    yield opened
    opened.close()


def test_healthz_says_whether_a_clock_holds_the_database_and_names_no_host(example_site: Path, store: Store) -> None:
    site = load_site(example_site, env={})
    with running(site, store, Clock(dt.datetime(2018, 2, 1, tzinfo=dt.UTC))) as web:
        before = web.get("/healthz")
        take_clock(store, OWNER, wall_clock())
        time.sleep(HEALTH_EVERY_S)  # the answer is looked again at most once a second
        after = web.get("/healthz")

    assert (before.status, before.header("Content-Type"), before.header("Cache-Control")) == (
        200,
        "application/json",
        "no-store",
    )
    assert json.loads(before.body) == {
        "ok": True,
        "database": "ok",
        "clock": {"alive": False, "heartbeat_age": None},
        "workers": 0,
        "queue_depth": None,
        "oldest_unsent_lag_seconds": None,
    }
    seen = json.loads(after.body)
    assert seen["clock"]["alive"] is True and 0 <= seen["clock"]["heartbeat_age"] < 5
    assert b"clock-host-7f3a" not in after.body and b"4242" not in after.body


def test_healthz_answers_503_when_the_database_cannot_be_asked(example_site: Path, tmp_path: Path) -> None:
    site = load_site(example_site, env={})
    broken = open_store(f"sqlite:///{tmp_path / 'gone.db'}")
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # a folder where the database file was: no query can run
    broken.engine.dispose()
    try:
        with running(site, broken, Clock(dt.datetime(2018, 2, 1, tzinfo=dt.UTC))) as web:
            reply = web.get("/healthz")
    finally:
        broken.close()
    assert reply.status == 503
    assert json.loads(reply.body) == {"ok": False, "database": "cannot be asked"}


def test_healthz_asks_the_database_at_most_once_a_second_whoever_asks(example_site: Path, store: Store) -> None:
    """A flood of requests to the one page anyone may ask costs the database one look a second."""
    site = load_site(example_site, env={})
    with running(site, store, Clock(dt.datetime(2018, 2, 1, tzinfo=dt.UTC))) as web:
        first = json.loads(web.get("/healthz").body)
        take_clock(store, OWNER, wall_clock())
        flood = [json.loads(web.get("/healthz").body) for _ in range(5)]
    assert first["clock"]["alive"] is False
    assert flood == [first] * 5  # the answer of the first look, shared (the clock taken since is not seen yet)


def test_looks_are_paced_by_their_clock() -> None:
    moments = iter([0.0, 0.5, 0.99, 1.0, 1.2, 2.5])
    looks: list[int] = []

    def look() -> tuple[int, dict[str, object]]:
        looks.append(len(looks))
        return 200, {"look": len(looks)}

    paced = Looks(1.0, monotonic=lambda: next(moments))
    answers = [paced.answer(look)[1]["look"] for _ in range(6)]

    assert answers == [1, 1, 1, 2, 2, 3]
