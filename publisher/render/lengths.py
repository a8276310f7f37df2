"""How long a post is, counted the way each network counts it.

- **X**: the weighted length of twitter-text v3 (the PyPI package
  twitter-text-parser, ``parse_tweet(text).weightedLength``): every URL counts
  23, most Latin, Cyrillic and punctuation characters 1, CJK, emoji and the rest
  2 (an emoji sequence counts 2 as a whole).
- **Mastodon**: characters, where every http(s) URL counts 23 (the instance's
  ``characters_reserved_per_url``), found with twitter-text's extractor as the
  server does. We count code points; the server counts grapheme clusters, which
  are never more, so a post we pass is never refused for its length. Remote
  mentions (``@user@host``, counted by the server as ``@user``) are counted in
  full: again never less than the server.
- **Bluesky**: grapheme clusters (a family emoji is 1), URLs in full as written,
  and at most 3,000 bytes of UTF-8 (the lexicon's ``maxLength``).

``parse_tweet`` takes about 1.3 ms for a 200-character post (its emoji regex
tries thousands of alternatives at every position), too slow for 10,000
records. :func:`x_length` computes the same number from the same library's own
URL extractor, emoji list and weight table, only where they can apply; the
tests check it against ``parse_tweet`` on generated text. Two facts make this
exact: a URL or an emoji never contains a space (U+0020), and a space is a
valid character before a URL, like the start of the text. So URLs are looked
for only in the space-separated words that hold a dot followed by a letter
(every domain has one), one word at a time, and each word's answer is cached.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache
from typing import Any

import grapheme

from publisher.render.twitter_text_loader import load as load_twitter_text

LIMITS: dict[str, int] = {"x": 280, "mastodon": 500, "bluesky": 300}
BLUESKY_MAX_BYTES = 3000
URL_LENGTH = 23

_DOT_LETTER = re.compile(r"\.[^\W\d_]")
_LINE_ENDS = re.compile(r"\r\n|\r|\n")
# Characters that always form a grapheme cluster on their own (no combining
# marks, joiners, variation selectors, regional indicators, Hangul jamo, CR):
# Latin, Greek, Cyrillic, punctuation, currency signs, kana and CJK ideographs.
_SIMPLE_GRAPHEMES = re.compile(
    "[\x00-\x0c\x0e-\u02ff\u0370-\u0482\u048a-\u052f\u2010-\u2027\u2030-\u205e\u20a0-\u20bf"
    "\u3000-\u3029\u3030-\u3098\u309b-\u30ff\u4e00-\u9fff\uff01-\uff9d]*"
)


def _char_class(ranges: list[tuple[int, int]], negate: bool = False) -> re.Pattern[str]:
    body = "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)
    return re.compile(f"[{'^' if negate else ''}{body}]")


def _ranges(codes: list[int]) -> list[tuple[int, int]]:
    """Sorted code points as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for code in codes:
        if runs and runs[-1][1] == code - 1:
            runs[-1] = (runs[-1][0], code)
        else:
            runs.append((code, code))
    return runs


