"""Markdown bodies → sanitised HTML with absolute URLs, for every renderer."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urljoin

import nh3
from markdown_it import MarkdownIt

from publisher.render.plaintext import html_to_text, wrap
from publisher.site.records import Record
from publisher.site.settings import SiteSettings

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
    if not record.body.strip():
        return ""
    paragraphs = plain_paragraphs(record.body)
    if paragraphs is not None:
        return paragraphs_html(paragraphs)
    return to_html(record.body, record_url(record, site))


def body_html_and_text(record: Record, site: SiteSettings) -> tuple[str, str]:
    """`body_html` and that as plain text (`html_to_text`, "" for no body): an issue needs both."""
    if not record.body.strip():
        return "", ""
    return _html_and_text(record.body, record_url(record, site))


@lru_cache(maxsize=64)  # an event's issue and its calendar file (a summary from its body) ask in turn
def _html_and_text(body: str, url: str) -> tuple[str, str]:
    paragraphs = plain_paragraphs(body)
    if paragraphs is not None:
        return paragraphs_html(paragraphs), paragraphs_text(paragraphs)
    html = to_html(body, url)
    return html, html_to_text(html) if html else ""


# Plain prose, which Markdown leaves as it is: lines that start with a letter (so no block
# syntax: no list, heading, quote, code, table or HTML), words apart by single spaces (so no
# hard break), and none of the characters inline syntax or HTML starts with (`*_[]<>&\\~|#=`
# and the rest): paragraphs of text, nothing else. For them `to_html` gives `<p>lines</p>`
# (nh3 writes a `"` as it is, as Markdown's `&quot;` means). Parsing them costs several times
# more than the rest of an issue's text; these checks are in C (a regex only past ASCII).
_PROSE_MARKS = b" .,;:?!'\"()/%+-\n"
_ASCII_PROSE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + _PROSE_MARKS
_NOT_PROSE = re.compile(r"[^\w .,;:?!'\"()/%+\n-]|_")
_ASCII_NOT_A_LINE = re.compile(r"\n[^A-Za-z\n]")  # a line that starts with something else than a letter
_NOT_A_LINE = re.compile(r"\n[^\w\n]|\n[\d_]")
_PARAGRAPH_BREAK = re.compile(r"\n\n+")


def plain_paragraphs(markdown: str) -> list[str] | None:
    """The paragraphs of a body of plain prose (see above), each its lines; None for any other body."""
    core = markdown.strip("\n")
    if not core or core.endswith(" ") or "  " in core or " \n" in core:
        return None
    if core.isascii():
        if core.encode("ascii").translate(None, _ASCII_PROSE):  # a character left that is not prose
            return None
        not_a_line = _ASCII_NOT_A_LINE
    elif _NOT_PROSE.search(core):
        return None
    else:
        not_a_line = _NOT_A_LINE
    if not_a_line.search("\n" + core):
        return None
    return _PARAGRAPH_BREAK.split(core)


def paragraphs_html(paragraphs: list[str]) -> str:
    """`to_html` of plain prose (`plain_paragraphs`), written directly."""
    return "\n".join([f"<p>{paragraph}</p>" for paragraph in paragraphs])


def paragraphs_text(paragraphs: list[str]) -> str:
    """`html_to_text(paragraphs_html(paragraphs))`, written directly: each paragraph's lines joined and wrapped."""
    return "\n\n".join([wrap(paragraph.replace("\n", " ")) for paragraph in paragraphs]) + "\n"
