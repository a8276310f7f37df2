"""Benchmark: `publisher plan` over N records and 50 timeline rules, and an idle tick of the clock.

    python bench/plan.py 10000

The records are bench/build.py's (same seed, one every 7 hours); `now` is set
so that the newest 113 records are still to come, and the 50 rules (45 single
rules on every channel at offsets from 0 to 44 hours, 5 weekly digests) give
about 5,650 dispatches still to come. `plan` runs as the real CLI in a child
process (`publisher --json plan`, wall and CPU time, median of `--rounds`;
the first round parses every record and keeps it in `.publisher/`, the next
ones take the unchanged records from there: `plan_first_s` is that first one).
The idle tick is the clock's `Clockwork.tick` in this process, holding the
clock, after a first tick, with nothing changed and nothing due: what the
clock costs every minute (`idle_tick_ms` is the median of 10, `idle_tick_cpu_ms` its CPU time).
The baseline, measured in the same run, is reading every record file and
parsing its YAML with PyYAML's C loader. Targets: plan ≤ 1 s, idle tick ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build import CONFIG, baseline, compile_package, make_site, published_at  # bench/build.py's records

CHANNELS = ("feeds", "email", "x", "mastodon", "bluesky")
STILL_TO_COME = 113


def rules() -> str:
    """45 single rules (every channel, 0 to 44 hours after publication) and 5 weekly digests, all held for review
    (so that the clock's ticks send nothing and measure only what the clock itself costs)."""
    out = [""]
    for i in range(45):
        channel = CHANNELS[i % len(CHANNELS)]
        extra = 'list = "news"\n' if channel == "email" else ""
        out.append(f'[[timeline]]\nwhen = "published + {i} hours"\nchannel = "{channel}"\n{extra}review = true\n')
    for day in ("mon", "tue", "wed", "thu", "fri"):
        out.append(f'[[timeline]]\ncron = "0 9 * * {day}"\nchannel = "email"\nlist = "news"\nreview = true\n')
    return "\n".join(out)


def run_plan(root: Path, now: dt.datetime) -> tuple[float, float, int]:
    """`publisher --json plan --now` in a child process: (wall s, CPU s, dispatches listed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    args = [sys.executable, "-m", "publisher", "--json", "plan", "--now", now.isoformat()]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(json.loads(done.stdout)["dispatches"])


def idle_ticks(root: Path, now: dt.datetime, count: int) -> tuple[float, list[float], list[float]]:
    """The clock's first tick (records loaded, plan mirrored into the store), then `count` ticks a second apart
    with nothing changed: (first tick s, idle ticks' wall s, idle ticks' CPU s)."""
    from publisher.dispatch.clock import Clockwork
    from publisher.dispatch.clock_lock import take_clock
    from publisher.dispatch.context import wall_clock, worker_id
    from publisher.site.config import load_site
    from publisher.store.dispatches import open_store

    site = load_site(root)
    store = open_store(site.database_url)
    try:
        moment = [now]
        owner = worker_id()
        take_clock(store, owner, wall_clock())  # a clock that does not hold the database stops at its first tick
        work = Clockwork(root, lambda: moment[0], site, store, owner)
        start = time.perf_counter()
        work.tick(now)
        first = time.perf_counter() - start
        ticks, cpus = [], []
        for i in range(count):
            moment[0] = now + dt.timedelta(seconds=i + 1)
            start, cpu = time.perf_counter(), time.process_time()
            work.tick(moment[0])
            ticks.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        return first, ticks, cpus
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    compile_package()
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-plan-"))
    os.environ.setdefault("PUBLISHER_SECRET", "bench-secret-bench-secret-bench-secret")
    try:
        make_site(root, args.n)
        (root / "publisher.toml").write_text(CONFIG + rules())
        now = published_at(args.n - STILL_TO_COME) - dt.timedelta(minutes=1)
        bases, walls, cpus = [], [], []
        listed = 0
        for _ in range(args.rounds):
            bases.append(baseline(root))
            wall, cpu, listed = run_plan(root, now)
            walls.append(wall)
            cpus.append(cpu)
        first, ticks, tick_cpus = idle_ticks(root, now, 10)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "records": args.n,
            "rules": 50,
            "dispatches_listed": listed,
            "baseline_read_yaml_s": round(statistics.median(bases), 3),
            "plan_first_s": round(walls[0], 3),  # no records kept in .publisher/ yet: every file parsed
            "plan_s": round(statistics.median(walls), 3),
            "plan_cpu_s": round(statistics.median(cpus), 3),
            "plan_vs_baseline": round(statistics.median(walls) / statistics.median(bases), 2),
            "first_tick_s": round(first, 3),
            "idle_tick_ms": round(1000 * statistics.median(ticks), 1),
            "idle_tick_cpu_ms": round(1000 * statistics.median(tick_cpus), 1),
            "idle_ticks_ms": [round(1000 * t, 1) for t in ticks],
            "targets": {"plan_s": 1.0, "idle_tick_ms": 50},
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
