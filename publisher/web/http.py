"""HTTP plumbing for the web side: requests, responses, forms, files, origins, passwords, rate limits.

Standard library only (WSGI): nothing here knows about subscribers or the plan.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.parser
import email.policy
import hashlib
import hmac
import http
import threading
import urllib.parse
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from wsgiref.types import WSGIEnvironment

MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 20
# Our own pages: no script at all, inline style only, forms post back to us, never framed.
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Newsletter previews are email HTML (remote images, inline styles): only scripts and plugins are shut out.
PREVIEW_POLICY = "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"


class FormTooLarge(Exception):
    """A request body past MAX_FORM_BYTES: answered with 413."""


@dataclass
class Response:
    """What a handler answers; `App` turns it into a WSGI response."""

    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status_line(self) -> str:
        return f"{self.status} {http.HTTPStatus(self.status).phrase}"


class Request:
    """One WSGI request, with the path decoded as UTF-8 and the form read at most once."""

    def __init__(self, environ: WSGIEnvironment) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        raw = str(environ.get("PATH_INFO", "") or "/")
        # PEP 3333: PATH_INFO is bytes decoded as latin-1; paths here are UTF-8 (tags, ids).
        self.path = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        self.query = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", "")), max_num_fields=MAX_FORM_FIELDS)
        self._form: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        key = name.upper().replace("-", "_")
        value = self.environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}")
        return None if value in (None, "") else str(value)

    @property
    def client(self) -> str:
        """The address the request came from (a proxy's, behind one)."""
        return str(self.environ.get("REMOTE_ADDR") or "unknown")

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> dict[str, str]:
        """The posted fields (urlencoded or multipart/form-data), first value of each; FormTooLarge past the limit."""
        if self._form is None:
            self._form = parse_form(self.header("Content-Type") or "", self._body())
        return self._form

    def _body(self) -> bytes:
        try:
            length = int(self.header("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_FORM_BYTES:
            raise FormTooLarge(f"{length} bytes")
        if length <= 0:
            return b""
        data: bytes = self.environ["wsgi.input"].read(length)
        return data


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """Form fields from a body; RFC 8058 allows both encodings for the one-click POST."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return _multipart(content_type, body)
    text = body.decode("utf-8", "replace")
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # too many fields
        return {}
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    form: dict[str, str] = {}
    if not message.is_multipart():
        return form
    for part in list(message.iter_parts())[:MAX_FORM_FIELDS]:
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        value = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        form.setdefault(name, value)
    return form


# --- origins and passwords -----------------------------------------------------------------------


def _bare(netloc: str) -> str:
    netloc = netloc.strip().lower()
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc[: -len(default)]
    return netloc


def same_origin(request: Request, site_url: str) -> bool:
    """False when a browser says the POST comes from another site (Origin or Sec-Fetch-Site).

    A request without those headers (a mail provider's server, curl) passes:
    the forms are public and the tokens, not the origin, are what authorise.
    """
    if (request.header("Sec-Fetch-Site") or "").lower() == "cross-site":
        return False
    origin = request.header("Origin")
    if origin is None:
        return True
    if origin.strip().lower() == "null":
        return False
    netloc = _bare(urllib.parse.urlsplit(origin.strip()).netloc)
    allowed = {_bare(request.header("Host") or ""), _bare(urllib.parse.urlsplit(site_url).netloc)}
    return bool(netloc) and netloc in allowed


def basic_password(authorization: str | None) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header (any user name), or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon else None


def password_matches(given: str, expected: str) -> bool:
    """Constant time, whatever the lengths (both are hashed first)."""
    left = hashlib.sha256(given.encode("utf-8")).digest()
    right = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(left, right)


# --- files ---------------------------------------------------------------------------------------


def inside(folder: Path, relative: str) -> Path | None:
    """The file `relative` (slash-separated) under `folder`, or None if it is not a file there.

    Refuses ``..``, ``.``, empty parts, backslashes, NUL, and symbolic links that lead outside.
    """
    parts = relative.split("/")
    if any(part in ("", ".", "..") or "\\" in part or "\x00" in part for part in parts):
        return None
    try:
        base = folder.resolve(strict=True)
        target = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def _matches(if_none_match: str, etag: str) -> bool:
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def _not_modified_since(if_modified_since: str, modified: dt.datetime) -> bool:
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return modified.replace(microsecond=0) <= since


def file_response(request: Request, path: Path, content_type: str, *, cache: str, policy: str | None) -> Response:
    """A built file with a strong ETag (its content's digest) and Last-Modified; 304 when the client has it."""
    content = path.read_bytes()
    mtime = path.stat().st_mtime
    etag = '"' + hashlib.blake2b(content, digest_size=16).hexdigest() + '"'
    headers = [("ETag", etag), ("Last-Modified", formatdate(mtime, usegmt=True)), ("Cache-Control", cache)]
    headers.append(("X-Content-Type-Options", "nosniff"))
    if policy:
        headers.append(("Content-Security-Policy", policy))
    if_none_match = request.header("If-None-Match")
    if if_none_match is not None:
        fresh = _matches(if_none_match, etag)
    else:
        since = request.header("If-Modified-Since")
        fresh = since is not None and _not_modified_since(since, dt.datetime.fromtimestamp(mtime, dt.UTC))
    if fresh:
        return Response(304, b"", content_type, headers)
    return Response(200, content, content_type, headers)


# --- rate limits ---------------------------------------------------------------------------------


class RateLimiter:
    """At most `limit` hits per key within `window`, in memory (one process); the clock is passed in.

    Keeps at most `max_keys` keys, forgetting the least recently seen first.
    """

    def __init__(self, limit: int, window: dt.timedelta, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[dt.datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, now: dt.datetime) -> bool:
        """Count a hit for `key` and say whether it is within the limit (a refused hit is not counted)."""
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            allowed = len(hits) < self.limit
            if allowed:
                hits.append(now)
            self._hits[key] = hits
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            return allowed

    def retry_after(self, key: str, now: dt.datetime) -> int:
        """Seconds until `key` may try again (0 when it may now)."""
        with self._lock:
            hits = self._hits.get(key)
            if not hits or len(hits) < self.limit:
                return 0
            return max(0, int((hits[0] + self.window - now).total_seconds()) + 1)
