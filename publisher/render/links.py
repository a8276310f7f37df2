"""Link tagging: UTM parameters on the record's URL, for posts and newsletters."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


def utm(url: str, network_or_source: str, medium: str, campaign: str) -> str:
    """`url` with `utm_source`, `utm_medium` and `utm_campaign` set.

    The URL's own query parameters stay as written, in their order; any UTM
    parameter it already had under one of these three names is replaced. The
    fragment stays last, after the query:

    >>> utm("https://example.org/a?lang=es#top", "x", "social", "2018-paris")
    'https://example.org/a?lang=es&utm_source=x&utm_medium=social&utm_campaign=2018-paris#top'
    """
    before_fragment, hash_mark, fragment = url.partition("#")
    address, _, query = before_fragment.partition("?")
    kept = [pair for pair in query.split("&") if pair and _key(pair) not in UTM_KEYS] if query else []
    values = (network_or_source, medium, campaign)
    tags = [f"{key}={_quoted(value)}" for key, value in zip(UTM_KEYS, values, strict=True)]
    return f"{address}?{'&'.join(kept + tags)}{hash_mark}{fragment}"


def _quoted(value: str) -> str:
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


def _key(pair: str) -> str:
    return unquote_plus(pair.split("=", 1)[0]).lower()
