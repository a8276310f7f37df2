"""Bluesky through atproto: facets, link cards, images with alt text, threads, safe retries.

`BlueskyChannel(service, handle, app_password).publish(post, key=..., media_root=...)`
checks every part against Bluesky's rule (300 graphemes, 3,000 UTF-8 bytes; the
client checks only characters) before anything is sent, then logs in once per
channel, marks links, hashtags and resolved mentions as facets (UTF-8 byte
offsets), attaches up to 4 images with their alt text (re-encoded under the
1,000,000-byte blob limit) or, for a post with a URL and no image, a link card
built here, and posts the thread as replies (root and parent strong refs),
always with `langs=[post.language]`.

Idempotency: Bluesky has no idempotency key, but atproto lets the client name
the record. Each part is created with `com.atproto.repo.createRecord` at a
record key derived from the dispatch key and the part's position
(`record_key`, a valid TID), so one post can only ever exist at one AT URI. A
second create at that key is refused: the reference PDS answers 500
InternalServerError (bluesky-social/atproto#3718), others 409
RecordAlreadyExists. After any answer that may hide a write (5xx, 409, a
timeout or a dropped connection once the request was sent) the channel reads
the key back with `com.atproto.repo.getRecord`: if the record is there, that
part is posted. So retrying after the create was sent is safe, within one
`publish` (5xx and connection errors are retried up to `retries` times with
backoff) and across dispatches: running a half-posted thread again posts only
the missing parts. When the answer stays unknown the outcome is `unknown`,
`retryable=True`, never `posted`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from atproto_client import Client, models
from atproto_client.exceptions import (
    AtProtocolError,
    BadRequestError,
    RateLimitExceededError,
    UnauthorizedError,
)
from atproto_client.request import Request

from publisher.channels.atproto_errors import FAILURES, describe, error_name, may_have_landed, session_over, transient
from publisher.channels.image_fit import FittedImage, fit_image
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
from publisher.render.social import Post, PostImage, measure
from publisher.site.config import Site

MAX_GRAPHEMES = 300
MAX_BYTES = 3000
MAX_BLOB_BYTES = 1_000_000
MAX_IMAGES = 4
WEB = "https://bsky.app"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable

T = TypeVar("T")


def record_key(key: str, part: int) -> str:
    """The record key of part `part` (0 = the post) of the post dispatched as `key`.

    A TID, as the `app.bsky.feed.post` lexicon asks (the AppView does not show
    posts at other keys, bluesky-social/social-app#8654): 63 bits of SHA-256,
    base32-sortable. Its timestamp bits carry no time; the post's `createdAt` does.
    """
    number = int.from_bytes(hashlib.sha256(f"{key}\n{part}".encode()).digest()[:8], "big") >> 1
    chars = []
    for _ in range(13):
        chars.append(TID_ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(chars))


def length_problem(parts: tuple[str, ...]) -> str | None:
    """Why Bluesky would refuse one of `parts`, or None when all fit."""
    for number, text in enumerate(parts, start=1):
        where = "the post" if len(parts) == 1 else f"part {number} of {len(parts)}"
        graphemes = measure("bluesky", text)
        if graphemes > MAX_GRAPHEMES:
            return f"{where} is {graphemes} graphemes long; Bluesky takes at most {MAX_GRAPHEMES}"
        size = len(text.encode("utf-8"))
        if size > MAX_BYTES:
            return f"{where} is {size:,} bytes long in UTF-8; Bluesky takes at most {MAX_BYTES:,}"
    return None


@dataclass(frozen=True)
class _Ref:
    """A created record: its AT URI and CID."""

    uri: str
    cid: str

    def strong(self) -> Any:
        return models.ComAtprotoRepoStrongRef.Main(uri=self.uri, cid=self.cid)


class BlueskyChannel:
    """One Bluesky account. Thread-safe; logs in on the first publish and keeps the session."""

    network = "bluesky"

    def __init__(
        self,
        service: str,
        handle: str,
        app_password: str,
        timeout: float = 30.0,
        *,
        retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.service = service.rstrip("/")
        self.handle = handle.removeprefix("@")
        self._password = app_password
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.clock = clock or (lambda: datetime.now(UTC))
        self._client: Any = None
        self._did = ""
        self._web_handle = self.handle
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BlueskyChannel({self.service!r}, {self.handle!r})"

    def publish(self, post: Post, *, key: str, media_root: Path) -> Published:
        """Post `post` (and its thread) once; see the module docstring for what a retry does."""
        parts = post_parts(post)
        problem = length_problem(parts)
        if problem is None and len(post.images) > MAX_IMAGES:
            problem = f"the post has {len(post.images)} images; Bluesky takes at most {MAX_IMAGES}"
        if problem is not None:
            return Published("failed", message=problem)
        posted: list[_Ref] = []
        for attempt in (1, 2):
            try:
                self._publish(post, parts, key, media_root, posted)
                break
            except Stop as stop:
                return replace(stop.published, ids=tuple(ref.uri for ref in posted))
            except AuthFailed:
                raise
            except ChannelError as error:
                return self._failed(posted, len(parts), str(error), retryable=not error.permanent)
            except FAILURES as error:
                if not session_over(error):
                    return self._failed(posted, len(parts), describe(error), retryable=transient(error))
                self._forget()  # the session ended under us: log in again, once
                if attempt == 2:
                    raise AuthFailed(self._scrub(self._refused(error)), permanent=True) from error
        ids = tuple(ref.uri for ref in posted)
        rkey = posted[0].uri.rsplit("/", 1)[-1]
        return Published("posted", ids=ids, url=f"{WEB}/profile/{self._web_handle}/post/{rkey}")

    def _publish(self, post: Post, parts: tuple[str, ...], key: str, media_root: Path, posted: list[_Ref]) -> None:
        """Create the parts not yet in `posted`, appending each as it is confirmed."""
        client = self._session()
        embed = self._embed(client, post, media_root) if not posted else None
        for index in range(len(posted), len(parts)):
            reply = None
            if posted:
                reply = models.AppBskyFeedPost.ReplyRef(root=posted[0].strong(), parent=posted[-1].strong())
            facets = self._facets(client, parts[index])
            record = models.AppBskyFeedPost.Record(
                # one millisecond apart: posts with equal createdAt confuse feeds (bluesky-social/atproto#2199)
                created_at=_iso(self.clock() + timedelta(milliseconds=index)),
                text=parts[index],
                facets=facets or None,
                langs=[post.language],
                embed=embed if index == 0 else None,
                reply=reply,
            )
            posted.append(self._create(client, record_key(key, index), record))

    def _facets(self, client: Any, text: str) -> Any:
        """Links, hashtags and mentions (resolved to DIDs; unknown handles stay plain text)."""
        return self._call(lambda: client.detect_facets(text))

    # session ----------------------------------------------------------------------

    def _session(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._login()
            return self._client

    def _forget(self) -> None:
        with self._lock:
            self._client = None

    def _login(self) -> Any:
        client = Client(base_url=self.service, request=Request(timeout=self.timeout))
        try:
            # Posting needs only the PDS. The client's profile lookup (app.bsky.actor.getProfile)
            # is proxied to the AppView: the reference PDS answers 502 UpstreamFailure when that
            # is down, and the login would fail. The session names our DID and handle.
            self._call(lambda: client.login(self.handle, self._password, fetch_bsky_profile=False))
            session = self._call(lambda: client.com.atproto.server.get_session())
        except (UnauthorizedError, BadRequestError) as error:
            raise AuthFailed(self._scrub(self._refused(error)), permanent=True) from error
        self._did = str(session.did)
        self._web_handle = str(session.handle)
        return client

    def _refused(self, error: AtProtocolError) -> str:
        return (
            f"Bluesky refused the login of {self.handle} at {self.service} ({describe(error)}); "
            "check PUBLISHER_BLUESKY_HANDLE and PUBLISHER_BLUESKY_APP_PASSWORD (an app password)"
        )

    # calls and retries ----------------------------------------------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """`action()`, retried with backoff on 5xx and connection errors; 429 stops the publish."""
        attempt = 0
        while True:
            try:
                return action()
            except RateLimitExceededError as error:
                raise Stop(self._rate_limited(error)) from error
            except FAILURES as error:
                if not transient(error) or attempt >= self.retries:
                    raise
            self.sleep(self.backoff * 2**attempt)
            attempt += 1

    def _rate_limited(self, error: RateLimitExceededError) -> Published:
        retry_at = error.reset_at
        if retry_at is None and error.retry_after is not None:
            retry_at = self.clock() + timedelta(seconds=error.retry_after)
        return Published(
            "rate_limited",
            message=f"Bluesky's rate limit ({describe(error)})",
            retry_at=retry_at,
            retryable=True,
            remaining=error.remaining,
        )

    def _create(self, client: Any, rkey: str, record: Any) -> _Ref:
        """Create `record` at `rkey`, or find it there: the same post is never created twice."""
        sent = False

        def attempt() -> _Ref:
            nonlocal sent
            try:
                made = client.app.bsky.feed.post.create(self._did, record, rkey=rkey)
            except FAILURES as error:
                if not may_have_landed(error):
                    raise
                sent = True
                found = self._find(client, rkey)
                if found is None:
                    raise
                return found
            return _Ref(str(made.uri), str(made.cid))

        try:
            return self._call(attempt)
        except FAILURES as error:
            if not (sent and transient(error)):
                raise
            message = (
                f"no clear answer to the post ({describe(error)}); it may be on Bluesky at "
                f"at://{self._did}/app.bsky.feed.post/{rkey}. A retry is safe: that record key is taken only once"
            )
            raise Stop(Published("unknown", message=message, retryable=True)) from error

    def _find(self, client: Any, rkey: str) -> _Ref | None:
        """The post at `rkey` in our repository, or None when there is none."""
        try:
            found = client.app.bsky.feed.post.get(self._did, rkey)
        except BadRequestError as error:
            if error_name(error) == "RecordNotFound":
                return None
            raise
        return _Ref(str(found.uri), str(found.cid)) if found.cid else None

    # embeds -------------------------------------------------------------------------

    def _embed(self, client: Any, post: Post, media_root: Path) -> Any:
        """Images with alt text; else a link card for a post with a URL; else nothing."""
        if post.images:
            images = []
            for image in post.images:
                fitted = self._fitted(image, media_root)
                images.append(
                    models.AppBskyEmbedImages.Image(
                        alt=image.alt,
                        image=self._upload(client, fitted),
                        aspect_ratio=models.AppBskyEmbedDefs.AspectRatio(width=fitted.width, height=fitted.height),
                    )
                )
            return models.AppBskyEmbedImages.Main(images=images)
        if post.url:
            title, description, picture = card_parts(post)
            thumb = self._upload(client, self._fitted(picture, media_root)) if picture is not None else None
            card = models.AppBskyEmbedExternal.External(uri=post.url, title=title, description=description, thumb=thumb)
            return models.AppBskyEmbedExternal.Main(external=card)
        return None

    def _fitted(self, image: PostImage, media_root: Path) -> FittedImage:
        data = image_bytes(image.url, image.path, media_root, self.timeout)
        return fit_image(data, MAX_BLOB_BYTES, name=str(image.path or image.url))

    def _upload(self, client: Any, fitted: FittedImage) -> Any:
        headers = {"Content-Type": fitted.mime_type}
        return self._call(lambda: client.com.atproto.repo.upload_blob(fitted.data, headers=headers)).blob

    # answers ------------------------------------------------------------------------

    def _failed(self, posted: list[_Ref], total: int, message: str, *, retryable: bool) -> Published:
        if posted:
            message = f"part {len(posted) + 1} of {total}: {message} (the parts before it are posted)"
        return Published(
            "failed", ids=tuple(ref.uri for ref in posted), message=self._scrub(message), retryable=retryable
        )

    def _scrub(self, message: str) -> str:
        """`message` without the password, whatever a server may have echoed."""
        return message.replace(self._password, "***") if self._password else message


def card_parts(post: Post) -> tuple[str, str, PostImage | None]:
    """A link card's title, description and picture.

    The post's `card_title` and `card_description`, else the first line of the
    text and no description; the picture is the post's `card_image` when the
    renderer provides one (`Post` has no such field yet: then no picture).
    """
    lines = post.text.strip().splitlines()
    title = post.card_title or (lines[0] if lines else post.url or "")
    picture = getattr(post, "card_image", None)
    return title, post.card_description or "", picture if isinstance(picture, PostImage) else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def open_bluesky(site: Site, *, timeout: float = 30.0) -> SocialChannel:
    """The site's Bluesky channel, or its outbox when the handle or app password is not set."""
    keys = credentials("bluesky", site.env)
    if keys is None:
        return OutboxChannel("bluesky", site.root / "outbox")
    return BlueskyChannel(site.settings.bluesky.service, keys["handle"], keys["app_password"], timeout)
