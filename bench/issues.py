"""Benchmark: render N single newsletter issues, then fill and build one message per recipient.

    python bench/issues.py 10000

Records are built in memory (mixed languages, ~200-word Markdown bodies with a
list and a quote, people, links, a start time on every third, an image on every
tenth), so the figures are the issue renderer alone: no file reading, no YAML.
Then one issue is personalised and built into a MIME message for N recipients,
as the email channel does per recipient, and serialised the way SMTP sends it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.policy
import random
import time

from publisher.render import email as issues
from publisher.render.message import build_message
from publisher.site.records import Image, Link, Person, Record
from publisher.site.settings import Settings, SiteSettings

WORDS = ("cooperation", "development", "data", "goals", "agenda", "report", "meeting", "partners", "policy")
LANGUAGES = ("en", "en", "es", "fr", "pt")


def body(rng: random.Random) -> str:
    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."

    paragraphs = [" ".join(sentence() for _ in range(5)) for _ in range(2)]
    items = "\n".join(f"- {sentence()}" for _ in range(3))
    return f"{paragraphs[0]}\n\n{items}\n\n> {sentence()}\n>\n> — Someone\n\n{paragraphs[1]} [More](/more).\n"


def records(count: int, seed: int = 1) -> list[Record]:
    rng = random.Random(seed)
    start = dt.datetime(2020, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    made = []
    for i in range(count):
        published = start + dt.timedelta(hours=7 * i)
        made.append(
            Record(
                id=f"record-{i}",
                title=f"Record {i}: " + " ".join(rng.choice(WORDS) for _ in range(6)),
                published=published,
                summary=" ".join(rng.choice(WORDS) for _ in range(20)) if i % 2 else None,
                body=body(rng),
                url=f"https://bench.example.org/news/{i}",
                language=LANGUAGES[i % len(LANGUAGES)],
                starts=published + dt.timedelta(days=10) if i % 3 == 0 else None,
                location="Bogotá" if i % 3 == 0 else None,
                image=Image(src=f"media/{i}.jpg", alt=f"Picture {i}", credit="© Bench") if i % 10 == 0 else None,
                people=(Person(name="Ana Pérez", role="Director"), Person(name="Li Wei", role="Researcher")),
                links=(Link(title="Report", url=f"https://bench.example.org/r/{i}.pdf", language="es"),),
            )
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("count", type=int, nargs="?", default=10_000)
    count = parser.parse_args().count
    settings = Settings(
        site=SiteSettings(title="Bench", url="https://bench.example.org", language="en", timezone="Europe/Paris"),
        newsletter={"from": "Bench <news@bench.example.org>", "footer": "Bench · 1 rue de la Paix, Paris"},
    )
    made = records(count)
    compiles = issues.mjml_compiles()
    began = time.perf_counter()
    rendered = [issues.render_issue([record], settings) for record in made]
    took = time.perf_counter() - began
    print(f"render_issue: {count} single issues in {took:.2f} s ({took / count * 1000:.2f} ms each)")
    print(f"  MJML compiles: {issues.mjml_compiles() - compiles}, HTML {len(rendered[0].html):,} bytes each")
    issue = rendered[0]
    began = time.perf_counter()
    for n in range(count):
        html, text = issues.personalise(
            issue, name=f"Reader {n}", unsubscribe_url=f"https://bench.example.org/u/{n:08d}", email=f"r{n}@x.example"
        )
        message = build_message(
            issue,
            sender="Bench <news@bench.example.org>",
            to=f"r{n}@x.example",
            html=html,
            text=text,
            headers={"List-Unsubscribe": f"<https://bench.example.org/u/{n:08d}>", "List-Id": "<news.bench>"},
            message_id=f"<d1.{n}@bench.example.org>",
        )
        message.as_bytes(policy=email.policy.SMTP)
    took = time.perf_counter() - began
    print(f"personalise + build_message + as_bytes: {count} recipients in {took:.2f} s ({count / took:,.0f}/s)")
    print(f"  MJML compiles during the recipient loop: {issues.mjml_compiles() - compiles - count}")


if __name__ == "__main__":
    main()
