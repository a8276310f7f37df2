"""A proxy on loopback in front of a real server that loses the answers of chosen requests.

The request reaches the server and is carried out; the client sees its
connection close before any answer. That is the case an idempotency key or a
client-chosen record key is for, and what no fault plane that acts before a
request can show.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

ANSWER_HEADERS = ("Content-Type", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Remaining")


class LosingProxy(ThreadingHTTPServer):
    """Forwards every request to `upstream`; the answers of the first `lose` requests to `route` are lost.

    `route` is "METHOD /path" (without the query). `lost` holds the JSON bodies
    of the answers the client never heard. Use as a context manager.
    """

    def __init__(self, upstream: str, route: str, lose: int = 1) -> None:
        self.upstream = upstream.rstrip("/")
        self.route = route
        self.lose = lose
        self.lost: list[Any] = []
        super().__init__(("127.0.0.1", 0), _Forward)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __exit__(self, *args: object) -> None:
        self.shutdown()
        super().__exit__(*args)


class _Forward(BaseHTTPRequestHandler):
    server: LosingProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        url = self.server.upstream + self.path
        answer = requests.request(self.command, url, headers=headers, data=body, timeout=30)
        if f"{self.command} {self.path.split('?')[0]}" == self.server.route and self.server.lose > 0:
            self.server.lose -= 1
            self.server.lost.append(answer.json())
            self.close_connection = True  # carried out upstream, never heard by the client
            return
        self.send_response(answer.status_code)
        for name in ANSWER_HEADERS:
            if name in answer.headers:
                self.send_header(name, answer.headers[name])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass
