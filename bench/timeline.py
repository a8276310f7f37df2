"""Time `timeline.plan` over N synthetic records and the five rules below.

python bench/timeline.py [N]        (default 10,000)
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time

from publisher.site.records import Record
from publisher.site.settings import Settings
from publisher.timeline.plan import plan

RULES = [
    {"when": "published", "channel": "feeds"},
    {"when": "published", "channel": "email", "list": "news"},
    {"when": "published + 1 hour", "channel": "mastodon"},
    {"when": "starts - 1 day", "channel": "bluesky"},
    {"cron": "0 9 * * mon", "channel": "email", "list": "weekly", "timezone": "Europe/Paris"},
]


def main(count: int) -> None:
    rng = random.Random(1)
    now = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    start = now - dt.timedelta(days=365)
    records = []
    for i in range(count):
        published = start + dt.timedelta(minutes=rng.randrange(60 * 24 * 400))
        starts = published + dt.timedelta(days=rng.randrange(1, 30)) if i % 3 == 0 else None
        records.append(Record(id=f"r{i}", title=f"Record {i}", published=published, summary="s", starts=starts))
    settings = Settings.model_validate(
        {
            "site": {"title": "T", "url": "https://example.org", "timezone": "America/Bogota"},
            "newsletter": {"lists": ["news", "weekly"]},
            "timeline": RULES,
        }
    )
    for label, kwargs in (
        ("default window (7 days back)", {}),
        ("everything (400 days back)", {"lookback": dt.timedelta(days=400)}),
    ):
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            result = plan(records, settings, now, **kwargs)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - began)
        print(
            f"{count} records x {len(RULES)} rules, {label}: {len(result)} dispatches "
            f"in {best * 1000:.0f} ms (best of 5)"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
