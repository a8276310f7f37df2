"""One-click unsubscribe (RFC 8058): signed tokens, their URL and the `List-Unsubscribe` headers.

A token is opaque to the reader and cannot be forged without the site's secret
(``PUBLISHER_SECRET``), yet carries what the web side needs to act on it::

    base64url(email "\\n" list) "." base64url(HMAC-SHA256(secret, purpose + payload))[:32]

The payload is readable by anyone who decodes it (it is the subscriber's own
address, in a link mailed to that address); the signature is what is checked.
"""

from __future__ import annotations

import urllib.parse

from publisher.audience.tokens import sign, signed_payload

ONE_CLICK = "List-Unsubscribe=One-Click"
_PURPOSE = b"publisher-unsubscribe"
_SEPARATOR = "\n"


def make_token(secret: str, email: str, list_name: str) -> str:
    """A URL-safe token that proves `email` may leave `list_name`.

    >>> token = make_token("s3cret", "ana@example.org", "news")
    >>> verify_token("s3cret", token)
    ('ana@example.org', 'news')
    """
    if not email or not list_name:
        raise ValueError("an unsubscribe token needs an email address and a list name")
    if _SEPARATOR in email or _SEPARATOR in list_name or "\r" in email or "\r" in list_name:
        raise ValueError("an email address or list name must not contain a line break")
    payload = f"{email}{_SEPARATOR}{list_name}".encode()
    return sign(secret, _PURPOSE, payload)


def verify_token(secret: str, token: str) -> tuple[str, str] | None:
    """``(email, list)`` if `token` was made with `secret`, else None (never raises on a bad token)."""
    payload = signed_payload(secret, _PURPOSE, token)
    if payload is None:
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    email, sep, list_name = text.partition(_SEPARATOR)
    if not sep or not email or not list_name or _SEPARATOR in list_name:
        return None
    return email, list_name


def unsubscribe_url(site_url: str, token: str) -> str:
    """The one-click unsubscribe page for `token` on the site at `site_url`."""
    return f"{site_url.rstrip('/')}/unsubscribe/{token}"


def _checked(value: str, what: str) -> str:
    if any(c in value for c in "\r\n<>,") or any(c.isspace() for c in value):
        raise ValueError(f"{what} must not contain spaces, line breaks, '<', '>' or ',' (got {value!r})")
    return value


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """`List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058) for one message.

    `url` is the one-click URL (HTTPS in production); `mailto` an address (or a
    ``mailto:`` URI) that also unsubscribes, offered second for older clients.

    >>> list_unsubscribe_headers("https://x.org/unsubscribe/t", "leave@x.org")["List-Unsubscribe"]
    '<https://x.org/unsubscribe/t>, <mailto:leave@x.org?subject=unsubscribe>'
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("https", "http"):
        raise ValueError(f"the unsubscribe URL must be absolute http(s) (got {url!r})")
    uris = [f"<{_checked(url, 'the unsubscribe URL')}>"]
    if mailto:
        _checked(mailto, "the unsubscribe address")
        uri = mailto if mailto.lower().startswith("mailto:") else "mailto:" + urllib.parse.quote(mailto, safe="@+")
        if "?" not in uri:
            uri += "?subject=unsubscribe"
        uris.append(f"<{_checked(uri, 'the unsubscribe address')}>")
    return {"List-Unsubscribe": ", ".join(uris), "List-Unsubscribe-Post": ONE_CLICK}
