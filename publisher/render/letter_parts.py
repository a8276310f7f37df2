"""An issue's text and HTML parts, cut at their per-recipient placeholders and encoded ahead, once.

`personalise` fills the placeholders of a whole part and the message then
encodes the whole part again (quoted-printable text, base64 HTML): some 30 KB
of string work per recipient, for a name, an address and a link. Here each
part is cut at its placeholders once per dispatch; what lies between them is
encoded once; per recipient only the few bytes around each filled-in value are
encoded. The result decodes to exactly what `personalise` gives (a test checks
it over many names and addresses).

- Quoted-printable works line by line, so lines without a placeholder are
  encoded ahead and lines with one are encoded per recipient: the same bytes
  as encoding the whole text.
- Base64 works in groups of 3 bytes, so each piece between placeholders is
  encoded ahead for each of the three ways a group can straddle its start;
  per recipient, a value and the bytes that complete its groups are encoded.
  Lines are cut at 76 characters within each piece (shorter lines where
  pieces meet: RFC 2045 asks for lines of at most 76 characters, and decoders
  ignore line ends).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping

from markupsafe import escape

from publisher.render.base64_lines import base64_lines
from publisher.render.email import EMAIL, NAME, PREFERENCES_URL, UNSUBSCRIBE_URL, Issue

_SLOTS = {NAME: "NAME", UNSUBSCRIBE_URL: "UNSUBSCRIBE_URL", EMAIL: "EMAIL", PREFERENCES_URL: "PREFERENCES_URL"}
_PLACEHOLDER = re.compile("|".join(re.escape(placeholder) for placeholder in _SLOTS))


def _cut(template: str) -> tuple[list[str], list[str]]:
    """The pieces between placeholders (one more than the placeholders) and the slot name of each placeholder."""
    pieces: list[str] = []
    slots: list[str] = []
    start = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append(template[start : match.start()])
        slots.append(_SLOTS[match.group(0)])
        start = match.end()
    pieces.append(template[start:])
    return pieces, slots


class _Piece:
    """Static bytes between two placeholders, base64-encoded ahead for each way to start.

    `taken` (0, 1 or 2) is how many of its first bytes complete the group of the value before it.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.encoded: list[bytes] = []
        self.rest: list[bytes] = []
        for taken in range(3):
            whole = max(0, (len(data) - taken) // 3 * 3)
            self.encoded.append(base64_lines(data[taken : taken + whole]))
            self.rest.append(data[taken + whole :])


class Base64Part:
    """A part's base64 body with the placeholders' values filled in."""

    def __init__(self, template: str) -> None:
        pieces, self.slots = _cut(template)
        self.head = _Piece(pieces[0].encode("utf-8"))
        self.pieces = [_Piece(piece.encode("utf-8")) for piece in pieces[1:]]

    def encode(self, values: Mapping[str, str]) -> bytes:
        out = [self.head.encoded[0]]
        pending = self.head.rest[0]  # bytes not yet encoded: fewer than 3, or a value and what completes it
        for slot, piece in zip(self.slots, self.pieces, strict=True):
            pending += values[slot].encode("utf-8")
            taken = -len(pending) % 3
            if len(piece.data) < taken:  # too short to complete the group: carried whole
                pending += piece.data
                continue
            out.append(base64_lines(pending + piece.data[:taken]))
            out.append(piece.encoded[taken])
            pending = piece.rest[taken]
        out.append(base64_lines(pending))
        return b"".join(out)


class QuotedPrintablePart:
    """A part's quoted-printable body (CRLF lines) with the placeholders' values filled in."""

    def __init__(self, template: str) -> None:
        # Runs of lines without a placeholder are encoded ahead and kept as one chunk.
        self.lines: list[bytes | tuple[list[str], list[str]]] = []
        run: list[bytes] = []
        for line in template.split("\n"):
            if _PLACEHOLDER.search(line) is None:
                run.append(_qp(line))
                continue
            if run:
                self.lines.append(b"\r\n".join(run))
                run = []
            self.lines.append(_cut(line))
        if run:
            self.lines.append(b"\r\n".join(run))

    def encode(self, values: Mapping[str, str]) -> bytes:
        out = []
        for line in self.lines:
            if isinstance(line, bytes):
                out.append(line)
                continue
            pieces, slots = line
            filled = "".join(piece + values[slot] for piece, slot in zip(pieces, slots, strict=False)) + pieces[-1]
            out.append(_qp(filled))
        return b"\r\n".join(out)


def _qp(line: str) -> bytes:
    return binascii.b2a_qp(line.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


class Parts:
    """An issue's (text, HTML) ready to fill: one variant with the reader's name, one without (\"Hello,\")."""

    def __init__(self, issue: Issue) -> None:
        self.issue = issue
        self._variants: dict[bool, tuple[QuotedPrintablePart, Base64Part]] = {}

    def _variant(self, named: bool) -> tuple[QuotedPrintablePart, Base64Part]:
        variant = self._variants.get(named)
        if variant is None:
            html, text = self.issue.html, self.issue.text
            if not named and self.issue.greeting:  # as `personalise` does for an empty name
                html = html.replace(str(escape(self.issue.greeting)), str(escape(self.issue.greeting_without_name)))
                text = text.replace(self.issue.greeting, self.issue.greeting_without_name)
            variant = self._variants[named] = (QuotedPrintablePart(text), Base64Part(html))
        return variant

    def encode(self, *, name: str, unsubscribe_url: str, email: str, preferences_url: str = "") -> tuple[bytes, bytes]:
        """(quoted-printable text, base64 HTML) for one recipient: `personalise`, then encoded."""
        name = " ".join(name.split())
        preferences = preferences_url.strip() or self.issue.neutral_preferences_url
        values = {
            "NAME": name,
            "UNSUBSCRIBE_URL": unsubscribe_url.strip(),
            "EMAIL": email.strip(),
            "PREFERENCES_URL": preferences,
        }
        escaped = {key: str(escape(value)) for key, value in values.items()}
        text, html = self._variant(bool(name))
        return text.encode(values), html.encode(escaped)
