"""DKIM signing (dkimpy) of outgoing messages, after they are turned into bytes.

The key comes from the environment (``PUBLISHER_DKIM_KEY``, the PEM text) or
from a file named by ``[email] dkim_key`` (relative to the site folder). The
key's text never appears in an error message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from publisher.errors import InvalidInput, Problem
from publisher.site.config import CONFIG_FILE, Site

DKIM_KEY_ENV = "PUBLISHER_DKIM_KEY"

#: Signed when present; listed even when absent, so that none can be added later.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)

Signer = Callable[[bytes], bytes]


def dkim_sign(message_bytes: bytes, selector: str, domain: str, private_key_pem: bytes | str) -> bytes:
    """`message_bytes` with a ``DKIM-Signature`` header (rsa-sha256, relaxed/relaxed) in front."""
    key = private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
    header: bytes = dkim.sign(
        message_bytes,
        selector.encode("ascii"),
        domain.encode("ascii"),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[name.lower().encode("ascii") for name in SIGNED_HEADERS],
    )
    return header + message_bytes


def check_key(private_key_pem: bytes) -> None:
    """Raise ValueError when `private_key_pem` is not an RSA private key dkimpy can use."""
    try:
        parse_pem_private_key(private_key_pem)
    except (UnparsableKeyError, ValueError, IndexError) as exc:
        raise ValueError("is not a PEM RSA private key (PKCS#1 or PKCS#8)") from exc


def site_signer(site: Site) -> Signer | None:
    """The DKIM signer the site's settings ask for, or None when DKIM is not configured."""
    email = site.settings.email
    env_key = site.secret(DKIM_KEY_ENV)
    if not (email.dkim_selector or email.dkim_domain or email.dkim_key or env_key):
        return None
    problems = [
        Problem(CONFIG_FILE, 1, f"email.{name}", "is required to sign with DKIM")
        for name, value in (("dkim_selector", email.dkim_selector), ("dkim_domain", email.dkim_domain))
        if not value
    ]
    key: bytes | None = env_key.encode("ascii", "replace") if env_key else None
    where = DKIM_KEY_ENV
    if key is None and email.dkim_key:
        where = "email.dkim_key"
        try:
            key = site.path(email.dkim_key).read_bytes()
        except OSError as exc:
            problems.append(Problem(CONFIG_FILE, 1, where, f"cannot read the key file ({exc.strerror})"))
    elif key is None:
        problems.append(
            Problem(CONFIG_FILE, 1, "email.dkim_key", f"is required to sign with DKIM (or set {DKIM_KEY_ENV})")
        )
    if key is not None:
        try:
            check_key(key)
        except ValueError as exc:
            problems.append(Problem(CONFIG_FILE, 1, where, str(exc)))
    if problems:
        raise InvalidInput(problems)
    assert key is not None and email.dkim_selector and email.dkim_domain
    return partial(_sign, selector=email.dkim_selector, domain=email.dkim_domain, key=key)


def _sign(message_bytes: bytes, *, selector: str, domain: str, key: bytes) -> bytes:
    return dkim_sign(message_bytes, selector, domain, key)
