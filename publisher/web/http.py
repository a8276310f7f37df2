"""HTTP plumbing for the web side on Werkzeug: requests with bounded forms, built files, gzip, origins, passwords.

Werkzeug parses requests and forms (urlencoded and multipart, within the
limits below), routes, and answers conditional GETs; this module holds what is
ours: which files may be served, the security headers, when a response is
compressed, and what counts as our own origin. Nothing here knows about
subscribers or the plan.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request as _WerkzeugRequest
from werkzeug.wrappers import Response

__all__ = [
    "PAGE_POLICY",
    "PREVIEW_POLICY",
    "GzipCache",
    "Request",
    "Response",
    "admin_password",
    "file_response",
    "inside",
    "password_matches",
    "same_origin",
]

MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 20
# Our own pages: no script at all, inline style only, forms post back to us, never framed.
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Newsletter previews are email HTML (remote images, inline styles): only scripts and plugins are shut out.
PREVIEW_POLICY = "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
# Compressed when the client takes gzip: text worth compressing (a page, a feed, an issue).
COMPRESSIBLE = ("text/", "application/atom+xml", "application/rss+xml", "application/xml")
MIN_GZIP_BYTES = 512


class Request(_WerkzeugRequest):
    """A request whose body is bounded: past MAX_FORM_BYTES Werkzeug answers 413, past MAX_FORM_FIELDS 413."""

    max_content_length = MAX_FORM_BYTES
    max_form_memory_size = MAX_FORM_BYTES
    max_form_parts = MAX_FORM_FIELDS

    @property
    def client(self) -> str:
        """The address the request came from: the proxy's, unless it is one of `[web] trusted_proxies`."""
        return self.remote_addr or "unknown"

    def field(self, name: str) -> str:
        """The first value of a posted field, or ""."""
        return str(self.form.get(name, ""))


# --- origins and passwords -----------------------------------------------------------------------


def _bare(netloc: str) -> str:
    netloc = netloc.strip().lower()
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc[: -len(default)]
    return netloc


def same_origin(request: Request, site_url: str) -> bool:
    """False when a browser says the POST comes from another site (Origin or Sec-Fetch-Site).

    Chromium sends ``Origin: null`` for a form posted from a page with
    ``Referrer-Policy: no-referrer`` (ours), so a browser's
    ``Sec-Fetch-Site: same-origin`` is taken first; a bare ``null`` is refused.

    Our origin is the configured site URL only, never the request's ``Host``
    header: whoever sends the request chooses that one. A request without
    those headers (a mail provider's server, curl) passes: the forms are
    public and the tokens, not the origin, are what authorise.
    """
    fetch_site = (request.headers.get("Sec-Fetch-Site") or "").lower()
    if fetch_site == "cross-site":
        return False
    if fetch_site == "same-origin":  # the browser vouches (no page can set it); its Origin is "null" under no-referrer
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin.strip().lower() == "null":
        return False
    site = urllib.parse.urlsplit(site_url)
    given = urllib.parse.urlsplit(origin.strip())
    return bool(given.netloc) and (given.scheme.lower(), _bare(given.netloc)) == (site.scheme, _bare(site.netloc))


def admin_password(request: Request) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header (any user name), or None."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return None
    return auth.password


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
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def file_response(path: Path, content_type: str, *, cache: str, policy: str | None) -> Response:
    """A built file with a strong ETag (its content's digest) and Last-Modified; `App` answers 304 from them."""
    content = path.read_bytes()
    response = Response(content, content_type=content_type)
    response.set_etag(hashlib.blake2b(content, digest_size=16).hexdigest())
    response.last_modified = path.stat().st_mtime  # type: ignore[assignment]  # Werkzeug takes a timestamp
    response.headers["Cache-Control"] = cache
    if policy:
        response.headers["Content-Security-Policy"] = policy
    return response


class GzipCache:
    """gzip for responses the client accepts it for; the compressed bodies of files kept by ETag (a few)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def apply(self, request: Request, response: Response) -> None:
        """Compress `response` in place when it is text, long enough, and the client takes gzip.

        A compressed file gets its own strong ETag (``…-gz``): a cache must
        never answer an identity request with the gzip bytes or the reverse.
        """
        if response.status_code != 200 or response.direct_passthrough or "Content-Encoding" in response.headers:
            return
        if not (response.mimetype or "").startswith(COMPRESSIBLE):
            return
        response.vary.add("Accept-Encoding")
        if request.accept_encodings["gzip"] <= 0:  # 0: not named, or q=0
            return
        body = response.get_data()
        if len(body) < MIN_GZIP_BYTES:
            return
        etag, weak = response.get_etag()
        response.set_data(self._compressed(etag, body) if etag and not weak else gzip.compress(body, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
        if etag:
            response.set_etag(f"{etag}-gz", weak=bool(weak))

    def _compressed(self, etag: str, body: bytes) -> bytes:
        with self._lock:
            kept = self._kept.get(etag)
            if kept is not None:
                self._kept.move_to_end(etag)
                return kept
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        with self._lock:
            self._kept[etag] = packed
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return packed


def json_response(status: int, values: dict[str, object]) -> Response:
    """A small JSON answer that no cache keeps (webhooks, the health check)."""
    return Response(
        json.dumps(values), status, content_type="application/json", headers=[("Cache-Control", "no-store")]
    )


class Looks:
    """An answer made at most once every `every` seconds and shared meanwhile (/healthz's look at the database).

    `monotonic` (seconds) paces the looks; the tests pass their own.
    """

    def __init__(self, every: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.every, self.monotonic = every, monotonic
        self._lock = threading.Lock()  # the requests meanwhile wait for the one look, then share it
        self._last: tuple[float, int, dict[str, Any]] | None = None

    def answer(self, look: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            moment = self.monotonic()
            if self._last is None or moment - self._last[0] >= self.every:
                self._last = (moment, *look())
            return self._last[1], self._last[2]
