"""Issues as MIME messages: multipart/alternative, the text part first, then the HTML.

`build_message` is what the email channel calls for each recipient (after
`personalise`); it never reads the clock: the caller passes `date` (default:
the issue's newest change). `issue_eml` and `issue_files` are what `build`
writes for an issue: filled with neutral values, ready to open in a mail client.
"""

from __future__ import annotations

import binascii
import datetime as dt
import email.policy
import re
from collections.abc import Mapping
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from types import MappingProxyType
from urllib.parse import urlsplit

from publisher.errors import HeaderInjection
from publisher.render.base64_lines import base64_lines
from publisher.render.email import Issue, personalise
from publisher.site.settings import Settings

PREVIEW_TO = "subscriber@example.invalid"
TEST_PREFIX = "[TEST] "
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
# Set by build_message itself; `headers` may not replace them.
_RESERVED = frozenset(
    {"from", "to", "subject", "date", "message-id", "mime-version", "content-type", "content-transfer-encoding"}
)
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322: printable US-ASCII but the colon
# Every character str.splitlines() breaks at: the email package refuses them all.
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class _LinkListHeader(UnstructuredHeader, BaseHeader):
    """List-Unsubscribe and its kin: `<url>, <mailto:…>` folded only after a comma.

    The stock folding turns a URL longer than a line into RFC 2047 encoded
    words, which no mail client reads as a link (RFC 2369 asks for the URL as
    it is). Lines may be up to 998 characters, so a long URL stays whole.
    """

    def fold(self, *, policy: email.policy.Policy) -> str:
        value = str(self)
        if not value.isascii():
            return super().fold(policy=policy)
        lines = f"{self.name}: {value}".split(", ")
        return f",{policy.linesep} ".join(lines) + policy.linesep


class _Registry(HeaderRegistry):
    """The standard header classes, each made once (the stock registry builds a new class per lookup)."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("list-unsubscribe", "list-help", "list-subscribe", "list-post", "list-archive"):
            self.map_to_type(name, _LinkListHeader)
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(key)
        return made


# email.policy.default, but with header classes kept: about 4x faster to build a message.
_POLICY = email.policy.EmailPolicy(header_factory=_Registry())
# The text part goes as quoted-printable (readable in the raw message), the
# HTML part, long-lined machine output, as base64; both encoded by binascii in C.
# Neither encoding can produce "=_", so a fixed boundary starting with it is safe
# (and keeps the .eml that `build` writes byte-identical from build to build).
BOUNDARY = "=_publisher-alternative"


def check_header(name: str, value: str) -> None:
    """Refuse a header a message could be split or spoofed with; HeaderInjection says why."""
    if not _FIELD_NAME.fullmatch(name):
        raise HeaderInjection(f"{name!r} is not a header name")
    if _LINE_BREAKS.search(value):
        raise HeaderInjection(f"{name}: a header value may not hold a line break (got {value!r})")


def build_message(
    issue: Issue,
    *,
    sender: str,
    to: str,
    html: str,
    text: str,
    headers: Mapping[str, str] = _NO_HEADERS,
    message_id: str | None = None,
    date: dt.datetime | None = None,
    test: bool = False,
) -> email.message.EmailMessage:
    """One recipient's message: UTF-8 multipart/alternative (text, then HTML).

    `headers` adds Reply-To, List-Id, List-Unsubscribe and the like; any value
    with a CR or LF, a bad name, or a name this function sets itself raises
    HeaderInjection. `test` marks the subject with "[TEST] ".
    """
    subject = (TEST_PREFIX if test else "") + issue.subject
    when = date or issue.date
    fields = {"From": sender, "To": to, "Subject": subject}
    if when is not None:
        fields["Date"] = format_datetime(when)
    if message_id is not None:
        fields["Message-ID"] = message_id
    for name, value in fields.items():
        check_header(name, value)
    for name, value in headers.items():
        check_header(name, value)
        if name.lower() in _RESERVED:
            raise HeaderInjection(f"{name}: set by build_message, not through `headers`")
    message = EmailMessage(policy=_POLICY)
    for name, value in (*fields.items(), *headers.items()):
        message[name] = _header(name, value)
    message["MIME-Version"] = _header("MIME-Version", "1.0")
    message["Content-Type"] = _header("Content-Type", f'multipart/alternative; boundary="{BOUNDARY}"')
    message.attach(_part("plain", "quoted-printable", _quoted_printable(text)))
    message.attach(_part("html", "base64", _base64(html)))
    return message


@lru_cache(maxsize=4096)
def _header(name: str, value: str) -> BaseHeader:
    """A parsed header, kept: the same From, Subject or List-Id is parsed once per issue, not per recipient."""
    header: BaseHeader = _POLICY.header_factory(name, value)
    return header


def _base64(text: str) -> str:
    """Base64 in lines of 76 characters, as the email package takes a payload (LF line ends)."""
    return base64_lines(text.encode("utf-8"), b"\n").decode("ascii")


def _quoted_printable(text: str) -> str:
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")


def _part(subtype: str, encoding: str, payload: str) -> EmailMessage:
    part = EmailMessage(policy=_POLICY)
    part["Content-Type"] = _header("Content-Type", f'text/{subtype}; charset="utf-8"')
    part["Content-Transfer-Encoding"] = _header("Content-Transfer-Encoding", encoding)
    part.set_payload(payload)
    return part


def preview_unsubscribe_url(settings: Settings) -> str:
    """The neutral unsubscribe link of the files `build` writes."""
    return f"{settings.site.url}/unsubscribe"


def preview(issue: Issue, settings: Settings) -> tuple[str, str]:
    """(html, text) filled with neutral values: no name, the site's unsubscribe page."""
    return personalise(issue, name="", unsubscribe_url=preview_unsubscribe_url(settings), email=PREVIEW_TO)