class _XRules:
    """twitter-text's weight table and emoji list, read once from the library."""

    def __init__(self) -> None:
        load_twitter_text()
        from twitter_text.config import config
        from twitter_text.regexp import emoji as emoji_module

        options: dict[str, Any] = config["defaults"]
        self.scale: int = options["scale"]
        self.default_weight: int = options["default_weight"]
        weights = {r["weight"] for r in options["ranges"]}
        if len(weights) != 1:  # a table this code was not written for: let parse_tweet count
            raise ValueError("twitter-text weight ranges differ")
        self.light_weight: int = weights.pop()
        self.extra_weight: int = self.default_weight - self.light_weight
        self.heavy = _char_class([(r["start"], r["end"]) for r in options["ranges"]], negate=True)
        codes = (entry.codepoint.split() for entry in emoji_module.emoji_list)
        self.sequences = frozenset("".join(chr(int(c, 16)) for c in seq) for seq in codes if len(seq) > 1)
        sizes: dict[str, set[int]] = {}
        for sequence in self.sequences:
            sizes.setdefault(sequence[0], set()).add(len(sequence))
        self.sizes = {first: tuple(sorted(found, reverse=True)) for first, found in sizes.items()}
        ranges = emoji_module.single_codepoint_emoji_ranges
        self.singles = frozenset(chr(c) for low, high in ranges for c in range(low, high + 1))
        self.starts = self.singles | frozenset(self.sizes)
        if any(c.isascii() for c in self.singles) or any(s.isascii() for s in self.sequences):
            raise ValueError("twitter-text lists an emoji made of ASCII only")  # then ASCII text could hold one
        # Where an emoji may start. Non-ASCII: the listed first characters of the
        # Basic Multilingual Plane (a class the regex engine tests with a bitmap)
        # and every astral one, checked afterwards. ASCII (the keycaps' # * 0-9):
        # only when followed by what follows them in a listed sequence.
        firsts = sorted(ord(c) for c in self.starts if 0x7F < ord(c) < 0x10000)
        ranges = "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in _ranges(firsts))
        self.candidates = re.compile(f"[{ranges}\\U00010000-\\U0010ffff]")
        ascii_firsts = "".join(sorted({s[0] for s in self.sequences if s[0].isascii()}))
        seconds = re.escape("".join(sorted({s[1] for s in self.sequences if s[0].isascii()})))
        self.keycaps = re.compile(f"[{re.escape(ascii_firsts)}](?=[{seconds}])")
        self.keycap_seconds = re.compile(f"[{seconds}]")

    def weight(self, part: str) -> int:
        """The weight of characters outside URLs and emoji, in 1/scale units."""
        if part.isascii():
            return len(part) * self.light_weight
        return len(part) * self.light_weight + len(self.heavy.findall(part)) * self.extra_weight

    def emoji_at(self, text: str, index: int) -> int:
        """The length of the emoji twitter-text's regex matches at `index` (0: none).

        The regex tries every multi-code-point sequence, longest first, then one
        single code point: the longest listed sequence that matches here wins.
        """
        for size in self.sizes.get(text[index], ()):
            if text[index : index + size] in self.sequences:
                return size
        return 1 if text[index] in self.singles else 0


@cache
def _rules() -> _XRules | None:
    """The rules, read on first use: importing twitter-text takes ~0.15 s (its huge emoji and URL
    regexes), which a run that renders no post, or renders only in worker processes, need not pay."""
    try:
        return _XRules()
    except (ImportError, AttributeError, KeyError, ValueError):  # pragma: no cover - a changed library
        return None


def preload() -> None:
    """Read twitter-text now: worker processes forked afterwards have it without reading it each."""
    _rules()


@lru_cache(maxsize=65536)
def _word_urls(word: str) -> tuple[tuple[int, int, bool], ...]:
    """(start, length, with its http(s):// or not) of each URL twitter-text finds in one word.

    The word comes with the space before it. Whether bare domains count or not
    changes only which matches are kept, never where they are: one call serves both.
    """
    found = load_twitter_text().extract_urls_with_indices(word, True)
    return tuple(
        (entity["indices"][0], len(entity["url"]), entity["url"].lower().startswith(("http://", "https://")))
        for entity in found
    )


def _urls(text: str, with_bare_domains: bool) -> dict[int, int]:
    """URL start → length, for the whole text, looking only in words that can hold one."""
    urls: dict[int, int] = {}
    if "." not in text:
        return urls
    done = -1
    for match in _DOT_LETTER.finditer(text):
        if match.start() < done:
            continue
        # From the space before the word: the regex reads it as the character before a URL.
        start = max(text.rfind(" ", 0, match.start()), 0)
        end = text.find(" ", match.end())
        done = len(text) if end < 0 else end
        for offset, length, with_protocol in _word_urls(text[start:done]):
            if with_protocol or with_bare_domains:
                urls[start + offset] = length
    return urls


def _x_emojis(rules: _XRules, text: str) -> dict[int, int]:
    if text.isascii():
        return {}
    emojis: dict[int, int] = {}
    done = 0
    starts = [m.start() for m in rules.candidates.finditer(text)]
    if rules.keycap_seconds.search(text):
        starts = sorted(starts + [m.start() for m in rules.keycaps.finditer(text)])
    for index in starts:
        if index < done or text[index] not in rules.starts:
            continue
        size = rules.emoji_at(text, index)
        if size:
            emojis[index] = size
            done = index + size
    return emojis


