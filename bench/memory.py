"""Benchmark: a build's peak memory against the size of the records' text, at several site sizes.

    python bench/memory.py 2500,5000,10000,20000

For each N it makes bench/build.py's site of N records, then runs the real
`publisher build` (cold: feeds of every record, previews of the newest) and
`publisher build --all` (every record's issue and posts) as child processes,
each in a fresh copy, and reads each one's peak resident memory (the largest
of the build and its worker processes, from `wait4`). The baseline is the
records' text itself: the bytes of every `events/*.md`. Issue 13 asks for a
peak under 250 MB at 10,000 records, growing no faster than that text; the
figures printed are the peaks, the text, and between each two sizes how
many times the text and each peak grew (a peak growing fewer times than the
text grows more slowly than it) and the growth of the peak per megabyte of
added text (the stricter reading: under 1.0, each added byte of text costs
less than a byte of memory).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build import compile_package, make_site, published_at  # bench/build.py's records


def peak_mb(args: list[str], cwd: Path) -> float:
    """The peak resident memory of a command and its children, in MB (fails loudly if the command fails)."""
    child = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{stderr[-3000:]}")
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("counts", nargs="?", default="2500,5000,10000,20000")
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    compile_package()
    work = Path(tempfile.mkdtemp(prefix="publisher-memory-"))
    rows = []
    try:
        for n in counts:
            template = work / f"site-{n}"
            make_site(template, n)
            text = sum(path.stat().st_size for path in (template / "events").glob("*.md"))
            build = [sys.executable, "-m", "publisher", "build", "--now", published_at(n).isoformat()]
            peaks = {}
            for name, extra in (("cold", []), ("all", ["--all"])):
                site = work / f"{name}-{n}"
                shutil.copytree(template, site)
                peaks[name] = round(peak_mb([*build, *extra], site), 1)
                shutil.rmtree(site)
            shutil.rmtree(template)
            rows.append({"records": n, "text_mb": round(text / 2**20, 2), "peak_mb": peaks})
        growth = [
            {
                "from": a["records"],
                "to": b["records"],
                "text_times": round(b["text_mb"] / a["text_mb"], 2),
                **{f"{name}_peak_times": round(b["peak_mb"][name] / a["peak_mb"][name], 2) for name in ("cold", "all")},
                **{
                    f"{name}_mb_per_text_mb": round(
                        (b["peak_mb"][name] - a["peak_mb"][name]) / (b["text_mb"] - a["text_mb"]), 2
                    )
                    for name in ("cold", "all")
                },
            }
            for a, b in itertools.pairwise(rows)
        ]
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "sizes": rows,
            "growth": growth,
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
