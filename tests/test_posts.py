"""Social posts from records: the example site, what gives way when a post is too long, own texts, threads.

Expected texts are written by hand from the rules in publisher/render/social.py
(the counts in the comments), and lengths are checked again with the networks'
own counting where a library has it (twitter-text-parser's `parse_tweet` for X,
`grapheme` for Bluesky). Counting itself: tests/test_post_lengths.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grapheme
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet

from publisher.errors import InvalidInput
from publisher.render.lengths import LIMITS, mastodon_length, measure
from publisher.render.links import utm
from publisher.render.social import Post, PostImage, check_posts, render_post, render_posts
from publisher.site.config import load_site
from publisher.site.records import Record, load_records, parse_record
from publisher.site.settings import Settings
from tests import regenerate_golden
from tests.posts_support import post_file

REPO = Path(__file__).resolve().parent.parent
PARIS = "2018-02-09-south-south-cooperation-paris"
CFP = "2018-04-02-call-for-papers-data-for-development"
PARIS_URL = "https://cepei.example.org/news/2018/02/south-south-cooperation-paris"
PARIS_TITLE = "Cepei met in Paris with Experts on South-South Cooperation in a new Development context"
PARIS_SUMMARY = (
    "Experts from the OECD Development Centre, UNOSSC and partners met in Paris "
    "to prepare the BAPA+40 Conference on South-South and triangular co-operation."
)
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man, woman, girl, boy: one emoji
SETTINGS = Settings.model_validate({"site": {"title": "Site", "url": "https://example.org"}})
UTM_SETTINGS = SETTINGS.model_copy(update={"utm": SETTINGS.utm.model_copy(update={"enabled": True})})


@pytest.fixture(scope="module")
def example() -> tuple[Settings, dict[str, Record], Path]:
    site = load_site(REPO, env={})
    return site.settings, {r.id: r for r in load_records(site.events, site.root)}, site.templates


def problems_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [str(p) for p in exc.value.problems]


# -- the example site -------------------------------------------------------------------------------


def test_every_record_of_the_example_site_has_a_post_on_every_network(
    example: tuple[Settings, dict[str, Record], Path],
) -> None:
    settings_, records, templates = example
    assert len(records) == 5  # the draft is left out
    for record in records.values():
        posts = render_posts(record, settings_, templates)
        assert [p.network for p in posts] == ["x", "mastodon", "bluesky"]
        for post in posts:
            assert post.limit == LIMITS[post.network]
            assert 0 < post.length <= post.limit
            assert post.length == measure(post.network, post.text)
            assert post.language == (record.language or "en")
            assert post.url is not None and post.url in post.text


def test_the_paris_record_on_x_names_the_people_with_their_handles(
    example: tuple[Settings, dict[str, Record], Path],
) -> None:
    settings_, records, templates = example
    post = render_post(records[PARIS], "x", settings_, templates)
    # With the summary: 87 + 36 (" with @JSurasky @OECD_Centre @UNOSSC") + 2 + 152 + 1 + 23 + 1 + 19 = 321 > 280,
    # so the summary goes and everything else stays: 167.
    assert post.text == (f"{PARIS_TITLE} with @JSurasky @OECD_Centre @UNOSSC {PARIS_URL} #SouthSouth #BAPA40")
    assert post.length == 167 == parse_tweet(post.text).weightedLength
    assert post.images == (
        PostImage(
            url="https://cepei.example.org/media/2018/paris-panel.jpg",
            alt="Joyce Zhang, Mario Pezzini, Jorge Chediek and Xiheng Jiang on the panel in Paris",
            path=None,
        ),
    )
    assert post.thread == () and post.language == "en" and post.url == PARIS_URL
    assert post.card_title == PARIS_TITLE and post.card_description == PARIS_SUMMARY


def test_the_paris_record_on_mastodon_keeps_its_summary(example: tuple[Settings, dict[str, Record], Path]) -> None:
    settings_, records, templates = example
    post = render_post(records[PARIS], "mastodon", settings_, templates)
    assert post.text == f"{PARIS_TITLE}\n\n{PARIS_SUMMARY} {PARIS_URL} #SouthSouth #BAPA40"
    assert post.length == 87 + 2 + 152 + 1 + 23 + 1 + 19 == 285


def test_the_paris_record_on_bluesky_counts_its_url_in_full(example: tuple[Settings, dict[str, Record], Path]) -> None:
    settings_, records, templates = example
    post = render_post(records[PARIS], "bluesky", settings_, templates)
    # The URL is 68 graphemes here: with the summary, 87 + 2 + 152 + 1 + 68 + 1 + 19 = 330 > 300.
    assert post.text == f"{PARIS_TITLE} {PARIS_URL} #SouthSouth #BAPA40"
    assert post.length == 87 + 1 + 68 + 1 + 19 == 176 == grapheme.length(post.text)


def test_handles_go_from_the_last_while_the_post_does_not_fit(
    example: tuple[Settings, dict[str, Record], Path],
) -> None:
    settings_, records, templates = example
    # 167 with three handles; 159 without @UNOSSC; 146 without @OECD_Centre too.
    post = render_post(records[PARIS], "x", settings_, templates, limit=150)
    assert post.text == f"{PARIS_TITLE} with @JSurasky {PARIS_URL} #SouthSouth #BAPA40"
    assert (post.length, post.limit) == (146, 150)


def test_the_title_is_cut_at_a_word_when_nothing_else_is_left_to_give(
    example: tuple[Settings, dict[str, Record], Path],
) -> None:
    settings_, records, templates = example
    record = records[PARIS]
    # 100 - 44 (" url #SouthSouth #BAPA40") leaves 56: "…South-South" is 46 and "…" 2 on X (1 on Mastodon);
    # the next word, " Cooperation", would make 58.
    expected = f"Cepei met in Paris with Experts on South-South… {PARIS_URL} #SouthSouth #BAPA40"
    x = render_post(record, "x", settings_, templates, limit=100)
    assert (x.text, x.length) == (expected, 92)
    mastodon = render_post(record, "mastodon", settings_, templates, limit=100)
    assert (mastodon.text, mastodon.length) == (expected, 91)


def test_hashtags_go_when_even_the_url_with_them_is_too_long(
    example: tuple[Settings, dict[str, Record], Path],
) -> None:
    settings_, records, templates = example
    post = render_post(records[PARIS], "bluesky", settings_, templates, limit=80)
    assert post.text == f"{PARIS_URL} #SouthSouth"  # 68 + 12 = 80; " #BAPA40" would make 88
    with pytest.raises(InvalidInput) as caught:
        render_post(records[PARIS], "bluesky", settings_, templates, limit=67)
    assert problems_of(caught) == [f"events/{PARIS}.md:11: url: is 68 characters; bluesky allows 67"]


def test_the_call_for_papers_uses_its_own_x_text_and_thread(example: tuple[Settings, dict[str, Record], Path]) -> None:
    settings_, records, templates = example
    url = "https://cepei.example.org/news/2018/04/call-for-papers"
    x = render_post(records[CFP], "x", settings_, templates)
    # The record's own text as written, the link after it, no hashtag added.
    assert (
        x.text == f"Call for papers: data for development in Latin America and the Caribbean. Deadline 30 June. {url}"
    )
    assert x.length == 91 + 1 + 23
    assert x.thread == (
        "We welcome empirical work on national statistical systems and citizen-generated data.",
        "Submissions in English or Spanish, up to 8,000 words.",
    )
    mastodon = render_post(records[CFP], "mastodon", settings_, templates)
    assert mastodon.text == f"Call for papers: data for development in Latin America and the Caribbean {url} #Data4SDGs"
    assert mastodon.thread == ()
    assert render_post(records[CFP], "bluesky", settings_, templates).length == 72 + 1 + 54 + 1 + 10


def test_a_spanish_record_mentions_con(example: tuple[Settings, dict[str, Record], Path]) -> None:
    settings_, records, templates = example
    post = render_post(records["2018-03-15-informe-agenda-2030"], "x", settings_, templates)
    assert post.language == "es"
    assert post.text.startswith(
        "Cepei presenta su informe sobre la implementación de la Agenda 2030 en América Latina con @PSchonrock\n\n"
    )


def test_a_site_image_goes_with_its_path_inside_the_site(example: tuple[Settings, dict[str, Record], Path]) -> None:
    settings_, records, templates = example
    post = render_post(records["2018-05-21-high-level-forum-bogota"], "mastodon", settings_, templates)
    assert post.images == (
        PostImage(
            url="https://cepei.example.org/media/forum-bogota.png",
            alt="The conference room of the forum in Bogotá, with the panel seated on the stage",
            path=Path("media/forum-bogota.png"),
        ),
    )
    assert (REPO / post.images[0].path).is_file()  # type: ignore[operator]


def test_golden_files(example: tuple[Settings, dict[str, Record], Path]) -> None:
    folder = regenerate_golden.GOLDEN_DIR / "posts"
    made = regenerate_golden.posts()
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*.txt")}
    assert on_disk == set(made), "run `python -m tests.regenerate_golden posts`"
    for relative, content in made.items():
        assert (folder / relative).read_bytes() == content, f"{relative}: run `python -m tests.regenerate_golden posts`"
    assert made[f"x/{CFP}.txt"].decode().count("\n---\n") == 2


def test_post_file_puts_each_thread_part_after_a_line() -> None:
    post = Post("x", "r", "First", "en", thread=("Second", "Third"))
    assert post_file(post) == "First\n---\nSecond\n---\nThird\n"


# -- the record's own texts -------------------------------------------------------------------------

RECORD = """---
title: A meeting
published: 2018-02-09T18:00:00+01:00
url: https://example.org/news/meeting
social:
  hashtags: [Tag]
  x:
    text: "{text}"
    thread:
      - "A second part."
      - "{part}"
  mastodon: "{mastodon}"
