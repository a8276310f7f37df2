"""`publisher run` as a daemon: the clock, its lock, signals, APScheduler's misfires, and DST in the plan."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.audience import subscribers
from publisher.dispatch.clock import make_scheduler, run_forever, run_once
from publisher.dispatch.clock_lock import LOCK
from publisher.dispatch.context import Outcome
from publisher.dispatch.runner import shifted_clock
from publisher.store.dispatches import LockHolder
from tests.dispatch_support import (
    PARIS_DUE,
    add_people,
    at,
    configure,
    environment,
    full_environment,
    plan_json,
    readers,
    site_of,
    store_of,
)
from tests.smtp_support import MailServer

FAST = "[scheduler]\npoll = 0.2\n"
PARIS_ZONE = ZoneInfo("Europe/Paris")


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def holder(site: Path, env: dict[str, str]) -> LockHolder | None:
    store = store_of(site, env)
    try:
        return store.lock_holder(LOCK)
    finally:
        store.close()


def ledger(site: Path, env: dict[str, str]) -> dict[str, int]:
    """The ledger's counts over every email dispatch."""
    store = store_of(site, env)
    try:
        totals: dict[str, int] = {}
        for row in store.list_dispatches(channel="email"):
            for state, number in store.counts(row.id).items():
                totals[state] = totals.get(state, 0) + number
        return totals
    finally:
        store.close()


def daemon(site: Path, env: dict[str, str], now: dt.datetime) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "publisher", "--site", str(site), "run", "--now", at(now)]
    return subprocess.Popen(command, env=full_environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


def test_the_daemon_dispatches_when_the_time_comes_and_rereads_changed_records(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site, extra=FAST)
    env = environment(server)
    people = add_people(example_site, env, readers(5))
    clock = shifted_clock(PARIS_DUE - dt.timedelta(seconds=1.5))
    server.clock = lambda: clock().timestamp()
    stop = threading.Event()
    outcomes: list[Outcome] = []
    thread = threading.Thread(
        target=run_forever,
        args=(site_of(example_site, env), clock),
        kwargs={"on_outcome": outcomes.append, "stop": stop},
        daemon=True,  # a hung clock must not hang the test run
    )
    thread.start()
    try:
        wait_for(lambda: len(server.received) == 5, what="the newsletter")
        assert all(message.at is not None and message.at >= PARIS_DUE.timestamp() for message in server.received)
        late_news = example_site / "events" / "2018-02-09-late-news.md"
        published = clock() + dt.timedelta(seconds=1)
        late_news.write_text(f"---\ntitle: Late news\npublished: {published.isoformat()}\n---\nJust in.\n")
        wait_for(lambda: len(server.received) == 10, what="the newsletter of a record written while running")
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert server.per_recipient() == dict.fromkeys(people, 2)
    assert [o.state for o in outcomes if o.channel == "email"] == ["sent", "sent"]
    assert ledger(example_site, env)["sent"] == 10 and ledger(example_site, env)["sending"] == 0
    assert holder(example_site, env) is None  # the clock is given back


def test_sigterm_stops_a_send_cleanly_and_the_next_run_finishes_it_without_repeats(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site, extra=FAST)
    env = environment(server)
    people = add_people(example_site, env, readers(2_000))
    process = daemon(example_site, env, PARIS_DUE + dt.timedelta(minutes=1))
    try:
        wait_for(lambda: len(server.received) >= 200, what="the send to start")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    counts = ledger(example_site, env)
    assert counts["sending"] == 0
    assert 200 <= counts["sent"] < 2_000 and counts["sent"] == len(server.received)
    assert holder(example_site, env) is None

    finish = subprocess.run(
        [
            sys.executable,
            "-m",
            "publisher",
            "--site",
            str(example_site),
            "run",
            "--once",
            "--now",
            at(PARIS_DUE + dt.timedelta(minutes=2)),
        ],
        env=full_environment(env),
        capture_output=True,
        timeout=120,
    )
    assert finish.returncode == 0, finish.stderr.decode()
    assert server.per_recipient() == dict.fromkeys(people, 1)


def test_a_second_clock_is_refused_while_the_first_lives_and_takes_over_once_it_is_killed(
    example_site: Path, server: MailServer
) -> None:
    configure(example_site, extra=FAST)
    env = environment(server)
    now = PARIS_DUE - dt.timedelta(days=1)  # nothing due: the clocks only tick
    first = daemon(example_site, env, now)
    third = None
    try:
        wait_for(lambda: holder(example_site, env) is not None, what="the first clock")
        owner = holder(example_site, env)
        assert owner is not None and f":{first.pid}:" in owner.owner
        for args in (["run", "--now", at(now)], ["run", "--once", "--now", at(now)]):
            second = subprocess.run(
                [sys.executable, "-m", "publisher", "--site", str(example_site), *args],
                env=full_environment(env),
                capture_output=True,
                timeout=60,
            )
            assert second.returncode == 1
            error = second.stderr.decode()
            assert "Error: another `publisher run`" in error and f":{first.pid}:" in error, error
            assert "Traceback" not in error
        first.send_signal(signal.SIGKILL)
        first.wait()
        third = daemon(example_site, env, now)
        wait_for(lambda: (h := holder(example_site, env)) is not None and f":{third.pid}:" in h.owner, what="takeover")
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=30) == 0
        assert holder(example_site, env) is None
    finally:
        for process in (first, third):
            if process is not None and process.poll() is None:
                process.kill()


def probe(path: str) -> None:
    """A job for the misfire test (APScheduler pickles a reference to it)."""
    Path(path).write_text("ran", encoding="utf-8")


