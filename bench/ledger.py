"""Time the delivery ledger: fixing N recipients, claiming them in batches, and
marking each one sent in its own transaction (as the email channel does).

python bench/ledger.py [N] [DATABASE_URL]     (default 10,000 on a fresh SQLite file)

A PostgreSQL URL must name an empty database, e.g. one made with
``createdb -h 127.0.0.1 -U postgres bench_ledger``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from publisher.store.dispatches import PlannedDispatch, open_store

NOW = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)


def main(count: int, url: str) -> None:
    store = open_store(url)
    store.upsert_dispatch(PlannedDispatch("bench", "email", "email:news", NOW, ("r1",), "news"), NOW)
    started = time.perf_counter()
    store.fix_recipients("bench", (f"reader{number}@example.org" for number in range(count)), NOW)
    fixed = time.perf_counter() - started
    claimed = marked = 0.0
    while True:
        started = time.perf_counter()
        batch = store.claim("bench", 100, "bench", NOW, lease_seconds=300)
        claimed += time.perf_counter() - started
        if not batch:
            break
        started = time.perf_counter()
        for row in batch:
            store.mark_sent(row.id, NOW, message_id=f"<{row.id}@example.org>", reply="250 2.0.0 Ok")
        marked += time.perf_counter() - started
    assert store.counts("bench")["sent"] == count
    store.close()
    print(f"{url.split(':', 1)[0]}, {count:,} recipients")
    print(f"  fix recipients   {fixed:6.2f} s")
    print(f"  claim (100 each) {claimed:6.2f} s")
    print(f"  mark one by one  {marked:6.2f} s   {count / marked:,.0f} marks/s")


if __name__ == "__main__":
    number = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as folder:
        main(number, sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{Path(folder) / 'bench.db'}")
