"""Benchmark: a cold `publisher build` of N records, then a rebuild after one change.

    python bench/build.py 10000 [--timeline]

Generates N records (mixed languages and tags, ~200-word bodies) in a temporary
site, runs the real `publisher --json build` as a child process (cold, then
`--repeat` times with nothing changed, then `--repeat` times after one record's
summary changed) and reports wall and CPU time (the build and its worker
processes) and peak memory (the largest process's max RSS). Before the cold
build it times `publisher check` on the same records: every output rendered in
memory, nothing written: what a build costs besides writing its files. The
baseline, measured in the same run, is the least any build must do: read every
file and parse its YAML front matter with PyYAML's C loader; figures are also
quoted as ratios to it. On a busy machine the CPU figures are the steadier ones.
With `--timeline` the site has three timeline rules (a post two hours after
publication, a weekly digest, a post held for review): a build then chooses
its previews from the plan.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

WORDS = tuple(
    " ".join(
        [
            "cooperation development data sustainable goals agenda report meeting partners regional financing",
            "policy evidence statistics civil society government ministers conference review national local",
            "climate health education gender equality innovation knowledge cities water",
        ]
    ).split()
)
LANGUAGES = ("en", "en", "es", "fr", "pt")
TAGS = [f"topic-{i}" for i in range(40)]
CONFIG = """[site]
title = "Bench"
url = "https://bench.example.org"
language = "en"
timezone = "Europe/Paris"

[newsletter]
from = "Bench <news@bench.example.org>"
footer = "Bench · 1 rue de la Paix, Paris"
"""

TIMELINE = """
[[timeline]]
when = "published + 2 hours"
channel = "mastodon"

[[timeline]]
cron = "0 9 * * mon"
channel = "email"
list = "news"

[[timeline]]
when = "published"
channel = "x"
review = true
"""


FIRST = dt.datetime(2020, 1, 1, 9, tzinfo=dt.UTC)


def compile_package() -> None:
    """Write the bytecode of publisher's modules, as installing its wheel does.

    The benchmarks run publisher from this checkout (an editable install), where
    nothing else writes it when PYTHONDONTWRITEBYTECODE is set (as on the project's
    machine): every child process would then compile every module it imports,
    a cost no installed publisher pays (tens of milliseconds of a rebuild).
    """
    import compileall

    import publisher

    compileall.compile_dir(str(Path(publisher.__file__).parent), quiet=1)


def published_at(i: int) -> dt.datetime:
    return FIRST + dt.timedelta(hours=7 * i)


def record_text(i: int, rng: random.Random) -> str:
    published = published_at(i)
    body = []
    for _ in range(4):
        body.append(" ".join(rng.choice(WORDS) for _ in range(50)).capitalize() + ".")
    tags = ", ".join(rng.sample(TAGS, 3))
    return (
        f"---\ntitle: Record {i} on {rng.choice(WORDS)} and {rng.choice(WORDS)}\n"
        f"summary: A short summary of record {i} about {rng.choice(WORDS)}.\n"
        f"published: {published.isoformat()}\nlanguage: {rng.choice(LANGUAGES)}\n"
        f"url: https://bench.example.org/news/{i}\ntags: [{tags}]\n"
        f"social:\n  hashtags: [{rng.choice(WORDS).title()}]\n---\n" + "\n\n".join(body) + "\n"
    )


def make_site(root: Path, n: int, *, timeline: bool = False) -> None:
    rng = random.Random(42)
    (root / "events").mkdir(parents=True)
    (root / "publisher.toml").write_text(CONFIG + (TIMELINE if timeline else ""))
    for i in range(n):
        (root / "events" / f"record-{i:06d}.md").write_text(record_text(i, rng))


class Run:
    """One `publisher --json build` in a child process: wall and CPU seconds, peak memory, files written.

    With `check=True`, `publisher --json check` instead: every output rendered in memory, nothing written
    (how much of a build is rendering, how much is writing 60,000 files).
    """

    def __init__(self, root: Path, now: dt.datetime, *, check: bool = False) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        command = ["check"] if check else ["build", "--now", now.isoformat()]
        args = [sys.executable, "-m", "publisher", "--json", *command]
        done = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
        self.wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU of the build and of its worker processes: the figure to trust on a busy machine.
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        self.system = after.ru_stime - before.ru_stime  # the kernel's share: creating and writing files
        self.peak_mb = after.ru_maxrss / 1024  # the largest process so far (the build or one of its workers)
        self.written = 0 if check else json.loads(done.stdout)["written"]


def baseline(root: Path) -> float:
    start = time.perf_counter()
    for path in sorted((root / "events").glob("*.md")):
        text = path.read_text()
        yaml.load(text.split("---", 2)[1], Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def edit(path: Path, attempt: int) -> None:
    """Change one record's summary (so its issue, its posts and the feeds that show it change)."""
    text = path.read_text()
    old = text.split("summary: ", 1)[1].split("\n", 1)[0]
    path.write_text(text.replace(old, f"An edited summary, round {attempt}."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="rebuilds to time (the best is reported)")
    parser.add_argument("--keep", action="store_true", help="keep the generated site")
    parser.add_argument("--timeline", action="store_true", help="give the site three timeline rules")
    args = parser.parse_args()
    compile_package()
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    try:
        make_site(root, args.n, timeline=args.timeline)
        now = published_at(args.n)  # every record is out: the same feeds whatever the day of the run
        base = baseline(root)
        render_only = Run(root, now, check=True)  # before the build: no cache to lean on
        shutil.rmtree(root / ".publisher", ignore_errors=True)  # what check kept of the records: the build is cold
        cold = Run(root, now)
        unchanged = [Run(root, now) for _ in range(args.repeat)]
        changed = []
        for attempt in range(args.repeat):
            edit(root / "events" / f"record-{args.n // 2:06d}.md", attempt)
            changed.append(Run(root, now))
        best = min(changed, key=lambda r: r.wall)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "records": args.n,
            "timeline_rules": 3 if args.timeline else 0,
            "baseline_read_yaml_s": round(base, 3),
            "cold_build_s": round(cold.wall, 3),
            "cold_build_cpu_s": round(cold.cpu, 3),
            "cold_build_system_cpu_s": round(cold.system, 3),
            "check_render_only_s": round(render_only.wall, 3),
            "check_render_only_cpu_s": round(render_only.cpu, 3),
            "check_system_cpu_s": round(render_only.system, 3),
            "cold_files_written": cold.written,
            "cold_vs_baseline": round(cold.wall / base, 1),
            "rebuild_nothing_changed_s": round(min(r.wall for r in unchanged), 3),
            "rebuild_one_change_s": round(best.wall, 3),
            "rebuild_one_change_cpu_s": round(best.cpu, 3),
            "rebuild_one_change_all_s": [round(r.wall, 3) for r in changed],
            "rebuild_files_written": best.written,
            "rebuild_vs_baseline": round(best.wall / base, 2),
            "peak_rss_mb": round(max(r.peak_mb for r in (cold, *unchanged, *changed)), 1),
        }
        print(json.dumps(result, indent=2))
    finally:
        if args.keep:
            print(f"site kept at {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
