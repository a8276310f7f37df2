"""The shared interface of the social channels (X, Mastodon, Bluesky) and the outbox.

A channel takes one rendered `Post` and answers with a `Published`: what happened,
in the network's own words, and whether a retry is safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from publisher.channels.loopback import https_problem
from publisher.errors import ChannelError, InvalidInput, Problem
from publisher.site.config import CONFIG_FILE, Site
from publisher.site.settings import key_line

if TYPE_CHECKING:  # rendering (Jinja, Markdown) is not imported to ask whether a network has credentials
    from publisher.render.social import Post

PostOutcome = Literal["posted", "unknown", "failed", "rate_limited", "duplicate"]

CREDENTIAL_NAMES: dict[str, dict[str, str]] = {
    "x": {
        "api_key": "PUBLISHER_X_API_KEY",
        "api_secret": "PUBLISHER_X_API_SECRET",
        "access_token": "PUBLISHER_X_ACCESS_TOKEN",
        "access_secret": "PUBLISHER_X_ACCESS_SECRET",
    },
    "mastodon": {"token": "PUBLISHER_MASTODON_TOKEN"},
    "bluesky": {
        "handle": "PUBLISHER_BLUESKY_HANDLE",
        "app_password": "PUBLISHER_BLUESKY_APP_PASSWORD",
    },
}


@dataclass(frozen=True)
class Published:
    """What became of one post on one network."""

    outcome: PostOutcome
    ids: tuple[str, ...] = ()  # one per thread part, in order
    url: str | None = None  # the first part's public URL
    message: str = ""  # the network's own words on failure
    retry_at: datetime | None = None  # for rate_limited
    retryable: bool = False  # a retry is safe (no double post possible)
    remaining: int | None = None  # requests left in the network's rate window, when it says


class AuthFailed(ChannelError):
    """The network refused the credentials: stops that channel, one message."""


class Stop(Exception):
    """Ends a publish early with its answer (raised and caught inside one channel)."""

    def __init__(self, published: Published) -> None:
        super().__init__(published.outcome)
        self.published = published


class SocialChannel(Protocol):
    """One social network, ready to publish."""

    network: str

    def publish(self, post: Post, *, key: str, media_root: Path) -> Published: ...


def credentials(network: str, env: Mapping[str, str]) -> dict[str, str] | None:
    """The network's credentials from `env`, or None when any is missing (→ outbox)."""
    names = CREDENTIAL_NAMES.get(network)
    if names is None:
        raise ValueError(f"unknown network {network!r}")
    found = {field: env.get(var, "").strip() for field, var in names.items()}
    if not all(found.values()):
        return None
    return found


def fetch_image(url: str, timeout: float, *, allow_private: bool = False) -> bytes:
    """The image at `url`, fetched within `remote_image`'s limits (no private address unless allowed)."""
    from publisher.channels.remote_image import FetchPolicy, fetch, image_format

    data = fetch(url, FetchPolicy(allow_private=allow_private, timeout=timeout)).data or b""
    image_format(data, url)
    return data


def image_bytes(url: str, path: Path | None, media_root: Path, timeout: float) -> bytes:
    """An image's bytes: from the site (`path`, relative to `media_root`) or fetched from `url`."""
    if path is not None:
        file = path if path.is_absolute() else media_root / path
        try:
            return file.read_bytes()
        except OSError as error:
            raise ChannelError(f"{file}: cannot read the image: {error.strerror}", permanent=True) from error
    return fetch_image(url, timeout)


def post_parts(post: Post) -> tuple[str, ...]:
    """The texts to publish, in order: the post, then its thread parts."""
    return (post.text, *post.thread)


class OutboxChannel:
    """Writes posts as JSON files for a person to publish by hand (no credentials)."""

    def __init__(self, network: str, folder: Path) -> None:
        self.network = network
        self.folder = folder

    def publish(self, post: Post, *, key: str, media_root: Path) -> Published:
        """Write `<folder>/posts/<network>/<key>.json`; the same key overwrites the same file."""
        target = self.folder / "posts" / self.network / f"{safe_name(key)}.json"
        content = {
            "network": self.network,
            "record": post.record_id,
            "language": post.language,
            "text": post.text,
            "thread": list(post.thread),
            "url": post.url,
            "images": [
                {"url": image.url, "alt": image.alt, "path": str(image.path) if image.path else None}
                for image in post.images
            ],
        }
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".json.partial")
            partial.write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            partial.replace(target)
        except OSError as error:
            raise ChannelError(f"{target}: cannot write the post: {error.strerror}") from error
        return Published("posted", ids=(key,), url=target.resolve().as_uri())


def safe_name(key: str) -> str:
    """`key` usable as a file name (no separators, no leading dots)."""
    cleaned = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in key).lstrip(".")
    return cleaned.replace(":", "_") or "post"


def refuse_plain_http(site: Site, section: str, key: str) -> None:
    """InvalidInput at `[section] key` of publisher.toml when that API URL is not https (see `https_problem`)."""
    url = getattr(getattr(site.settings, section), key)
    problem = https_problem(url)
    if problem is not None:
        text = (site.root / CONFIG_FILE).read_text(encoding="utf-8-sig")
        raise InvalidInput([Problem(CONFIG_FILE, key_line(text, [section, key]), f"{section}.{key}", problem)])
