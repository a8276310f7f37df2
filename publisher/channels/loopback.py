"""Whether an address stays on this machine: one answer for the mail server and the API URLs.

A channel sends a password in the clear (plain ``smtp://``) or skips the proxy
(an API base URL of X) only when the far end is loopback: 127.0.0.0/8,
``::1``, or a name for them (``localhost``, ``localhost.localdomain``).
"""

from __future__ import annotations

import ipaddress
import urllib.parse

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback_host(host: str) -> bool:
    """True when `host` (a name or an IP address, without brackets) is this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when `url` is http(s) on a loopback host (see `is_loopback_host`)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return is_loopback_host(parts.hostname)


def https_problem(url: str) -> str | None:
    """Why `url` cannot be a social network's API base (an https URL; plain http only on loopback), or None.

    A token or an app password goes with every request: never in the clear over the network.
    """
    parts = urllib.parse.urlsplit(url)
    if (parts.scheme == "https" and parts.hostname) or is_loopback_url(url):
        return None
    return f"is not an https URL (got {url!r})"
