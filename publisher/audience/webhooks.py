"""Provider webhooks, checked and read without the network or the store: Amazon SES (through SNS) and Mailgun.

Each provider's request is first proved to be the provider's, then read as a
`reports.Report` that `bounces.apply` matches to the ledger like any DSN: by
the Message-ID our send carried (ours, one per dispatch and recipient), never
by the address the event names. A request that fails a check raises
`WebhookRefused` (the web side answers 403) before anything is read.

Amazon SNS (the contract: AWS, "Verifying the signatures of Amazon SNS
messages", https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
and its "... when using HTTP query-based requests" page; the same field lists
as botocore-era SDKs' validators, e.g. aws-php-sns-message-validator's
MessageValidator::getStringToSign): the string to sign is ``name\\nvalue\\n``
for each of these fields present, in this order:

- Notification: Message, MessageId, Subject (only when present), Timestamp, TopicArn, Type
- SubscriptionConfirmation, UnsubscribeConfirmation: Message, MessageId, SubscribeURL, Timestamp, Token,
  TopicArn, Type

``Signature`` is base64 of an RSA PKCS#1 v1.5 signature of that string with
SHA1 (``SignatureVersion`` 1) or SHA256 (2), by the key of the X.509
certificate at ``SigningCertURL``, which must be an https URL on
``sns.<region>.amazonaws.com`` (`SNS_URL`: a setting, so tests can point it at
a loopback server).

Amazon SES's notification (the SNS message's ``Message``, JSON; AWS, "Amazon
SNS notification contents for Amazon SES",
https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html):
``notificationType`` (``eventType`` under event publishing) is Bounce or
Complaint; ``bounce.bounceType`` Permanent (hard), Transient (soft) or
Undetermined (ignored); ``bounce.bouncedRecipients[].status``;
``complaint.complaintFeedbackType``. SES rewrites the Message-ID it sends
with, so ours is read from ``mail.commonHeaders.messageId`` and ``mail.headers``
(the headers as we gave them); ``mail.messageId`` is SES's own id.

Mailgun (Mailgun, "Securing Webhooks",
https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks,
and its "Webhooks" payload reference): the JSON body holds ``signature``
(``timestamp``, ``token``, ``signature`` = hex HMAC-SHA256 of timestamp +
token with the webhook signing key) and ``event-data`` (``event`` failed or
complained, ``severity`` permanent or temporary, ``delivery-status.code`` and
``enhanced-code``, ``message.headers.message-id`` without angle brackets,
``id``). A timestamp more than `MAILGUN_MAX_AGE` from our clock is stale, and
a token seen before is a replay (`Replays`): both refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from publisher.audience.reports import Notice, Report
from publisher.errors import WebhookRefused
from publisher.site.bounce_settings import SNS_URL

__all__ = [
    "MAILGUN_MAX_AGE",
    "SNS_MAX_AGE",
    "SNS_URL",
    "Replays",
    "mailgun_payload",
    "mailgun_report",
    "ses_report",
    "sns_certificate_url_allowed",
    "sns_message",
    "sns_string_to_sign",
    "sns_url_allowed",
    "verify_mailgun",
    "verify_sns",
]

SNS_MAX_AGE = dt.timedelta(hours=1)  # SNS retries an HTTP endpoint for far less under its default policy
MAILGUN_MAX_AGE = dt.timedelta(minutes=5)
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SIGNED_FIELDS = {
    "Notification": _NOTIFICATION_FIELDS,
    "SubscriptionConfirmation": _CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": _CONFIRMATION_FIELDS,
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        found = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused("the body is not JSON") from None
    if not isinstance(found, dict):
        raise WebhookRefused("the body is not a JSON object")
    return found


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _aware(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# --- Amazon SNS --------------------------------------------------------------------------------------


def sns_message(data: bytes) -> dict[str, str]:
    """The SNS message in a request body: a JSON object of strings, with a known ``Type``."""
    message = _json_object(data)
    kind = message.get("Type")
    if not isinstance(kind, str) or kind not in _SIGNED_FIELDS:
        raise WebhookRefused(f"not an SNS message type we take: {str(kind)[:40]!r}")
    if not all(isinstance(value, str) for value in message.values() if value is not None):
        raise WebhookRefused("an SNS message's fields are strings")
    return {key: value for key, value in message.items() if isinstance(value, str)}


def sns_string_to_sign(message: Mapping[str, str]) -> bytes:
    """The bytes SNS signed: ``name\\nvalue\\n`` per signed field present, in AWS's order for the type."""
    fields = _SIGNED_FIELDS.get(message.get("Type", ""))
    if fields is None:
        raise WebhookRefused("not an SNS message type we take")
    parts = []
    for name in fields:
        if name not in message:
            if name == "Subject":  # the only optional one
                continue
            raise WebhookRefused(f"the SNS message has no {name}")
        parts.append(f"{name}\n{message[name]}\n")
    return "".join(parts).encode("utf-8")


