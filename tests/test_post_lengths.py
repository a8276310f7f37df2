"""Counting as each network counts, and fitting a post to its network: checked against the networks' own rules.

X's count is checked against twitter-text-parser's `parse_tweet`, Bluesky's
against the `grapheme` package, Mastodon's against twitter-text's extractor
run over the whole text; `fit` against a plain oracle that tries every cut.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import grapheme
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twitter_text import extract_urls_with_indices, parse_tweet

from publisher.render.fitting import DoesNotFit, fit
from publisher.render.lengths import graphemes, mastodon_length, measure, too_long, x_length

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man, woman, girl, boy: one emoji


# -- counting ---------------------------------------------------------------------------------------


def test_cjk_and_emoji_count_double_on_x_and_once_elsewhere() -> None:
    assert measure("x", "日本語") == 6 == parse_tweet("日本語").weightedLength
    assert measure("x", "\U0001f637") == 2  # 😷
    assert measure("x", FAMILY) == 2  # a ZWJ sequence is one emoji
    assert measure("x", "café — “quoted”") == 15  # Latin, dashes and quotes weigh 1
    assert measure("mastodon", "日本語") == 3
    assert measure("bluesky", "日本語") == 3


def test_bluesky_counts_graphemes() -> None:
    assert measure("bluesky", FAMILY) == 1
    assert len(FAMILY) == 7
    assert measure("bluesky", "e\u0301") == 1  # e + combining acute
    assert measure("bluesky", "\U0001f1eb\U0001f1f7") == 1  # a flag: two regional indicators
    assert measure("bluesky", "a\r\nb") == 3


def test_a_url_counts_23_on_x_and_mastodon_whatever_its_length() -> None:
    long = "https://example.org/" + "a" * 200
    short = "https://t.co/x"
    for url in (long, short):
        assert measure("x", f"see {url}") == 4 + 23
        assert measure("mastodon", f"see {url}") == 4 + 23
    assert measure("bluesky", f"see {long}") == 4 + len(long)
    assert measure("mastodon", f"see {long}", url_length=30) == 4 + 30


def test_x_finds_bare_domains_and_mastodon_does_not() -> None:
    assert measure("x", "visit example.com now") == 6 + 23 + 4
    assert measure("mastodon", "visit example.com now") == len("visit example.com now")


def test_mastodon_counts_code_points() -> None:
    assert measure("mastodon", "e\u0301") == 2  # never less than the server's grapheme count


def test_too_long_names_the_count_and_the_limit() -> None:
    assert too_long("x", "日本語" * 50) == "is 300 characters; x allows 280"
    assert too_long("x", "a" * 280) is None
    assert too_long("mastodon", "a" * 501) == "is 501 characters; mastodon allows 500"
    heavy = ("e" + "\u0301" * 12) * 300  # 300 graphemes of 25 bytes each
    assert graphemes(heavy) == 300
    assert too_long("bluesky", heavy) == "is 7500 bytes of UTF-8; bluesky allows 3000"
    with pytest.raises(ValueError, match="unknown network"):
        measure("myspace", "hi")


def test_twitter_text_loads_without_pkg_resources_and_leaves_none_behind() -> None:
    """Where setuptools is missing (a Python 3.12 venv) the library would not load; and importing
    pkg_resources costs a rebuild ~60 ms. `sys.modules[name] = None` makes that import fail here."""
    code = (
        "import sys; sys.modules['pkg_resources'] = None;"
        "from publisher.render.lengths import x_length;"
        "print(x_length('Listo ✨ https://example.org/a-long-path'));"  # an emoji counts 2, a URL 23
        "print(sys.modules['pkg_resources'] is None, len(sys.modules['twitter_text.regexp.emoji'].emoji_list) > 3000)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["32", "True", "True"]
    alone = subprocess.run(
        [sys.executable, "-c", "import sys; from publisher.render.twitter_text_loader import load; load();"
         "print('pkg_resources' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert alone.stdout.strip() == "False"


PIECES = [
    "a", "Z", " ", "  ", ".", "com", "example.com", "https://a.example.org/x?y=1", "http://t.co/abc", "日本語",
    "\U0001f637", FAMILY, "\U0001f64b\U0001f3fd", "#\ufe0f\u20e3", "#\u20e3", "1\ufe0f\u20e3", "1", "#", "*", "©", "®",
    "‼", "\r\n", "\r", "\n", "é", "e\u0301", "…", "—", "“", "x.y", "co-op.", "\U0001f1eb\U0001f1f7", "\u200d", "\ufe0f",
    "@x", "(", ")", "www.x.com/a(b)", "k.ly", "Ω", "ﬁ", "한국어", "ᄀ", "\u3000", "test.みんな", "-", "_", "/", "é.com",
    "\u202a", ".co", ":", "https://", "Ж", "\u0483", "か\u3099", "ｶﾞ", "\u0600", "\U000e0067", "\t",
    "ñ", "¡", "«", "»", "ß", "ǅ", "\u00a0", "\u00ad", "ɏ", "ɐ",
]  # fmt: skip
tricky_text = st.lists(st.sampled_from(PIECES), max_size=40).map("".join) | st.text(max_size=60)


@settings(max_examples=400, deadline=None)
@given(tricky_text)
def test_x_length_is_parse_tweets_weighted_length(text: str) -> None:
    assert x_length(text) == parse_tweet(text).weightedLength


@settings(max_examples=300, deadline=None)
@given(tricky_text)
def test_grapheme_count_is_the_grapheme_packages(text: str) -> None:
    assert graphemes(text) == grapheme.length(text)


@settings(max_examples=300, deadline=None)
@given(tricky_text, tricky_text)
def test_lengths_add_up_across_a_space(left: str, right: str) -> None:
    """What the fitting relies on: "a b" counts as "a" plus " b" on X and Mastodon."""
    for network in ("x", "mastodon"):
        assert measure(network, f"{left} {right}") == measure(network, left) + measure(network, f" {right}")


def mastodon_reference(text: str) -> int:
    """Mastodon's count straight from the extractor, over the whole text."""
    urls = extract_urls_with_indices(text, False)
    return len(text) - sum(int(u["indices"][1]) - int(u["indices"][0]) for u in urls) + 23 * len(urls)


