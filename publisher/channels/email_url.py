"""Where email goes, as a URL: ``smtp://``, ``smtp+starttls://``, ``smtps://`` or ``maildir:PATH``.

The password never lives in the URL: it comes from ``PUBLISHER_SMTP_PASSWORD``,
which the caller reads from the environment and passes in. Error messages
name the setting (``email.url``) and never show a password.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from publisher.channels.loopback import is_loopback_host
from publisher.errors import InvalidInput, Problem
from publisher.site.config import CONFIG_FILE

DEFAULT_URL = "maildir:outbox/mail"
PASSWORD_ENV = "PUBLISHER_SMTP_PASSWORD"
URL_ENV = "PUBLISHER_EMAIL_URL"

Kind = Literal["smtp", "smtp+starttls", "smtps", "maildir"]
DEFAULT_PORTS: dict[str, int] = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
_HINT = "use maildir:PATH, smtp://[user@]host:port, smtp+starttls://[user@]host:port or smtps://[user@]host:port"


class EmailUrlError(InvalidInput, ValueError):
    """A bad ``email.url`` (or ``PUBLISHER_EMAIL_URL``): shown by the CLI as ``source:line: email.url: …``."""

    def __init__(self, message: str, *, source: str = CONFIG_FILE, line: int = 1) -> None:
        super().__init__([Problem(source, line, "email.url", message)])


@dataclass(frozen=True)
class TransportConfig:
    """A parsed email URL. `password` is left out of ``repr`` and of `shown`."""

    kind: Kind
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    path: Path | None = None

    @property
    def is_smtp(self) -> bool:
        return self.kind != "maildir"

    @property
    def shown(self) -> str:
        """The URL as it can be printed: no password, ever."""
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        user = f"{urllib.parse.quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}://{user}{host}:{self.port}"

    def __str__(self) -> str:
        return self.shown


def parse_email_url(
    url: str,
    *,
    password: str | None = None,
    username: str | None = None,
    root: Path | None = None,
    source: str = CONFIG_FILE,
    line: int = 1,
) -> TransportConfig:
    """Parse an email URL; a relative Maildir path is taken from `root` (the site folder).

    `password` is the value of ``PUBLISHER_SMTP_PASSWORD`` (or None); `username`
    is ``[email] username``, used when the URL names no user.

    >>> parse_email_url("smtp+starttls://news@127.0.0.1:2587", password="pw").shown
    'smtp+starttls://news@127.0.0.1:2587'
    """

    def fail(message: str) -> EmailUrlError:
        return EmailUrlError(message, source=source, line=line)

    text = url.strip()
    if not text:
        raise fail(f"is empty ({_HINT})")
    if text.lower().startswith("maildir:"):
        return _maildir(text[len("maildir:") :], root, fail)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise fail(f"is not a valid URL ({_HINT})") from None
    if parts.password is not None:
        raise fail(f"must not hold a password: put it in {PASSWORD_ENV} instead")
    kind = parts.scheme.lower()
    if kind not in DEFAULT_PORTS:
        raise fail(f"has an unknown scheme {parts.scheme + ':' if parts.scheme else '(none)'} ({_HINT})")
    if not parts.hostname:
        raise fail(f"names no host (got {text!r}; {_HINT})")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise fail(f"takes no path, query or fragment (got {text!r})")
    user = urllib.parse.unquote(parts.username) if parts.username else username
    if user and not password:
        raise fail(f"names the user {user!r} but {PASSWORD_ENV} is not set")
    if password and not user:
        raise fail(f"{PASSWORD_ENV} is set but no user is named (write {kind}://USER@{parts.hostname}:PORT)")
    if user and kind == "smtp" and not is_loopback_host(parts.hostname):
        raise fail(f"smtp:// would send the password unencrypted to {parts.hostname}: use smtp+starttls:// or smtps://")
    return TransportConfig(
        kind=kind,  # type: ignore[arg-type]  # checked against DEFAULT_PORTS above
        host=parts.hostname,
        port=port or DEFAULT_PORTS[kind],
        username=user or None,
        password=password if user else None,
    )


def _maildir(rest: str, root: Path | None, fail: Callable[[str], EmailUrlError]) -> TransportConfig:
    if rest.startswith("//"):  # maildir:///var/mail/news, the URL spelling of an absolute path
        rest = rest[2:]
    if not rest.strip():
        raise fail(f"names no folder (write maildir:PATH, e.g. {DEFAULT_URL})")
    path = Path(rest)
    if not path.is_absolute() and root is not None:
        path = root / path
    return TransportConfig(kind="maildir", path=path)
