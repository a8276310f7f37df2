"""A fake Mastodon instance: instance info, media, statuses, idempotency keys.

It applies Mastodon's own length rule (grapheme clusters; a URL counts as
`characters_reserved_per_url`; a mention counts without its domain) against
its `max_characters` (422 otherwise), checks the bearer token (401), and
honours `Idempotency-Key`: the same key gives back the same status, no second
one is created.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import grapheme
from twitter_text import extract_urls_with_indices

from tests.fakes import Answer, FakeServer, Recorded

MENTION = re.compile(r"(?<![\w/])@(\w+)@[\w.-]+\w", re.UNICODE)


def mastodon_length(text: str, url_length: int = 23) -> int:
    """Mastodon's count: graphemes, each http(s) URL as `url_length`, mentions without their domain."""
    pieces: list[str] = []
    last = 0
    for found in extract_urls_with_indices(text, extract_urls_without_protocol=False):
        start, end = found["indices"]
        pieces.append(text[last:start])
        pieces.append("x" * url_length)
        last = end
    pieces.append(text[last:])
    countable = MENTION.sub(lambda m: "@" + m.group(1), "".join(pieces))
    return int(grapheme.length(countable))


class FakeMastodon(FakeServer):
    """One Mastodon instance with one account. `statuses` and `media` hold what was created."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        max_characters: int | None = 500,
        url_length: int | None = 23,
        version: str = "4.3.2",
        instance_status: int = 200,
        processing_polls: int = 0,
        rate_limit: int = 300,
    ) -> None:
        super().__init__()
        self.token = token
        self.max_characters = max_characters
        self.url_length = url_length
        self.version = version
        self.instance_status = instance_status
        self.processing_polls = processing_polls  # media GETs answered "still processing" first
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        self.statuses: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, str] = {}
        self._ids = itertools.count(113_000_000_000_000_001)

    @property
    def limit(self) -> int:
        return self.max_characters if self.max_characters is not None else 500

    def accepts(self, text: str) -> bool:
        return 0 < mastodon_length(text, self.url_length or 23) <= self.limit

    def answer(self, request: Recorded) -> Answer:
        route = request.route.rstrip("/")
        if route in ("GET /api/v2/instance", "GET /api/v1/instance"):
            return self._instance(route)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "The access token is invalid"}, {}
        if route in ("POST /api/v2/media", "POST /api/v1/media"):
            status, body, _ = self._upload(request)
        elif route == "POST /api/v1/statuses":
            status, body, _ = self._post_status(request)
        elif route.startswith("GET /api/v1/media/"):
            status, body, _ = self._media_status(route.rsplit("/", 1)[1])
        else:
            status, body = 404, {"error": "Record not found"}
        self.remaining = max(0, self.remaining - 1)
        return status, body, self.rate_headers()

    def rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": self.reset.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }

    def _instance(self, route: str) -> Answer:
        if self.instance_status != 200:
            return self.instance_status, {"error": "We're sorry, but something went wrong on our end."}, {}
        statuses: dict[str, Any] = {"max_media_attachments": 4}
        if self.max_characters is not None:
            statuses["max_characters"] = self.max_characters
        if self.url_length is not None:
            statuses["characters_reserved_per_url"] = self.url_length
        body = {
            "domain": "social.example",
            "title": "Fake",
            "version": self.version,
            "configuration": {"statuses": statuses, "media_attachments": {"image_size_limit": 16777216}},
        }
        if route.endswith("v2/instance"):
            body["api_versions"] = {"mastodon": 2}
        return 200, body, {}

    def _upload(self, request: Recorded) -> Answer:
        upload = request.files.get("file")
        if upload is None or not upload.data:
            return 422, {"error": "Validation failed: File can't be blank"}, {}
        media_id = str(next(self._ids))
        self.media[media_id] = {
            "data": upload.data,
            "mime": upload.content_type,
            "description": request.field("description"),
            "polls_left": self.processing_polls,
        }
        return (202 if self.processing_polls else 200), self._media_json(media_id), {}

    def _media_json(self, media_id: str) -> dict[str, Any]:
        media = self.media[media_id]
        url = None if media["polls_left"] else f"{self.url}/media/{media_id}.png"
        return {"id": media_id, "type": "image", "url": url, "preview_url": url, "description": media["description"]}

    def _media_status(self, media_id: str) -> Answer:
        media = self.media.get(media_id)
        if media is None:
            return 404, {"error": "Record not found"}, {}
        if media["polls_left"]:
            answer = self._media_json(media_id)
            media["polls_left"] -= 1
            return 206, answer, {}
        return 200, self._media_json(media_id), {}

    def _post_status(self, request: Recorded) -> Answer:
        key = request.headers.get("idempotency-key")
        if key is not None and key in self.idempotency:
            return 200, self._status_json(self.idempotency[key]), {}
        values = request.json if isinstance(request.json, dict) else {k: v[0] for k, v in request.form.items()}
        text = str(values.get("status", ""))
        media_ids = request.form.get("media_ids[]", []) if request.json is None else values.get("media_ids", [])
        reply_to = values.get("in_reply_to_id")
        length = mastodon_length(text, self.url_length or 23)
        if length > self.limit:
            return 422, {"error": f"Validation failed: Text character limit of {self.limit} exceeded"}, {}
        if (not text and not media_ids) or any(m not in self.media for m in media_ids):
            return 422, {"error": "Validation failed: Text can't be blank"}, {}
        if reply_to is not None and reply_to not in self.statuses:
            return 404, {"error": "Record not found"}, {}
        status_id = str(next(self._ids))
        self.statuses[status_id] = {
            "text": text,
            "media_ids": list(media_ids),
            "in_reply_to_id": reply_to,
            "language": values.get("language"),
            "visibility": values.get("visibility") or "public",
            "idempotency_key": key,
        }
        if key is not None:
            self.idempotency[key] = status_id
        return 200, self._status_json(status_id), {}

    def _status_json(self, status_id: str) -> dict[str, Any]:
        status = self.statuses[status_id]
        return {
            "id": status_id,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "in_reply_to_id": status["in_reply_to_id"],
            "visibility": status["visibility"],
            "language": status["language"],
            "uri": f"{self.url}/users/team/statuses/{status_id}",
            "url": f"{self.url}/@team/{status_id}",
            "content": f"<p>{status['text']}</p>",
            "media_attachments": [self._media_json(m) for m in status["media_ids"]],
        }

    def thread(self, last_id: str) -> list[str]:
        """The texts of the chain of replies ending at `last_id`, first first."""
        texts: list[str] = []
        current: str | None = last_id
        while current is not None:
            texts.append(self.statuses[current]["text"])
            current = self.statuses[current]["in_reply_to_id"]
        return texts[::-1]
