"""Signed, URL-safe tokens: `base64url(payload).base64url(HMAC-SHA256)`, one per purpose.

The purpose is part of what is signed, so a token made for one use (say,
unsubscribing) is never accepted for another (confirming a subscription).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from publisher.site.config import Site

SIGNATURE_CHARS = 32  # 192 bits of the HMAC: far past guessing
SECRET_ENV = "PUBLISHER_SECRET"
OUTBOX_SECRET = "outbox-only: not a secret; set PUBLISHER_SECRET before sending for real"


def link_secret(site: Site, *, outbox: bool | None = None) -> str | None:
    """The secret that signs the links a subscriber follows (unsubscribe, confirm): ``PUBLISHER_SECRET``.

    Without it, mail that only goes into the local outbox (a ``maildir:`` email
    URL; `outbox` says so instead when the caller holds the channel) is signed
    with `OUTBOX_SECRET`, so a trial run's links work; mail that really goes
    out gets None, and sending refuses to start. One function for the email
    dispatch that signs and the web side that checks, reading only the
    environment and the email URL's scheme: checking a link never needs the
    SMTP login or a DKIM key, and links already mailed stay valid.
    """
    secret = site.secret(SECRET_ENV)
    if secret:
        return secret
    if outbox is None:
        outbox = site.email_url.strip().lower().startswith("maildir:")
    return OUTBOX_SECRET if outbox else None


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    if not text or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, purpose: bytes, payload: bytes) -> str:
    if not secret:
        raise ValueError("the signing secret (PUBLISHER_SECRET) is empty")
    digest = hmac.new(secret.encode("utf-8"), purpose + b"\x00" + payload, hashlib.sha256).digest()
    return b64(digest)[:SIGNATURE_CHARS]


def sign(secret: str, purpose: bytes, payload: bytes) -> str:
    """A token carrying `payload`, signed with `secret` for `purpose`."""
    return f"{b64(payload)}.{_signature(secret, purpose, payload)}"


def signed_payload(secret: str, purpose: bytes, token: str) -> bytes | None:
    """The payload of `token` if `secret` signed it for `purpose`; None otherwise (never raises)."""
    encoded, dot, signature = token.partition(".")
    if not dot or len(signature) != SIGNATURE_CHARS:
        return None
    try:
        payload = unb64(encoded)
        if b64(payload) != encoded:  # one spelling per token: no padding or trailing-bit variants
            return None
        expected = _signature(secret, purpose, payload)
    except (ValueError, binascii.Error):
        return None
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        return None
    return payload
