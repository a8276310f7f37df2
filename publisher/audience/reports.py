"""Reading what comes back to the sender: delivery status notifications and abuse reports.

RFC 3464 DSNs (a ``multipart/report`` whose ``message/delivery-status`` part
gives, per recipient, ``Final-Recipient``, ``Action`` and ``Status``) and RFC
5965 abuse reports (``message/feedback-report``) are read with the standard
`email` package; the many bounces that follow no standard (old Exim, qmail,
Microsoft's older formats, ...) go through GNU Mailman's detectors in
`flufl.bounce`. Each report names the message it answers by its Message-ID (in
the returned headers, or anywhere in a non-standard bounce's text), and the
envelope recipient of the bounce may be a VERP address: `audience.bounces`
matches either to the ledger. Nothing here touches the store.

`read` answers None for a message that is neither (an ordinary letter in the
same mailbox): it is left where it is.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

__all__ = ["Notice", "Report", "kind_of", "read"]

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^<>\s]+@[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")
_VERP_HEADERS = ("Delivered-To", "X-Original-To", "To", "Envelope-To", "X-Envelope-To")


@dataclass(frozen=True, slots=True)
class Notice:
    """One recipient's part of a report: a bounce (hard, soft) or a complaint."""

    kind: str  # "hard", "soft" or "complaint"
    recipient: str | None  # as the report names it (never trusted alone)
    status: str  # 5.1.1, 4.2.2, or the feedback type (abuse, fraud, ...)


@dataclass(frozen=True, slots=True)
class Report:
    """A DSN or abuse report: what it says, and what names the message it answers."""

    notices: tuple[Notice, ...]
    message_ids: tuple[str, ...]  # Message-IDs of the returned message, ours among them if it was ours
    to: tuple[str, ...]  # where the report was delivered (a VERP address, when VERP is on)
    report_id: str  # the report's own Message-ID, or a digest of it: the same report counts once


def kind_of(action: str, status: str) -> str | None:
    """A DSN recipient's kind: hard (5.x.x failed), soft (4.x.x, or delayed), or None (delivered, relayed)."""
    action = action.strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return None
    found = _STATUS.search(status)
    klass = found.group(1) if found else ""
    if action == "delayed" or klass == "4":
        return "soft"
    if action == "failed" or klass == "5":
        return "hard"
    return None


def _fields(part: Message) -> list[Message]:
    """The header blocks of a delivery-status or feedback-report part (per-message first)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses message/delivery-status as a list of blocks
        return [block for block in payload if isinstance(block, Message)]
    text = payload if isinstance(payload, str) else ""
    return [email.message_from_string(block.strip() + "\n") for block in re.split(r"\r?\n\s*\r?\n", text) if block]


def _address(value: str | None) -> str | None:
    """The address of `rfc822; ana@example.org` (any address type; None when empty)."""
    if not value:
        return None
    address = str(value).partition(";")[2].strip() or str(value).strip()
    address = address.strip("<>").strip()
    return address or None


def _dsn(part: Message) -> list[Notice]:
    notices = []
    for block in _fields(part)[1:] or _fields(part):
        recipient = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        kind = kind_of(str(block.get("Action", "")), str(block.get("Status", "")))
        if recipient is not None and kind is not None:
            found = _STATUS.search(str(block.get("Status", "")))
            notices.append(Notice(kind, recipient, found.group(0) if found else str(block.get("Status", "")).strip()))
    return notices


def _arf(part: Message) -> list[Notice]:
    blocks = _fields(part)
    if not blocks:
        return []
    block = blocks[0]
    feedback_type = str(block.get("Feedback-Type", "abuse")).strip().lower() or "abuse"
    recipients = [_address(value) or str(value).strip() for value in block.get_all("Original-Rcpt-To", [])]
    return [Notice("complaint", recipient or None, feedback_type) for recipient in (recipients or [""])]


def _flufl(message: Message) -> list[Notice]:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over a broken message: it is simply not read as a bounce
        return []
    found = [Notice("hard", address.decode("utf-8", "replace"), "5.0.0") for address in sorted(permanent)]
    return found + [Notice("soft", address.decode("utf-8", "replace"), "4.0.0") for address in sorted(temporary)]


def read(data: bytes) -> Report | None:
    """The report in `data`, or None when it is neither a bounce nor an abuse report.

    A report that says nothing usable (no recipient with a failing status) comes
    back with no notices: it was a report, so it is set aside, and counted as
    unmatched.
    """
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    notices: list[Notice] | None = None
    if message.get_content_type() == "multipart/report":
        notices = []
        for part in message.walk():
            if part.get_content_type() == "message/delivery-status":
                notices += _dsn(part)
            elif part.get_content_type() == "message/feedback-report":
                notices += _arf(part)
    if notices is None:
        notices = _flufl(message)
        if not notices:
            return None
    body = data.split(b"\n\n", 1)[1] if b"\n\n" in data else data.split(b"\r\n\r\n", 1)[-1]
    ids = tuple(dict.fromkeys(match.decode("ascii", "replace") for match in _MESSAGE_ID.findall(body)))
    to = tuple(str(value) for name in _VERP_HEADERS for value in message.get_all(name, []))
    own = str(message.get("Message-ID", "")).strip()
    return Report(tuple(notices), ids, to, own or _digest(data))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
