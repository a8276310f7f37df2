"""Benchmark: a cold `publisher build` of N records, then a rebuild after one change.

    python bench/build.py 10000

Generates N records (mixed languages and tags, ~200-word bodies) in a temporary
site, runs the real `publisher build` as a child process and reports wall time
and peak memory (the child's max RSS). The baseline, measured in the same run,
is the least any build must do: read every file and parse its YAML front
matter with PyYAML's C loader. Figures are quoted as ratios to it.
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


def record_text(i: int, rng: random.Random) -> str:
    published = dt.datetime(2020, 1, 1, 9, tzinfo=dt.UTC) + dt.timedelta(hours=7 * i)
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


def make_site(root: Path, n: int) -> None:
    rng = random.Random(42)
    (root / "events").mkdir(parents=True)
    (root / "publisher.toml").write_text(CONFIG)
    for i in range(n):
        (root / "events" / f"record-{i:06d}.md").write_text(record_text(i, rng))


def timed_child(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024, done.stdout


def baseline(root: Path) -> float:
    start = time.perf_counter()
    for path in sorted((root / "events").glob("*.md")):
        text = path.read_text()
        yaml.load(text.split("---", 2)[1], Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated site")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    try:
        make_site(root, args.n)
        exe = [sys.executable, "-m", "publisher", "--json", "build"]
        base = baseline(root)
        cold, cold_rss, out = timed_child(exe, root)
        files = json.loads(out)["written"]
        changed = root / "events" / f"record-{args.n // 2:06d}.md"
        changed.write_text(changed.read_text().replace("A short summary", "An edited summary"))
        warm, warm_rss, out = timed_child(exe, root)
        rewritten = json.loads(out)["written"]
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "records": args.n,
            "baseline_read_yaml_s": round(base, 3),
            "cold_build_s": round(cold, 3),
            "cold_files_written": files,
            "cold_vs_baseline": round(cold / base, 1),
            "rebuild_one_change_s": round(warm, 3),
            "rebuild_files_written": rewritten,
            "rebuild_vs_baseline": round(warm / base, 2),
            "peak_rss_mb": round(max(cold_rss, warm_rss), 1),
        }
        print(json.dumps(result, indent=2))
    finally:
        if args.keep:
            print(f"site kept at {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
