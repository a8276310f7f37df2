"""Benchmark: scale-out on PostgreSQL: throughput with 1, 2 and 4 workers, recovery after a SIGKILL, memory.

    python bench/heal.py [--count 10000] [--recovery-count 3000] [--memory-counts 3000,100000]
                         [--broker redis://127.0.0.1:6379/0] [--server postgresql+psycopg://postgres@127.0.0.1:5432/test]

Needs PostgreSQL, the broker and Postfix's ``smtp-sink`` (started here as
``smtp-sink -u nobody -c 127.0.0.1:PORT 1000``, as root for ``-u``). Each run
gets a fresh database (created on the server, dropped afterwards), a temporary
copy of the example site whose one rule sends the Paris record to ``news``, and
N subscribers inserted in bulk.

1. **Baseline**: the single-process send, ``publisher run --once`` with no
   queue, on the same PostgreSQL server, measured in the same run.
2. **Throughput**: W ``publisher worker`` processes (``--concurrency 1``), then
   ``publisher run --once`` puts the dispatch on the queue; the rate is N over
   the span from the first message marked sent to the last (the ledger's
   ``sent_at``), so worker start-up is not counted.
3. **Recovery**: two workers and a running clock (``publisher run``, the
   default settings); when a third of the list is sent, the worker holding the
   most claimed rows is SIGKILLed; the figure is the time from the kill to the
   last row marked sent (the ledger polled every 0.1 s).
4. **Memory**: one worker's peak RSS (from ``wait4``) sending to each count of
   ``--memory-counts``: flat in N means the worker holds a batch, not the list.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from publisher.audience import subscribers  # noqa: E402  (after the path is set, for a run from a checkout)
from publisher.audience.rows import Incoming  # noqa: E402
from publisher.store.dispatches import open_store  # noqa: E402
from publisher.store.tables import deliveries  # noqa: E402

NOW = dt.datetime(2018, 2, 9, 17, 10, tzinfo=dt.UTC)  # 10 minutes after the Paris record's newsletter is due
RULE = '\n[[timeline]]\nwhen = "published"\nchannel = "email"\nlist = "news"\n'
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def sink() -> Iterator[int]:
    path = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(path).exists():
        sys.exit("smtp-sink not found: apt-get install -y postfix (DEBIAN_FRONTEND=noninteractive)")
    port = free_port()
    process = subprocess.Popen([path, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("smtp-sink did not start")
                time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait()


@contextmanager
def deployment(server: str, port: int, count: int, broker: str | None) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh database, site and list of `count`; the environment every process of the run uses."""
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"publisher_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as folder:
            site = Path(folder) / "site"
            site.mkdir()
            for part in ("events", "media"):
                shutil.copytree(REPO / part, site / part)
            head = (REPO / "publisher.toml").read_text(encoding="utf-8").split("[[timeline]]", 1)[0]
            (site / "publisher.toml").write_text(head + RULE, encoding="utf-8")
            env = {key: value for key, value in os.environ.items() if not key.startswith("PUBLISHER_")}
            env.update(
                PUBLISHER_EMAIL_URL=f"smtp://127.0.0.1:{port}",
                PUBLISHER_SECRET=SECRET,
                PUBLISHER_DATABASE_URL=sa.make_url(server).set(database=name).render_as_string(hide_password=False),
                PUBLISHER_QUEUE_URL=broker or "none",
                PUBLISHER_QUEUE_NAME=f"publisher-bench-{uuid.uuid4().hex[:8]}",
            )
            store = open_store(env["PUBLISHER_DATABASE_URL"])
            try:
                for first in range(0, count, 10_000):
                    people = [
                        Incoming(f"reader{n:07d}@example.org", f"Reader {n}", None, ("news",))
                        for n in range(first, min(count, first + 10_000))
                    ]
                    subscribers.save(store, people, NOW - dt.timedelta(days=30), "bench")
            finally:
                store.close()
            yield site, env
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def publisher(site: Path, env: dict[str, str], *args: str, **popen: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "publisher", "--site", str(site), *args]
    return subprocess.Popen(command, env=env, text=True, **popen)  # type: ignore[call-overload]


