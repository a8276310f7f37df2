"""Markdown bodies → sanitised HTML with absolute URLs, for every renderer."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urljoin

import nh3
from markdown_it import MarkdownIt

from publisher.site.config import SiteSettings
from publisher.site.records import Record

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "figcaption",
    "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "q", "s",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
    "abbr": {"title"},
}
_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "typographer": False}).enable("table").enable("strikethrough")


def to_html(markdown: str, base_url: str) -> str:
    """Markdown → HTML: no script, no event handlers, no `javascript:`; URLs absolute."""

    def absolute(tag: str, attribute: str, value: str) -> str | None:
        if attribute in ("href", "src"):
            return urljoin(base_url, value)
        return value

    raw = _parser().render(markdown)
    return nh3.clean(
        raw,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        attribute_filter=absolute,
        link_rel="noopener",
    ).strip()


def record_url(record: Record, site: SiteSettings) -> str:
    """The record's own URL, or the site's URL with the record's id as its fragment."""
    return record.url or f"{site.url}/#{record.id}"


def media_url(src: str, site: SiteSettings) -> str:
    """An image `src` as published: absolute URLs as given, site files under the site URL."""
    if src.startswith(("http://", "https://")):
        return src
    return f"{site.url}/{src.lstrip('/')}"


def body_html(record: Record, site: SiteSettings) -> str:
    """The record's body as sanitised HTML, its relative links resolved against its URL."""
    return to_html(record.body, record_url(record, site)) if record.body.strip() else ""
