"""Benchmark: loading N records (`load_records`: YAML, the line of every key, validation) against the bare minimum.

    python bench/records.py 10000

The records are bench/build.py's (same seed). The baseline, measured in the
same run and alternated with the load, is the least any loader must do: read
every file and parse its front matter with PyYAML's C loader
(`yaml.CSafeLoader`). Each is run `--rounds` times; the figure is the median
of CPU seconds of this process (steadier than wall time on a shared machine),
quoted as a ratio to the baseline. The issue's target: at most 1.5×.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from build import make_site  # bench/build.py's records

from publisher.site.records import load_records


def baseline(events: Path) -> None:
    for path in sorted(events.glob("*.md")):
        text = path.read_text()
        yaml.load(text.split("---", 2)[1], Loader=yaml.CSafeLoader)


def cpu(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-records-"))
    try:
        make_site(root, args.n)
        events = root / "events"
        base, load = [], []
        for _ in range(args.rounds):
            base.append(cpu(lambda: baseline(events)))
            load.append(cpu(lambda: load_records(events, root)))
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "records": args.n,
            "baseline_read_yaml_cpu_s": round(statistics.median(base), 3),
            "load_records_cpu_s": round(statistics.median(load), 3),
            "ratio": round(statistics.median(load) / statistics.median(base), 2),
            "target_ratio": 1.5,
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
