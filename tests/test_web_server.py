"""The web side as the internet meets it: gzip, feed autodiscovery, no version shown, real clients behind a proxy,
limits shared through Redis, slow clients and bad input. Over real HTTP on loopback, on waitress."""

from __future__ import annotations

import gzip
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from html.parser import HTMLParser
from pathlib import Path

import pytest
import redis

from publisher.site.config import load_site
from publisher.store.dispatches import Store
from publisher.web.throttle import storage_for
from tests.test_web import (  # noqa: F401  (fixtures)
    SECRET,
    built,
    clock,
    mail,
    site_root,
    start,
    store,
    web,
)
from tests.web_support import Web

Start = Callable[..., AbstractContextManager[Web]]
REDIS = "redis://127.0.0.1:6379/0"


class Links(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self.links.append({name: value or "" for name, value in attrs})


def test_the_front_page_links_every_feed_for_autodiscovery(web: Web, site_root: Path) -> None:
    built_feeds = {
        "/" + path.relative_to(site_root).as_posix() for path in (site_root / "feeds").rglob("*.xml") if path.is_file()
    }
    assert "/feeds/tags/data/atom.xml" in built_feeds and len(built_feeds) > 10
    links = Links(web.get("/").text).links
    alternates = {link["href"]: link for link in links if link.get("rel") == "alternate"}
    assert set(alternates) == built_feeds
    assert alternates["/feeds/atom.xml"]["type"] == "application/atom+xml"
    assert alternates["/feeds/rss.xml"]["type"] == "application/rss+xml"
    assert all(link["title"] for link in alternates.values())


def test_feeds_and_pages_are_gzipped_for_clients_that_take_gzip(web: Web, site_root: Path) -> None:
    feed = (site_root / "feeds" / "atom.xml").read_bytes()
    plain = web.get("/feeds/atom.xml")
    packed = web.get("/feeds/atom.xml", {"Accept-Encoding": "gzip, deflate"})
    assert plain.body == feed and plain.header("Content-Encoding") is None
    assert packed.header("Content-Encoding") == "gzip" and gzip.decompress(packed.body) == feed
    assert len(packed.body) < len(feed) // 2
    assert "Accept-Encoding" in (packed.header("Vary") or "") and "Accept-Encoding" in (plain.header("Vary") or "")
    assert packed.header("ETag") != plain.header("ETag")  # a cache never mixes the two
    again = web.get("/feeds/atom.xml", {"Accept-Encoding": "gzip", "If-None-Match": packed.header("ETag") or ""})
    assert again.status == 304 and again.body == b""
    refused = web.get("/feeds/atom.xml", {"Accept-Encoding": "gzip;q=0, identity"})
    assert refused.header("Content-Encoding") is None
    page = web.get("/subscribe", {"Accept-Encoding": "gzip"})
    assert page.header("Content-Encoding") == "gzip" and b"<form" in gzip.decompress(page.body)


def test_no_answer_names_the_server_or_a_version(web: Web) -> None:
    first = web.get("/feeds/atom.xml")
    answers = [first, web.get("/"), web.get("/nowhere"), web.request("DELETE", "/subscribe")]
    answers.append(web.get("/feeds/atom.xml", {"If-None-Match": first.header("ETag") or ""}))
    for reply in answers:
        assert reply.header("Server") is None and reply.header("X-Powered-By") is None
        assert reply.header("X-Content-Type-Options") == "nosniff"
    assert answers[-1].status == 304 and answers[-1].header("Content-Length") is None


def _subscribe_from(web: Web, client: str | None, n: int) -> int:
    headers = {"X-Forwarded-For": f"203.0.113.99, {client}"} if client else {}
    return web.post("/subscribe", {"email": f"p{n}-{uuid.uuid4().hex[:6]}@example.org", "list": "news"}, headers).status


def _with_web_settings(site_root: Path, text: str) -> None:
    config = site_root / "publisher.toml"
    config.write_text(config.read_text(encoding="utf-8") + f"\n[web]\n{text}\n", encoding="utf-8")


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(start: Start, site_root: Path) -> None:
    _with_web_settings(site_root, 'trusted_proxies = ["127.0.0.1"]')
    with start() as web:
        assert [_subscribe_from(web, "198.51.100.7", n) for n in range(10)] == [200] * 10
        assert _subscribe_from(web, "198.51.100.7", 10) == 429
        assert _subscribe_from(web, "198.51.100.8", 11) == 200  # someone else behind the same proxy


def test_an_untrusted_sender_of_x_forwarded_for_is_counted_as_itself(start: Start) -> None:
    with start() as web:
        statuses = [_subscribe_from(web, f"198.51.100.{n}", n) for n in range(11)]
    assert statuses == [200] * 10 + [429]


@pytest.mark.redis
def test_serve_processes_sharing_redis_share_the_limits(start: Start, site_root: Path) -> None:
    redis.Redis.from_url(REDIS).ping()
    storage_for(load_site(site_root, env={"PUBLISHER_QUEUE_URL": REDIS})).reset()
    with ExitStack() as stack:
        one, two = (stack.enter_context(start(PUBLISHER_QUEUE_URL=REDIS)) for _ in range(2))
        statuses = [_subscribe_from(one if n % 2 else two, None, n) for n in range(11)]
    assert statuses == [200] * 10 + [429]
    storage_for(load_site(site_root, env={"PUBLISHER_QUEUE_URL": REDIS})).reset()


def test_slow_clients_do_not_keep_others_waiting(start: Start, site_root: Path) -> None:
    _with_web_settings(site_root, "threads = 2")
    with start() as web, ExitStack() as stack:
        for _ in range(40):  # each sends half a request, then nothing
            slow = stack.enter_context(socket.create_connection(("127.0.0.1", web.port), timeout=5))
            slow.sendall(b"GET /feeds/atom.xml HTTP/1.1\r\nHost: x\r\n")
        assert web.get("/feeds/rss.xml").status == 200
        for _ in range(20):  # and some hang up before their answer
            gone = socket.create_connection(("127.0.0.1", web.port), timeout=5)
            gone.sendall(b"GET /feeds/atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
            gone.close()
        time.sleep(0.2)
        assert web.get("/feeds/atom.xml").status == 200


BAD = [
    ("GET", "/feeds/%ff%fe.xml", b"", {}),
    ("GET", "/newsletters/%C0%AE%C0%AE%2fpublisher.toml", b"", {}),
    ("GET", "/subscribe?list=%ff&list=x&" + "&".join(f"f{n}=1" for n in range(200)), b"", {}),
    ("POST", "/subscribe", b"email=" + b"a" * 20_000, {"Content-Type": "application/x-www-form-urlencoded"}),
    ("POST", "/subscribe", "&".join(f"f{n}=1" for n in range(100)).encode(), {}),
    ("POST", "/subscribe", b"--x\r\nContent-Disposition: form-data\r\n\r\nx", {"Content-Type": "multipart/form-data"}),
    ("POST", "/subscribe", b"--x\r\ngarbage", {"Content-Type": "multipart/form-data; boundary=x"}),
    ("POST", "/subscribe", b"email=%ff%fe&list=news", {}),
    ("POST", "/confirm/%ff%00", b"", {}),
    ("POST", "/unsubscribe/" + "A" * 5000, b"", {}),
    ("GET", "/admin/plan", b"", {"Authorization": "Basic %%%"}),
    ("GET", "/admin/plan", b"", {"Authorization": "Basic " + "//8=" * 10}),
    ("PUT", "/feeds/atom.xml", b"x", {}),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), BAD)
def test_bad_input_gets_a_clear_4xx_page_never_a_500(
    web: Web, store: Store, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    sent = {"Content-Type": "application/x-www-form-urlencoded", **headers} if method == "POST" else headers
    reply = web.request(method, path, body, sent)
    assert 400 <= reply.status < 500 or (path.startswith("/subscribe?") and reply.status == 200), reply.status
    assert "Traceback" not in reply.text and "Werkzeug" not in reply.text
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert SECRET not in reply.text
