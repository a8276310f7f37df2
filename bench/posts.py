"""Benchmark: render the posts of N records on the three networks.

    python bench/posts.py 10000

Records are made in memory, so the figure is rendering alone: templates,
fitting and counting, no file reading. By default a hard mix: long summaries,
up to four X handles, one record in ten with a title too long for any network,
one in fifty in Japanese. `--simple` makes records shaped like bench/build.py's
(short title and summary, one hashtag); `--utm` tags every link. It also times
twitter-text-parser's own `parse_tweet` on the same X posts, for scale.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher.render.social import render_posts
from publisher.site.records import Record
from publisher.site.settings import Settings

WORDS = (
    "cooperation",
    "development",
    "data",
    "sustainable",
    "goals",
    "agenda",
    "report",
    "meeting",
    "partners",
    "regional",
    "financing",
    "policy",
    "evidence",
    "statistics",
    "civil",
    "society",
    "government",
    "ministers",
    "conference",
    "review",
    "national",
    "local",
    "climate",
    "health",
    "education",
    "gender",
    "equality",
    "innovation",
    "knowledge",
    "cities",
    "water",
    "cooperación",
    "desarrollo",
    "informe",
    "reunión",
    "políticas",
    "évaluation",
    "coopération",
    "données",
)
LANGUAGES = ("en", "en", "es", "fr", "pt")


def make_records(count: int, seed: int = 7) -> list[Record]:
    rng = random.Random(seed)
    start = dt.datetime(2018, 1, 1, tzinfo=dt.UTC)
    records = []
    for index in range(count):
        long_title = index % 10 == 0
        title = " ".join(rng.choices(WORDS, k=rng.randint(30, 50) if long_title else rng.randint(6, 14)))
        if index % 50 == 0:
            title = "持続可能な開発のためのデータに関する地域会議" * rng.randint(1, 8)
        people = [{"name": f"Person {n}", "handles": {"x": f"@person_{index}_{n}"}} for n in range(rng.randint(0, 4))]
        records.append(
            Record.model_validate(
                {
                    "id": f"{index:05d}-record",
                    "title": title.capitalize(),
                    "summary": " ".join(rng.choices(WORDS, k=rng.randint(15, 40))).capitalize() + ".",
                    "published": start + dt.timedelta(hours=index),
                    "language": rng.choice(LANGUAGES),
                    "url": f"https://bench.example.org/news/{index:05d}/{'-'.join(rng.choices(WORDS, k=4))}",
                    "people": people,
                    "social": {"hashtags": rng.sample(["SDGs", "Data4SDGs", "FfD", "Agenda2030", "ODS"], k=2)},
                }
            )
        )
    return records


def make_simple_records(count: int, seed: int = 42) -> list[Record]:
    """Records shaped like bench/build.py's: a short title and summary, one hashtag, no people."""
    rng = random.Random(seed)
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return [
        Record.model_validate(
            {
                "id": f"record-{index:06d}",
                "title": f"Record {index} on {rng.choice(WORDS)} and {rng.choice(WORDS)}",
                "summary": f"A short summary of record {index} about {rng.choice(WORDS)}.",
                "published": start + dt.timedelta(hours=7 * index),
                "language": rng.choice(LANGUAGES),
                "url": f"https://bench.example.org/news/{index}",
                "social": {"hashtags": [rng.choice(WORDS).title()]},
            }
        )
        for index in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=10000)
    parser.add_argument("--utm", action="store_true", help="tag every link with UTM parameters")
    parser.add_argument("--simple", action="store_true", help="records shaped like bench/build.py's")
    args = parser.parse_args()
    site: dict[str, object] = {"site": {"title": "Bench", "url": "https://bench.example.org"}}
    if args.utm:
        site["utm"] = {"enabled": True}
    settings = Settings.model_validate(site)
    records = make_simple_records(args.count) if args.simple else make_records(args.count)
    started, cpu = time.perf_counter(), time.process_time()
    posts = [post for record in records for post in render_posts(record, settings)]
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    cut = sum(1 for p in posts if "…" in p.text)
    print(f"{len(posts)} posts of {len(records)} records in {elapsed:.2f} s ({cpu:.2f} s of CPU; {cut} shortened)")

    from twitter_text import parse_tweet

    sample = [p.text for p in posts if p.network == "x"][:1000]
    started = time.perf_counter()
    for text in sample:
        parse_tweet(text)
    per_post = (time.perf_counter() - started) / max(len(sample), 1)
    print(f"parse_tweet: {per_post * 1e3:.2f} ms a post, {per_post * args.count:.1f} s for {args.count} X posts")


if __name__ == "__main__":
    main()
