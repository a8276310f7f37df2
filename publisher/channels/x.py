"""X (Twitter) through tweepy: threads, images with alt text, honest outcomes.

X has no idempotency key, so a create whose answer was lost (a timeout or a
reset after the request went out, or a 5xx: X may have stored the post before
failing) is reported as `unknown` and never retried here. Only what cannot
have posted anything is retryable: a refused connection, a 429, a media
upload (an unused upload is harmless; those are retried at once, twice).

tweepy's `Client` always talks to https://api.twitter.com; `HostRedirect`, a
transport adapter mounted on its public `session`, sends each request to the
configured `api_url` instead and signs it again for the URL it really goes to.
"""

from __future__ import annotations

import base64
import io
import logging
import mimetypes
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import tweepy
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError

from publisher.channels.loopback import is_loopback_url
from publisher.channels.social import (
    AuthFailed,
    OutboxChannel,
    Published,
    SocialChannel,
    Stop,
    credentials,
    image_bytes,
    post_parts,
)
from publisher.errors import ChannelError
from publisher.render.social import Post, PostImage
from publisher.site.config import Site

API_HOST = "api.twitter.com"  # fixed in tweepy.Client.request
UPLOAD_HOST = "upload.twitter.com"  # tweepy.API's v1.1 media host
STATUS_URL = "https://x.com/i/web/status/{}"
MAX_IMAGES = 4
DUPLICATE = "duplicate content"

MediaRoute = Literal["v2", "v1.1"]

# oauthlib and requests-oauthlib log the consumer key and access token at DEBUG
# (the secrets they mask): keep those records out of every log.
SIGNING_LOGGERS = ("oauthlib.oauth1.rfc5849", "requests_oauthlib.oauth1_auth")


def _no_signing_details(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


for _name in SIGNING_LOGGERS:
    if _no_signing_details not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_no_signing_details)


class HostRedirect(HTTPAdapter):
    """Sends requests for X's fixed hosts to configured bases, re-signed; applies a default timeout."""

    def __init__(self, targets: Mapping[str, str], *, sign: Callable[[Any], Any] | None, timeout: float) -> None:
        super().__init__()
        self.targets = {
            host: base.rstrip("/") for host, base in targets.items() if base.rstrip("/") != f"https://{host}"
        }
        self.sign = sign
        self.timeout = timeout

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        parts = urlsplit(str(request.url))
        base = self.targets.get(parts.netloc)
        if base is not None:
            request.url = base + parts.path + (f"?{parts.query}" if parts.query else "")
            authorization = request.headers.get("Authorization", "")
            if isinstance(authorization, bytes):
                authorization = authorization.decode("latin-1")
            if self.sign is not None and authorization.startswith("OAuth "):
                del request.headers["Authorization"]  # signed for the old URL: sign again
                self.sign(request)
            if is_loopback_url(base):
                proxies = {}  # nothing for loopback goes through a proxy
        if timeout is None:
            timeout = self.timeout
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