def issue_eml(issue: Issue, settings: Settings, filled: tuple[bytes, bytes] | None = None) -> bytes:
    """The complete .eml `build` writes for an issue (CRLF line ends, as on the wire).

    The same bytes as ``build_message(...).as_bytes(policy=email.policy.SMTP)``
    (a test holds the two together), written directly: this message has a
    fixed shape, and the email package's generator and header folding cost
    more than the rest of an issue's rendering. `filled` is `preview(issue,
    settings)`, encoded as UTF-8, when the caller has it already.
    """
    html, text = filled if filled is not None else (part.encode("utf-8") for part in preview(issue, settings))
    host = urlsplit(settings.site.url).hostname or "localhost"
    fields = {"From": settings.newsletter.from_, "To": PREVIEW_TO, "Subject": issue.subject}
    if issue.date is not None:
        fields["Date"] = format_datetime(issue.date)
    fields["Message-ID"] = f"<{issue.id}@{host}>"
    if settings.newsletter.reply_to:
        fields["Reply-To"] = settings.newsletter.reply_to
    if issue.list_name:
        fields["List-Id"] = f"<{issue.list_name}.{host}>"
    fields["List-Unsubscribe"] = f"<{preview_unsubscribe_url(settings)}>"
    for name, value in fields.items():
        check_header(name, value)
    head = b"".join(_folded(name, value) for name, value in fields.items())
    text_part = _crlf(binascii.b2a_qp(text, istext=True))  # as _quoted_printable, without a round trip to str
    return b"".join((head, _MULTIPART_HEAD, text_part, _HTML_HEAD, base64_lines(html), _END))


# The fixed parts of the message `build_message` makes, as its generator writes them.
_MARK = f"--{BOUNDARY}".encode("ascii")
_MULTIPART_HEAD = (
    b"MIME-Version: 1.0\r\n"
    + f'Content-Type: multipart/alternative; boundary="{BOUNDARY}"\r\n\r\n'.encode("ascii")
    + _MARK
    + b'\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
)
_HTML_HEAD = (
    b"\r\n" + _MARK + b'\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
)
_END = b"\r\n" + _MARK + b"--\r\n"
_ANY_EOL = re.compile(rb"\r\n|\r|\n")  # the generator's own NLCRE
# Header values the email package writes back exactly as given, on one line:
# printable ASCII words with single spaces, no encoded word. Subject (an
# unstructured header), Date as format_datetime writes it, a plain Message-ID.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_DAY, _MONTH = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)", "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DATE = re.compile(rf"{_DAY}, \d\d {_MONTH} \d{{4}} \d\d:\d\d:\d\d [+-]\d{{4}}")
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>")
_AS_GIVEN = {"Subject": _PLAIN, "Date": _DATE, "Message-ID": _MESSAGE_ID}
_FOLD_AT = 78


def _folded(name: str, value: str) -> bytes:
    """``SMTP.fold_binary(name, parsed header)`` as `build_message`'s generator writes it."""
    plain = _AS_GIVEN.get(name)
    if plain is not None and len(name) + 2 + len(value) <= _FOLD_AT and "=?" not in value and plain.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return _folded_header(name, value)


@lru_cache(maxsize=1024)
def _folded_header(name: str, value: str) -> bytes:
    """Folded by the email package itself (the same From or List-Unsubscribe is folded once)."""
    return email.policy.SMTP.fold_binary(name, _header(name, value))


def _crlf(payload: bytes) -> bytes:
    """What the generator writes for a part's (ASCII) payload: every line end made CRLF."""
    return payload.replace(b"\n", b"\r\n") if b"\r" not in payload else _ANY_EOL.sub(b"\r\n", payload)


def issue_files(issue: Issue, settings: Settings) -> dict[str, bytes]:
    """Every file `build` writes for an issue, by name inside `newsletters/`.

    `<id>.html`, `<id>.txt` (neutral values filled), `<id>.eml`, and `<id>.ics`
    when the issue has a calendar entry (the issue links to it there).
    """
    html, text = (part.encode("utf-8") for part in preview(issue, settings))
    files = {
        f"{issue.id}.html": html,
        f"{issue.id}.txt": text,
        f"{issue.id}.eml": issue_eml(issue, settings, (html, text)),
    }
    if issue.calendar is not None:
        files[f"{issue.id}.ics"] = issue.calendar
    return files
