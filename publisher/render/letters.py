"""Each recipient's message from one compiled issue, as the bytes that go on the wire.

`build_message` is the reference for what a newsletter message holds. Turning
its result into bytes costs about a millisecond per message (the email
package folds every header again each time), more than everything else a send
does per recipient. So an issue's message is built and serialised **once per
dispatch**, with stand-in values in the per-recipient places (To, Date,
Message-ID, List-Unsubscribe, the text and HTML parts); each recipient's
message is that serialisation with the stand-ins replaced, the parts encoded
as `build_message` encodes them (quoted-printable text, base64 HTML). A test
checks that both ways give the same message.

The stand-ins also keep ``List-Unsubscribe`` readable: folded by the email
package, a header holding one long URL comes out as RFC 2047 encoded words,
which mail clients do not read as a URL. Here it is folded only after the
comma between its two URIs.

A letter is handed to the channel as a `WireMessage`: an EmailMessage that is
its wire form already. The channel asks it for its bytes (it gets them as
they are, CRLF lines, nothing folded again) and for its From, Sender and
Message-ID (known, so no header is parsed per message: plain bytes would cost
the channel a header parse and a line-end check, some 100 µs a message).
DKIM signing still happens in the channel.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, SMTPUTF8, Policy, compat32
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from publisher.audience.preferences import make_preferences_token, preferences_url
from publisher.audience.unsubscribe import ONE_CLICK, list_unsubscribe_headers, make_token, unsubscribe_url
from publisher.render.base64_lines import base64_lines
from publisher.render.email import Issue, personalise
from publisher.render.letter_parts import Parts
from publisher.render.message import build_message, check_header
from publisher.site.config import Site

_STAND_IN_DATE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_STAND_INS = {
    "to": "publisher-to@stand-in.invalid",
    "date": format_datetime(_STAND_IN_DATE),
    "message_id": "<publisher-message-id@stand-in.invalid>",
    "unsubscribe": "<https://stand-in.invalid/u>",
    "text": "PUBLISHERSTANDINTEXT\n",
    "html": "PUBLISHERSTANDINHTML",
}
_FOLD_AT = 78
_MESSAGE_ID_PURPOSE = b"publisher-message-id\x00"


def message_id(dispatch_id: str, email: str, host: str, secret: str | None) -> str:
    """Stable per dispatch and recipient: a resend after a crash carries the same Message-ID.

    Its digest of the address is keyed with the link secret (HMAC-SHA256, the same 16 hex digits as
    before): a bounce or complaint report is matched by the Message-ID it quotes, and anyone who knew
    an address could otherwise write a report for it. Without a secret it is the unkeyed digest of
    old. Reports match what the ledger stored for each message sent, never a recomputation, so
    messages sent before the digest was keyed still match.
    """
    address = email.lower().encode()
    if secret:
        digest = hmac.new(secret.encode("utf-8"), _MESSAGE_ID_PURPOSE + address, hashlib.sha256).hexdigest()[:16]
    else:
        digest = hashlib.blake2b(address, digest_size=8).hexdigest()
    return f"<{dispatch_id}.{digest}@{host}>"


class WireMessage(EmailMessage):
    """A message that is its wire form already: every way of serialising it gives `data`, as it is.

    From, Sender and Message-ID are known without parsing; any other header
    question parses the header block, once. It writes its own headers (the
    standard library's hook, which serialisers honour by handing it over
    whole), so no generator ever folds or re-encodes it.
    """

    def __init__(self, data: bytes, *, sender: str, message_id: str) -> None:
        self._parsed: list[tuple[str, Any]] | None = None
        super().__init__()
        self.data = data
        self._known: dict[str, str | None] = {"from": sender, "sender": None, "message-id": message_id}
        self._body_at = data.find(b"\r\n\r\n") + 4

    @property  # parsed on first use: Message keeps its headers in `_headers`
    def _headers(self) -> list[tuple[str, Any]]:
        if self._parsed is None:
            head = self.data[: self._body_at]
            self._parsed = list(BytesHeaderParser(policy=compat32).parsebytes(head).raw_items())
        return self._parsed

    @_headers.setter
    def _headers(self, value: list[tuple[str, Any]]) -> None:
        """Message.__init__ starts it empty: the data says what the headers are."""

    @property
    def _payload(self) -> str:
        """The body as a standard generator writes a multipart whose payload is text: as it is."""
        return self.data[self._body_at :].decode("ascii", "surrogateescape")

    @_payload.setter
    def _payload(self, value: Any) -> None:
        """Message.__init__ starts it empty: the data says what the body is."""

    def get(self, name: str, failobj: Any = None) -> Any:
        key = name.lower()
        if key in self._known:
            return self._known[key] or failobj
        return super().get(name, failobj)

    def _write_headers(self, generator: Any) -> None:
        """The header block as it is, blank line included (a standard generator then writes the body)."""
        generator.write(self.data[: self._body_at].decode("ascii", "surrogateescape"))

    def as_bytes(self, unixfrom: bool = False, policy: Policy | None = None) -> bytes:
        return self.data

    def __bytes__(self) -> bytes:
        return self.data

    def as_string(self, unixfrom: bool = False, maxheaderlen: int | None = None, policy: Policy | None = None) -> str:
        return self.data.decode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return self.as_string()


def _quoted_printable(text: str) -> bytes:
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    if not encoded.endswith(b"\n"):
        encoded += b"\n"
    return encoded.replace(b"\n", b"\r\n")


def _base64(html: str) -> bytes:
    return base64_lines(html.encode("utf-8"))


_ENCODE = {"text": _quoted_printable, "html": _base64}


class _Template:
    """The serialised reference message cut around its stand-ins: fixed pieces and named slots."""

    def __init__(self, reference: EmailMessage, policy: Policy) -> None:
        data = reference.as_bytes(policy=policy)
        found: list[tuple[int, str, bytes]] = []
        for slot, value in _STAND_INS.items():
            encoded = _ENCODE[slot](value) if slot in _ENCODE else value.encode("ascii")
            if data.count(encoded) != 1:
                raise ValueError(f"the stand-in for {slot} is not found exactly once in the reference message")
            found.append((data.index(encoded), slot, encoded))
        found.sort()
        self.pieces: list[bytes] = []
        self.slots: list[str] = []
        start = 0
        for position, slot, encoded in found:
            self.pieces.append(data[start:position])
            self.slots.append(slot)
            start = position + len(encoded)
        self.pieces.append(data[start:])

    def fill(self, values: Mapping[str, bytes]) -> bytes:
        parts = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            parts.append(values[slot])
            parts.append(piece)
        return b"".join(parts)


def _fold_uris(name: str, value: str) -> str:
    """A list of URIs (``<a>, <b>``) folded after its commas when the line would pass 78 characters."""
    if len(name) + 2 + len(value) <= _FOLD_AT:
        return value
    return ",\r\n ".join(value.split(", "))


class Letters:
    """Builds each recipient's message for one dispatch of one issue (see the module docs)."""

    def __init__(
        self, site: Site, issue: Issue, list_name: str, dispatch_id: str, secret: str, *, test: bool = False
    ) -> None:
        self.site = site
        self.issue = issue
        self.list_name = list_name
        self.dispatch_id = dispatch_id
        self.secret = secret
        self.test = test
        self.host = urlsplit(site.settings.site.url).hostname or "localhost"
        news = site.settings.newsletter
        self.sender = news.from_
        self.mailto = news.reply_to.split("<")[-1].rstrip(">").strip() if news.reply_to else None
        self.common = {"List-Id": f"<{list_name}.{self.host}>"}
        if news.reply_to:
            self.common = {"Reply-To": news.reply_to, **self.common}
        self._templates: dict[bool, _Template] = {}
        self.parts = Parts(issue)
        self._last_date: tuple[dt.datetime | None, str] = (None, "")
        for header, value in self.common.items():
            check_header(header, value)
        # The mailto URI is the same for everyone: checked once, here.
        sample = list_unsubscribe_headers(self.unsubscribe_link("check@example.org"), self.mailto)
        self._mailto_uri = sample["List-Unsubscribe"].partition(", ")[2]

    def unsubscribe_link(self, email: str) -> str:
        return unsubscribe_url(self.site.settings.site.url, make_token(self.secret, email, self.list_name))

    def preferences_link(self, email: str) -> str:
        return preferences_url(self.site.settings.site.url, make_preferences_token(self.secret, email))

    def message(self, email: str, name: str, date: dt.datetime) -> EmailMessage:
        """The message as `build_message` makes it: the reference (slow; tests and odd cases)."""
        link = self.unsubscribe_link(email)
        prefs = self.preferences_link(email)
        html, text = personalise(self.issue, name=name, unsubscribe_url=link, email=email, preferences_url=prefs)
        ident = message_id(self.dispatch_id, email, self.host, self.secret)
        return self._build(email, html, text, self._headers(link), ident, date)

    def letter(self, email: str, name: str, date: dt.datetime) -> WireMessage:
        """One recipient's message in wire form (CRLF lines), ready to send.

        Raises HeaderInjection on a line break in a header value.
        """
        check_header("To", email)
        link = self.unsubscribe_link(email)
        prefs = self.preferences_link(email)
        text, html = self.parts.encode(name=name, unsubscribe_url=link, email=email, preferences_url=prefs)
        headers = self._headers(link)
        ident = message_id(self.dispatch_id, email, self.host, self.secret)
        when = self._date(date)
        for header, value in (("Message-ID", ident), ("List-Unsubscribe", headers["List-Unsubscribe"])):
            check_header(header, value)  # the other headers are the same for everyone: checked once
        unicode = not email.isascii()
        unsubscribe = _fold_uris("List-Unsubscribe", headers["List-Unsubscribe"])
        values = {
            "to": email.encode("utf-8"),
            "date": when.encode("ascii"),
            "message_id": ident.encode("ascii"),
            "unsubscribe": unsubscribe.encode("utf-8"),
            "text": text,
            "html": html,
        }
        return WireMessage(self._template(unicode).fill(values), sender=self.sender, message_id=ident)

    def _date(self, date: dt.datetime) -> str:
        """The Date header's value (to the second: the same text for every message of a second)."""
        second = date.replace(microsecond=0)
        if second != self._last_date[0]:
            self._last_date = (second, format_datetime(second))
            check_header("Date", self._last_date[1])
        return self._last_date[1]

    def _headers(self, link: str) -> dict[str, str]:
        """Reply-To, List-Id, List-Unsubscribe (URL, then mailto) and List-Unsubscribe-Post.

        The same as `list_unsubscribe_headers` gives (a test checks), without checking the
        constant mailto part again for every recipient: the link is the site's URL and a
        URL-safe token, and `letter` still refuses a line break in any header.
        """
        uris = f"<{link}>, {self._mailto_uri}" if self._mailto_uri else f"<{link}>"
        return {**self.common, "List-Unsubscribe": uris, "List-Unsubscribe-Post": ONE_CLICK}

    def _build(
        self, to: str, html: str, text: str, headers: Mapping[str, str], ident: str, date: dt.datetime
    ) -> EmailMessage:
        return build_message(
            self.issue,
            sender=self.sender,
            to=to,
            html=html,
            text=text,
            headers=headers,
            message_id=ident,
            date=date,
            test=self.test,
        )

    def _template(self, unicode: bool) -> _Template:
        """The reference message with stand-ins, serialised once (SMTPUTF8 form for non-ASCII addresses)."""
        template = self._templates.get(unicode)
        if template is None:
            stand = _STAND_INS
            headers = {**self.common, "List-Unsubscribe": stand["unsubscribe"], "List-Unsubscribe-Post": ONE_CLICK}
            reference = self._build(
                stand["to"], stand["html"], stand["text"], headers, stand["message_id"], _STAND_IN_DATE
            )
            template = self._templates[unicode] = _Template(reference, SMTPUTF8 if unicode else SMTP)
        return template
