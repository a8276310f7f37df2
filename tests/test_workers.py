"""Scale-out: the clock puts due dispatches on a real queue, `publisher worker` processes send them.

Real parts only: Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) brokers,
a fresh PostgreSQL database per test for the ledger, `publisher worker` as
child processes, and an aiosmtpd server on loopback counting what each
recipient received. Each test has its own queue name, deleted afterwards.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher.site.config import load_site
from publisher.store.dispatches import Store, open_store
from tests import store_support
from tests.dispatch_support import (
    NEWS_RULE,
    PARIS,
    PARIS_DUE,
    add_people,
    at,
    command,
    configure,
    environment,
    full_environment,
    plan_json,
    readers,
    store_of,
)
from tests.smtp_support import MailServer

REDIS = "redis://127.0.0.1:6379/0"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
NOW = PARIS_DUE + dt.timedelta(minutes=10)
FEEDS_RULE = """
[[timeline]]
when = "published"
channel = "feeds"
"""
CONNECTIONS = 4  # the example site's [email] connections
# Messages handed to the channel and not yet marked sent when a kill lands: `send_many` keeps up to two per
# connection handed out (its window), so that many may have been accepted by the server and never marked.
IN_FLIGHT = 2 * CONNECTIONS
START_TIMEOUT = 20.0


STARTED: list[subprocess.Popen[str]] = []  # every child process a test started, killed at its end if still running


@pytest.fixture(autouse=True)
def no_process_left() -> Iterator[None]:
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class Worker:
    """`publisher worker` as a child process; its log lines are collected as they come."""

    def __init__(self, site: Path, env: dict[str, str], concurrency: int = 1, metrics: str | None = None) -> None:
        command = [sys.executable, "-m", "publisher", "--site", str(site), "worker", "--concurrency", str(concurrency)]
        if metrics is not None:
            command += ["--metrics-port", metrics]
        self.process = subprocess.Popen(
            command, env=full_environment(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        STARTED.append(self.process)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())
            if " ready." in line:
                self.ready.set()

    def wait_ready(self) -> None:
        if not self.ready.wait(START_TIMEOUT):
            self.kill()
            raise AssertionError("the worker never got ready:\n" + self.log())

    def log(self) -> str:
        return "\n".join(self.lines[-40:])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        """SIGTERM (a warm shutdown) and its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the worker did not stop on SIGTERM:\n" + self.log()) from None


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    yield from store_support.database_url("postgresql", tmp_path)


def delete_queue(url: str, name: str) -> None:
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"*{name}*"):  # the queue and kombu's bindings of it
            client.delete(key)
        return
    from kombu.connection import Connection

    connection: Any = Connection(url, connect_timeout=5)  # type: ignore[no-untyped-call]  # kombu is untyped
    with connection:
        connection.default_channel.queue_delete(name)


@pytest.fixture
def queue_name() -> Iterator[tuple[list[str], str]]:
    """A queue of this test's own (deleted afterwards from every broker the test names in the list)."""
    name = f"publisher-test-{uuid.uuid4().hex[:12]}"
    brokers: list[str] = []
    yield brokers, name
    for url in brokers:
        delete_queue(url, name)


