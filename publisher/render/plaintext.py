"""Sanitised HTML → plain text written for reading, the text part of an email.

Paragraphs wrapped at 72 columns, headings underlined, list items as ``- ``
(or ``1. ``), quotes with ``> ``, links as ``text <url>``, images as
``[alt text]``. URLs are never broken across lines.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser

WIDTH = 72
_BREAK = "\x00"  # a <br>, kept apart from the newlines of the source
_SPACE = re.compile(r"[ \t\r\n\f]+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"'“‘«¿¡(\[]?[A-ZÀ-ÖØ-Þ0-9])")
_BLOCKS = {
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "ul", "ol",
    "figure", "figcaption", "table", "tr", "dl", "dt", "dd", "hr",
}  # fmt: skip


def wrap(text: str, first: str = "", rest: str = "", width: int = WIDTH) -> str:
    """One paragraph, wrapped; `first` and `rest` prefix its first and other lines."""
    if len(first) + len(text) <= width and text.isprintable():  # fits: what TextWrapper would give
        flat = text.rstrip(" ")
        return first + flat if flat.strip(" ") else first.rstrip()
    if width > 0 and _single_spaced(text):  # the usual case: laid out here, faster
        return "\n".join(_greedy(text, first, rest, width))
    lines = _wrapper(first, rest, width).wrap(text)
    return "\n".join(lines) if lines else first.rstrip()


def _single_spaced(text: str) -> bool:
    """Words apart by single spaces, no other whitespace (`isprintable` refuses every other kind)."""
    if not text or "  " in text or text.startswith(" ") or text.endswith(" "):
        return False
    return text.isprintable()


def _greedy(text: str, first: str, rest: str, width: int) -> list[str]:
    """TextWrapper's lines (long words kept whole, no hyphen breaks) for single-spaced words, faster.

    Each line is the longest run of words that fits (the last space within
    reach ends it), or one longer word alone: found with `str.rfind`, in C.
    """
    lines = []
    prefix, room, at, end = first, width - len(first), 0, len(text)
    while end - at > room:
        cut = text.rfind(" ", at, at + room + 1) if room > 0 else -1
        if cut <= at:  # no space within reach: a word longer than the line, alone on it
            cut = text.find(" ", at)
            if cut < 0:
                break
        lines.append(prefix + text[at:cut])
        prefix, room, at = rest, width - len(rest), cut + 1
    lines.append(prefix + text[at:])
    return lines


@lru_cache(maxsize=64)
def _wrapper(first: str, rest: str, width: int) -> textwrap.TextWrapper:
    return textwrap.TextWrapper(
        width=width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def underline(heading: str, mark: str = "=", width: int = WIDTH) -> str:
    """A heading wrapped, then a line of `mark` as long as its longest line."""
    text = wrap(heading, width=width)
    longest = max(len(line) for line in text.splitlines()) if text else 0
    return f"{text}\n{mark * min(longest, width)}"


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of `text` (whitespace collapsed), cut at a word near `limit`."""
    flat = _SPACE.sub(" ", text).strip()
    sentence = _SENTENCE_END.split(flat, maxsplit=1)[0]
    return shorten(sentence, limit)


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, with an ellipsis."""
    flat = _SPACE.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-–—") + "…"


# Whitespace `str.split()` knows that _SPACE does not: where it occurs, split() would differ.
_OTHER_SPACE = re.compile("[\x0b\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def _collapsed(line: str) -> str:
    """`_SPACE.sub(" ", line).strip()`: runs of HTML whitespace as one space, none at the ends."""
    if _OTHER_SPACE.search(line) is None:
        return " ".join(line.split())  # the same, several times faster
    return _SPACE.sub(" ", line).strip()


@dataclass
class _Container:
    """A block that prefixes the lines inside it: a quote or a list item."""

    first: str
    rest: str
    used: bool = False


class _Walker(HTMLParser):
    def __init__(self, width: int = WIDTH) -> None:
        super().__init__(convert_charrefs=True)
        self.width = width
        self.blocks: list[tuple[str, bool]] = []  # (text, inside a list item)
        self.inline: list[str] = []
        self.stack: list[_Container] = []
        self.lists: list[list[int]] = []
        self.links: list[tuple[str | None, int]] = []
        self.pre = 0
        self.table = 0
        self.heading: str | None = None

    def _prefixes(self) -> tuple[str, str]:
        first = rest = ""
        for container in self.stack:
            first += container.rest if container.used else container.first
            rest += container.rest
            container.used = True
        return first, rest

    def flush(self) -> None:
        text = "".join(self.inline)
        self.inline.clear()
        if self.pre:
            if text.strip("\n"):
                first, rest = self._prefixes()
                lines = text.strip("\n").splitlines()
                self.blocks.append(("\n".join(rest + "    " + line for line in lines), self._in_item()))
            return
        if not text.strip():
            return
        first, rest = self._prefixes()
        pieces = [_collapsed(line) for line in text.split(_BREAK)]
        wrapped = []
        for index, piece in enumerate(pieces):
            wrapped.append(wrap(piece, first if index == 0 else rest, rest, self.width))
        paragraph = "\n".join(wrapped)
        if self.heading:
            mark = "=" if self.heading in ("h1", "h2") else "-"
            longest = max(len(line) - len(rest) for line in paragraph.splitlines())
            paragraph += "\n" + rest + mark * min(longest, self.width)
        self.blocks.append((paragraph, self._in_item()))

    def _in_item(self) -> bool:
        return self.table > 0 or any(container.first != "> " for container in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _BLOCKS:
            self.flush()
        if tag == "blockquote":
            self.stack.append(_Container("> ", "> "))
        elif tag in ("ul", "ol"):
            start = int(attributes.get("start") or 1) if tag == "ol" else 0
            self.lists.append([start] if tag == "ol" else [])
        elif tag == "li":
            counter = self.lists[-1] if self.lists else []
            marker = f"{counter[0]}. " if counter else "- "
            if counter:
                counter[0] += 1
            self.stack.append(_Container(marker, " " * len(marker)))
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.heading = tag
        elif tag == "pre":
            self.pre += 1
        elif tag == "table":
            self.table += 1
        elif tag == "br":
            self.inline.append(_BREAK)
        elif tag == "hr":
            self.blocks.append(("* * *", False))
        elif tag == "a":
            self.links.append((attributes.get("href"), len(self.inline)))
        elif tag == "img":
            self._image(attributes)
        elif tag in ("td", "th") and self.inline:
            self.inline.append(" | ")

    def _image(self, attributes: dict[str, str | None]) -> None:
        alt = (attributes.get("alt") or "").strip()
        title = (attributes.get("title") or "").strip()
        label = f"{alt} ({title})" if alt and title else alt or title
        if label:
            self.inline.append(f"[{label}]")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.inline[start:]).strip()
            if href and not href.startswith("mailto:") and href not in (label, label.rstrip("/") + "/"):
                self.inline.append(f" <{href}>")
            elif href and href.startswith("mailto:") and href[7:] != label:
                self.inline.append(f" <{href[7:]}>")
            return
        if tag in _BLOCKS:
            self.flush()
        if tag == "blockquote" or (tag == "li" and self.stack):
            self.stack.pop()
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.heading = None
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        elif tag == "table":
            self.table = max(0, self.table - 1)

    def handle_data(self, data: str) -> None:
        self.inline.append(data)

    def text(self) -> str:
        self.close()
        self.flush()
        return _join(self.blocks)


def _join(blocks: list[tuple[str, bool]]) -> str:
    """Blocks apart by a blank line (inside a quote it keeps its '>'); list items tight."""
    out: list[str] = []
    was_item = False
    for block, item in blocks:
        if out and not (item and was_item):
            out.append(_common_quote(out[-1].splitlines()[-1], block.splitlines()[0]).rstrip())
        out.append(block)
        was_item = item
    return "\n".join(out).strip("\n") + "\n" if out else ""


def _common_quote(previous: str, current: str) -> str:
    prefix = ""
    for a, b in zip(previous, current, strict=False):
        if a != b or a not in "> ":
            break
        prefix += a
    return prefix


def html_to_text(html: str, width: int = WIDTH) -> str:
    """Readable plain text from sanitised HTML (see the module docstring)."""
    walker = _Walker(width=width)
    tokens = _tokens(html)
    if tokens is None:
        walker.feed(html)
    else:
        for tag, attrs, closing, data in tokens:
            if data:
                walker.handle_data(unescape(data))
            elif closing:
                walker.handle_endtag(tag)
            else:
                walker.handle_starttag(tag, attrs)
    return walker.text()


# The HTML nh3 writes: start tags with double-quoted attributes, end tags, text (its "<" escaped).
_TOKEN = re.compile(r'<([a-z][a-z0-9]*)((?: [a-z][a-z0-9-]*="[^"]*")*)>|</([a-z][a-z0-9]*)>|([^<]+)')
_ATTRIBUTE = re.compile(r' ([a-z][a-z0-9-]*)="([^"]*)"')
_RAW_TEXT = ("script", "style")  # HTMLParser reads these differently (CDATA)
Token = tuple[str, list[tuple[str, str | None]], bool, str]  # tag, attributes, end tag?, text


def _tokens(html: str) -> list[Token] | None:
    """`html` as HTMLParser would hand it to the walker, when it is all plain tags and text: else None.

    HTMLParser does the same in pure Python with many more steps; for any
    other HTML (comments, self-closing tags, unquoted attributes...) it is used.
    """
    tokens: list[Token] = []
    at = 0
    for match in _TOKEN.finditer(html):
        if match.start() != at:
            return None
        at = match.end()
        start, attributes, end, data = match.groups()
        if data is not None:
            tokens.append(("", [], False, data))
        elif end is not None:
            tokens.append((end, [], True, ""))
        elif start in _RAW_TEXT:
            return None
        else:
            found = _ATTRIBUTE.findall(attributes) if attributes else []
            tokens.append((start, [(name, unescape(value) if value else value) for name, value in found], False, ""))
    return tokens if at == len(html) else None