def x_length(text: str, *, url_length: int = URL_LENGTH) -> int:
    """X's weighted length of `text`: ``parse_tweet(text).weightedLength``, faster."""
    rules = _rules()
    if rules is None:  # pragma: no cover - a changed library
        return int(load_twitter_text().parse_tweet(text).weightedLength) + _url_surplus(text, url_length)
    if text.isascii() and "\r" not in text and not _DOT_LETTER.search(text):
        return len(text) * rules.light_weight // rules.scale  # no URL, no emoji, nothing heavy
    normal = unicodedata.normalize("NFC", text)
    if "\r" in normal:
        normal = _LINE_ENDS.sub("\n", normal)
    urls = _urls(normal, True)
    emojis = _x_emojis(rules, normal)
    if not urls and not emojis:
        return int(rules.weight(normal) / rules.scale)
    total = 0
    index = 0
    for start in sorted(urls.keys() | emojis.keys()):
        if start < index:  # inside the URL or emoji before it, as in parse_tweet's loop
            continue
        total += rules.weight(normal[index:start])
        if start in urls:
            total += url_length * rules.scale
            index = start + urls[start]
        else:
            total += rules.default_weight
            index = start + emojis[start]
    total += rules.weight(normal[index:])
    return int(total / rules.scale)


def _url_surplus(text: str, url_length: int) -> int:  # pragma: no cover - used only without the rules
    return (url_length - URL_LENGTH) * len(load_twitter_text().extract_urls_with_indices(text))


def mastodon_length(text: str, *, url_length: int = URL_LENGTH) -> int:
    """Mastodon's count as the render bounds it: code points, every http(s) URL counting `url_length`.

    Never less than the instance's own count (`channels.mastodon.instance_length`: graphemes,
    remote mentions without their domain), so a post that fits here is never refused for its length.
    """
    if "://" not in text:
        return len(text)
    urls = _urls(text, False)
    return len(text) - sum(urls.values()) + url_length * len(urls)


def graphemes(text: str) -> int:
    """User-perceived characters (extended grapheme clusters, UAX #29)."""
    if text.isascii() and "\r" not in text:
        return len(text)
    if _SIMPLE_GRAPHEMES.fullmatch(text):
        return len(text)
    return int(grapheme.length(text))


def bluesky_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def measure(network: str, text: str, *, url_length: int = URL_LENGTH) -> int:
    """The length of `text` as `network` counts it (see the module's docstring).

    `url_length` is what one URL counts on X and Mastodon (23 on X; a Mastodon
    instance may say otherwise). Bluesky counts URLs in full.
    """
    if network not in LIMITS:
        raise ValueError(f"unknown network {network!r} (known: {', '.join(LIMITS)})")
    return _measure(network, text, url_length)


@lru_cache(maxsize=4096)
def _measure(network: str, text: str, url_length: int) -> int:
    if network == "x":
        return x_length(text, url_length=url_length)
    if network == "mastodon":
        return mastodon_length(text, url_length=url_length)
    return graphemes(text)


def too_long(network: str, text: str, *, limit: int | None = None, url_length: int = URL_LENGTH) -> str | None:
    """Why `text` cannot be posted on `network`, or None when it fits.

    >>> too_long("x", "日本語" * 50)
    'is 300 characters; x allows 280'
    """
    allowed = LIMITS[network] if limit is None else limit
    length = _measure(network, text, url_length) if network in LIMITS else measure(network, text)
    if length > allowed:
        return f"is {length} characters; {network} allows {allowed}"
    if network == "bluesky" and len(text) * 4 > BLUESKY_MAX_BYTES and bluesky_bytes(text) > BLUESKY_MAX_BYTES:
        return f"is {bluesky_bytes(text)} bytes of UTF-8; bluesky allows {BLUESKY_MAX_BYTES}"
    return None


def fits(network: str, text: str, *, limit: int | None = None, url_length: int = URL_LENGTH) -> bool:
    return too_long(network, text, limit=limit, url_length=url_length) is None