def site_env(server: MailServer, database: str, broker: str, queue: str, **more: str) -> dict[str, str]:
    return environment(
        server, PUBLISHER_DATABASE_URL=database, PUBLISHER_QUEUE_URL=broker, PUBLISHER_QUEUE_NAME=queue, **more
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{logs()}")
        time.sleep(0.05)


def paris_dispatch(store: Store) -> str:
    (row,) = [row for row in store.list_dispatches(channel="email") if row.record_ids == (PARIS,)]
    return row.id


def sent_by_process(store: Store, dispatch_id: str) -> Counter[int]:
    """How many ledger rows each process (the pid in the row's worker id) marked sent."""
    rows = store.deliveries(dispatch_id, states=["sent"])
    return Counter(int(row.worker.split(":")[1]) for row in rows if row.worker)


def all_sent(site: Path, env: dict[str, str], dispatch_id: str, total: int) -> Callable[[], bool]:
    def check() -> bool:
        store = store_of(site, env)
        try:
            row = store.get_dispatch(dispatch_id)
            return row is not None and row.state == "sent" and store.counts(dispatch_id)["sent"] == total
        finally:
            store.close()

    return check


def tick(site: Path, env: dict[str, str], now: dt.datetime = NOW) -> str:
    """`publisher run --once --now T` (the clock, in this process): with a queue it only enqueues."""
    result = command(site, env, "run", "--once", "--now", at(now))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.redis
@pytest.mark.postgres
def test_the_clock_only_enqueues_at_due_time(
    example_site: Path, database: str, queue_name: tuple[list[str], str]
) -> None:
    import redis

    brokers, name = queue_name
    brokers.append(REDIS)
    configure(example_site, NEWS_RULE + FEEDS_RULE)
    with MailServer() as server:
        env = site_env(server, database, REDIS, name, PUBLISHER_QUEUE_PARALLEL="3")
        add_people(example_site, env, readers(20))
        early = tick(example_site, env, PARIS_DUE - dt.timedelta(minutes=1))
        waiting = redis.Redis.from_url(REDIS).llen(name)
        output = tick(example_site, env)
        queued = redis.Redis.from_url(REDIS).llen(name)
    assert "queued" not in early and waiting == 0  # nothing is due yet: nothing is put on the queue ahead
    assert "3 task(s)" in output, output
    assert queued == 3  # PUBLISHER_QUEUE_PARALLEL copies of the one email dispatch
    assert server.received == []  # the clock sent nothing by itself
    lines = [line for line in plan_json(example_site, env, NOW).values() if PARIS in line["records"]]
    states = {line["channel"]: line["state"] for line in lines}
    assert states == {"email": "due", "feeds": "sent"}  # feeds are written by the clock, beside the site
    assert (example_site / "feeds" / "atom.xml").exists()


@pytest.mark.redis
@pytest.mark.postgres
def test_two_workers_share_one_newsletter_each_reader_gets_it_once(
    example_site: Path, database: str, queue_name: tuple[list[str], str]
) -> None:
    brokers, name = queue_name
    brokers.append(REDIS)
    configure(example_site)
    people_count = 500
    with MailServer() as server:
        env = site_env(server, database, REDIS, name, PUBLISHER_QUEUE_BATCH="20")
        people = add_people(example_site, env, readers(people_count))
        workers = [Worker(example_site, env, concurrency=2) for _ in range(2)]
        try:
            for worker in workers:
                worker.wait_ready()
            output = tick(example_site, env)
            assert "4 task(s)" in output, output
            store = store_of(example_site, env)
            try:
                dispatch_id = paris_dispatch(store)
            finally:
                store.close()
            logs = lambda: "\n---\n".join(w.log() for w in workers)  # noqa: E731
            wait_for(all_sent(example_site, env, dispatch_id, people_count), 25, "every row sent", logs)
            server.wait_until_idle()
            received = server.per_recipient()
        finally:
            codes = [worker.stop() for worker in workers]
    assert codes == [0, 0]
    assert sorted(received) == sorted(people)
    assert set(received.values()) == {1}, {a: n for a, n in received.items() if n != 1}
    store = store_of(example_site, env)
    try:
        shares = sent_by_process(store, dispatch_id)
    finally:
        store.close()
    assert set(shares) == {w.pid for w in workers}, shares  # both workers sent some
    assert sum(shares.values()) == people_count
    line = plan_json(example_site, env, NOW)[dispatch_id]
    assert line["state"] == "sent" and line["counts"]["sent"] == people_count


class Clock:
    """The clock as a child process: `publisher run --now T` (the daemon), stopped with SIGTERM."""

    def __init__(self, site: Path, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "publisher", "--site", str(site), "run", "--now", at(NOW)]
        self.process = subprocess.Popen(
            command, env=full_environment(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        STARTED.append(self.process)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=15)
        assert self.process.returncode == 0, output
        return output


def kill_mid_dispatch(site: Path, env: dict[str, str], people_count: int, kill_at: int, *, daemon: bool) -> None:
    """One worker starts the dispatch and is SIGKILLed; a second one finishes it.

    With `daemon`, the clock runs on (`publisher run`, polling every second) and puts
    the dispatch back on the queue while rows are left; without, it ticked once
    and the killed worker's task must come back from the broker by itself.
    """
    with MailServer() as server:
        env = {**env, **environment(server)}
        people = add_people(site, env, readers(people_count))
        first = Worker(site, env)
        first.wait_ready()
        clock = Clock(site, env) if daemon else None
        if clock is None:
            tick(site, env)
        second: Worker | None = None
        try:
            enough = lambda: len(server.received) >= kill_at or first.process.poll() is not None  # noqa: E731
            wait_for(enough, 20, "the first messages", first.log)
            first.kill()
            at_kill = len(server.received)
            assert at_kill < people_count, "the first worker finished before it could be killed"
            second = Worker(site, env)
            store = store_of(site, env)
            try:
                dispatch_id = paris_dispatch(store)
            finally:
                store.close()
            wait_for(all_sent(site, env, dispatch_id, people_count), 25, "every row sent", second.log)
            server.wait_until_idle()
            received = server.per_recipient()
        finally:
            if clock is not None:
                clock.stop()
            if second is not None:
                assert second.stop() == 0
    assert [a for a in people if received[a] == 0] == []
    repeats = sum(n - 1 for n in received.values())
    assert repeats <= IN_FLIGHT, f"{repeats} repeats: more than the messages in flight at the kill"
    store = store_of(site, env)
    try:
        shares = sent_by_process(store, dispatch_id)
    finally:
        store.close()
    assert set(shares) == {first.pid, second.pid}, shares
    assert shares[second.pid] >= people_count - at_kill - IN_FLIGHT  # the rest, rows the dead one held among them
    assert plan_json(site, env, NOW)[dispatch_id]["state"] == "sent"


@pytest.mark.redis
@pytest.mark.postgres
def test_a_killed_worker_task_comes_back_from_redis_and_is_finished(
    example_site: Path, database: str, queue_name: tuple[list[str], str]
) -> None:
    brokers, name = queue_name
    brokers.append(REDIS)
    configure(example_site)
    # One task and one tick: the dispatch can end only if the killed worker's task is delivered again
    # (after the visibility timeout) and the rows the dead worker held are claimed again (after the lease).
    env = {
        "PUBLISHER_DATABASE_URL": database,
        "PUBLISHER_QUEUE_URL": REDIS,
        "PUBLISHER_QUEUE_NAME": name,
        "PUBLISHER_QUEUE_PARALLEL": "1",
        "PUBLISHER_QUEUE_BATCH": "20",
        "PUBLISHER_QUEUE_LEASE": "2",
        "PUBLISHER_QUEUE_VISIBILITY_TIMEOUT": "4",
    }
    kill_mid_dispatch(example_site, env, people_count=400, kill_at=120, daemon=False)


@pytest.mark.redis  # the markers are labels: RabbitMQ runs beside Redis here (127.0.0.1:5672, guest/guest)
@pytest.mark.postgres
def test_a_killed_worker_task_comes_back_from_rabbitmq_and_is_finished(
    example_site: Path, database: str, queue_name: tuple[list[str], str]
) -> None:
    brokers, name = queue_name
    brokers.append(RABBITMQ)
    # RabbitMQ gives the task back the moment the worker's connection drops, before the dead worker's
    # lease runs out: that run ends with rows still held, and the running clock sends the task again.
    configure(example_site, extra="[scheduler]\npoll = 1\n\n")
    env = {
        "PUBLISHER_DATABASE_URL": database,
        "PUBLISHER_QUEUE_URL": RABBITMQ,
        "PUBLISHER_QUEUE_NAME": name,
        "PUBLISHER_QUEUE_PARALLEL": "1",
        "PUBLISHER_QUEUE_BATCH": "10",
        "PUBLISHER_QUEUE_LEASE": "2",
    }
    kill_mid_dispatch(example_site, env, people_count=150, kill_at=40, daemon=True)


def test_worker_without_a_queue_refuses_in_one_line(example_site: Path) -> None:
    result = command(example_site, environment(), "worker")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: no queue is configured") and "PUBLISHER_QUEUE_URL" in lines[0]


def test_worker_refuses_a_queue_url_it_cannot_use(example_site: Path) -> None:
    result = command(example_site, environment(PUBLISHER_QUEUE_URL="http://127.0.0.1:6379"), "worker")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "environment:1: PUBLISHER_QUEUE_URL: must be none, redis://… or amqp://… (got a 'http' URL)"
    )
    flag = command(example_site, environment(), "worker", "--queue-url", "none")
    assert flag.exit_code == 2 and "no queue is configured" in flag.stderr
    copies = command(example_site, environment(PUBLISHER_QUEUE_URL=REDIS, PUBLISHER_QUEUE_PARALLEL="0"), "worker")
    assert copies.exit_code == 2
    assert (
        copies.stderr.splitlines()[0]
        == "environment:1: PUBLISHER_QUEUE_PARALLEL: must be a whole number above 0 (got '0')"
    )


def test_embedded_mode_is_unchanged(example_site: Path) -> None:
    configure(example_site)
    with MailServer() as server:
        env = environment(server)
        people = add_people(example_site, env, readers(5))
        output = tick(example_site, env)
    assert "queued" not in output
    assert sorted(server.per_recipient()) == people  # sent by `run` itself, as without any queue


@pytest.mark.redis
@pytest.mark.postgres
def test_a_stopped_worker_gives_its_dispatch_back_and_repeats_nothing(
    example_site: Path, database: str, queue_name: tuple[list[str], str]
) -> None:
    brokers, name = queue_name
    brokers.append(REDIS)
    configure(example_site)
    people_count = 400
    with MailServer() as server:
        env = site_env(server, database, REDIS, name, PUBLISHER_QUEUE_PARALLEL="1", PUBLISHER_QUEUE_BATCH="10")
        people = add_people(example_site, env, readers(people_count))
        first = Worker(example_site, env)
        first.wait_ready()
        tick(example_site, env)
        wait_for(lambda: len(server.received) >= 80 or first.process.poll() is not None, 20, "messages", first.log)
        assert first.stop() == 0  # SIGTERM: a warm shutdown
        at_stop = len(server.received)
        store = store_of(example_site, env)
        try:
            dispatch_id = paris_dispatch(store)
            held = store.counts(dispatch_id)["sending"]
        finally:
            store.close()
        assert at_stop < people_count, "the worker finished before it was stopped"
        assert held == 0, "a stopped worker gives back every row it had claimed"
        second = Worker(example_site, env)  # no new tick: the task went back on the queue
        try:
            wait_for(all_sent(example_site, env, dispatch_id, people_count), 20, "every row sent", second.log)
            server.wait_until_idle()
            received = server.per_recipient()
        finally:
            assert second.stop() == 0
    assert sorted(received) == sorted(people)
    assert set(received.values()) == {1}  # a clean stop leaves nothing in flight: no repeats at all
    assert "the worker is stopping" in "\n".join(first.lines)


@pytest.mark.redis
def test_a_running_clock_puts_a_dispatch_on_the_queue_again_only_when_needed(
    example_site: Path, queue_name: tuple[list[str], str]
) -> None:
    import redis

    from publisher.dispatch.context import Runner
    from publisher.dispatch.queue import REQUEUE_AFTER, enqueue_due, queue_config
    from publisher.site.records import load_records

    brokers, name = queue_name
    brokers.append(REDIS)
    configure(example_site)
    env = full_environment(environment(PUBLISHER_QUEUE_URL=REDIS, PUBLISHER_QUEUE_NAME=name))
    site = load_site(example_site, env)
    config = queue_config(site)
    assert config is not None and config.parallel == 4
    store = open_store(site.database_url)
    records = load_records(site.events, site.root)
    length = redis.Redis.from_url(REDIS).llen

    def ticked(clock: str, now: dt.datetime) -> list[str]:
        runner = Runner(site, store, records, lambda: now, worker=clock)
        return [outcome.state for outcome in enqueue_due(runner, now, config)]

    try:
        assert ticked("clock-a", NOW) == ["queued"] and length(name) == 4
        assert ticked("clock-a", NOW + dt.timedelta(minutes=1)) == []  # its tasks are waiting: not again
        assert ticked("clock-b", NOW + dt.timedelta(minutes=1)) == ["queued"]  # a new `run --once` sends anew
        dispatch_id = paris_dispatch(store)
        retry = NOW + dt.timedelta(minutes=2)
        store.set_dispatch_state(dispatch_id, "partly_sent", retry, started_at=NOW, next_attempt_at=retry)
        assert ticked("clock-a", retry - dt.timedelta(seconds=1)) == []  # the retry is not due yet
        assert ticked("clock-a", retry) == ["queued"]  # a retry fell due after the last send
        assert ticked("clock-a", retry + dt.timedelta(minutes=1)) == []
        assert ticked("clock-a", retry + REQUEUE_AFTER) == ["queued"]  # in case the broker lost them
        assert length(name) == 4 * 4
        store.set_dispatch_state(dispatch_id, "sent", retry, next_attempt_at=None)
        assert ticked("clock-a", retry + 3 * REQUEUE_AFTER) == []  # finished: nothing more, ever
    finally:
        store.close()
