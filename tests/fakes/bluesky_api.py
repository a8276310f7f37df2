"""A fake Bluesky PDS: sessions, handles, blobs and post records, over XRPC.

What it does the way the reference PDS does (bluesky-social/atproto):
- `com.atproto.server.createSession` answers 401 `AuthenticationRequired`
  "Invalid identifier or password" to a wrong password; the tokens are JWTs with
  an `exp` claim (the atproto client reads it to refresh in time); no `didDoc`
  (the client would switch to the PDS it names).
- `com.atproto.repo.createRecord` applies the `app.bsky.feed.post` lexicon: text
  at most 300 graphemes and 3,000 UTF-8 bytes (the lexicon's `maxLength` counts
  bytes), at most 3 `langs`, at most 4 images, each blob uploaded before and at
  most 1,000,000 bytes; the record key must be a TID. Errors are 400
  `InvalidRequest` with the lexicon validator's wording.
- A second create at an existing record key answers what the reference PDS
  answers today: 500 `InternalServerError` "Internal Server Error" (the MST
  refuses the duplicate key; bluesky-social/atproto#3718, indigo#873).
  `duplicate="explicit"` answers 409 `RecordAlreadyExists` instead, as other
  PDSs do and bluesky-social/atproto#4728 proposes.
- `app.bsky.actor.getProfile` is the AppView's, which the PDS only proxies: with
  none behind it (`appview=False`, the default, as in tests/test_bluesky_pds.py)
  the reference PDS answers 502 `UpstreamFailure` "Upstream service unreachable".
  Posting needs only the PDS, so the channel must never ask for it.
- `com.atproto.repo.getRecord` answers 400 `RecordNotFound` for a missing key;
  `com.atproto.identity.resolveHandle` 400 `InvalidRequest` "Unable to resolve
  handle" for an unknown handle; `uploadBlob` over the limit 400 `BlobTooLarge`.
Every request is recorded (`requests`, `received(route)`); scripted answers come
from `FakeServer.script` (a 429 with `ratelimit-reset`, a 500, a dropped socket;
`PASS` lets one request through normally before the next scripted answer).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import grapheme

from tests.fakes import Answer, FakeServer, Recorded, Reply

POST = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
MAX_BLOB = 1_000_000
TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
LANGUAGE = re.compile(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*|i-[a-zA-Z0-9]+")


PASS = Reply(status=0)  # in a script: answer this request normally


def route(nsid: str) -> str:
    """The fake's route for an XRPC method: `POST /xrpc/<nsid>` or `GET ...` for queries."""
    method = "GET" if nsid.split(".")[-1].startswith(("get", "resolve", "describe", "list")) else "POST"
    return f"{method} /xrpc/{nsid}"


def xrpc_error(status: int, error: str, message: str | None = None) -> Answer:
    body: dict[str, str] = {"error": error}
    if message is not None:
        body["message"] = message
    return status, body, {}


def cid_of(data: bytes, codec: int) -> str:
    """A CIDv1 (sha2-256) in base32: `codec` 0x55 for raw blobs, 0x71 for DAG-CBOR records."""
    raw = bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def jwt(claims: dict[str, Any]) -> str:
    """A JWT shaped like the PDS's (ES256K); the signature is random, nobody checks it here."""
    header = _b64(json.dumps({"typ": "at+jwt", "alg": "ES256K"}).encode())
    payload = _b64(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64(secrets.token_bytes(64))}"


