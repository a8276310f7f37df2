"""Images from anywhere, safely: a record's image given as an http(s) URL.

An organisation's images live on its own web server, so a post's image is
fetched from wherever it is, with limits: a timeout on each connection and
read and on the whole fetch, a size cap, a bounded number of redirects, and
the bytes really decoded as an image by Pillow. Every hop's host is resolved
here and the connection made to the very address that was checked (no second
lookup a rebinding DNS could answer differently): private, loopback,
link-local and other non-global addresses are refused unless the site allows
them (`[social] allow_private_images = true`, or `PUBLISHER_ALLOW_PRIVATE_IMAGES=1`;
tests do, as they only use 127.0.0.1).

A fetched image is kept in the site's `.publisher/images/`, keyed by its URL
with its ETag, so `build`/`check` fetch it once ahead of the post (and `check`
asks again with `If-None-Match`), and posting reads the copy.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import socket
import ssl
import time
import warnings
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from publisher.errors import ImageUnavailable
from publisher.render.social import Post
from publisher.site.config import Site

CACHE_FOLDER = Path(".publisher") / "images"
ALLOW_ENV = "PUBLISHER_ALLOW_PRIVATE_IMAGES"
REDIRECTS = (301, 302, 303, 307, 308)
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp"}


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of one fetch. `timeout` bounds each network step and, times three, the whole fetch."""

    allow_private: bool = False
    max_bytes: int = 16 * 1024 * 1024  # Mastodon's limit for an image; X and Bluesky take less, fit later
    max_redirects: int = 5
    timeout: float = 10.0


def site_policy(site: Site, timeout: float = 10.0) -> FetchPolicy:
    """The site's policy: private addresses only when its settings or its environment allow them."""
    flag = site.env.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")
    return FetchPolicy(allow_private=flag or site.settings.social.allow_private_images, timeout=timeout)


@dataclass(frozen=True)
class Fetched:
    """What a fetch brought: `data` is None when the server said the cached copy (`etag`) still holds."""

    data: bytes | None
    etag: str | None


def fetch(url: str, policy: FetchPolicy, *, etag: str | None = None) -> Fetched:
    """GET `url` within `policy`; raise ImageUnavailable (permanent when asking again cannot help)."""
    deadline = time.monotonic() + policy.timeout * 3
    current = url
    for _ in range(policy.max_redirects + 1):
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageUnavailable(f"{url}: {current} is not an http(s) address", permanent=True)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _checked_address(url, parts.hostname, port, policy)
        connection = _connection(parts.scheme, parts.hostname, port, address, policy.timeout)
        headers = {"User-Agent": "publisher", "Accept": "image/*"}
        if etag:
            headers["If-None-Match"] = etag
        try:
            connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers=headers)
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status in REDIRECTS and location:
                current = urljoin(current, location)
                continue
            if response.status == 304 and etag:
                return Fetched(None, etag)
            if response.status != 200:
                temporary = response.status >= 500 or response.status in (408, 429)
                raise ImageUnavailable(
                    f"{url}: the server answered {response.status} {response.reason}".rstrip(), permanent=not temporary
                )
            data = _read_capped(url, response, policy, deadline)
            return Fetched(data, response.getheader("ETag"))
        except (OSError, http.client.HTTPException) as error:
            raise ImageUnavailable(f"{url}: cannot fetch the image: {error or type(error).__name__}") from error
        finally:
            connection.close()
    raise ImageUnavailable(f"{url}: more than {policy.max_redirects} redirects", permanent=True)


