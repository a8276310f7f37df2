"""Benchmark: publisher beside Pelican and Hugo, building the same N records side by side.

    python bench/peers.py 10000 [--rounds 3]

One seed makes N records (titles, dates, tags, languages, summaries, ~200-word
bodies: bench/build.py's) and writes them in each tool's layout: publisher's
`events/*.md` with YAML front matter, Pelican's Markdown with its metadata
lines, Hugo's `content/posts/*.md` with YAML front matter. Pelican writes its
feeds only (no pages), Hugo its home feed only: each tool's cheapest complete
run over all the records. Missing tools are installed first: Pelican with pip
into a venv under ~/.cache/publisher-peers/pelican (outside the repository),
Hugo with `apt-get install hugo` (Debian; needs root).

Each round times, alternately and each in a fresh copy of its site, the three
cold builds, then publisher's `build --all` and publisher's rebuild after one
record changed; after the rounds, a plain `build` in each `--all` copy (which
removes the ~59,700 preview files out of the window: minutes before removals
looked at each folder once); the figures are the medians of the rounds, wall and CPU time
(the tool and its child processes: the steadier figure on a shared machine),
and each process's own peak memory. Printed as JSON with the ratios the
issue's targets are about: cold build ≤ 1/6 of Pelican's, `--all` ≤ 1/2 of
Pelican's, one-change rebuild ≤ 1/3 of Hugo's cold build, peak < 250 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build import CONFIG, LANGUAGES, TAGS, WORDS, compile_package, edit, published_at  # bench/build.py's records

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "publisher-peers"
PELICAN_VENV = CACHE / "pelican"
PELICAN_CONF = """AUTHOR = "Bench"
SITENAME = "Bench"
SITEURL = "https://bench.example.org"
PATH = "content"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
FEED_DOMAIN = SITEURL
FEED_ALL_ATOM = "feeds/all.atom.xml"
FEED_ALL_RSS = "feeds/all.rss.xml"
FEED_MAX_ITEMS = 50
CATEGORY_FEED_ATOM = None
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None
DIRECT_TEMPLATES = []
ARTICLE_SAVE_AS = ""
ARTICLE_LANG_SAVE_AS = ""
PAGE_SAVE_AS = ""
TAG_SAVE_AS = ""
CATEGORY_SAVE_AS = ""
AUTHOR_SAVE_AS = ""
ARCHIVES_SAVE_AS = ""
DEFAULT_PAGINATION = False
"""
HUGO_CONF = """baseURL = "https://bench.example.org/"
title = "Bench"
languageCode = "en"
disableKinds = ["page", "section", "taxonomy", "term", "sitemap", "robotsTXT", "404"]
[outputs]
home = ["RSS"]
[services.rss]
limit = 50
"""


def records(n: int) -> list[dict[str, object]]:
    """The N records every tool builds, from one seed."""
    rng = random.Random(42)
    out = []
    for i in range(n):
        body = [" ".join(rng.choice(WORDS) for _ in range(50)).capitalize() + "." for _ in range(4)]
        out.append(
            {
                "i": i,
                "title": f"Record {i} on {rng.choice(WORDS)} and {rng.choice(WORDS)}",
                "summary": f"A short summary of record {i} about {rng.choice(WORDS)}.",
                "published": published_at(i),
                "language": rng.choice(LANGUAGES),
                "tags": rng.sample(TAGS, 3),
                "body": "\n\n".join(body) + "\n",
            }
        )
    return out


def write_publisher(root: Path, items: list[dict[str, object]]) -> None:
    (root / "events").mkdir(parents=True)
    (root / "publisher.toml").write_text(CONFIG)
    for r in items:
        (root / "events" / f"record-{r['i']:06d}.md").write_text(
            f"---\ntitle: {r['title']}\nsummary: {r['summary']}\npublished: {r['published'].isoformat()}\n"  # type: ignore[attr-defined]
            f"language: {r['language']}\nurl: https://bench.example.org/news/{r['i']}\n"
            f"tags: [{', '.join(r['tags'])}]\n---\n{r['body']}"  # type: ignore[arg-type]
        )


def write_pelican(root: Path, items: list[dict[str, object]]) -> None:
    (root / "content").mkdir(parents=True)
    (root / "pelicanconf.py").write_text(PELICAN_CONF)
    for r in items:
        (root / "content" / f"record-{r['i']:06d}.md").write_text(
            f"Title: {r['title']}\nDate: {r['published']:%Y-%m-%d %H:%M}\nSlug: record-{r['i']}\n"
            f"Lang: {r['language']}\nTags: {', '.join(r['tags'])}\nSummary: {r['summary']}\n\n{r['body']}"  # type: ignore[arg-type]
        )


def write_hugo(root: Path, items: list[dict[str, object]]) -> None:
    (root / "content" / "posts").mkdir(parents=True)
    (root / "hugo.toml").write_text(HUGO_CONF)
    for r in items:
        (root / "content" / "posts" / f"record-{r['i']:06d}.md").write_text(
            f"---\ntitle: {r['title']}\nsummary: {r['summary']}\ndate: {r['published'].isoformat()}\n"  # type: ignore[attr-defined]
            f"language: {r['language']}\ntags: [{', '.join(r['tags'])}]\n---\n{r['body']}"  # type: ignore[arg-type]
        )


def install() -> tuple[str, str]:
    """The pelican and hugo commands, installed when missing."""
    pelican = PELICAN_VENV / "bin" / "pelican"
    if not pelican.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PELICAN_VENV)], check=True)
        pip = [str(PELICAN_VENV / "bin" / "pip"), "install", "-q", "pelican", "markdown"]
        subprocess.run(pip, check=True)
    hugo = shutil.which("hugo")
    if hugo is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "hugo"], check=True, env=env, capture_output=True)
        hugo = shutil.which("hugo") or "hugo"
    return str(pelican), hugo


class Timed:
    """One command in a child process: wall and CPU seconds (with its children), its peak memory."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        os.sync()  # what earlier steps wrote is on disk first, not written back during this one
        start = time.perf_counter()
        child = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        self.wall = time.perf_counter() - start
        stderr = child.stderr.read() if child.stderr else b""
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.exit(f"{' '.join(args)} failed in {cwd}:\n{stderr.decode(errors='replace')[-3000:]}")
        self.cpu = usage.ru_utime + usage.ru_stime
        self.peak_mb = usage.ru_maxrss / 1024


