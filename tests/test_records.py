"""Loading and validating records: every problem named with its file and line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from publisher.audience.rows import checked
from publisher.errors import InvalidInput
from publisher.site.config import load_site
from publisher.site.records import load_records, parse_record
from tests.conftest import REPO

GOOD = """---
title: A meeting
published: 2018-02-09T18:00:00+01:00
summary: Short.
---
Body **text**.
"""


def problems_of(text: str, name: str = "r.md") -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_record(text, Path("events") / name)
    return [str(p) for p in caught.value.problems]


def test_the_sample_record_loads_with_every_field() -> None:
    records = load_records(REPO / "events", REPO)
    paris = next(r for r in records if r.id == "2018-02-09-south-south-cooperation-paris")
    assert paris.published == dt.datetime(2018, 2, 9, 17, 0, tzinfo=dt.UTC)
    assert paris.language == "en"
    assert paris.image is not None and paris.image.alt.startswith("Joyce Zhang")
    assert [p.handles.get("x") for p in paris.people][:1] == ["@JSurasky"]
    assert [link.language for link in paris.links] == ["en", "es", "en", "en"]
    assert paris.social.hashtags == ("SouthSouth", "BAPA40")
    assert paris.body.startswith("The OECD Development Centre")
    assert paris.line("title") == 5 and paris.line("body") == 54


def test_drafts_are_left_out_unless_asked_for_and_order_is_newest_first() -> None:
    ids = [r.id for r in load_records(REPO / "events", REPO)]
    assert "2018-06-20-draft-annual-report" not in ids
    assert ids[0] == "2018-06-01-webinar-cancelled" and ids[-1] == "2018-02-09-south-south-cooperation-paris"
    with_drafts = [r.id for r in load_records(REPO / "events", REPO, drafts=True)]
    assert with_drafts[0] == "2018-06-20-draft-annual-report"


def test_id_defaults_to_the_file_stem() -> None:
    assert parse_record(GOOD, Path("events/2020-01-01-hello.md")).id == "2020-01-01-hello"


BAD = [
    # (front matter + body, expected problem lines)
    (
        "---\ntitle: A\npublished: 2018-02-09 18:00\nsummary: s\n---\n",
        ["events/r.md:3: published: needs a UTC offset or time zone (got '2018-02-09 18:00')"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09\nsummary: s\n---\n",
        ["events/r.md:3: published: needs a time with a UTC offset or time zone (got '2018-02-09')"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nsumary: s\n---\nx\n",
        ["events/r.md:4: sumary: unknown key (did you mean 'summary'?)"],
    ),
    (
        "---\npublished: 2018-02-09T18:00:00Z\nsummary: s\n---\n",
        ["events/r.md:2: title: is required"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\n---\n\n",
        ["events/r.md:5: summary: a record needs a body or a summary"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nurl: /news/a\nsummary: s\n---\n",
        ["events/r.md:4: url: must be an absolute http(s) URL (got '/news/a')"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nlanguage: english\nsummary: s\n---\n",
        ["events/r.md:4: language: is not a BCP 47 language tag (got 'english')"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nsummary: s\n"
        "starts: 2018-02-10T09:00:00Z\nends: 2018-02-10T08:00:00Z\n---\n",
        ["events/r.md:6: ends: is before starts"],
    ),
    (
        "---\ntitle: [unclosed\npublished: 2018-02-09T18:00:00Z\n---\n",
        ["events/r.md:2: front matter: bad YAML: did not find expected ',' or ']'"],
    ),
    (
        "no front matter here\n",
        ["events/r.md:1: front matter: a record starts with '---' and its YAML front matter"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nsummary: s\nlinks:\n  - title: T\n    url: ftp://x\n---\n",
        ["events/r.md:7: links.0.url: must be an absolute http(s) URL (got 'ftp://x')"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nsummary: s\npeople:\n  - name: B\n    rol: C\n---\n",
        ["events/r.md:7: people.0.rol: unknown key (did you mean 'role'?)"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nsummary: s\n"
        "image:\n  src: https://e.org/a.jpg\n  alt: ''\n---\n",
        ["events/r.md:7: image.alt: must not be empty"],
    ),
    (
        "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nsummary: s\nstatus: live\n---\n",
        ["events/r.md:5: status: Input should be 'draft', 'published' or 'cancelled'"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_a_bad_record_is_reported_at_its_line(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


def test_every_problem_in_a_file_is_reported_not_just_the_first() -> None:
    text = "---\ntitle: ''\npublished: 2018-02-09\ntittle: A\nurl: x\n---\nbody\n"
    found = problems_of(text)
    assert [line.split(": ")[1] for line in found] == ["title", "published", "tittle", "url"]


def test_duplicate_ids_and_missing_images_across_a_folder(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    (events / "a.md").write_text("---\nid: same\ntitle: A\npublished: 2018-02-09T18:00:00Z\n---\nx\n")
    (events / "b.md").write_text("---\nid: same\ntitle: B\npublished: 2018-02-10T18:00:00Z\n---\ny\n")
    (events / "c.md").write_text(
        "---\ntitle: C\npublished: 2018-02-10T18:00:00Z\nsummary: s\nimage:\n  src: media/none.png\n  alt: a\n---\n"
    )
    with pytest.raises(InvalidInput) as caught:
        load_records(events, tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "events/b.md:2: id: 'same' is already used by events/a.md",
        "events/c.md:6: image.src: no such file in the site (got 'media/none.png')",
    ]


def test_a_body_with_script_never_reaches_html() -> None:
    from publisher.render.markdown import body_html
    from publisher.site.settings import SiteSettings

    text = GOOD.replace(
        "Body **text**.",
        '<script>alert(1)</script><img src=x onerror=alert(1)> <a href="b">b</a>\n\n[a](javascript:alert(1))',
    )
    record = parse_record(text, Path("events/x.md"))
    html = body_html(record, SiteSettings(title="T", url="https://e.org"))
    assert "<script" not in html and "onerror" not in html and 'href="javascript' not in html
    assert 'href="https://e.org/b"' in html and 'src="https://e.org/x"' in html


def test_a_bad_language_is_refused_in_the_same_words_wherever_it_is_written(tmp_path: Path) -> None:
    said = "is not a BCP 47 language tag (got 'english')"
    link = "---\ntitle: A\npublished: 2018-02-09T18:00:00Z\nsummary: s\nlinks:\n  - title: T\n"
    link += "    url: https://e.org/a\n    language: english\n---\n"
    assert problems_of(link) == [f"events/r.md:8: links.0.language: {said}"]
    (tmp_path / "publisher.toml").write_text('[site]\ntitle = "x"\nurl = "https://e.org"\nlanguage = "english"\n')
    with pytest.raises(InvalidInput) as caught:
        load_site(tmp_path, {})
    assert [str(p) for p in caught.value.problems] == [f"publisher.toml:4: site.language: {said}"]
    assert checked("ana@example.org", None, " english ", [], None) == (None, [("language", said)])
    assert checked("ana@example.org", None, "pt-BR", [], None)[0] is not None
