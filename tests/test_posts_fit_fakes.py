"""Property: every post `render_post` makes is one the network takes, by the fakes' own length rules.

The fakes count the way the servers do (X: twitter-text's weighted length and
validity; Mastodon: grapheme clusters, URLs as the instance's
`characters_reserved_per_url`, against its `max_characters`), independently
of `publisher.render.lengths`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from publisher.errors import InvalidInput
from publisher.render.social import render_post
from publisher.site.config import load_site
from publisher.site.records import Person, Record, Social, clean_text
from tests.fakes.mastodon_api import FakeMastodon, mastodon_length
from tests.fakes.x_api import x_accepts, x_length

REPO = Path(__file__).resolve().parent.parent
SITE = load_site(REPO, env={})

TRICKY = "é e\u0301 ñ 中文字 日本語 한국어 العربية 👍🏽 👩🏽‍💻 🇨🇴 ‘quoted’ — … #1 @x .org"
words = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Co", "Cn")), min_size=1, max_size=12),
    st.sampled_from([*TRICKY.split(), "https://example.org/a/very/long/path/" + "x" * 60, "example.com"]),
)
short = st.lists(words, min_size=1, max_size=20)
long = st.lists(words, min_size=40, max_size=120)  # over every limit: something must give way
prose = st.one_of(short, long).map(" ".join).filter(lambda text: clean_text(text).strip())
handles = st.fixed_dictionaries(
    {},
    optional={
        "x": st.from_regex(r"@[A-Za-z0-9_]{1,15}", fullmatch=True),
        "mastodon": st.from_regex(r"@[a-z0-9_]{1,20}@[a-z]{2,12}\.social", fullmatch=True),
    },
)
people = st.lists(st.builds(Person, name=st.sampled_from(["Ana", "Bo", "Chidi"]), handles=handles), max_size=4)
links = st.sampled_from(
    [None, "https://cepei.example.org/r/1", "https://cepei.example.org/events/" + "foro-de-bogota-" * 8]
)


@st.composite
def records(draw: st.DrawFn) -> Record:
    thread = draw(st.lists(st.text(min_size=1, max_size=60).filter(lambda text: clean_text(text).strip()), max_size=3))
    return Record(
        id="r1",
        title=draw(prose),
        published=dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC),
        summary=draw(st.none() | prose),
        body="Body.",
        url=draw(links),
        language=draw(st.sampled_from(["en", "es", "pt-BR", "ja", "ar"])),
        people=tuple(draw(people)),
        social=Social(
            hashtags=tuple(draw(st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True), max_size=4))),
            x={"thread": thread},
            mastodon={"thread": thread},
        ),
    )


def rendered(record: Record, network: str, limit: int | None = None, url_length: int = 23) -> tuple[str, ...]:
    try:
        post = render_post(record, network, SITE.settings, limit=limit, url_length=url_length)
    except InvalidInput:
        assume(False)  # a thread part or URL that does not fit is refused at `check`: never sent
        raise
    return (post.text, *post.thread)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_every_x_post_is_accepted_by_x(record: Record) -> None:
    for text in rendered(record, "x"):
        event("x: within 20 of the limit" if x_length(text) > 260 else "x: shorter")
        assert x_accepts(text), f"{x_length(text)} weighted: {text!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(), st.integers(100, 1000), st.integers(20, 40))
def test_every_mastodon_post_is_accepted_by_its_instance(record: Record, max_characters: int, url_length: int) -> None:
    instance = FakeMastodon(max_characters=max_characters, url_length=url_length)  # its rule; no server needed
    for text in rendered(record, "mastodon", limit=max_characters, url_length=url_length):
        near = mastodon_length(text, url_length) > max_characters - 20
        event("mastodon: within 20 of the limit" if near else "mastodon: shorter")
        assert instance.accepts(text), f"{mastodon_length(text, url_length)} > {max_characters}: {text!r}"