REFERENCE: dict[str, Callable[[str], int]] = {
    "x": lambda text: int(parse_tweet(text).weightedLength),
    "mastodon": mastodon_reference,
    "bluesky": lambda text: max(int(grapheme.length(text)), 0 if len(text.encode()) <= 3000 else 10**6),
}


@settings(max_examples=300, deadline=None)
@given(tricky_text)
def test_mastodon_length_is_the_extractors(text: str) -> None:
    assert mastodon_length(text) == mastodon_reference(text)


# -- fitting ----------------------------------------------------------------------------------------


def test_fit_keeps_a_post_that_fits_as_it_is() -> None:
    assert fit("x", "Hello", "https://example.org/a", ["One", "#Two"]) == "Hello https://example.org/a #One #Two"
    assert fit("x", "Hello #one", None, ["One", "two", "TWO"]) == "Hello #one #two"  # no tag twice


def test_fit_cuts_the_text_after_a_whole_word() -> None:
    text = "Alpha beta, gamma delta epsilon"
    # 28 = "https://example.org/a" (23) + " #Tag" (5): no room left for " Alpha…"
    assert fit("mastodon", text, "https://example.org/a", ["Tag"], limit=28) == "https://example.org/a #Tag"
    # room for 11: "Alpha beta…" (the comma goes before the ellipsis)
    assert fit("mastodon", text, "https://example.org/a", ["Tag"], limit=40) == "Alpha beta… https://example.org/a #Tag"


def test_fit_drops_the_last_hashtags_only_when_the_url_and_hashtags_alone_overflow() -> None:
    url = "https://example.org/a"
    assert fit("x", "Words", url, ["One", "Two"], limit=31) == f"{url} #One"  # 23 + 5 = 28; + 5 = 33
    assert fit("x", "Words", url, ["One", "Two"], limit=23) == url
    with pytest.raises(DoesNotFit, match="is 23 characters; x allows 22"):
        fit("x", "Words", url, ["One"], limit=22)


def test_a_hashtag_the_text_shows_comes_back_when_the_cut_takes_it() -> None:
    url = "https://example.org/a"
    assert fit("mastodon", "Long text here #SouthSouth", url, ["SouthSouth"], limit=50) == (
        f"Long text here #SouthSouth {url}"
    )
    # 40 - 36 (" url #SouthSouth") leaves 3: "We…", and the hashtag the cut took goes after the URL.
    text = "We met for #SouthSouth cooperation in Paris today"
    assert fit("mastodon", text, url, ["SouthSouth"], limit=40) == f"We… {url} #SouthSouth"


CLEAN_WORDS = ["a", "bc", "déf", "日本", "\U0001f637", FAMILY, "ω", "e\u0301"]
SHORT_WORDS = st.lists(st.sampled_from([*CLEAN_WORDS, "x,", "y.", "—"]), max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    network=st.sampled_from(["x", "mastodon", "bluesky"]),
    first=st.sampled_from(CLEAN_WORDS),
    rest=SHORT_WORDS,
    spaces=st.sampled_from([" ", "  ", "\n"]),
    url=st.sampled_from(["https://example.org/a", "https://example.org/" + "p" * 80, None]),
    tags=st.lists(st.sampled_from(["One", "Two", "Three", "Agenda2030"]), max_size=4, unique=True),
    slack=st.integers(0, 120),
)
def test_fit_keeps_the_longest_cut_that_fits(
    network: str, first: str, rest: list[str], spaces: str, url: str | None, tags: list[str], slack: int
) -> None:
    """Against a plain oracle: the networks' own counting, every word boundary tried from the longest."""
    count = REFERENCE[network]
    text = spaces.join([first, *rest])

    def compose(body: str, kept: int) -> str:
        return " ".join(part for part in (body, url or "", " ".join(f"#{t}" for t in tags[:kept])) if part)

    limit = count(compose(first + "…", len(tags))) + slack  # at least the first word fits
    post = fit(network, text, url, tags, limit=limit)
    assert count(post) <= limit
    if count(compose(text, len(tags))) <= limit:
        assert post == compose(text, len(tags))
        return
    cuts = [text[:end].rstrip(" \n,.—") for end in range(len(text)) if text[end] in " \n"]
    fitting = [c + "…" for c in cuts if c and count(compose(c + "…", len(tags))) <= limit]
    assert post == compose(fitting[-1], len(tags))


def test_fit_cuts_text_without_spaces_between_characters() -> None:
    title = "持続可能な開発のためのデータ" * 20
    post = fit("x", title, "https://example.org/a", [])
    assert post.endswith("… https://example.org/a")
    assert title.startswith(post.split("…")[0])
    assert parse_tweet(post).weightedLength in (279, 280)  # each character weighs 2, the ellipsis 2


def test_fit_never_splits_an_emoji() -> None:
    post = fit("bluesky", FAMILY * 400, None, [], limit=10)
    assert post == FAMILY * 9 + "…"
