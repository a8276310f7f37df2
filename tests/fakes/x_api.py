"""A fake of X's API: v2 tweets and media, v1.1 media, with X's own length rule.

The v2 side is held to X's official contract, not to our reading of it: a
`/2/...` path that X's SDK (`xdk`, generated from X's OpenAPI spec; see
tests/fakes/x_contract.py) does not have is answered 404, and a JSON body that
does not validate against the SDK's own request model is answered 400, as X
would. The v1.1 media routes (the `media_route = "v1.1"` setting) are the ones
tweepy's `API.media_upload` and `API.create_media_metadata` call.

It checks that requests are OAuth 1.0a-signed with the expected consumer key
(401 otherwise) but does not verify signatures. It refuses a text whose
twitter-text weighted length is over 280, and the same text posted twice
(403 "duplicate content"), as X does.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import time
import urllib.parse
from typing import Any

from twitter_text import parse_tweet

from tests.fakes import Answer, FakeServer, Recorded, problem
from tests.fakes.x_contract import body_problems, find_route

MAX_WEIGHTED_LENGTH = 280
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
INVALID = "One or more parameters to your request was invalid."


def x_length(text: str) -> int:
    """X's weighted length (twitter-text v3: URL = 23, CJK and emoji = 2)."""
    return int(parse_tweet(text).weightedLength)


def x_accepts(text: str) -> bool:
    """True when X would take `text` as a tweet."""
    result = parse_tweet(text)
    return bool(result.valid) and result.weightedLength <= MAX_WEIGHTED_LENGTH


def oauth_params(header: str) -> dict[str, str]:
    """The parameters of an `Authorization: OAuth ...` header."""
    if not header.startswith("OAuth "):
        return {}
    return {k: urllib.parse.unquote(v) for k, v in re.findall(r'(\w+)="([^"]*)"', header)}


class FakeX(FakeServer):
    """X's API as far as posting goes. `tweets` and `media` hold what was created."""

    def __init__(self, *, api_key: str = "test-api-key", rate_limit: int = 200, reset: int | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.reset = reset if reset is not None else int(time.time()) + 900
        self.tweets: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1_860_000_000_000_000_001)

    def answer(self, request: Recorded) -> Answer:
        if oauth_params(request.headers.get("authorization", "")).get("oauth_consumer_key") != self.api_key:
            return 401, problem(401, "Unauthorized", "Unauthorized"), {}
        if request.path.startswith("/2/"):
            route = find_route(request.method, request.path)
            if route is None:  # X's answer to a path it does not have
                return 404, problem(404, "Not Found Error", f"no route {request.route}"), {}
            invalid = body_problems(route, request.json)
            if invalid:
                errors = [{"message": message} for message in invalid]
                return 400, {**problem(400, "Invalid Request", INVALID), "errors": errors}, {}
        handler = {
            "POST /2/tweets": self._create_tweet,
            "POST /2/media/upload": self._upload_v2,
            "POST /2/media/metadata": self._metadata_v2,
            "POST /1.1/media/upload.json": self._upload_v1,
            "POST /1.1/media/metadata/create.json": self._metadata_v1,
        }.get(request.route)
        if handler is None:  # a v1.1 path we never call, or a v2 one X has and the fake does not do
            return 404, problem(404, "Not Found Error", f"the fake does not do {request.route}"), {}
        return handler(request)

    def rate_headers(self) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-remaining": str(self.remaining),
            "x-rate-limit-reset": str(self.reset),
        }

    def _create_tweet(self, request: Recorded) -> Answer:
        body = request.json or {}
        text = body.get("text", "")
        media_ids = body.get("media", {}).get("media_ids", [])
        reply_to = body.get("reply", {}).get("in_reply_to_tweet_id")
        invalid = problem(400, "Invalid Request", INVALID)
        if not x_accepts(text):
            return 400, {**invalid, "errors": [{"message": f"text is too long ({x_length(text)} > 280)"}]}, {}
        if any(m not in self.media for m in media_ids) or (reply_to is not None and reply_to not in self.tweets):
            return 400, {**invalid, "errors": [{"message": "unknown media or reply id"}]}, {}
        if any(t["text"] == text for t in self.tweets.values()):
            return 403, problem(403, "Forbidden", DUPLICATE), self.rate_headers()
        tweet_id = str(next(self._ids))
        self.tweets[tweet_id] = {"text": text, "media_ids": media_ids, "reply_to": reply_to}
        self.remaining = max(0, self.remaining - 1)
        data = {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}
        return 201, {"data": data}, self.rate_headers()

    def _new_media(self, data: bytes, category: str | None) -> tuple[str, dict[str, Any]]:
        media_id = str(next(self._ids))
        self.media[media_id] = {"data": data, "category": category, "alt": None}
        return media_id, self.media[media_id]

    def _upload_v2(self, request: Recorded) -> Answer:
        body = request.json  # validated against xdk's MediaUploadRequest: "media" is base64
        try:
            data = base64.b64decode(body["media"], validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            return 400, problem(400, "Invalid Request", "media is not base64-encoded media"), {}
        media_id, _ = self._new_media(data, body["media_category"])
        data_out = {"id": media_id, "media_key": f"3_{media_id}", "size": len(data), "expires_after_secs": 86400}
        return 200, {"data": data_out}, {}

    def _metadata_v2(self, request: Recorded) -> Answer:
        body = request.json  # validated against xdk's CreateMediaMetadataRequest
        media = self.media.get(body["id"])
        if media is None:
            return 400, problem(400, "Invalid Request", "unknown media id"), {}
        alt = (body.get("metadata") or {}).get("alt_text")
        if alt is not None:
            media["alt"] = alt["text"]
        return 200, {"data": {"id": body["id"], "associated_metadata": body.get("metadata") or {}}}, {}

    def _upload_v1(self, request: Recorded) -> Answer:
        upload = request.files.get("media")
        if upload is None or not upload.data:
            return 400, {"errors": [{"code": 38, "message": "media parameter is missing."}]}, {}
        media_id, media = self._new_media(upload.data, request.field("media_category"))
        body = {"media_id": int(media_id), "media_id_string": media_id, "size": len(media["data"])}
        return 200, {**body, "expires_after_secs": 86400, "image": {"image_type": "image/png", "w": 1, "h": 1}}, {}

    def _metadata_v1(self, request: Recorded) -> Answer:
        body = request.json or {}
        media = self.media.get(str(body.get("media_id")))
        if media is None:
            return 400, {"errors": [{"code": 324, "message": "unknown media_id"}]}, {}
        media["alt"] = body.get("alt_text", {}).get("text")
        return 200, b"", {}

    def thread(self, last_id: str) -> list[str]:
        """The texts of the chain of replies ending at `last_id`, first first."""
        texts: list[str] = []
        current: str | None = last_id
        while current is not None:
            texts.append(self.tweets[current]["text"])
            current = self.tweets[current]["reply_to"]
        return texts[::-1]