class XChannel:
    """Posts to one X account. `credentials` as from `social.credentials("x", env)`."""

    network = "x"

    def __init__(
        self,
        api_url: str,
        upload_url: str | None,
        credentials: Mapping[str, str],
        media_route: MediaRoute = "v2",
        timeout: float = 30.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        media_retries: int = 2,
        backoff: float = 1.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.upload_url = (upload_url or f"https://{UPLOAD_HOST}").rstrip("/")
        self.media_route = media_route
        self.timeout = timeout
        self.sleep = sleep
        self.media_retries = media_retries
        self.backoff = backoff
        keys = (
            credentials["api_key"],
            credentials["api_secret"],
            credentials["access_token"],
            credentials["access_secret"],
        )
        self._sign = tweepy.OAuth1UserHandler(*keys).apply_auth()
        self.client = tweepy.Client(
            consumer_key=keys[0],
            consumer_secret=keys[1],
            access_token=keys[2],
            access_token_secret=keys[3],
            return_type=requests.Response,
            wait_on_rate_limit=False,
        )
        self.client.session.mount("https://", HostRedirect({API_HOST: self.api_url}, sign=self._sign, timeout=timeout))
        self.api = tweepy.API(tweepy.OAuth1UserHandler(*keys), timeout=timeout, retry_count=0)
        targets = {API_HOST: self.api_url, UPLOAD_HOST: self.upload_url}
        self.api.session.mount("https://", HostRedirect(targets, sign=self._sign, timeout=timeout))

    def __repr__(self) -> str:  # never shows the credentials
        return f"XChannel({self.api_url!r}, media_route={self.media_route!r})"

    def publish(self, post: Post, *, key: str, media_root: Path) -> Published:
        """Post `post` (and its thread); `key` is unused: X has no idempotency key."""
        try:
            media_ids = [self._upload(image, media_root) for image in post.images[:MAX_IMAGES]]
        except Stop as stop:
            return stop.published
        except AuthFailed:
            raise
        except ChannelError as error:
            return Published("failed", message=str(error), retryable=not error.permanent)
        return self._post_thread(post_parts(post), media_ids)

    # the posts ------------------------------------------------------------------

    def _post_thread(self, texts: tuple[str, ...], media_ids: list[str]) -> Published:
        ids: list[str] = []
        remaining: int | None = None
        for index, text in enumerate(texts):
            try:
                response = self.client.create_tweet(
                    text=text,
                    media_ids=media_ids if index == 0 and media_ids else None,
                    in_reply_to_tweet_id=ids[-1] if ids else None,
                    user_auth=True,
                )
                tweet_id = str(response.json()["data"]["id"])
            except (tweepy.TweepyException, requests.RequestException, ValueError, KeyError, TypeError) as error:
                return _create_failed(error, ids, len(texts))
            ids.append(tweet_id)
            remaining = _number(response.headers.get("x-rate-limit-remaining"))
        return Published("posted", ids=tuple(ids), url=STATUS_URL.format(ids[0]), remaining=remaining)

    # the images -----------------------------------------------------------------

    def _upload(self, image: PostImage, media_root: Path) -> str:
        data = image_bytes(image.url, image.path, media_root, self.timeout)
        name, _ = _file_name(image)
        if self.media_route == "v1.1":
            media = self._retrying(lambda: self.api.media_upload(name, file=io.BytesIO(data)))
            media_id = str(media.media_id_string)
            if image.alt:
                self._retrying(lambda: self.api.create_media_metadata(media_id, image.alt))
            return media_id
        # The contract, from X's official SDK generated from its OpenAPI spec (PyPI `xdk` 0.10.6,
        # xdk/media/client.py: `upload` and `create_metadata`; bodies in xdk/schemas.py:
        # MediaUploadRequest, CreateMediaMetadataRequest): one-shot `POST /2/media/upload` with a JSON
        # body {"media": <base64>, "media_category": "tweet_image"}, then `POST /2/media/metadata`
        # with {"id": <media id>, "metadata": {"alt_text": {"text": ...}}}. There is no
        # /2/media/metadata/create (the path our NOTES once gave). A JSON body is not part of the
        # OAuth 1.0a signature, as in the SDK.
        upload = {"media": base64.b64encode(data).decode("ascii"), "media_category": "tweet_image"}
        answer = self._retrying(lambda: self._v2("/2/media/upload", json=upload))
        media_id = str(answer["data"]["id"])
        if image.alt:
            alt = {"id": media_id, "metadata": {"alt_text": {"text": image.alt}}}
            self._retrying(lambda: self._v2("/2/media/metadata", json=alt))
        return media_id

    def _v2(self, path: str, **body: Any) -> Any:
        """POST to X's v2 media API with tweepy's session and OAuth 1.0a signing."""
        response = self.client.session.post(self.api_url + path, auth=self._sign, timeout=self.timeout, **body)
        status = response.status_code
        if status == 429:
            raise tweepy.TooManyRequests(response, reset_time=_number(response.headers.get("x-rate-limit-reset")))
        if status >= 500:
            raise tweepy.TwitterServerError(response)
        if not 200 <= status < 300:
            error = {400: tweepy.BadRequest, 401: tweepy.Unauthorized, 403: tweepy.Forbidden}.get(status)
            raise (error or tweepy.HTTPException)(response)
        return response.json() if response.content else {}

    def _retrying(self, request: Callable[[], Any]) -> Any:
        """Run a media request; retry 5xx and network errors (safe: nothing is posted yet)."""
        for attempt in range(self.media_retries + 1):
            try:
                return request()
            except (tweepy.TweepyException, requests.RequestException, ValueError, KeyError) as error:
                outcome = _media_failed(error)
                if outcome is not None:
                    raise Stop(outcome) from error
                if attempt == self.media_retries:
                    message = f"X: the image upload failed {attempt + 1} times: {_words(error)}"
                    raise Stop(Published("failed", message=message, retryable=True)) from error
                self.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


def _create_failed(error: Exception, ids: list[str], total: int) -> Published:
    """The outcome of a create that raised, after `ids` were posted."""
    done = tuple(ids)
    where = f" (part {len(ids) + 1} of {total}; posted before it: {', '.join(ids)})" if ids else ""
    words = _words(error) + where
    if isinstance(error, tweepy.Unauthorized):
        raise AuthFailed(f"X refused the credentials: {_words(error)}", permanent=True)
    if isinstance(error, tweepy.TooManyRequests):
        return Published("rate_limited", done, message=words, retry_at=_reset(error), retryable=not ids)
    if isinstance(error, tweepy.Forbidden) and not ids and _is_duplicate(error):
        return Published("duplicate", message=_words(error))
    if isinstance(error, tweepy.TwitterServerError):
        return Published("unknown", done, message=f"X failed while creating the post, it may exist: {words}")
    if isinstance(error, tweepy.HTTPException):
        return Published("failed", done, message=words)
    if isinstance(error, requests.RequestException) and not _was_sent(error):
        return Published("failed", done, message=f"X could not be reached: {words}", retryable=not ids)
    return Published("unknown", done, message=f"X did not answer once the post was sent, it may exist: {words}")


def _media_failed(error: Exception) -> Published | None:
    """The outcome of a failed media request, or None when it is worth retrying."""
    if isinstance(error, tweepy.Unauthorized):
        raise AuthFailed(f"X refused the credentials: {_words(error)}", permanent=True)
    if isinstance(error, tweepy.TooManyRequests):
        return Published("rate_limited", message=_words(error), retry_at=_reset(error), retryable=True)
    if isinstance(error, tweepy.TwitterServerError):
        return None
    if isinstance(error, tweepy.HTTPException | ValueError | KeyError):
        return Published("failed", message=f"X refused the image: {_words(error)}")
    return None  # the network: nothing was posted, try again


def _was_sent(error: Exception) -> bool:
    """False only when the connection was never made (so X cannot have received the request)."""
    if isinstance(error, requests.ConnectTimeout):
        return False
    if isinstance(error, requests.ConnectionError):
        reason = error.args[0] if error.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return not isinstance(reason, ConnectTimeoutError)  # NewConnectionError is one of these
    return True


def _is_duplicate(error: tweepy.HTTPException) -> bool:
    return any(DUPLICATE in str(message).lower() for message in error.api_messages) or DUPLICATE in str(error)


def _words(error: Exception) -> str:
    """X's own words about `error`, on one line."""
    if isinstance(error, tweepy.HTTPException) and error.api_messages:
        status = getattr(error.response, "status_code", "")
        return f"{status} {'; '.join(str(m) for m in error.api_messages)}".strip()
    return " ".join(str(error).split()) or type(error).__name__


def _reset(error: tweepy.TooManyRequests) -> datetime | None:
    reset = error.reset_time
    if reset is None:
        reset = _number(error.response.headers.get("x-rate-limit-reset"))
    return datetime.fromtimestamp(reset, UTC) if reset is not None else None


def _number(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _file_name(image: PostImage) -> tuple[str, str]:
    """A file name with an extension (tweepy's v1.1 upload needs one) and the MIME type."""
    name = image.path.name if image.path is not None else PurePosixPath(urlsplit(image.url).path).name
    mime = mimetypes.guess_type(name)[0]
    if mime is None or not mime.startswith("image/"):
        return f"{name or 'image'}.jpg", "image/jpeg"
    return name, mime


def open_x(site: Site, *, timeout: float = 30.0) -> SocialChannel:
    """The site's X channel, or its outbox when the credentials are not all set."""
    keys = credentials("x", site.env)
    if keys is None:
        return OutboxChannel("x", site.root / "outbox")
    settings = site.settings.x
    return XChannel(settings.api_url, settings.upload_url, keys, settings.media_route, timeout)
