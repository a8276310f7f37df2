"""Fitting a post to a network: "text url #tag #tag", shortening only the text.

What gives way, in this order and no other:

1. the text, cut after its last whole word that fits, with "…" (trailing
   spaces and punctuation ``,;:.!?-–—/([{“‘«`` dropped before the "…"); a
   first word too long on its own (or a text without spaces, as Chinese or
   Japanese is written) is cut between two characters (never inside an emoji
   or an accented letter); down to no text at all;
2. the hashtags, the last one first, only when even the URL and the hashtags
   without any text are too long;
3. never the URL: when the URL alone is too long, :class:`DoesNotFit`.

A hashtag the text already shows (``#SouthSouth`` in the title) is not
repeated after the URL, unless cutting the text took it away.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import grapheme

from publisher.render.lengths import LIMITS, URL_LENGTH, fits, measure

ELLIPSIS = "…"
_TRAILING = " \t\r\n\f\v\u00a0\u3000,;:.!?-–—/([{“‘«"
_SPACES = re.compile(r"\s+")


class DoesNotFit(ValueError):
    """Even the URL alone is longer than the network allows."""

    def __init__(self, network: str, length: int, limit: int) -> None:
        self.network, self.length, self.limit = network, length, limit
        super().__init__(f"is {length} characters; {network} allows {limit}")


def compose(text: str, url: str | None, tags: Sequence[str]) -> str:
    return " ".join(part for part in (text, url or "", " ".join(tags)) if part)


def hashtags_for(hashtags: Iterable[str], text: str) -> list[str]:
    """ "#tag" for each hashtag, once, leaving out those the text already shows."""
    tags = _unique_tags(tuple(hashtags))
    if "#" not in text:
        return list(tags)
    return [tag for tag in tags if not re.search(rf"(?<![\w#]){re.escape(tag)}(?!\w)", text, re.IGNORECASE)]


@lru_cache(maxsize=4096)
def _unique_tags(hashtags: tuple[str, ...]) -> tuple[str, ...]:
    tags: dict[str, str] = {}
    for raw in hashtags:
        tag = raw.strip().lstrip("#")
        if tag:
            tags.setdefault(tag.casefold(), f"#{tag}")
    return tuple(tags.values())


def _last_fitting(ends: Sequence[int], build: Callable[[int], str], ok: Callable[[str], bool]) -> str | None:
    """The longest `build(end)` that is `ok`, searching `ends` (shortest first) by halves."""
    low, high, best = 0, len(ends) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = build(ends[middle])
        if ok(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def shorten(text: str, ok: Callable[[str], bool]) -> str:
    """`text` itself when `ok`, else its longest cut that is `ok` (see the module's docstring), else ""."""
    if ok(text):
        return text

    def cut(end: int, source: str = text) -> str:
        kept = source[:end].rstrip(_TRAILING)
        return kept + ELLIPSIS if kept else ""

    words = [m.start() for m in _SPACES.finditer(text) if text[: m.start()].rstrip(_TRAILING)]
    best = _last_fitting(words, cut, lambda c: bool(c) and ok(c))
    if best is None:
        first = text.split(maxsplit=1)[0] if text.strip() else ""
        ends = list(_grapheme_ends(first))[:-1]
        best = _last_fitting(ends, lambda end: cut(end, first), lambda c: bool(c) and ok(c))
    return best or ""


def _grapheme_ends(word: str) -> Iterable[int]:
    end = 0
    for cluster in grapheme.graphemes(word):
        end += len(cluster)
        yield end


class Fitter:
    """Tells whether "text url #tags" fits, measuring the text alone plus its tail.

    On X and Mastodon the length of "a b" is the length of "a" plus that of
    " b" (no URL or emoji holds a space; see :mod:`publisher.render.lengths`),
    so the tail (" url #tags", the same for every cut of the text) is counted
    once. :meth:`check` measures the chosen post whole, as a guard.
    """

    def __init__(self, network: str, url: str | None, allowed: int, url_length: int, *, whole: bool = False) -> None:
        self.network, self.url, self.allowed, self.url_length = network, url, allowed, url_length
        self.whole = whole or network == "bluesky"  # graphemes are cheap; a cluster may hold a space
        self._tails: dict[tuple[str, ...], int] = {}

    def ok(self, text: str, tags: Sequence[str]) -> bool:
        """Whether "text url #tags" fits."""
        if self.whole or not text:
            return fits(self.network, compose(text, self.url, tags), limit=self.allowed, url_length=self.url_length)
        key = tuple(tags)
        if key not in self._tails:
            tail = compose("", self.url, tags)
            self._tails[key] = measure(self.network, " " + tail, url_length=self.url_length) if tail else 0
        return measure(self.network, text, url_length=self.url_length) + self._tails[key] <= self.allowed

    def check(self, post: str) -> bool:
        """Whether the whole post fits, measured whole."""
        return fits(self.network, post, limit=self.allowed, url_length=self.url_length)

    def fit(self, text: str, hashtags: Sequence[str]) -> str:
        """The rules of :func:`fit` for a text and its hashtags (a hashtag the text shows is not repeated)."""
        tags = hashtags_for(hashtags, text)
        if self.ok(text, tags):
            return compose(text, self.url, tags)
        tags = hashtags_for(hashtags, "")  # the text will be cut: what it shows may go with the cut
        kept = len(tags)
        while not self.ok("", tags[:kept]):
            if kept == 0:
                length = measure(self.network, self.url or "", url_length=self.url_length)
                raise DoesNotFit(self.network, length, self.allowed)
            kept -= 1
        short = shorten(text, lambda t: self.ok(t, hashtags_for(tags[:kept], t)))
        return compose(short, self.url, hashtags_for(tags[:kept], short))


def fit(
    network: str,
    text_before_url: str,
    url: str | None,
    hashtags: Sequence[str],
    *,
    limit: int | None = None,
    url_length: int = URL_LENGTH,
) -> str:
    """ "text url #tag #tag", made to fit `network` by cutting the text, then dropping hashtags.

    Only the free text is ever shortened (at a word boundary, with "…"); the
    URL and each kept hashtag stay whole. Hashtags go, the last first, only
    when even the URL and the hashtags without any text are too long. Raises
    :class:`DoesNotFit` when the URL alone is.
    """
    allowed = LIMITS[network] if limit is None else limit
    text = text_before_url.strip()
    fitter = Fitter(network, url, allowed, url_length)
    post = fitter.fit(text, hashtags)
    return post if fitter.check(post) else Fitter(network, url, allowed, url_length, whole=True).fit(text, hashtags)