def test_a_wake_up_that_fell_due_while_the_process_was_down_still_runs_at_start(
    example_site: Path, tmp_path: Path
) -> None:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    configure(example_site)
    site = site_of(example_site, {})
    ours, stock = tmp_path / "ours", tmp_path / "stock"

    def stock_scheduler() -> BackgroundScheduler:  # APScheduler's defaults: misfire_grace_time=1
        return BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=site.database_url, tablename="stock")})

    for make, marker in ((lambda: make_scheduler(site), ours), (stock_scheduler, stock)):
        before = make()
        before.start(paused=True)
        wake = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)
        before.add_job(f"{__name__}:probe", "date", run_date=wake, args=[str(marker)], id="wake-up")
        before.shutdown()
    time.sleep(1.8)  # both wake-ups fall due while nothing runs: more than APScheduler's default grace of 1 s
    for make, marker in ((lambda: make_scheduler(site), ours), (stock_scheduler, stock)):
        after = make()
        after.start()
        try:
            if marker is ours:
                wait_for(marker.exists, timeout=10, what="the missed wake-up")
            else:
                time.sleep(1.0)
            assert after.get_job("wake-up") is None  # run (ours) or dropped (the stock defaults)
        finally:
            after.shutdown()
    assert ours.read_text() == "ran"
    assert not stock.exists()  # what the default would have done: dropped without a word


DAILY_0230 = """
[[timeline]]
cron = "30 2 * * *"
timezone = "Europe/Paris"
channel = "email"
list = "news"
"""


@pytest.mark.parametrize(
    ("now", "day", "due"),
    [
        # Spring forward: 02:30 does not exist; it is read with the offset before the change (01:30 UTC).
        ("2026-03-29T12:00:00+02:00", dt.date(2026, 3, 29), "2026-03-29T01:30:00+00:00"),
        # Fall back: 02:30 happens twice; the first one (summer time) is the one.
        ("2026-10-25T12:00:00+01:00", dt.date(2026, 10, 25), "2026-10-25T00:30:00+00:00"),
    ],
)
def test_a_0230_digest_on_a_daylight_saving_day_is_planned_once(
    example_site: Path, now: str, day: dt.date, due: str
) -> None:
    configure(example_site, DAILY_0230)
    lines = plan_json(example_site, {}, dt.datetime.fromisoformat(now)).values()
    dues = sorted(line["due"] for line in lines)
    that_day = [d for d in dues if dt.datetime.fromisoformat(d).astimezone(PARIS_ZONE).date() == day]
    assert that_day == [due]
    around = [d for d in dues if abs((dt.datetime.fromisoformat(d).astimezone(PARIS_ZONE).date() - day).days) == 1]
    assert len(around) == 2
    assert all(dt.datetime.fromisoformat(d).astimezone(PARIS_ZONE).strftime("%H:%M") == "02:30" for d in around)


def test_a_tick_forgets_web_sign_ups_whose_links_expired_by_the_real_time(example_site: Path) -> None:
    real = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)  # the wall clock; --now rehearses another day
    store = store_of(example_site, {})
    try:
        for email, when in (("late@example.org", real - dt.timedelta(days=4)), ("fresh@example.org", real)):
            subscribers.add(store, email, lists=["news"], now=when, source="web", status="pending")
    finally:
        store.close()
    rehearsal = real + dt.timedelta(days=30)  # a month ahead: must not count as a month of waiting
    run_once(site_of(example_site, {}), rehearsal, shifted_clock(rehearsal), wall=lambda: real)
    store = store_of(example_site, {})
    try:
        assert [p.email for p in subscribers.list_subscribers(store)] == ["fresh@example.org"]
    finally:
        store.close()


def test_jobs_an_older_publisher_stored_are_replaced_when_the_clock_starts(
    example_site: Path, server: MailServer
) -> None:
    """A job store written when the clock was `publisher.scheduler:tick` (before the package layout): the
    clock removes the jobs it cannot load, adds its own, and runs."""
    import pickle

    import sqlalchemy as sa
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from publisher.dispatch.clock import JOB_TABLE, tick

    configure(example_site, extra=FAST)
    env = environment(server)
    add_people(example_site, env, readers(3))
    site = site_of(example_site, env)
    old = BackgroundScheduler(timezone=dt.UTC)
    jobs = SQLAlchemyJobStore(url=site.database_url, tablename=JOB_TABLE)
    jobs.start(old, "default")
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    for job_id, trigger in (("tick", IntervalTrigger(seconds=60, timezone=dt.UTC)), ("next-due", DateTrigger(far))):
        job = Job(
            old, id=job_id, func=tick, trigger=trigger, executor="default", args=[str(example_site)], kwargs={},
            name="tick", misfire_grace_time=None, coalesce=True, max_instances=1, next_run_time=far,
        )  # fmt: skip
        job.func_ref = "publisher.scheduler:tick"  # what the old code stored
        jobs.add_job(job)
    jobs.shutdown()
    engine = sa.create_engine(site.database_url)
    table = sa.Table(JOB_TABLE, sa.MetaData(), autoload_with=engine)

    def stored() -> dict[str, str]:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(table.c.id, table.c.job_state)).all()
        return {row.id: pickle.loads(row.job_state)["func"] for row in rows}

    assert stored() == {"tick": "publisher.scheduler:tick", "next-due": "publisher.scheduler:tick"}
    clock = shifted_clock(PARIS_DUE + dt.timedelta(minutes=1))
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(site, clock), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(server.received) == 3, what="the newsletter, sent by the new tick job")
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    jobs_now = stored()
    engine.dispose()
    assert "tick" in jobs_now and set(jobs_now.values()) == {"publisher.dispatch.clock:tick"}
