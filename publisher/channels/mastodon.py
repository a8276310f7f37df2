"""Mastodon through Mastodon.py: the instance's own limits, alt text, language, safe retries.

Every status carries an idempotency key (`<dispatch key>-<part index>`), which
the server keeps for about an hour: a retry after a 5xx or a lost answer gives
back the status already made instead of a second one. So 5xx and network
errors are retried here, with backoff.

We read the instance endpoint ourselves (one GET, with a timeout) and hand its
version to Mastodon.py with `version_check_mode="created"`: the library then
never asks the instance itself (when that fails it recurses until
`RecursionError`, upstream #450), and sends media to `/api/v2/media`.
"""

from __future__ import annotations

import functools
import mimetypes
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import grapheme
import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from publisher.channels.social import (
    AuthFailed,
    OutboxChannel,
    Published,
    SocialChannel,
    Stop,
    credentials,
    image_bytes,
    post_parts,
    refuse_plain_http,
)
from publisher.errors import ChannelError
from publisher.render.social import Post, PostImage
from publisher.render.twitter_text_loader import load as load_twitter_text
from publisher.site.config import Site

Visibility = Literal["public", "unlisted", "private", "direct"]
DEFAULT_LIMITS = (500, 23)
MAX_IMAGES = 4
MENTION = re.compile(r"(?<![\w/])@(\w+)@[\w.-]+\w")
VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def instance_length(text: str, url_length: int = 23) -> int:
    """The instance's own count: graphemes; an http(s) URL counts `url_length`; a mention counts without its domain.

    Exact, for the check against this instance's limit before posting; `render.lengths.mastodon_length`
    is the render's bound, never less than this (code points, mentions in full).
    """
    pieces: list[str] = []
    last = 0
    for found in load_twitter_text().extract_urls_with_indices(text, extract_urls_without_protocol=False):
        start, end = found["indices"]
        pieces += [text[last:start], "x" * url_length]
        last = end
    pieces.append(text[last:])
    return int(grapheme.length(MENTION.sub(r"@\1", "".join(pieces))))


