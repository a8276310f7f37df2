"""The store on real SQLite files and a real PostgreSQL server: schema, dispatches, ledger, clock lock."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import multiprocessing.synchronize
import sqlite3
import subprocess
import sys
import threading
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from publisher.errors import WorkFailed
from publisher.store import database
from publisher.store.dispatches import DispatchRow, PlannedDispatch, SentMessage, Store, open_store
from publisher.store.tables import dispatches, metadata
from tests import store_support
from tests.store_support import NOW

SECOND = dt.timedelta(seconds=1)
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@pytest.fixture(params=store_support.DATABASES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_support.database_url(request.param, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    yield from store_support.opened(store_url)


def plan(dispatch_id: str = "d1", due: dt.datetime = NOW, **changes: object) -> PlannedDispatch:
    values: dict[str, object] = {
        "id": dispatch_id,
        "channel": "email",
        "rule_key": "email:news:published+0",
        "due": due,
        "record_ids": ("2018-02-09-paris",),
        "list_name": "news",
    }
    values.update(changes)
    return PlannedDispatch(**values)  # type: ignore[arg-type]


def started(store: Store, targets: list[str], dispatch_id: str = "d1") -> None:
    store.upsert_dispatch(plan(dispatch_id), NOW)
    store.fix_recipients(dispatch_id, targets, NOW)


def emails(count: int) -> list[str]:
    return [f"reader{number:05d}@example.org" for number in range(count)]


# --- schema and migrations ------------------------------------------------------------------


def test_migrations_build_the_schema_on_an_empty_database_and_match_the_tables(store_url: str) -> None:
    store = open_store(store_url)
    with store.engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    store.close()
    assert {"subscribers", "dispatches", "deliveries", "scheduler_lock", "feedback", "alembic_version"} <= names
    assert version == "0003"
    assert differences == []


def test_the_head_revision_opened_without_alembic_is_the_newest_in_the_migrations_folder() -> None:
    config = Config()
    config.set_main_option("script_location", "publisher.store:migrations")
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [database.HEAD_REVISION]


def upgraded_to(url: str, revision: str) -> None:
    """Migrate the database at `url` to `revision` only, as an older publisher left it."""
    engine = database.create_engine(url)
    config = Config()
    config.set_main_option("script_location", "publisher.store:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def test_a_database_of_an_older_revision_is_migrated_to_the_newest(store_url: str) -> None:
    upgraded_to(store_url, "0002")
    store = open_store(store_url)
    with store.engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    store.close()
    assert "erased" in names  # what 0003 adds
    assert versions == [database.HEAD_REVISION]


def test_a_database_at_the_newest_revision_is_opened_without_running_alembic(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(store_url).close()
    upgrades: list[str] = []
    monkeypatch.setattr(command, "upgrade", lambda config, revision: upgrades.append(revision))
    again = open_store(store_url)
    again.close()
    assert upgrades == []


def test_an_empty_database_goes_through_alembic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upgrades: list[str] = []
    monkeypatch.setattr(command, "upgrade", lambda config, revision: upgrades.append(revision))
    open_store(f"sqlite:///{tmp_path / 'publisher.db'}").close()
    assert upgrades == ["head"]


def test_opening_a_database_at_the_newest_revision_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'publisher.db'}"
    open_store(url).close()
    code = f"import sys; from publisher.store.dispatches import open_store; open_store({url!r}).close(); "
    code += "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_dispatches_table_has_the_fields_of_a_dispatch_row_in_order() -> None:
    assert [column.name for column in dispatches.c] == [field.name for field in fields(DispatchRow)]


def test_opening_again_keeps_the_data_and_changes_nothing(store_url: str) -> None:
    first = open_store(store_url)
    started(first, ["ana@example.org"])
    first.close()
    again = open_store(store_url)
    assert again.counts("d1")["pending"] == 1
    with again.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    again.close()


def test_a_sqlite_file_gets_its_folder_and_wal_settings(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "publisher.db"
    store = open_store(f"sqlite:///{path}")
    with store.engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    store.close()
    assert path.is_file()
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 30000}


def test_a_new_sqlite_file_written_by_another_connection_is_waited_for_not_refused(tmp_path: Path) -> None:
    """Turning on WAL needs the file alone, and SQLite refuses that at once, busy timeout or not, while
    another connection writes: a worker opening the store as the clock creates it must wait, not fail."""
    path = tmp_path / "publisher.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")
    commit = threading.Timer(0.3, other.execute, ["COMMIT"])
    commit.start()
    store = open_store(f"sqlite:///{path}")
    commit.join()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()
    other.close()


@pytest.mark.postgres
def test_a_plain_postgresql_url_uses_psycopg_3(tmp_path: Path) -> None:
    for url in store_support.database_url("postgresql", tmp_path):
        store = open_store(url.replace("postgresql+psycopg://", "postgresql://"))
        assert store.engine.url.drivername == "postgresql+psycopg"
        store.close()


def test_an_unsupported_or_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(WorkFailed, match="mysql is not supported"):
        open_store("mysql://someone@127.0.0.1/db")
    with pytest.raises(WorkFailed, match="cannot open the database") as caught:
        open_store("postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nothing")
    assert "hunter2" not in str(caught.value)


# --- times ---------------------------------------------------------------------------------------


def test_times_come_back_as_aware_utc_whatever_zone_went_in(store: Store) -> None:
    due = dt.datetime(2026, 3, 29, 3, 30, tzinfo=PARIS)  # 01:30 UTC, just after the spring-forward gap
    row = store.upsert_dispatch(plan(due=due), NOW.astimezone(PARIS))
    assert row.due == due
    assert row.due.tzinfo is dt.UTC and row.due.hour == 1
    assert row.created_at.tzinfo is dt.UTC and row.created_at == NOW


def test_a_naive_time_is_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="needs an aware datetime"):
        store.upsert_dispatch(plan(due=dt.datetime(2026, 11, 20, 9, 0)), NOW)


def test_times_compare_in_time_order_across_zones(store: Store) -> None:
    early = dt.datetime(2026, 11, 20, 9, 30, tzinfo=PARIS)  # 08:30 UTC
    late = dt.datetime(2026, 11, 20, 8, 45, tzinfo=dt.UTC)
    store.upsert_dispatches([plan("late", late), plan("early", early)], NOW)
    assert [row.id for row in store.list_dispatches()] == ["early", "late"]
    assert [row.id for row in store.list_dispatches(due_before=late)] == ["early"]


# --- dispatches ------------------------------------------------------------------------------------


def test_re_planning_changes_an_unstarted_dispatch_but_never_history(store: Store) -> None:
    store.upsert_dispatches([plan("a"), plan("b")], NOW)
    assert store.set_dispatch_state("b", "sending", NOW, expect={"planned"})
    later = NOW + dt.timedelta(hours=2)
    store.upsert_dispatches([plan("a", later, record_ids=("x", "y")), plan("b", later)], NOW + SECOND)
    a, b = store.get_dispatch("a"), store.get_dispatch("b")
    assert a is not None and b is not None
    assert (a.due, a.record_ids, a.updated_at) == (later, ("x", "y"), NOW + SECOND)
    assert (b.due, b.updated_at) == (NOW, NOW)


def test_re_planning_the_same_plan_touches_nothing(store: Store) -> None:
    store.upsert_dispatch(plan(), NOW)
    row = store.upsert_dispatch(plan(), NOW + dt.timedelta(minutes=5))
    assert row.updated_at == NOW


def test_a_plan_entry_from_the_timeline_becomes_a_row() -> None:
    class Entry:
        id = "d9"
        channel = "x"
        rule_key = "x::published+0"
        due = NOW
        record_ids = ("r1",)
        list = None
        review = True

    assert PlannedDispatch.of(Entry()) == PlannedDispatch(
        "d9", "x", "x::published+0", NOW, ("r1",), None, "waiting_review"
    )


def test_state_changes_are_guarded_and_stamped(store: Store) -> None:
    store.upsert_dispatch(plan(), NOW)
    assert store.set_dispatch_state("d1", "sending", NOW, expect={"planned", "due"})
    assert not store.set_dispatch_state("d1", "sending", NOW + SECOND, expect={"planned", "due"})
    assert store.set_dispatch_state("d1", "sending", NOW + 2 * SECOND)  # a resume keeps the first start
    assert store.set_dispatch_state("d1", "partly_sent", NOW + 3 * SECOND, "2 failed", counts={"sent": 8, "failed": 2})
    row = store.get_dispatch("d1")
    assert row is not None
    assert (row.state, row.note, row.counts) == ("partly_sent", "2 failed", {"sent": 8, "failed": 2})
    assert (row.started_at, row.finished_at) == (NOW, NOW + 3 * SECOND)
    with pytest.raises(ValueError, match="unknown dispatch state"):
        store.set_dispatch_state("d1", "done", NOW)
    with pytest.raises(ValueError, match="cannot set channel"):
        store.set_dispatch_state("d1", "sent", NOW, channel="x")


def test_an_unknown_outcome_is_finished_when_it_is_recorded(store: Store) -> None:
    """`unknown` is final (never retried blindly): it gets its `finished_at` like sent, failed and skipped."""
    store.upsert_dispatch(plan(), NOW)
    assert store.set_dispatch_state("d1", "sending", NOW)
    assert store.set_dispatch_state("d1", "unknown", NOW + 5 * SECOND, "the answer was lost")
    row = store.get_dispatch("d1")
    assert row is not None and (row.state, row.started_at, row.finished_at) == ("unknown", NOW, NOW + 5 * SECOND)


def test_states_listing_and_removing_what_the_plan_dropped(store: Store) -> None:
    store.upsert_dispatches([plan("a"), plan("b"), plan("c", channel="x")], NOW)
    store.fix_recipients("b", ["ana@example.org"], NOW)
    store.set_dispatch_state("c", "skipped", NOW, "late by 7 hours")
    assert store.dispatch_states(["a", "c", "nope"]) == {"a": "planned", "c": "skipped"}
    assert [row.id for row in store.list_dispatches(states=["planned"])] == ["a", "b"]
    assert [row.id for row in store.list_dispatches(channel="x")] == ["c"]
    # "b" has a recipient set (it started) and "c" is history: only "a" goes.
    assert store.remove_unstarted(["a", "b", "c"]) == 1
    assert set(store.dispatch_states(["a", "b", "c"])) == {"b", "c"}


def test_many_dispatch_states_at_once(store: Store) -> None:
    store.upsert_dispatches([plan(f"d{number}") for number in range(1200)], NOW)
    assert len(store.dispatch_states(f"d{number}" for number in range(1500))) == 1200


# --- the ledger ----------------------------------------------------------------------------------


def test_the_recipient_set_is_fixed_by_the_first_call(store: Store) -> None:
    store.upsert_dispatch(plan(), NOW)
    assert store.fix_recipients("d1", ["ana@example.org", "bo@example.org", "ana@example.org"], NOW) == 2
    assert store.fix_recipients("d1", ["ana@example.org", "new@example.org"], NOW + SECOND) == 0
    assert [row.target for row in store.deliveries("d1")] == ["ana@example.org", "bo@example.org"]
    with pytest.raises(WorkFailed, match="no dispatch 'missing'"):
        store.fix_recipients("missing", ["ana@example.org"], NOW)


def test_claims_take_pending_rows_in_order_and_never_a_sent_one(store: Store) -> None:
    started(store, emails(5))
    first = store.claim("d1", 3, "w1", NOW, lease_seconds=60)
    assert [row.target for row in first] == emails(3)
    assert {(row.state, row.worker, row.attempts, row.lease_until) for row in first} == {
        ("sending", "w1", 1, NOW + dt.timedelta(seconds=60))
    }
    store.mark_sent([row.id for row in first], NOW, reply="250 2.0.0 Ok")
    rest = store.claim("d1", 10, "w2", NOW + dt.timedelta(hours=1), lease_seconds=60)
    assert [row.target for row in rest] == emails(5)[3:]
    assert store.claim("d1", 10, "w3", NOW + dt.timedelta(hours=1), lease_seconds=60) == []
    store.mark_sent(rest[0].id, NOW + dt.timedelta(hours=1))
    # A day later the other lease has run out: that row comes back, the sent ones never.
    assert [row.id for row in store.claim("d1", 10, "w4", NOW + dt.timedelta(days=1), lease_seconds=60)] == [rest[1].id]
    assert store.counts("d1") == {
        "pending": 0,
        "sending": 1,
        "sent": 4,
        "failed_temporary": 0,
        "failed_permanent": 0,
        "unknown": 0,
    }


def test_a_row_left_sending_by_a_dead_worker_comes_back_after_its_lease(store: Store) -> None:
    started(store, emails(2))
    (stuck,) = store.claim("d1", 1, "killed", NOW, lease_seconds=300)
    before = store.claim("d1", 5, "w2", NOW + dt.timedelta(seconds=299), lease_seconds=300)
    assert [row.target for row in before] == [emails(2)[1]]
    (again,) = store.claim("d1", 5, "w3", NOW + dt.timedelta(seconds=300), lease_seconds=300)
    assert (again.id, again.worker, again.attempts) == (stuck.id, "w3", 2)


def test_temporary_failures_wait_for_their_time_and_permanent_ones_never_return(store: Store) -> None:
    started(store, emails(3))
    soft, hard, unsure = store.claim("d1", 3, "w1", NOW, lease_seconds=60)
    retry_at = NOW + dt.timedelta(minutes=10)
    assert store.mark_failed(soft.id, NOW, permanent=False, reply="451 4.3.0 try later", next_attempt_at=retry_at) == 1
    assert store.mark_failed(hard.id, NOW, permanent=True, reply="550 5.1.1 no such user") == 1
    assert store.mark_unknown(unsure.id, NOW, reply="connection dropped after DATA") == 1
    assert store.claim("d1", 5, "w2", retry_at - SECOND, lease_seconds=60) == []
    (retried,) = store.claim("d1", 5, "w2", retry_at, lease_seconds=60)
    assert (retried.id, retried.last_reply) == (soft.id, "451 4.3.0 try later")
    store.mark_sent(retried.id, retry_at, reply="250 Ok")
    assert store.claim("d1", 5, "w3", NOW + dt.timedelta(days=30), lease_seconds=60) == []


def test_a_sent_row_is_never_marked_anything_else(store: Store) -> None:
    started(store, emails(1))
    (row,) = store.claim("d1", 1, "w1", NOW, lease_seconds=60)
    assert store.mark_sent(row.id, NOW, message_id="<a@example.org>") == 1
    assert store.mark_failed(row.id, NOW, permanent=True, reply="late news") == 0
    assert store.mark_unknown(row.id, NOW) == 0
    assert store.mark_sent(row.id, NOW + SECOND, message_id="<other@example.org>") == 0
    (final,) = store.deliveries("d1")
    assert (final.state, final.message_id, final.sent_at, final.lease_until) == ("sent", "<a@example.org>", NOW, None)


def test_a_batch_is_marked_with_each_message_id(store: Store) -> None:
    started(store, emails(3))
    rows = store.claim("d1", 3, "w1", NOW, lease_seconds=60)
    sent = [SentMessage(row.id, f"<{row.id}@example.org>", "250 Ok") for row in rows[:2]]
    assert store.mark_sent_each(sent, NOW) == 2
    found = {row.target: (row.state, row.message_id) for row in store.deliveries("d1")}
    assert found == {
        emails(3)[0]: ("sent", f"<{rows[0].id}@example.org>"),
        emails(3)[1]: ("sent", f"<{rows[1].id}@example.org>"),
        emails(3)[2]: ("sending", None),
    }


def test_release_gives_back_only_that_workers_rows(store: Store) -> None:
    started(store, emails(4))
    mine = store.claim("d1", 2, "stopping", NOW, lease_seconds=600)
    theirs = store.claim("d1", 2, "busy", NOW, lease_seconds=600)
    assert store.release("stopping", NOW + SECOND) == 2
    states = {row.id: (row.state, row.worker, row.attempts) for row in store.deliveries("d1")}
    assert [states[row.id] for row in mine] == [("pending", None, 0)] * 2
    assert [states[row.id] for row in theirs] == [("sending", "busy", 1)] * 2
    assert [row.id for row in store.claim("d1", 5, "next", NOW + SECOND, lease_seconds=60)] == [row.id for row in mine]


def test_resend_failed_makes_only_failed_rows_pending(store: Store) -> None:
    started(store, emails(4))
    a, b, c, d = store.claim("d1", 4, "w1", NOW, lease_seconds=60)
    store.mark_sent(a.id, NOW)
    store.mark_failed(b.id, NOW, permanent=True, reply="550")
    store.mark_failed(c.id, NOW, permanent=False, reply="451", next_attempt_at=NOW + dt.timedelta(days=1))
    store.mark_unknown(d.id, NOW)
    assert store.reset_failed("d1", NOW + SECOND) == 2
    assert [row.id for row in store.claim("d1", 10, "w2", NOW + SECOND, lease_seconds=60)] == [b.id, c.id]


# --- concurrency ---------------------------------------------------------------------------------


def _claim_all(store: Store, worker: str, start: threading.Barrier | None = None) -> list[int]:
    taken: list[int] = []
    if start is not None:
        start.wait()
    while rows := store.claim("d1", 7, worker, NOW, lease_seconds=600):
        taken.extend(row.id for row in rows)
        store.mark_sent([row.id for row in rows], NOW)
    return taken


def test_threads_claiming_one_dispatch_never_get_the_same_row(store: Store) -> None:
    started(store, emails(1500))
    start = threading.Barrier(4)
    results: dict[str, list[int]] = {}

    def work(name: str) -> None:
        results[name] = _claim_all(store, name, start)

    threads = [threading.Thread(target=work, args=(f"w{number}",)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = Counter(row_id for rows in results.values() for row_id in rows)
    assert sum(1 for rows in results.values() if rows) >= 2, "the workers should have competed"
    assert max(taken.values()) == 1
    assert len(taken) == 1500
    assert store.counts("d1")["sent"] == 1500


def _process_worker(
    url: str, name: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue[list[int]]
) -> None:
    store = open_store(url)
    start.wait()
    out.put(_claim_all(store, name))
    store.close()


def test_processes_claiming_one_dispatch_never_get_the_same_row(store: Store, store_url: str) -> None:
    started(store, emails(1000))
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    processes = [context.Process(target=_process_worker, args=(store_url, f"p{n}", start, out)) for n in range(3)]
    for process in processes:
        process.start()
    start.set()
    shares = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    taken = Counter(row_id for share in shares for row_id in share)
    assert max(taken.values()) == 1
    assert len(taken) == 1000


def test_two_starters_fix_one_recipient_set(store: Store) -> None:
    store.upsert_dispatch(plan(), NOW)
    start = threading.Barrier(2)
    written: list[int] = []

    def fix(targets: list[str]) -> None:
        start.wait()
        written.append(store.fix_recipients("d1", targets, NOW))

    threads = [threading.Thread(target=fix, args=(emails(n),)) for n in (300, 400)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written)[0] == 0
    assert store.counts("d1")["pending"] == sorted(written)[1]


# --- the clock's lock ----------------------------------------------------------------------------


def test_a_second_clock_is_refused_while_the_first_is_alive(store: Store) -> None:
    assert store.acquire_lock("clock", "host-a:101", NOW, stale_after=60)
    assert not store.acquire_lock("clock", "host-b:202", NOW + 59 * SECOND, stale_after=60)
    assert store.heartbeat("clock", "host-a:101", NOW + 50 * SECOND)
    assert not store.acquire_lock("clock", "host-b:202", NOW + 100 * SECOND, stale_after=60)
    holder = store.lock_holder("clock")
    assert holder is not None and (holder.owner, holder.heartbeat_at) == ("host-a:101", NOW + 50 * SECOND)
    assert store.acquire_lock("clock", "host-a:101", NOW + 101 * SECOND, stale_after=60)  # its own again


def test_a_stale_clock_is_taken_over_and_learns_it(store: Store) -> None:
    assert store.acquire_lock("clock", "a", NOW, stale_after=60)
    assert store.acquire_lock("clock", "b", NOW + 61 * SECOND, stale_after=60)
    assert not store.heartbeat("clock", "a", NOW + 62 * SECOND)
    assert not store.release_lock("clock", "a")
    holder = store.lock_holder("clock")
    assert holder is not None and (holder.owner, holder.acquired_at) == ("b", NOW + 61 * SECOND)
    assert store.release_lock("clock", "b")
    assert store.lock_holder("clock") is None
    assert store.acquire_lock("clock", "c", NOW + 62 * SECOND, stale_after=60)


def test_only_one_of_many_racing_clocks_wins(store: Store) -> None:
    start = threading.Barrier(6)
    winners: list[str] = []

    def take(owner: str) -> None:
        start.wait()
        if store.acquire_lock("clock", owner, NOW, stale_after=60):
            winners.append(owner)

    threads = [threading.Thread(target=take, args=(f"clock-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_giving_up_turns_temporary_failures_permanent_and_says_why(store: Store) -> None:
    started(store, emails(3))
    a, b, c = store.claim("d1", 3, "w1", NOW, lease_seconds=60)
    assert store.next_retry("d1") is None
    store.mark_failed(a.id, NOW, permanent=False, reply="451 later", next_attempt_at=NOW + dt.timedelta(minutes=9))
    store.mark_failed(
        b.id, NOW + SECOND, permanent=False, reply="421 busy", next_attempt_at=NOW + dt.timedelta(minutes=4)
    )
    store.mark_sent(c.id, NOW)
    assert store.next_retry("d1") == NOW + dt.timedelta(minutes=4)
    assert store.give_up("d1", NOW + dt.timedelta(hours=2), reply="retry budget spent") == 2
    assert store.next_retry("d1") is None
    replies = {row.id: (row.state, row.last_reply) for row in store.deliveries("d1")}
    assert replies == {
        a.id: ("failed_permanent", "retry budget spent (last reply: 451 later)"),
        b.id: ("failed_permanent", "retry budget spent (last reply: 421 busy)"),
        c.id: ("sent", None),
    }


def _open_and_close(url: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    open_store(url).close()


def test_several_processes_opening_a_new_database_at_once_all_succeed(store_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [context.Process(target=_open_and_close, args=(store_url, start)) for _ in range(3)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0]


def test_threads_opening_a_new_database_at_once_all_succeed(store_url: str) -> None:
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            open_store(store_url).close()
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []


def test_a_late_answer_to_a_worker_whose_lease_ran_out_leaves_the_new_holders_row_alone(store: Store) -> None:
    """Worker A stalls past its lease, B takes the row and is sending it: A's late failure changes nothing,
    so no third worker can claim the row while B's send is in flight."""
    started(store, ["a@example.org"])
    (row,) = store.claim("d1", 1, "stalled", NOW, lease_seconds=30)
    (again,) = store.claim("d1", 1, "live", NOW + dt.timedelta(seconds=31), lease_seconds=30)
    assert again.id == row.id

    late = NOW + dt.timedelta(seconds=40)
    assert store.mark_failed(row.id, late, permanent=False, next_attempt_at=late, worker="stalled") == 0
    assert store.mark_unknown(row.id, late, worker="stalled") == 0
    assert store.claim("d1", 1, "third", late + dt.timedelta(seconds=5), lease_seconds=30) == []
    assert store.mark_failed(row.id, late, permanent=True, worker="live") == 1  # the holder's own answer counts
