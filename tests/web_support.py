"""The web side for tests: the real server (waitress) on a loopback port, a small HTTP client, a settable clock.

    with running(site, store, clock) as web:
        reply = web.get("/feeds/atom.xml")
        assert reply.status == 200

Every reply is kept (`web.replies`) so a test can check what any page showed.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import re
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser

from publisher.site.config import Site
from publisher.store.dispatches import Store
from publisher.web.server import make_server


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Web:
    """An HTTP client for one running server (http.client: no cookies, no redirects followed)."""

    def __init__(self, port: int, log: list[str] | None = None) -> None:
        self.port = port
        self.replies: list[Reply] = []
        self.log = log if log is not None else []  # the server's access log lines

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            reply = Reply(response.status, response.msg, response.read())
        finally:
            connection.close()
        self.replies.append(reply)
        return reply

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None) -> Reply:
        body = urllib.parse.urlencode(form or {}).encode()
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", path, body=body, headers=sent)


def basic(password: str, user: str = "team") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextmanager
def running(site: Site, store: Store, clock: Clock, port: int = 0) -> Iterator[Web]:
    """The web side of `site` on 127.0.0.1 (`port`; 0: a free one) in a thread, for the length of the block."""
    log: list[str] = []
    server = make_server(site, "127.0.0.1", port, store_factory=lambda: store, clock=clock, access_log=log.append)
    thread = threading.Thread(target=server.serve_forever, name="publisher-web-test", daemon=True)
    thread.start()
    try:
        yield Web(server.port, log)
    finally:
        server.stop()
        thread.join(5)


class Page(HTMLParser):
    """What a page holds that tests look at: the html lang, meta tags, labels, inputs and forms."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.lang: str | None = None
        self.metas: list[dict[str, str]] = []
        self.labels_for: set[str] = set()
        self.fields: list[dict[str, str]] = []
        self.forms: list[dict[str, str]] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.lang = values.get("lang")
        elif tag == "meta":
            self.metas.append(values)
        elif tag == "label" and "for" in values:
            self.labels_for.add(values["for"])
        elif tag in ("input", "select", "textarea"):
            self.fields.append({"tag": tag, **values})
        elif tag == "form":
            self.forms.append(values)
        elif tag == "a" and "href" in values:
            self.links.append(values["href"])


def link_in(message: bytes, pattern: str) -> str:
    """The first URL in a message's text matching `pattern` (a regular expression)."""
    import email
    import email.policy

    parsed = email.message_from_bytes(message, policy=email.policy.default)
    part = parsed.get_body(("plain",))
    assert part is not None
    text = part.get_content()
    found = re.search(pattern, text)
    assert found, f"no link matching {pattern!r} in:\n{text}"
    return found.group(0)
