"""Operations you can see: `publisher status` and the Prometheus metrics of a real worker.

Real parts: Redis for the queue, PostgreSQL for the ledger, `publisher worker`
as a child process serving ``--metrics-port``, aiosmtpd counting what it got.
The clock's holder and a worker's presence are rows another host could have
written: their times are given, so the ages shown can be checked.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.dispatch.clock_lock import take_clock
from publisher.dispatch.context import wall_clock
from publisher.dispatch.health import WORKER_PREFIX
from tests.dispatch_support import NEWS_RULE, add_people, command, configure, environment, readers, store_of
from tests.smtp_support import MailServer, free_port
from tests.test_workers import REDIS, STARTED, Worker, all_sent, delete_queue, paris_dispatch, tick, wait_for


@pytest.fixture(autouse=True)
def no_process_left() -> Iterator[None]:
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"publisher-status-{uuid.uuid4().hex[:12]}"
    yield name
    delete_queue(REDIS, name)


@pytest.mark.redis
def test_status_shows_the_clock_the_live_workers_the_queue_and_the_oldest_unsent(
    example_site: Path, queue: str
) -> None:
    configure(example_site, NEWS_RULE)
    env = environment(PUBLISHER_QUEUE_URL=REDIS, PUBLISHER_QUEUE_NAME=queue, PUBLISHER_QUEUE_PARALLEL="3")
    add_people(example_site, env, readers(3))
    tick(example_site, env)  # 3 tasks on the queue, no worker to take them
    real = wall_clock()
    store = store_of(example_site, env)
    try:
        take_clock(store, "clock-host.invalid:11:aa", real - dt.timedelta(seconds=7))
        store.acquire_lock(
            WORKER_PREFIX + "worker-a:21", WORKER_PREFIX + "worker-a:21", real - dt.timedelta(seconds=4), 0
        )
        store.acquire_lock(
            WORKER_PREFIX + "worker-b:22", WORKER_PREFIX + "worker-b:22", real - dt.timedelta(hours=1), 0
        )
        dispatch_id = paris_dispatch(store)
    finally:
        store.close()
    result = command(example_site, env, "--json", "status")
    assert result.exit_code == 0, result.output
    seen = json.loads(result.stdout)
    assert seen["clock"]["holder"] == "clock-host.invalid:11:aa" and seen["clock"]["alive"] is True
    assert 7 <= seen["clock"]["heartbeat_age"] < 20
    assert [w["id"] for w in seen["workers"]] == ["worker-a:21"]  # the one an hour silent is not alive
    assert seen["queue"] == {"url": REDIS, "depth": 3, "error": None}
    oldest = seen["oldest_unsent"]
    assert oldest["id"] == dispatch_id and oldest["channel"] == "email"
    expected_lag = (real - dt.datetime.fromisoformat(oldest["due"])).total_seconds()
    assert abs(oldest["lag_seconds"] - expected_lag) < 30
    human = command(example_site, env, "status").stdout
    assert "clock: clock-host.invalid:11:aa, heartbeat " in human
    assert "workers: 1 alive\n  worker-a:21 (heartbeat " in human
    assert "3 task(s) waiting" in human
    assert f"oldest due and unsent: {dispatch_id} (email), due 2018-02-09 17:00:00 UTC" in human


def test_status_of_a_quiet_site_says_so(example_site: Path) -> None:
    result = command(example_site, environment(), "status")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "clock: none running",
        "workers: 0 alive",
        "queue: none (the clock sends by itself)",
        "oldest due and unsent: none",
    ]


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(publisher_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


@pytest.mark.redis
@pytest.mark.postgres
def test_a_worker_serves_what_it_sent_and_shows_itself_alive(example_site: Path, tmp_path: Path, queue: str) -> None:
    from tests import store_support

    configure(example_site)
    people = 60
    for database in store_support.database_url("postgresql", tmp_path):
        with MailServer() as server:
            env = environment(
                server, PUBLISHER_DATABASE_URL=database, PUBLISHER_QUEUE_URL=REDIS, PUBLISHER_QUEUE_NAME=queue
            )
            add_people(example_site, env, readers(people))
            port = free_port()
            worker = Worker(example_site, env, metrics=f"127.0.0.1:{port}")
            try:
                worker.wait_ready()
                before = scrape(port)
                tick(example_site, env)
                store = store_of(example_site, env)
                try:
                    dispatch_id = paris_dispatch(store)
                finally:
                    store.close()
                wait_for(all_sent(example_site, env, dispatch_id, people), 30, "every row sent", worker.log)
                after = scrape(port)
                status = json.loads(command(example_site, env, "--json", "status").stdout)
            finally:
                assert worker.stop() == 0
            gone = json.loads(command(example_site, env, "--json", "status").stdout)
    assert before["publisher_workers_alive"] == 1 and before["publisher_queue_depth"] == 0
    assert after['publisher_messages_total{channel="email",outcome="sent"}'] == people
    # The site's later records are planned for 2018–2019, long due by the real time: the lag is the oldest's.
    oldest = status["oldest_unsent"]
    assert oldest["id"] != dispatch_id  # the one just sent is not waiting any more
    assert abs(after["publisher_dispatch_lag_seconds"] - oldest["lag_seconds"]) < 60
    assert [w["id"].split(":")[1] for w in status["workers"]] == [str(worker.pid)]
    assert gone["workers"] == []  # a clean stop removes its row at once


def test_a_metrics_port_that_is_no_port_is_refused_in_one_line(example_site: Path) -> None:
    env = environment(PUBLISHER_QUEUE_URL=REDIS)
    result = command(example_site, env, "worker", "--metrics-port", "metrics")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "command line:1: --metrics-port: is PORT or HOST:PORT, the port from 1 to 65535 (got 'metrics')"
    )


def test_the_oldest_unsent_is_one_with_someone_still_to_send_to(tmp_path: Path) -> None:
    from publisher.store.dispatches import PlannedDispatch, open_store

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    store = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    try:
        for number, state in enumerate(["sent", "waiting_review", "partly_sent", "partly_sent", "sending", "planned"]):
            due = start + dt.timedelta(minutes=number)
            store.upsert_dispatch(PlannedDispatch(f"d{number}", "email", "r", due, ("x",), "news"), start)
            retry = due + dt.timedelta(hours=1) if number == 3 else None
            store.set_dispatch_state(f"d{number}", state, start, next_attempt_at=retry)
        now = start + dt.timedelta(hours=1)
        oldest = store.oldest_unsent(now)
        assert oldest is not None and oldest.id == "d3"  # partly sent with a retry to come; d2 has none
        store.set_dispatch_state("d3", "sent", now)
        assert (found := store.oldest_unsent(now)) is not None and found.id == "d4"  # sending
        assert store.oldest_unsent(start + dt.timedelta(minutes=3)) is None  # d4 and d5 not yet due then
    finally:
        store.close()