def sniff(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


@dataclass(frozen=True)
class Account:
    handle: str
    did: str
    password: str


class FakeBluesky(FakeServer):
    """One PDS with one account; `records` holds the posts created, by AT URI, in order."""

    def __init__(
        self,
        *,
        handle: str = "cepei.example.org",
        did: str = "did:plc:cepeiexample0000000000000",
        password: str = "abcd-efgh-ijkl-mnop",
        known: dict[str, str] | None = None,
        duplicate: str = "reference",
        token_seconds: int = 7200,
        appview: bool = False,
    ) -> None:
        super().__init__()
        self.account = Account(handle, did, password)
        self.known = {handle: did, **(known or {})}  # handle -> DID, for resolveHandle
        self.duplicate = duplicate
        self.token_seconds = token_seconds
        self.appview = appview
        self.records: dict[str, dict[str, Any]] = {}
        self.cids: dict[str, str] = {}
        self.blobs: dict[str, tuple[str, bytes]] = {}  # CID -> (MIME type, bytes)
        self.access: dict[str, int] = {}  # token -> exp (epoch seconds)
        self.refresh: dict[str, int] = {}
        self._revs = itertools.count(1)

    # inspection -----------------------------------------------------------------

    def created(self) -> list[dict[str, Any]]:
        """The records of the posts created, in order (each once)."""
        return list(self.records.values())

    def uri_of(self, rkey: str) -> str:
        return f"at://{self.account.did}/{POST}/{rkey}"

    def next_scripted(self, request: Recorded) -> Reply | None:
        reply = super().next_scripted(request)
        return None if reply is PASS else reply

    # answering --------------------------------------------------------------------

    def answer(self, request: Recorded) -> Answer:
        nsid = request.path.removeprefix("/xrpc/")
        if nsid == "com.atproto.server.createSession":
            return self._create_session(request)
        if nsid == "com.atproto.server.refreshSession":
            return self._refresh_session(request)
        if nsid == "com.atproto.identity.resolveHandle":
            handle = _param(request, "handle").lower()
            if handle in self.known:
                return 200, {"did": self.known[handle]}, {}
            return xrpc_error(400, "InvalidRequest", "Unable to resolve handle")
        if nsid == "com.atproto.repo.getRecord":
            return self._get_record(request)
        refused = self._check_access(request)
        if refused is not None:
            return refused
        if nsid == "com.atproto.server.getSession":
            return 200, {"handle": self.account.handle, "did": self.account.did, "active": True}, {}
        if nsid == "app.bsky.actor.getProfile":
            if not self.appview:
                # the PDS proxies app.bsky.* to its AppView; none is up: @atproto/pds 0.5.35,
                # dist/pipethrough.js, handleUpstreamRequestError
                return xrpc_error(502, "UpstreamFailure", "Upstream service unreachable")
            actor = _param(request, "actor")
            if actor not in (self.account.handle, self.account.did):
                return xrpc_error(400, "InvalidRequest", "Profile not found")
            return 200, {"did": self.account.did, "handle": self.account.handle, "displayName": "Cepei"}, {}
        if nsid == "com.atproto.repo.uploadBlob":
            return self._upload_blob(request)
        if nsid == "com.atproto.repo.createRecord":
            return self._create_record(request)
        return xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")

    def _tokens(self) -> dict[str, Any]:
        now = int(time.time())  # the client compares `exp` with its own (real) clock
        access = jwt(
            {"scope": "com.atproto.appPass", "sub": self.account.did, "iat": now, "exp": now + self.token_seconds}
        )
        refresh = jwt({"scope": "com.atproto.refresh", "sub": self.account.did, "iat": now, "exp": now + 86400})
        self.access[access] = now + self.token_seconds
        self.refresh[refresh] = now + 86400
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": self.account.handle,
            "did": self.account.did,
            "active": True,
        }

    def _create_session(self, request: Recorded) -> Answer:
        body = request.json if isinstance(request.json, dict) else {}
        identifier = str(body.get("identifier", "")).lower()
        if identifier not in (self.account.handle, self.account.did) or body.get("password") != self.account.password:
            return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return 200, self._tokens(), {}

    def _refresh_session(self, request: Recorded) -> Answer:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.refresh.pop(token, 0) < time.time():
            return xrpc_error(400, "ExpiredToken", "Token has been revoked")
        return 200, self._tokens(), {}

    def _check_access(self, request: Recorded) -> Answer | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.access:
            return xrpc_error(401, "AuthenticationRequired", "Authentication Required")
        if self.access[token] < time.time():
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        return None

    def _upload_blob(self, request: Recorded) -> Answer:
        data = request.body
        if len(data) > MAX_BLOB:
            return xrpc_error(400, "BlobTooLarge", f"This file is too large. It is {len(data)} bytes.")
        mime = sniff(data)
        cid = cid_of(data, 0x55)
        self.blobs[cid] = (mime, data)
        return 200, {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}}, {}

    def _get_record(self, request: Recorded) -> Answer:
        uri = f"at://{_param(request, 'repo')}/{_param(request, 'collection')}/{_param(request, 'rkey')}"
        uri = uri.replace(f"at://{self.account.handle}/", f"at://{self.account.did}/")
        if uri not in self.records:
            return xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return 200, {"uri": uri, "cid": self.cids[uri], "value": self.records[uri]}, {}

    def _create_record(self, request: Recorded) -> Answer:
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("repo") not in (self.account.did, self.account.handle):
            return xrpc_error(400, "InvalidRequest", "Invalid repo")
        collection = str(body.get("collection", ""))
        record = body.get("record")
        if not isinstance(record, dict):
            return xrpc_error(400, "InvalidRequest", "Input/record must be an object")
        rkey = body.get("rkey") or _next_tid()
        problem = self._post_problem(record, rkey) if collection == POST else None
        if problem is not None:
            return xrpc_error(400, "InvalidRequest", problem)
        uri = self.uri_of(rkey) if collection == POST else f"at://{self.account.did}/{collection}/{rkey}"
        if uri in self.records:
            if self.duplicate == "explicit":
                return xrpc_error(409, "RecordAlreadyExists", f"Record already exists: {uri}")
            return xrpc_error(500, "InternalServerError", "Internal Server Error")
        cid = cid_of(json.dumps(record, sort_keys=True).encode(), 0x71)
        self.records[uri] = record
        self.cids[uri] = cid
        commit = {"cid": cid_of(f"commit {next(self._revs)}".encode(), 0x71), "rev": _next_tid()}
        return 200, {"uri": uri, "cid": cid, "commit": commit, "validationStatus": "valid"}, {}

    def _post_problem(self, record: dict[str, Any], rkey: str) -> str | None:
        """What the lexicon validator says about an `app.bsky.feed.post` record, or None."""
        if not TID.fullmatch(rkey):
            return f"Invalid record key for {POST}: must be a TID (got {rkey!r})"
        text = record.get("text")
        if not isinstance(text, str) or not isinstance(record.get("createdAt"), str):
            return f"Invalid {POST} record: Record must have the properties text, createdAt"
        # the reference PDS's words: the lexicon's text is l.string({ maxLength: 3000, maxGraphemes: 300 })
        # (@atproto/pds 0.5.35, dist/lexicons/app/bsky/feed/post.defs.js), checked by
        # @atproto/lex-schema's dist/schema/string.js, worded by dist/core/validation-issue.js
        size = len(text.encode("utf-8"))
        if size > MAX_BYTES:
            return f"Invalid {POST} record: string too big (maximum {MAX_BYTES}, got {size}) at $.record.text"
        graphemes = grapheme.length(text)
        if graphemes > MAX_GRAPHEMES:
            too_big = f"grapheme too big (maximum {MAX_GRAPHEMES}, got {graphemes})"
            return f"Invalid {POST} record: {too_big} at $.record.text"
        langs = record.get("langs", [])
        if len(langs) > 3 or not all(isinstance(lang, str) and LANGUAGE.fullmatch(lang) for lang in langs):
            return f"Invalid {POST} record: Record/langs must be at most 3 language tags"
        return self._embed_problem(record.get("embed"))

    def _embed_problem(self, embed: Any) -> str | None:
        if embed is None:
            return None
        if embed.get("$type") == "app.bsky.embed.images":
            if len(embed.get("images", [])) > 4:
                return f"Invalid {POST} record: Record/embed/images must not have more than 4 elements"
            blobs = [image.get("image") for image in embed["images"]]
        elif embed.get("$type") == "app.bsky.embed.external":
            thumb = embed.get("external", {}).get("thumb")
            blobs = [thumb] if thumb is not None else []
        else:
            return None
        for blob in blobs:
            cid = (blob or {}).get("ref", {}).get("$link")
            if cid not in self.blobs:
                return f"Could not find blob: {cid}"
            if len(self.blobs[cid][1]) > MAX_BLOB:
                return f"Invalid {POST} record: blob is too big"
        return None


def _param(request: Recorded, name: str) -> str:
    values = request.query.get(name) or [""]
    return values[0]


_tids = itertools.count(int(time.time() * 1_000_000) << 10)


def _next_tid() -> str:
    number = next(_tids)
    chars = []
    for _ in range(13):
        chars.append(TID_ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(chars))
