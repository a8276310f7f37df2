"""Never lose, never repeat: SIGKILL a real `publisher run` at random moments while it sends.

A site with 3,000 subscribers sends one newsletter through a real SMTP server
(aiosmtpd, in this process, on loopback) that counts what it took per
recipient. `python -m publisher run --once --now T` runs as a child process and
is killed (SIGKILL: no clean-up of any kind) after the server has taken a
random number of messages, several times, then run again until it finishes.

Then: everyone got the message at least once; the repeats are no more than
the messages that can be in flight when a kill lands (one per connection per
kill); the ledger says sent for every recipient. Once with the ledger in the
site's SQLite file, once in PostgreSQL. The seed is printed with any failure;
PUBLISHER_KILL_SEED=<seed> replays it.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import store_support
from tests.dispatch_support import (
    PARIS_DUE,
    add_people,
    at,
    configure,
    environment,
    full_environment,
    readers,
    store_of,
)
from tests.smtp_support import MailServer

pytestmark = pytest.mark.slow

SUBSCRIBERS = 3_000
CONNECTIONS = 4
NOW = PARIS_DUE + dt.timedelta(minutes=10)
START_TIMEOUT = 30.0


def start(site: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "publisher", "--site", str(site), "run", "--once", "--now", at(NOW)]
    return subprocess.Popen(command, env=full_environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_after(process: subprocess.Popen[bytes], server: MailServer, threshold: int) -> bool:
    """SIGKILL `process` once the server has taken `threshold` messages; False if it ended first."""
    deadline = time.monotonic() + START_TIMEOUT
    while len(server.received) < threshold:
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


@pytest.fixture(params=store_support.DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield from store_support.database_environment(request.param, tmp_path)


def test_killed_runs_lose_nothing_and_repeat_only_what_was_in_flight(
    example_site: Path, database: dict[str, str]
) -> None:
    seed = int(os.environ.get("PUBLISHER_KILL_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    configure(example_site, email=f"connections = {CONNECTIONS}\n")
    with MailServer() as server:
        env = environment(server, **database)
        people = add_people(example_site, env, readers(SUBSCRIBERS))
        kills = sorted(rng.sample(range(1, 2_501), rng.randint(3, 5)))
        for threshold in kills:
            process = start(example_site, env)
            killed = kill_after(process, server, threshold)
            assert killed, f"seed {seed}: the run ended before {threshold} messages: {process.communicate()}"
        finished = None
        for _ in range(3):
            process = start(example_site, env)
            out, err = process.communicate(timeout=120)
            if process.returncode == 0:
                finished = out.decode()
                break
        assert finished is not None, f"seed {seed}: no run finished: {err.decode()}"
        received = server.per_recipient()

    store = store_of(example_site, env)
    try:
        (dispatch,) = store.list_dispatches(channel="email", states=["sent"])
        counts = store.counts(dispatch.id)
    finally:
        store.close()
    context = f"seed {seed}, kills after {kills} messages"
    lost = [address for address in people if received[address] == 0]
    assert lost == [], f"{context}: {len(lost)} never received it, e.g. {lost[:5]}"
    assert set(received) == set(people), context
    repeats = Counter({address: n - 1 for address, n in received.items() if n > 1})
    assert sum(repeats.values()) <= len(kills) * CONNECTIONS, f"{context}: repeats {dict(repeats)}"
    assert counts == {**dict.fromkeys(counts, 0), "sent": SUBSCRIBERS}, context
    print(f"{context}: {sum(repeats.values())} repeats; last run: {finished.strip()}")