class Worker:
    def __init__(self, site: Path, env: dict[str, str]) -> None:
        self.process = publisher(site, env, "worker", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ready = threading.Event()
        self.rss_mb = 0.0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if " ready." in line:
                self.ready.set()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        _, _, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = 0
        self.rss_mb = usage.ru_maxrss / 1024


def ledger(env: dict[str, str]) -> tuple[int, float, dict[str, int]]:
    """(rows sent, seconds from the first mark to the last, rows held ``sending`` per worker pid)."""
    store = open_store(env["PUBLISHER_DATABASE_URL"])
    try:
        column = deliveries.c.sent_at
        with store.read() as connection:
            low, high, sent = connection.execute(
                sa.select(sa.func.min(column), sa.func.max(column), sa.func.count()).where(deliveries.c.state == "sent")
            ).one()
            held = dict(
                connection.execute(
                    sa.select(deliveries.c.worker, sa.func.count())
                    .where(deliveries.c.state == "sending")
                    .group_by(deliveries.c.worker)
                ).all()
            )
    finally:
        store.close()
    span = (high - low).total_seconds() if sent else 0.0
    return int(sent), span, {str(key).split(":")[1]: n for key, n in held.items() if key}


def wait_sent(env: dict[str, str], count: int, timeout: float) -> float:
    """Poll until every row is sent; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while ledger(env)[0] < count:
        if time.monotonic() > deadline:
            sys.exit(f"not everything was sent within {timeout:.0f} s: {ledger(env)}")
        time.sleep(0.1)
    return time.monotonic()


def single(server: str, port: int, count: int) -> float:
    with deployment(server, port, count, None) as (site, env):
        run = publisher(site, env, "run", "--once", "--now", NOW.isoformat(), stdout=subprocess.DEVNULL)
        if run.wait() != 0:
            sys.exit("the single-process run failed")
        sent, span, _ = ledger(env)
    return sent / span


def workers(server: str, port: int, broker: str, count: int, number: int) -> tuple[float, float]:
    """(messages a second, the peak RSS of the largest worker in MB) with `number` workers."""
    with deployment(server, port, count, broker) as (site, env):
        crew = [Worker(site, env) for _ in range(number)]
        for worker in crew:
            worker.ready.wait(60)
        tick = publisher(site, env, "run", "--once", "--now", NOW.isoformat(), stdout=subprocess.DEVNULL)
        tick.wait()
        wait_sent(env, count, 600)
        sent, span, _ = ledger(env)
        for worker in crew:
            worker.stop()
    return sent / span, max(worker.rss_mb for worker in crew)


def recovery(server: str, port: int, broker: str, count: int) -> tuple[float, int]:
    """(seconds from the SIGKILL of a worker to the last row sent, rows the killed worker held)."""
    with deployment(server, port, count, broker) as (site, env):
        crew = [Worker(site, env) for _ in range(2)]
        for worker in crew:
            worker.ready.wait(60)
        clock = publisher(
            site, env, "run", "--now", NOW.isoformat(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while ledger(env)[0] < count // 3:
                time.sleep(0.02)
            held = ledger(env)[2]
            victim = max(crew, key=lambda w: held.get(str(w.process.pid), 0))
            victim.stop(signal.SIGKILL)
            killed = time.monotonic()
            done = wait_sent(env, count, 300)
        finally:
            clock.send_signal(signal.SIGTERM)
            clock.wait()
            for worker in crew:
                if worker.process.returncode is None:
                    worker.stop()
    return done - killed, held.get(str(victim.process.pid), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--count", type=int, default=10_000, help="recipients for the throughput runs")
    parser.add_argument("--recovery-count", type=int, default=3_000)
    parser.add_argument("--memory-counts", default="3000,30000")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with sink() as port:
        base = single(args.server, port, args.count)
        print(f"single process (run --once, no queue), {args.count:,} recipients: {base:,.0f} msg/s", flush=True)
        for number in (int(n) for n in args.workers.split(",")):
            rate, rss = workers(args.server, port, args.broker, args.count, number)
            print(f"{number} worker(s): {rate:,.0f} msg/s ({rate / base:.0%} of one process), "
                  f"peak RSS {rss:.0f} MB per worker", flush=True)  # fmt: skip
        seconds, held = recovery(args.server, port, args.broker, args.recovery_count)
        print(f"recovery, {args.recovery_count:,} recipients, 2 workers, one SIGKILLed holding {held} rows: "
              f"last message {seconds:.1f} s after the kill", flush=True)  # fmt: skip
        for count in (int(n) for n in args.memory_counts.split(",")):
            _, rss = workers(args.server, port, args.broker, count, 1)
            print(f"one worker, {count:,} recipients: peak RSS {rss:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
