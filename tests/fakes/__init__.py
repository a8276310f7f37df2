"""Small fake servers of the social networks' APIs, for tests on loopback.

Each fake is a `ThreadingHTTPServer` on 127.0.0.1, port 0, that records every
request (method, path, headers, parsed JSON / form / multipart body) and
answers the way the real API does for the few endpoints we use. A test can
script the next answers of a route: `fake.script("POST /2/tweets", [(503, body),
HANG])`; an exhausted script falls back to the normal behaviour.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

Body = Mapping[str, Any] | list[Any] | bytes | str | None
Answer = tuple[int, Body, Mapping[str, str]]


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart body."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes
    json: Any = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"

    def field(self, name: str) -> str | None:
        """One form (or multipart text) field, or None."""
        values = self.form.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Reply:
    """A scripted answer.

    `then="hang"` reads and records the request, then answers nothing until the
    client has given up (or the fake stops); `then="close"` closes the socket
    without answering. `process=True` first handles the request normally (the
    post is created) and only then replaces the answer: "it happened, but the
    client never heard".
    """

    status: int = 200
    body: Body = None
    headers: Mapping[str, str] = field(default_factory=dict)
    then: Literal["answer", "hang", "close"] = "answer"
    process: bool = False


HANG = Reply(then="hang")
CLOSE = Reply(then="close")
Scripted = Reply | tuple[int, Body] | tuple[int, Body, Mapping[str, str]]


def route_key(method: str, path: str) -> str:
    """`METHOD /path` with no trailing slash (Mastodon.py adds one to some paths)."""
    if len(path) > 1:
        path = path.rstrip("/")
    return f"{method.upper()} {path}"


class FakeServer:
    """Base of the fakes: threading, recording, scripting. Subclasses implement `answer`."""

    hang_seconds = 10.0

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # life cycle -------------------------------------------------------------

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # scripting and inspection -------------------------------------------------

    def script(self, route: str, replies: Iterable[Scripted]) -> None:
        """Queue the next answers of `route` ("POST /2/tweets")."""
        method, _, path = route.partition(" ")
        key = route_key(method, path)
        with self.lock:
            for reply in replies:
                self._scripts[key].append(reply if isinstance(reply, Reply) else Reply(*reply))

    def received(self, route: str) -> list[Recorded]:
        """The requests received on `route`, in order."""
        method, _, path = route.partition(" ")
        key = route_key(method, path)
        with self.lock:
            return [r for r in self.requests if route_key(r.method, r.path) == key]

    def next_scripted(self, request: Recorded) -> Reply | None:
        with self.lock:
            queue = self._scripts.get(route_key(request.method, request.path))
            return queue.popleft() if queue else None

    def answer(self, request: Recorded) -> Answer:
        """The normal answer to `request` (runs under `self.lock`)."""
        raise NotImplementedError

    def wait_released(self) -> None:
        self._released.wait(self.hang_seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        request = self._read()
        with fake.lock:
            fake.requests.append(request)
        reply = fake.next_scripted(request)
        answer: Answer | None = None
        if reply is None or reply.process:
            with fake.lock:
                answer = fake.answer(request)
        if reply is not None:
            if reply.then == "hang":
                fake.wait_released()
                self.close_connection = True
                return
            if reply.then == "close":
                self.close_connection = True
                return
            answer = (reply.status, reply.body, reply.headers)
        assert answer is not None
        self._send(*answer)

    def _read(self) -> Recorded:
        parts = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Recorded(
            method=self.command,
            path=parts.path,
            query=urllib.parse.parse_qs(parts.query),
            headers=headers,
            body=body,
        )
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/json") and body:
            request.json = json.loads(body)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            request.form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
        elif content_type.startswith("multipart/form-data"):
            request.form, request.files = parse_multipart(content_type, body)
        return request

    def _send(self, status: int, body: Body, headers: Mapping[str, str]) -> None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        elif body is None:
            data = b""
        else:
            data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        if body is not None and not isinstance(body, bytes | str):
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, list[str]], dict[str, UploadedFile]]:
    """Text fields and files of a multipart/form-data body, bytes kept exactly."""
    header = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode(), policy=policy.HTTP)
    boundary = header.get_param("boundary")
    assert isinstance(boundary, str), f"no boundary in {content_type!r}"
    form: dict[str, list[str]] = defaultdict(list)
    files: dict[str, UploadedFile] = {}
    delimiter = b"--" + boundary.encode("ascii")
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        part = message_from_bytes(head + b"\r\n\r\n", policy=policy.HTTP)
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str), f"a part without a name: {head!r}"
        filename = part.get_filename()
        if filename is None:
            form[name].append(data.decode("utf-8"))
        else:
            files[name] = UploadedFile(filename, part.get_content_type(), data)
    return dict(form), files


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """An RFC 7807 problem body, as X's v2 API sends."""
    return {"title": title, "detail": detail, "type": "about:blank", "status": status}
