"""Double opt-in: signed confirmation tokens that carry their own expiry.

The link in a confirmation email holds everything the web side needs to make
the person a subscriber once they confirm, and cannot be forged or stretched
past its expiry without the site's secret (``PUBLISHER_SECRET``)::

    base64url(JSON {"e": email, "l": list, "x": expiry, "n": name, "g": language})
    "." base64url(HMAC-SHA256(secret, purpose + payload))[:32]

The purpose differs from the unsubscribe tokens' (`publisher.unsubscribe`):
neither kind of token is ever accepted as the other.

>>> import datetime as dt
>>> now = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
>>> token = make_confirm_token("s3cret", "ana@example.org", "news", now + DEFAULT_LIFETIME)
>>> verify_confirm_token("s3cret", token, now).email
'ana@example.org'
>>> verify_confirm_token("s3cret", token, now + DEFAULT_LIFETIME) is None  # expired
True
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from publisher.audience.tokens import sign, signed_payload

DEFAULT_LIFETIME = dt.timedelta(days=3)
_PURPOSE = b"publisher-confirm"


@dataclass(frozen=True)
class Confirmation:
    """What a valid confirmation token says: who asked to join which list, until when."""

    email: str
    list_name: str
    expires: dt.datetime
    name: str | None = None
    language: str | None = None

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.expires


def make_confirm_token(
    secret: str,
    email: str,
    list_name: str,
    expires: dt.datetime,
    *,
    name: str | None = None,
    language: str | None = None,
) -> str:
    """A URL-safe token that lets `email` join `list_name` until `expires` (aware)."""
    if not email or not list_name:
        raise ValueError("a confirmation token needs an email address and a list name")
    if expires.tzinfo is None or expires.utcoffset() is None:
        raise ValueError(f"expires: needs a time zone (got {expires!r})")
    data: dict[str, Any] = {"e": email, "l": list_name, "x": int(expires.timestamp())}
    if name:
        data["n"] = name
    if language:
        data["g"] = language
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return sign(secret, _PURPOSE, payload)


def _fields(payload: bytes) -> Confirmation | None:
    data = json.loads(payload.decode("utf-8"))
    if not isinstance(data, dict):
        return None
    email, list_name, expiry = data.get("e"), data.get("l"), data.get("x")
    name, language = data.get("n"), data.get("g")
    if not (isinstance(email, str) and email and isinstance(list_name, str) and list_name):
        return None
    if not isinstance(expiry, int) or isinstance(expiry, bool):
        return None
    if not all(value is None or isinstance(value, str) for value in (name, language)):
        return None
    expires = dt.datetime.fromtimestamp(expiry, dt.UTC)
    return Confirmation(email, list_name, expires, name or None, language or None)


def read_confirm_token(secret: str, token: str) -> Confirmation | None:
    """What `token` says if it was made with `secret` (expired or not); None otherwise. Never raises."""
    payload = signed_payload(secret, _PURPOSE, token)
    if payload is None:
        return None
    try:
        return _fields(payload)
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        return None


def verify_confirm_token(secret: str, token: str, now: dt.datetime) -> Confirmation | None:
    """What `token` says if it was made with `secret` and has not expired at `now`; None otherwise."""
    confirmation = read_confirm_token(secret, token)
    if confirmation is None or confirmation.expired(now):
        return None
    return confirmation


def confirm_url(site_url: str, token: str) -> str:
    """The confirmation page for `token` on the site at `site_url`."""
    return f"{site_url.rstrip('/')}/confirm/{token}"
