"""Benchmark: render every feed (site, per tag, per language; Atom and RSS) of N records.

    python bench/feeds.py 10000

Records are built in memory (mixed languages, 3 of 40 tags each, ~200-word
bodies, an image on every tenth), so the figure is the feeds renderer alone:
no file reading, no YAML. Prints the time of a first and a second render and
checks that both give the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

from publisher.render.feeds import feed_set
from publisher.site.records import Image, Record
from publisher.site.settings import Settings, SiteSettings

WORDS = ("cooperation", "development", "data", "goals", "agenda", "report", "meeting", "partners", "policy")
LANGUAGES = ("en", "en", "es", "fr", "pt")
TAGS = [f"topic-{i}" for i in range(40)]


def records(count: int, seed: int = 1) -> list[Record]:
    rng = random.Random(seed)
    start = dt.datetime(2020, 1, 1, 9, tzinfo=dt.UTC)
    made = []
    for i in range(count):
        body = "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(50)) + " [more](/more)." for _ in range(4))
        image = Image(src=f"media/{i}.jpg", alt=f"Photo {i}") if i % 10 == 0 else None
        made.append(
            Record(
                id=f"record-{i}",
                title=f"Record {i} on {rng.choice(WORDS)}",
                summary=f"A short summary of record {i}.",
                body=body,
                published=start + dt.timedelta(hours=7 * i),
                language=rng.choice(LANGUAGES),
                url=f"https://bench.example.org/news/{i}",
                tags=tuple(rng.sample(TAGS, 3)),
                image=image,
            )
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=10_000)
    count = parser.parse_args().count
    settings = Settings(site=SiteSettings(title="Bench", url="https://bench.example.org", author="Bench"))
    made = records(count)
    timings, outputs = [], []
    for _ in range(2):
        started = time.perf_counter()
        outputs.append(feed_set(made, settings))
        timings.append(time.perf_counter() - started)
    files = outputs[0]
    size = sum(len(f.content) for f in files)
    print(f"{count} records → {len(files)} feeds, {size / 1e6:.1f} MB")
    print(f"first render {timings[0]:.3f} s, second {timings[1]:.3f} s, identical: {outputs[0] == outputs[1]}")


if __name__ == "__main__":
    main()