def image_format(data: bytes, name: str) -> str:
    """The format Pillow finds when it decodes `data` in full; ImageUnavailable when it is no image."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as image:
                image.load()
                return image.format or "image"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageUnavailable(f"{name}: not an image ({error})", permanent=True) from error


def cached_image(root: Path, url: str, policy: FetchPolicy, *, revalidate: bool = False) -> Path:
    """The local copy of the image at `url` under `root/.publisher/images/`, fetched when missing.

    With `revalidate`, the server is asked again (with the copy's ETag); a
    permanent refusal removes the copy, so the image's state is what the server says now.
    """
    folder = root / CACHE_FOLDER
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    meta_file = folder / f"{key}.json"
    meta = _meta(meta_file)
    copy = folder / meta["file"] if meta and (folder / meta["file"]).is_file() else None
    if copy is not None and not revalidate:
        return copy
    try:
        fetched = fetch(url, policy, etag=meta.get("etag") if copy is not None and meta else None)
    except ImageUnavailable as error:
        if copy is not None and error.permanent:
            meta_file.unlink(missing_ok=True)
            copy.unlink(missing_ok=True)
        raise
    if fetched.data is None and copy is not None:
        return copy
    data = fetched.data or b""
    kind = image_format(data, url)
    target = folder / f"{key}{EXTENSIONS.get(kind, '.img')}"
    folder.mkdir(parents=True, exist_ok=True)
    _write(target, data)
    _write(meta_file, json.dumps({"url": url, "etag": fetched.etag, "file": target.name}).encode("utf-8"))
    return target


def with_images(post: Post, root: Path, policy: FetchPolicy) -> tuple[Post, list[str]]:
    """`post` with each remote image read from its local copy; the images that cannot be had are
    left out, and why, so the post still goes out (on Bluesky with its link card)."""
    kept, missing = [], []
    for image in post.images:
        if image.path is not None:
            kept.append(image)
            continue
        try:
            kept.append(replace(image, path=cached_image(root, image.url, policy)))
        except ImageUnavailable as error:
            missing.append(str(error))
    return replace(post, images=tuple(kept)), missing


def _checked_address(url: str, host: str, port: int, policy: FetchPolicy) -> str:
    """The address to connect to; every address the name has must be allowed (a mixed answer is refused)."""
    if _reserved_for_examples(host):
        raise ImageUnavailable(f"{url}: {host} is a name reserved for examples (RFC 2606); not fetched", permanent=True)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ImageUnavailable(f"{url}: cannot resolve {host}: {error}") from error
    addresses = [str(info[4][0]) for info in infos]
    if not policy.allow_private:
        for address in addresses:
            if not _is_public(address):
                raise ImageUnavailable(f"{url}: {host} is a private address ({address}); not fetched", permanent=True)
    return addresses[0]


def _reserved_for_examples(host: str) -> bool:
    """A name that holds no one's images (RFC 2606 §2–3, RFC 6761 §6.4–6.5): asked of no DNS server.

    The bundled example site's image lives at cepei.example.org; a build of it
    on a machine with no network must not wait on, or leak, a lookup of that name.
    """
    name = host.lower().rstrip(".")
    return name.endswith((".example", ".invalid")) or any(
        name == domain or name.endswith("." + domain) for domain in ("example.com", "example.net", "example.org")
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried in IPv6 is judged as itself: mapped (::ffff:a.b.c.d), 6to4 (2002::/16) and
        # NAT64's well-known prefix (64:ff9b::/96, RFC 6052), which reaches IPv4 on an IPv6-only network.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to an address checked beforehand, with the name kept for the Host header."""

    address = ""

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """As `_Pinned`, over TLS, the certificate checked for the name."""

    address = ""
    tls = ssl.create_default_context()

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def _connection(scheme: str, host: str, port: int, address: str, timeout: float) -> http.client.HTTPConnection:
    connection = _PinnedTLS(host, port, timeout=timeout) if scheme == "https" else _Pinned(host, port, timeout=timeout)
    connection.address = address
    return connection


def _read_capped(url: str, response: http.client.HTTPResponse, policy: FetchPolicy, deadline: float) -> bytes:
    length = response.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > policy.max_bytes:
        raise ImageUnavailable(f"{url}: {int(length):,} bytes, over the {policy.max_bytes:,}-byte cap", permanent=True)
    chunks, total = [], 0
    while chunk := response.read1(64 * 1024):
        total += len(chunk)
        if total > policy.max_bytes:
            raise ImageUnavailable(f"{url}: over the {policy.max_bytes:,}-byte cap", permanent=True)
        if time.monotonic() > deadline:
            raise ImageUnavailable(f"{url}: the fetch took over {policy.timeout * 3:g} seconds")
        chunks.append(chunk)
    return b"".join(chunks)


def _meta(file: Path) -> dict[str, str] | None:
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("file"), str) else None


def _write(target: Path, data: bytes) -> None:
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.replace(target)