def fresh(template: Path, work: Path, name: str) -> Path:
    """A new copy of a site, under a name no earlier round used.

    Copies are removed only once every round is done: on a file system without
    a journal (like this machine's ext4), creating files within 30 s of deleting
    many makes the kernel look over every recently deleted inode
    (`ext4/ialloc.c: recently_deleted`, seen with `perf record`), which tripled
    `--all`'s system time when each round removed the last one's 60,000 files.
    (The same slow-down follows a run's final removal while it is still being
    written back: leave a minute between two runs.)
    """
    target = work / name
    assert not target.exists(), f"{target} is reused"
    shutil.copytree(template, target)
    return target


def med(runs: list[Timed], what: str) -> float:
    return round(statistics.median(getattr(r, what) for r in runs), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pelican, hugo = install()
    compile_package()
    work = Path(tempfile.mkdtemp(prefix="publisher-peers-"))
    try:
        items = records(args.n)
        for name, write in (("publisher", write_publisher), ("pelican", write_pelican), ("hugo", write_hugo)):
            write(work / f"{name}-template", items)
        now = (published_at(args.n) + dt.timedelta(days=1)).isoformat()
        publisher = [sys.executable, "-m", "publisher", "build", "--now", now]
        runs: dict[str, list[Timed]] = {
            k: [] for k in ("publisher", "pelican", "hugo", "all", "one_change", "after_all")
        }
        for attempt in range(args.rounds):
            site = fresh(work / "publisher-template", work, f"publisher-{attempt}")
            runs["publisher"].append(Timed(publisher, site))
            pelican_site = fresh(work / "pelican-template", work, f"pelican-{attempt}")
            runs["pelican"].append(Timed([pelican, "-q", "-s", "pelicanconf.py"], pelican_site))
            runs["hugo"].append(Timed([hugo, "--quiet"], fresh(work / "hugo-template", work, f"hugo-{attempt}")))
            edit(site / "events" / f"record-{args.n // 2:06d}.md", attempt)
            runs["one_change"].append(Timed(publisher, site))
            runs["all"].append(Timed([*publisher, "--all"], fresh(work / "publisher-template", work, f"all-{attempt}")))
        for attempt in range(args.rounds):  # after every `--all`, whose files these removals would slow (above)
            runs["after_all"].append(Timed(publisher, work / f"all-{attempt}"))
        wall = {k: med(v, "wall") for k, v in runs.items()}
        cpu = {k: med(v, "cpu") for k, v in runs.items()}
        version = subprocess.run([hugo, "version"], capture_output=True, text=True, check=False).stdout.split()
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "records": args.n,
            "rounds": args.rounds,
            "hugo": " ".join(version[:2]),
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_mb": {k: round(max(r.peak_mb for r in v), 1) for k, v in runs.items()},
            "ratios_wall": {
                "cold_vs_pelican": round(wall["publisher"] / wall["pelican"], 3),
                "all_vs_pelican": round(wall["all"] / wall["pelican"], 3),
                "one_change_vs_hugo_cold": round(wall["one_change"] / wall["hugo"], 3),
                "after_all_vs_cold": round(wall["after_all"] / wall["publisher"], 3),
            },
            "ratios_cpu": {
                "cold_vs_pelican": round(cpu["publisher"] / cpu["pelican"], 3),
                "all_vs_pelican": round(cpu["all"] / cpu["pelican"], 3),
                "one_change_vs_hugo_cold": round(cpu["one_change"] / cpu["hugo"], 3),
            },
            "targets": {"cold_vs_pelican": 1 / 6, "all_vs_pelican": 1 / 2, "one_change_vs_hugo_cold": 1 / 3},
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