def sns_url_allowed(url: str, pattern: str = SNS_URL) -> bool:
    """Whether `url`'s scheme and host (and port) are SNS's: ``scheme://host`` must match `pattern` whole."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc or "@" in parts.netloc:
        return False
    return re.fullmatch(pattern, f"{parts.scheme}://{parts.netloc}".lower()) is not None


# SNS names its signing certificates so (AWS, "Verifying the signatures of Amazon SNS messages": the
# SigningCertURL of a genuine message); any other file on an SNS host is refused before it is fetched.
_SNS_CERTIFICATE_PATH = re.compile(r"/SimpleNotificationService-[0-9a-f]+\.pem")


def sns_certificate_url_allowed(url: str, pattern: str = SNS_URL) -> bool:
    """Whether `url` may be SNS's signing certificate: on an allowed host, named as SNS names them."""
    if not sns_url_allowed(url, pattern):
        return False
    return _SNS_CERTIFICATE_PATH.fullmatch(urllib.parse.urlsplit(url).path) is not None


def verify_sns(
    message: Mapping[str, str],
    certificate: bytes,
    *,
    topics: tuple[str, ...],
    now: dt.datetime,
) -> None:
    """Raise WebhookRefused unless `certificate` (PEM, from the message's SigningCertURL) signed `message`.

    Also refused: a topic that is not one of `topics` (AWS: "reject any
    message with an unexpected TopicArn") and a Timestamp more than
    `SNS_MAX_AGE` away from `now` (an old message played again).
    """
    if message.get("TopicArn") not in topics:
        raise WebhookRefused("the SNS message is from a topic we do not take")
    algorithm = _HASHES.get(message.get("SignatureVersion", ""))
    if algorithm is None:
        raise WebhookRefused("the SNS message's SignatureVersion is not 1 or 2")
    try:
        signature = base64.b64decode(message.get("Signature", ""), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused("the SNS signature is not base64") from None
    if not signature:
        raise WebhookRefused("the SNS message is not signed")
    sent = _aware(message.get("Timestamp", ""))
    if sent is None or abs(now - sent) > SNS_MAX_AGE:
        raise WebhookRefused("the SNS message's Timestamp is missing or too far from now")
    try:
        key = x509.load_pem_x509_certificate(certificate).public_key()
    except ValueError:
        raise WebhookRefused("the SNS signing certificate cannot be read") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused("the SNS signing certificate's key is not RSA")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise WebhookRefused("the SNS signature does not match") from None


def _message_ids(mail: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and isinstance(common.get("messageId"), str):
        found.append(common["messageId"])
    headers = mail.get("headers")
    for header in headers if isinstance(headers, list) else []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            found.append(str(header.get("value", "")))
    return tuple(dict.fromkeys(_bracketed(value) for value in found if value.strip()))


def _bracketed(message_id: str) -> str:
    return "<" + message_id.strip().strip("<>").strip() + ">"


def ses_report(message: Mapping[str, str]) -> Report | None:
    """The report an SES notification (an SNS Notification's Message) makes; None for any other event.

    Delivery, Send, Open, ... and an Undetermined bounce are not reports:
    None, and the request is answered 200 (SES would otherwise send it again).
    """
    try:
        body = json.loads(message.get("Message", ""))
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("mail"), dict):
        return None
    kind = body.get("notificationType") or body.get("eventType")
    notices: list[Notice] = []
    if kind == "Bounce" and isinstance(body.get("bounce"), dict):
        bounce = body["bounce"]
        severity = {"Permanent": "hard", "Transient": "soft"}.get(str(bounce.get("bounceType")))
        if severity is None:
            return None
        fallback = "5.0.0" if severity == "hard" else "4.0.0"
        for person in bounce.get("bouncedRecipients") or [{}]:
            person = person if isinstance(person, dict) else {}
            found = _STATUS.search(str(person.get("status", "")))
            notices.append(Notice(severity, person.get("emailAddress"), found.group(0) if found else fallback))
        report_id = str(bounce.get("feedbackId") or message.get("MessageId"))
    elif kind == "Complaint" and isinstance(body.get("complaint"), dict):
        complaint = body["complaint"]
        feedback_type = str(complaint.get("complaintFeedbackType") or "abuse").lower()
        notices.append(Notice("complaint", None, feedback_type))
        report_id = str(complaint.get("feedbackId") or message.get("MessageId"))
    else:
        return None
    return Report(tuple(notices), _message_ids(body["mail"]), (), report_id)


# --- Mailgun -----------------------------------------------------------------------------------------


class Replays:
    """Tokens (or message ids) seen within a window, so a request played again is refused.

    In memory, per `serve` process: each event is also kept once in the
    feedback table (its event key), so a replay to another process changes
    nothing either.
    """

    def __init__(self, window: dt.timedelta) -> None:
        self.window = window
        self._seen: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()

    def first(self, key: str, now: dt.datetime) -> bool:
        """True the first time `key` is seen within the window (and remember it); False for a replay."""
        with self._lock:
            for old in [k for k, at in self._seen.items() if now - at > self.window]:
                del self._seen[old]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def verify_mailgun(payload: Mapping[str, Any], signing_key: str, *, now: dt.datetime, replays: Replays) -> None:
    """Raise WebhookRefused unless `payload`'s signature is Mailgun's, fresh, and not seen before."""
    signature = payload.get("signature")
    if not isinstance(signature, dict):
        raise WebhookRefused("the Mailgun event is not signed")
    timestamp, token, given = (str(signature.get(name, "")) for name in ("timestamp", "token", "signature"))
    if not (timestamp.isdigit() and token and given):
        raise WebhookRefused("the Mailgun signature is incomplete")
    expected = hmac.new(signing_key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), given.lower()):
        raise WebhookRefused("the Mailgun signature does not match")
    sent = dt.datetime.fromtimestamp(int(timestamp[:12]), dt.UTC)
    if abs(now - sent) > MAILGUN_MAX_AGE:
        raise WebhookRefused("the Mailgun event's timestamp is stale")
    if not replays.first(token, now):
        raise WebhookRefused("the Mailgun token was used before")


def mailgun_payload(data: bytes) -> dict[str, Any]:
    """A Mailgun webhook body (JSON), as a dict."""
    return _json_object(data)


def mailgun_report(payload: Mapping[str, Any]) -> Report | None:
    """The report a Mailgun event makes: ``failed`` (permanent → hard, temporary → soft) or ``complained``."""
    event = payload.get("event-data")
    if not isinstance(event, dict):
        return None
    message_id = _object(_object(event.get("message")).get("headers")).get("message-id")
    ids = (_bracketed(message_id),) if isinstance(message_id, str) and message_id.strip() else ()
    recipient = event.get("recipient") if isinstance(event.get("recipient"), str) else None
    if event.get("event") == "failed":
        kind = {"permanent": "hard", "temporary": "soft"}.get(str(event.get("severity")))
        if kind is None:
            return None
        found = _STATUS.search(str(_object(event.get("delivery-status")).get("enhanced-code", "")))
        notice = Notice(kind, recipient, found.group(0) if found else ("5.0.0" if kind == "hard" else "4.0.0"))
    elif event.get("event") == "complained":
        notice = Notice("complaint", recipient, "abuse")
    else:
        return None
    return Report((notice,), ids, (), str(event.get("id") or (ids[0] if ids else "")))