class MastodonChannel:
    """Posts to one account on one Mastodon instance. Use one channel per thread."""

    network = "mastodon"

    def __init__(
        self,
        instance: str,
        token: str,
        visibility: Visibility = "public",
        timeout: float = 30.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = 3,
        backoff: float = 1.0,
        media_polls: int = 10,
    ) -> None:
        self.instance = instance.rstrip("/")
        self.visibility = visibility
        self.timeout = timeout
        self.sleep = sleep
        self.retries = retries
        self.backoff = backoff
        self.media_polls = media_polls
        self._token = token
        self._info: Mapping[str, Any] | None = None
        self._api: Mastodon | None = None
        self._last: requests.Response | None = None
        self._session = requests.Session()
        self._session.hooks["response"].append(self._remember)

    def __repr__(self) -> str:  # never shows the token
        return f"MastodonChannel({self.instance!r}, visibility={self.visibility!r})"

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last = response

    # the instance ---------------------------------------------------------------

    def instance_info(self) -> Mapping[str, Any]:
        """The instance endpoint's answer (read once); ChannelError when it cannot be read."""
        if self._info is None:
            self._info = self._read_instance()
        return self._info

    def _read_instance(self) -> Mapping[str, Any]:
        url = f"{self.instance}/api/v2/instance"
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            response = self._session.get(url, headers=headers, timeout=self.timeout)
            if response.status_code == 404:  # before Mastodon 4.0
                response = self._session.get(f"{self.instance}/api/v1/instance", headers=headers, timeout=self.timeout)
            if not response.ok:
                raise ChannelError(f"cannot read {url}: {response.status_code} {response.reason}")
            info = response.json()
        except (requests.RequestException, ValueError) as error:
            raise ChannelError(f"cannot read {url}: {' '.join(str(error).split())}") from None
        if not isinstance(info, dict):
            raise ChannelError(f"cannot read {url}: the answer is not a JSON object")
        return info

    def limits(self) -> tuple[int, int]:
        """(max characters, characters counted per URL) of this instance; 500/23 when it does not say."""
        info = self.instance_info()
        statuses = (info.get("configuration") or {}).get("statuses") or {}
        max_chars = statuses.get("max_characters") or info.get("max_toot_chars") or DEFAULT_LIMITS[0]
        url_length = statuses.get("characters_reserved_per_url") or DEFAULT_LIMITS[1]
        return int(max_chars), int(url_length)

    def _client(self) -> Mastodon:
        if self._api is None:
            found = VERSION.search(str(self.instance_info().get("version", "")))
            version = ".".join(found.groups()) if found else "4.0.0"
            self._api = Mastodon(
                access_token=self._token,
                api_base_url=self.instance,
                request_timeout=self.timeout,
                ratelimit_method="throw",
                mastodon_version=version,
                version_check_mode="created",  # with the version given: no instance call, media to /api/v2
                session=self._session,
            )
        return self._api

    # publishing -----------------------------------------------------------------

    def publish(self, post: Post, *, key: str, media_root: Path) -> Published:
        """Post `post` and its thread; a part over the instance's limit fails the post, unsent."""
        max_chars, url_length = self.limits()
        texts = post_parts(post)
        for index, text in enumerate(texts):
            length = instance_length(text, url_length)
            if length > max_chars:
                where = f"part {index + 1} of the thread" if index else "the post"
                message = f"{where} is {length} characters, over {self.instance}'s limit of {max_chars}"
                return Published("failed", message=message)
        try:
            media_ids = [self._upload(image, media_root) for image in post.images[:MAX_IMAGES]]
            return self._post_thread(texts, media_ids, _language(post.language), key)
        except Stop as stop:
            return stop.published
        except AuthFailed:
            raise
        except ChannelError as error:
            return Published("failed", message=str(error), retryable=not error.permanent)
        except RecursionError:  # upstream #450, should the library ever ask the instance itself
            raise ChannelError(f"cannot read {self.instance}/api/v2/instance: Mastodon.py recursed") from None

    def _post_thread(self, texts: tuple[str, ...], media_ids: list[str], language: str, key: str) -> Published:
        api = self._client()
        ids: list[str] = []
        url: str | None = None
        for index, text in enumerate(texts):
            create = functools.partial(
                api.status_post,
                text,
                media_ids=media_ids if index == 0 and media_ids else None,
                language=language,
                visibility=self.visibility,
                in_reply_to_id=ids[-1] if ids else None,
                idempotency_key=f"{key}-{index}",
            )
            status = self._retrying(create, tuple(ids), creating=True)
            ids.append(str(status["id"]))
            url = url or status.get("url") or status.get("uri")
        return Published("posted", tuple(ids), url=url, remaining=self._remaining())

    def _upload(self, image: PostImage, media_root: Path) -> str:
        data = image_bytes(image.url, image.path, media_root, self.timeout)
        name = image.path.name if image.path is not None else PurePosixPath(urlsplit(image.url).path).name
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        api = self._client()
        upload = functools.partial(api.media_post, data, mime_type=mime, description=image.alt or None)
        media = self._retrying(upload, (), creating=False)
        for attempt in range(self.media_polls):
            if media.get("url") is not None:
                break
            self.sleep(min(self.backoff * 2**attempt, 5.0))
            media = self._retrying(functools.partial(api.media, media["id"]), (), creating=False)
        return str(media["id"])

    def _retrying(self, request: Callable[[], Any], done: tuple[str, ...], *, creating: bool) -> Any:
        """Run `request`; retry 5xx and network errors (safe: idempotency keys); map the rest."""
        last: MastodonError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return request()
            except MastodonRatelimitError as error:
                message = f"{self.instance}: rate limited ({error})"
                outcome = Published("rate_limited", done, message=message, retry_at=self._reset(), retryable=True)
                raise Stop(outcome) from error
            except (MastodonServerError, MastodonNetworkError) as error:
                last = error
            except MastodonAPIError as error:
                self._refuse(error, done)
            except MastodonError as error:
                raise Stop(Published("failed", done, message=f"{self.instance}: {_words(error)}")) from error
        tries = f"{self.retries + 1} tries"
        if creating and isinstance(last, MastodonNetworkError):
            message = f"{self.instance} did not answer after {tries}, the post may exist: {_words(last)}"
            raise Stop(Published("unknown", done, message=message, retryable=True))
        raise Stop(Published("failed", done, message=f"{self.instance} failed {tries}: {_words(last)}", retryable=True))

    def _refuse(self, error: MastodonAPIError, done: tuple[str, ...]) -> None:
        status = error.args[1] if len(error.args) > 1 else None
        if isinstance(error, MastodonUnauthorizedError) or status in (401, 403):
            raise AuthFailed(f"{self.instance} refused the token: {_words(error)}", permanent=True)
        raise Stop(Published("failed", done, message=f"{self.instance} refused the post: {_words(error)}"))

    def _reset(self) -> datetime | None:
        """When the rate limit resets, from the last answer's `X-RateLimit-Reset` (ISO time)."""
        value = self._last.headers.get("X-RateLimit-Reset") if self._last is not None else None
        if value:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                moment = None
            if moment is not None:
                return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        epoch = self._api.ratelimit_reset if self._api is not None else None
        return datetime.fromtimestamp(epoch, UTC) if epoch else None

    def _remaining(self) -> int | None:
        value = self._last.headers.get("X-RateLimit-Remaining") if self._last is not None else None
        return int(value) if value and value.isdigit() else None


def _language(tag: str) -> str:
    """The ISO 639 code Mastodon takes: the primary subtag of a BCP 47 tag ("pt-BR" → "pt")."""
    return tag.split("-", 1)[0].lower()


def _words(error: BaseException | None) -> str:
    """The server's own words about `error`, on one line."""
    if error is None:
        return "no answer"
    args = error.args
    if isinstance(error, MastodonAPIError) and len(args) >= 4:
        return f"{args[1]} {args[3] or args[2]}"
    return " ".join(str(error).split()) or type(error).__name__


def open_mastodon(site: Site, *, timeout: float = 30.0) -> SocialChannel:
    """The site's Mastodon channel, or its outbox when no token is set."""
    keys = credentials("mastodon", site.env)
    if keys is None:
        return OutboxChannel("mastodon", site.root / "outbox")
    refuse_plain_http(site, "mastodon", "instance")
    settings = site.settings.mastodon
    return MastodonChannel(settings.instance, keys["token"], settings.visibility, timeout)