---
Body.
"""


def own(text: str = "Our own words.", part: str = "A third part.", mastodon: str = "Hello.") -> Record:
    return parse_record(RECORD.format(text=text, part=part, mastodon=mastodon), Path("events/meeting.md"))


def test_an_own_text_is_the_whole_post_with_the_link_after_it() -> None:
    post = render_post(own(), "x", SETTINGS)
    assert post.text == "Our own words. https://example.org/news/meeting"
    assert post.thread == ("A second part.", "A third part.")
    assert render_post(own(mastodon="Hello."), "mastodon", SETTINGS).text == "Hello. https://example.org/news/meeting"


def test_an_own_text_holding_the_link_is_left_as_written() -> None:
    post = render_post(own(text="Read https://example.org/news/meeting today"), "x", SETTINGS)
    assert post.text == "Read https://example.org/news/meeting today"
    assert post.url == "https://example.org/news/meeting"


def test_an_own_text_too_long_is_an_error_at_its_line_never_a_cut() -> None:
    with pytest.raises(InvalidInput) as caught:
        render_post(own(text="word " * 60), "x", SETTINGS)  # 299 + " " + 23
    assert problems_of(caught) == ["events/meeting.md:8: social.x.text: is 323 characters; x allows 280"]


def test_a_thread_part_too_long_is_an_error_at_its_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        render_post(own(part="日本語" * 50), "x", SETTINGS)
    assert problems_of(caught) == ["events/meeting.md:11: social.x.thread.1: is 300 characters; x allows 280"]


def test_a_short_form_own_text_is_reported_at_its_key() -> None:
    with pytest.raises(InvalidInput) as caught:
        render_post(own(mastodon="x" * 480), "mastodon", SETTINGS)
    assert problems_of(caught) == ["events/meeting.md:12: social.mastodon.text: is 504 characters; mastodon allows 500"]


def test_check_posts_lists_every_problem_of_every_record() -> None:
    records = [own(text="word " * 60, part="日本語" * 50), own(mastodon="x" * 480)]
    assert [str(p) for p in check_posts(records, SETTINGS)] == [
        "events/meeting.md:8: social.x.text: is 323 characters; x allows 280",
        "events/meeting.md:11: social.x.thread.1: is 300 characters; x allows 280",
        "events/meeting.md:12: social.mastodon.text: is 504 characters; mastodon allows 500",
    ]
    assert check_posts([own()], SETTINGS) == []


# -- templates and link tagging ---------------------------------------------------------------------


def test_a_site_template_overrides_the_default(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "post-bluesky.txt").write_text("New: {{ title | upper }}\n", encoding="utf-8")
    record = own()
    assert render_post(record, "bluesky", SETTINGS, tmp_path / "templates").text.startswith("New: A MEETING https://")
    assert (
        render_post(record, "mastodon", SETTINGS, tmp_path / "templates").text
        == "Hello. https://example.org/news/meeting"
    )


def test_a_broken_site_template_is_a_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "post-mastodon.txt").write_text("{{ title }}\n{% if %}\n", encoding="utf-8")
    record = parse_record(
        RECORD.format(text="a", part="b", mastodon="c").replace('  mastodon: "c"\n', ""), Path("r.md")
    )
    problems = check_posts([record], SETTINGS, tmp_path / "templates")
    assert [(p.path, p.line, p.field) for p in problems] == [("templates/post-mastodon.txt", 2, "template")]


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("{{ title }}\n\n{{ nope }}\n", 3, "'nope' is undefined"),
        ("{{ title }}\n{{ 1 / 0 }}\n", 2, "ZeroDivisionError: division by zero"),
    ],
)
def test_a_template_failing_as_it_renders_is_a_problem_with_its_line(
    tmp_path: Path, source: str, line: int, message: str
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "post-x.txt").write_text(source, encoding="utf-8")
    record = Record.model_validate({"id": "r", "title": "T", "summary": "S.", "published": "2024-01-01T00:00:00Z"})
    with pytest.raises(InvalidInput) as caught:
        render_post(record, "x", SETTINGS, tmp_path / "templates")
    assert problems_of(caught) == [f"templates/post-x.txt:{line}: template: {message}"]


def test_utm_merges_into_the_query_and_keeps_the_fragment() -> None:
    assert utm("https://example.org/a", "x", "social", "r1") == (
        "https://example.org/a?utm_source=x&utm_medium=social&utm_campaign=r1"
    )
    assert utm("https://example.org/a?lang=es&utm_source=old#top", "bluesky", "social", "r 1") == (
        "https://example.org/a?lang=es&utm_source=bluesky&utm_medium=social&utm_campaign=r%201#top"
    )
    assert utm("https://example.org/#r1", "email", "email", "r1") == (
        "https://example.org/?utm_source=email&utm_medium=email&utm_campaign=r1#r1"
    )
    assert utm("https://example.org/a?b=%20c&UTM_Medium=x#f?g", "x", "social", "r1") == (
        "https://example.org/a?b=%20c&utm_source=x&utm_medium=social&utm_campaign=r1#f?g"
    )


def test_utm_tags_every_network_and_the_lengths_stay_within_limits(
    example: tuple[Settings, dict[str, Record], Path],
) -> None:
    settings_, records, templates = example
    tagged = settings_.model_copy(update={"utm": settings_.utm.model_copy(update={"enabled": True})})
    posts = {p.network: p for p in render_posts(records[PARIS], tagged, templates)}
    for network, post in posts.items():
        assert post.url == f"{PARIS_URL}?utm_source={network}&utm_medium=social&utm_campaign={PARIS}"
        assert post.url in post.text and post.length <= post.limit
    assert posts["x"].length == 167  # a URL is 23 on X, tagged or not
    # On Bluesky the tagged URL counts in full: 68 + 19 + 18 + 14 + 40 = 159 graphemes, 91 more than untagged.
    bluesky = posts["bluesky"]
    assert len(bluesky.url or "") == 159
    assert bluesky.text == f"{PARIS_TITLE} {bluesky.url} #SouthSouth #BAPA40"
    assert bluesky.length == 87 + 1 + 159 + 1 + 19 == 176 + 91


# -- any record -------------------------------------------------------------------------------------

WORDS = st.lists(
    st.sampled_from(
        [
            *"abcdefghij ABC,.;:!?-–—()é日本語한\n",
            "\U0001f637",
            FAMILY,
            "e\u0301",
            " cooperation",
            " datos",
            " 開発",
            "  ",
        ]
    ),
    min_size=1,
    max_size=300,
).map("".join)
HASHTAG = st.from_regex(r"\w{1,20}", fullmatch=True)
URL = st.builds(
    lambda host, tld, path: f"https://{host}.{tld}/{path}",
    st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True),
    st.sampled_from(["org", "com", "net", "io", "es", "co"]),
    st.from_regex(r"[a-z0-9/_-]{0,90}", fullmatch=True),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=WORDS.filter(lambda t: t.strip() != ""),
    summary=st.none() | WORDS,
    hashtags=st.lists(HASHTAG, max_size=6),
    url=URL,
    tagged=st.booleans(),
)
def test_every_post_fits_its_network_whole_url_and_hashtags(
    title: str, summary: str | None, hashtags: list[str], url: str, tagged: bool
) -> None:
    record = Record.model_validate(
        {
            "id": "any",
            "title": title,
            "summary": summary if summary and summary.strip() else "A summary.",
            "published": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            "url": url,
            "people": [{"name": "P", "handles": {"x": "@someone"}}],
            "social": {"hashtags": hashtags},
        }
    )
    for post in render_posts(record, UTM_SETTINGS if tagged else SETTINGS):
        text = post.text
        if post.network == "x":
            assert parse_tweet(text).weightedLength <= 280
        elif post.network == "mastodon":
            assert mastodon_length(text) <= 500
        else:
            assert grapheme.length(text) <= 300 and len(text.encode()) <= 3000
        assert post.url is not None
        head, found, tail = text.rpartition(post.url)
        assert found, "the URL is whole"
        tags = tail.split()
        assert tail == "".join(f" {tag}" for tag in tags)
        wanted = [f"#{t}" for t in dict.fromkeys(hashtags)]
        assert all(tag in wanted for tag in tags), "each hashtag whole"
        assert [t for t in wanted if t in tags] == tags, "in their order"
        if head.endswith("… "):
            assert record.title.startswith(head[:-2]), "only the title is cut"
