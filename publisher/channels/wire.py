"""A message as the bytes that go on the wire: ``message.as_bytes(policy=SMTP)``, made faster.

The standard generator writes a body line by line (hundreds of small writes for
a newsletter) and folds every header anew for every recipient. `message_bytes`
gives the same bytes, byte for byte, with the body's line ends converted in one
pass and each header object folded once (the renderer reuses one header object
for the From, Subject, List-Id... of every recipient of an issue). Any message
it does not know how to write exactly as the generator would (a multipart
without a boundary, a signed or message/* part, a custom class) is handed to
the generator itself.

`prepare` makes a message ready for a transport (its bytes once, DKIM-signed
when asked, its envelope sender) and `smtp_payload` the bytes that follow DATA.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import threading
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import SMTP, SMTPUTF8, compat32

from publisher.channels.signing import Signer

_CRLF = "\r\n"
_ANY_EOL = re.compile(r"\r\n|\r|\n")  # the generator's own NLCRE


def _generator_method(name: str) -> object:
    """The generator's handler called `name`, if any (private, so not in the type stubs)."""
    return getattr(BytesGenerator, name.replace("-", "_"), None)


_TEXT = _generator_method("_handle_text")  # also its `_writeBody`, the default
_MULTIPART = _generator_method("_handle_multipart")
_FOLD_CACHE_SIZE = 4096
_folded: dict[tuple[str, int], tuple[object, bytes]] = {}
_folded_lock = threading.Lock()


class _Unsupported(Exception):
    """A message part the fast writer leaves to the generator."""


def message_bytes(message: Message) -> bytes:
    """``message.as_bytes(policy=email.policy.SMTP)``: the same bytes, CRLF line ends."""
    out: list[bytes] = []
    try:
        _write(message, out)
    except (_Unsupported, UnicodeEncodeError):
        return message.as_bytes(policy=SMTP)
    return b"".join(out)


def _write(part: Message, out: list[bytes]) -> None:
    if getattr(part, "_write_headers", None) is not None:  # the part writes its own headers
        raise _Unsupported
    body: list[bytes] = []
    handler = _handler(part)
    if handler is _MULTIPART:
        _multipart(part, body)
    else:
        _leaf(part, body)
    for name, value in part.raw_items():
        out.append(_fold(name, value))
    out.append(b"\r\n")
    out.extend(body)


def _handler(part: Message) -> object:
    """The generator method `_dispatch` would pick for this part; only the two plain ones are done here."""
    main, sub = part.get_content_maintype(), part.get_content_subtype()
    handler = _generator_method(f"_handle_{main}_{sub}") or _generator_method(f"_handle_{main}") or _TEXT
    if handler is not _TEXT and handler is not _MULTIPART:
        raise _Unsupported
    return handler


def _leaf(part: Message, out: list[bytes]) -> None:
    payload = part._payload  # type: ignore[attr-defined]  # what the generator reads too (not in the stubs)
    if payload is None:
        return
    if not isinstance(payload, str):
        raise _Unsupported
    if payload:
        out.append(_lines(payload))


def _multipart(part: Message, out: list[bytes]) -> None:
    subparts = part._payload  # type: ignore[attr-defined]  # not in the stubs
    boundary = part.get_boundary()
    if not isinstance(subparts, list) or not boundary:
        raise _Unsupported
    texts = []
    for subpart in subparts:
        chunks: list[bytes] = []
        _write(subpart, chunks)
        texts.append(b"".join(chunks))
    mark = boundary.encode("ascii")
    if part.preamble is not None:
        out.append(_lines(part.preamble) + b"\r\n")
    out.append(b"--" + mark + b"\r\n")
    if texts:
        out.append(texts[0])
    for text in texts[1:]:
        out.append(b"\r\n--" + mark + b"\r\n")
        out.append(text)
    out.append(b"\r\n--" + mark + b"--\r\n")
    if part.epilogue is not None:
        out.append(_lines(part.epilogue))


def _lines(text: str) -> bytes:
    """What the generator's `_write_lines` writes: every line end made CRLF."""
    converted = text.replace("\n", _CRLF) if "\r" not in text else _ANY_EOL.sub(_CRLF, text)
    return converted.encode("ascii", "surrogateescape")


def _fold(name: str, value: object) -> bytes:
    """``SMTP.fold_binary(name, value)``, remembered per header object (the same object folds the same)."""
    key = (name, id(value))
    hit = _folded.get(key)
    if hit is not None and hit[0] is value:
        return hit[1]
    folded = SMTP.fold_binary(name, value)  # type: ignore[arg-type]  # header objects are str subclasses
    if type(value) is not str:  # a parsed header object: immutable, worth keeping
        with _folded_lock:
            if len(_folded) >= _FOLD_CACHE_SIZE:
                _folded.clear()
            _folded[key] = (value, folded)
    return folded


# --- a message prepared for a transport ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """A message turned into bytes once (and signed), with its envelope sender."""

    sender: str
    data: bytes
    message_id: str | None
    crlf: bool = False  # every line already ends in CRLF (the generator's output)


@dataclasses.dataclass(frozen=True)
class Enveloped:
    """A message with its own envelope sender (MAIL FROM), its bytes untouched.

    VERP: each recipient's message goes out from ``bounces+<signed ledger row>@domain``,
    so a bounce that quotes nothing of ours still names the row it answers; the
    headers (From, Sender, Return-Path) and every byte of the message stay as they are.
    """

    message: EmailMessage | bytes
    sender: str


#: What a transport sends: a built message, one already in wire form (RFC 5322 bytes), or either with its envelope.
Sendable = EmailMessage | bytes | Enveloped


def prepare(message: Sendable, signer: Signer | None = None, envelope_from: str | None = None) -> Outgoing:
    """Serialise `message` once (CRLF, SMTP policy), DKIM-sign it if asked, find its envelope sender.

    The envelope sender is an `Enveloped` message's own, else `envelope_from`,
    else the message's Sender or From address.
    """
    headers: Message
    if isinstance(message, Enveloped):
        envelope_from, message = message.sender, message.message
    if isinstance(message, bytes):
        data, crlf = message, False
        end = min((i for i in (message.find(b"\r\n\r\n"), message.find(b"\n\n")) if i >= 0), default=len(message))
        headers = BytesHeaderParser(policy=compat32).parsebytes(message[:end])
    else:
        data, crlf, headers = _serialise(message), True, message
    sender = envelope_from or email.utils.parseaddr(str(headers.get("Sender") or headers.get("From") or ""))[1]
    if not sender or "@" not in sender:
        raise ValueError("the message has no From address to send it from")
    if signer is not None:
        data = signer(data)
    message_id = headers.get("Message-ID")
    return Outgoing(sender, data, str(message_id).strip() if message_id else None, crlf)


def _serialise(message: EmailMessage) -> bytes:
    try:
        return message_bytes(message)
    except UnicodeEncodeError:  # an address that only UTF-8 can spell: needs a server with SMTPUTF8
        return message.as_bytes(policy=SMTPUTF8)


_ANY_EOL_BYTES = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def smtp_payload(data: bytes, *, crlf: bool = False) -> bytes:
    """`data` as sent after DATA: CRLF lines, leading dots doubled, ended by ``CRLF.CRLF``.

    `crlf` says the line ends are known to be CRLF already (skips checking them).
    """
    if not crlf:
        pairs = data.count(b"\r\n")
        if data.count(b"\n") != pairs or data.count(b"\r") != pairs:
            data = _ANY_EOL_BYTES.sub(b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
