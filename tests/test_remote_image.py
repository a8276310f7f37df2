"""Images from anywhere, safely: a real HTTP server on 127.0.0.1 (http.server in a thread) serves them."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from publisher.channels import remote_image
from publisher.channels.remote_image import FetchPolicy, cached_image, fetch
from publisher.cli.main import cli
from publisher.errors import ImageUnavailable
from tests.test_dispatch_social import PUBLISHED, RECORD, Fakes, env, fakes, make_site, plan_json, run_at

__all__ = ["fakes"]  # the fixture, used by name

ALLOWED = FetchPolicy(allow_private=True, timeout=5)


def png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


class ImageServer(ThreadingHTTPServer):
    """Serves /ok.png (ETag "v1", 304 on a match), /missing.png (404), /huge (declared), /endless (no length),
    /text (HTML), /to-ok and /to-elsewhere (redirects); records each path asked."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.daemon_threads = True
        self.image = png()
        self.asked: list[str] = []
        self.elsewhere = ""
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ImageServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        if self.path == "/ok.png":
            if self.headers.get("If-None-Match") == '"v1"':
                self._send(304, b"", {"ETag": '"v1"'})
            else:
                self._send(200, self.server.image, {"Content-Type": "image/png", "ETag": '"v1"'})
        elif self.path == "/huge":
            self._send(200, b"\0" * 50_000, {"Content-Type": "image/png"})
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"\0" * 1000)
            self.close_connection = True
        elif self.path == "/text":
            self._send(200, b"<html>not found, really</html>", {"Content-Type": "image/png"})
        elif self.path == "/to-ok":
            self._send(302, b"", {"Location": "/ok.png"})
        elif self.path == "/to-elsewhere":
            self._send(302, b"", {"Location": self.server.elsewhere})
        else:
            self._send(404, b"no such image", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[ImageServer]:
    s = ImageServer()
    s.thread.start()
    yield s
    s.shutdown()
    s.server_close()


def test_an_image_is_fetched_once_and_asked_again_with_its_etag(server: ImageServer, tmp_path: Path) -> None:
    first = cached_image(tmp_path, f"{server.url}/to-ok", ALLOWED)
    again = cached_image(tmp_path, f"{server.url}/to-ok", ALLOWED)
    revalidated = cached_image(tmp_path, f"{server.url}/to-ok", ALLOWED, revalidate=True)

    assert first.read_bytes() == server.image
    assert first.parent == tmp_path / ".publisher" / "images" and first.suffix == ".png"
    assert again == revalidated == first
    assert server.asked == ["/to-ok", "/ok.png", "/to-ok", "/ok.png"]  # the second call read the copy
    assert fetch(f"{server.url}/ok.png", ALLOWED, etag='"v1"').data is None  # 304: the copy holds


def test_a_404_is_refused_for_good(server: ImageServer) -> None:
    with pytest.raises(ImageUnavailable, match="404") as refused:
        fetch(f"{server.url}/missing.png", ALLOWED)
    assert refused.value.permanent


@pytest.mark.parametrize("path", ["/huge", "/endless"])
def test_a_huge_response_is_refused_by_the_cap(server: ImageServer, tmp_path: Path, path: str) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=10_000, timeout=5)
    with pytest.raises(ImageUnavailable, match="10,000-byte cap"):
        cached_image(tmp_path, server.url + path, policy)
    assert not (tmp_path / ".publisher" / "images").exists()  # nothing kept


def test_a_body_that_is_not_an_image_is_refused(server: ImageServer, tmp_path: Path) -> None:
    with pytest.raises(ImageUnavailable, match="not an image"):
        cached_image(tmp_path, f"{server.url}/text", ALLOWED)


def test_a_private_address_is_refused_unless_allowed(server: ImageServer) -> None:
    with pytest.raises(ImageUnavailable, match="private address"):
        fetch(f"{server.url}/ok.png", FetchPolicy(timeout=5))
    assert server.asked == []  # refused before connecting
    assert fetch(f"{server.url}/ok.png", ALLOWED).data == server.image


def test_every_redirect_hop_is_checked(server: ImageServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 passes for public here; its redirect to 127.0.0.2 (loopback) must still be refused."""
    monkeypatch.setattr(remote_image, "_is_public", lambda address: address == "127.0.0.1")
    server.elsewhere = f"http://127.0.0.2:{server.server_address[1]}/ok.png"

    with pytest.raises(ImageUnavailable, match=r"127\.0\.0\.2 is a private address") as refused:
        fetch(f"{server.url}/to-elsewhere", FetchPolicy(timeout=5))

    assert refused.value.permanent
    assert server.asked == ["/to-elsewhere"]


def test_too_many_redirects_are_refused(server: ImageServer) -> None:
    server.elsewhere = f"{server.url}/to-elsewhere"
    with pytest.raises(ImageUnavailable, match="more than 3 redirects"):
        fetch(f"{server.url}/to-elsewhere", FetchPolicy(allow_private=True, max_redirects=3, timeout=5))
    assert len(server.asked) == 4


def remote_site(root: Path, fakes: Fakes, image_url: str) -> Path:
    make_site(root, fakes)
    record = root / "events" / "2026-11-27-foro.md"
    record.write_text(RECORD.replace("src: media/foro.png", f"src: {image_url}"), encoding="utf-8")
    with (root / "publisher.toml").open("a", encoding="utf-8") as config:
        config.write("\n[social]\nallow_private_images = true\n")
    return root


def test_a_remote_image_posts_on_every_network(server: ImageServer, fakes: Fakes, tmp_path: Path) -> None:
    root = remote_site(tmp_path / "site", fakes, f"{server.url}/ok.png")
    environment = env("x", "mastodon", "bluesky")

    assert sorted(run_at(root, PUBLISHED + timedelta(hours=2), environment)) == [
        "bluesky:sent",
        "mastodon:sent",
        "x:sent",
    ]

    [x_media] = fakes.x.media.values()
    [mastodon_media] = fakes.mastodon.media.values()
    [bluesky_post] = fakes.bluesky.created()
    assert x_media["data"] == mastodon_media["data"] == server.image
    assert x_media["alt"] == mastodon_media["description"] == "La sala del foro con el panel en el escenario"
    assert bluesky_post["embed"]["$type"] == "app.bsky.embed.images"
    assert [blob[1] for blob in fakes.bluesky.blobs.values()] == [server.image]
    assert server.asked.count("/ok.png") == 1  # fetched once, posted three times


def test_an_image_that_cannot_be_had_does_not_sink_the_post(server: ImageServer, fakes: Fakes, tmp_path: Path) -> None:
    root = remote_site(tmp_path / "site", fakes, f"{server.url}/missing.png")
    environment = env("x", "mastodon", "bluesky")
    later = PUBLISHED + timedelta(hours=2)

    assert sorted(run_at(root, later, environment)) == ["bluesky:sent", "mastodon:sent", "x:sent"]

    assert not fakes.x.media and not fakes.mastodon.media
    [bluesky_post] = fakes.bluesky.created()
    assert bluesky_post["embed"]["$type"] == "app.bsky.embed.external"  # its link card instead
    assert bluesky_post["embed"]["external"]["uri"] == "https://example.org/noticias/foro"
    for line in plan_json(root, later, environment):
        assert f"sent without image: {server.url}/missing.png: the server answered 404" in str(line["note"])


def test_check_warns_of_a_broken_image_url_at_its_line(server: ImageServer, fakes: Fakes, tmp_path: Path) -> None:
    root = remote_site(tmp_path / "site", fakes, f"{server.url}/missing.png")
    line = RECORD.splitlines().index("  src: media/foro.png") + 1

    result = CliRunner().invoke(cli, ["--site", str(root), "check"], env={})

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 1 records")
    assert f"warning: events/2026-11-27-foro.md:{line}: image.src: the image cannot be had" in result.stderr
    assert "404" in result.stderr


def test_check_fetches_a_good_image_url_ahead_of_the_post(server: ImageServer, fakes: Fakes, tmp_path: Path) -> None:
    root = remote_site(tmp_path / "site", fakes, f"{server.url}/ok.png")

    result = CliRunner().invoke(cli, ["--site", str(root), "check"], env={})

    assert result.exit_code == 0 and "warning" not in result.stderr
    assert [p.read_bytes() for p in (root / ".publisher" / "images").glob("*.png")] == [server.image]


def test_a_local_image_file_that_is_not_an_image_is_a_check_error(fakes: Fakes, tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", fakes)
    (root / "media" / "foro.png").write_bytes(b"<html>oops</html>")
    line = RECORD.splitlines().index("  src: media/foro.png") + 1

    result = CliRunner().invoke(cli, ["--site", str(root), "check"], env={})

    assert result.exit_code == 2
    assert f"events/2026-11-27-foro.md:{line}: image.src: is not an image" in result.stderr


def test_build_fetches_a_remote_image_ahead_of_the_post(server: ImageServer, fakes: Fakes, tmp_path: Path) -> None:
    root = remote_site(tmp_path / "site", fakes, f"{server.url}/ok.png")

    result = CliRunner().invoke(cli, ["--site", str(root), "build"], env={})

    assert result.exit_code == 0, result.output
    assert [p.read_bytes() for p in (root / ".publisher" / "images").glob("*.png")] == [server.image]


def test_the_outbox_keeps_a_remote_image_as_its_url(server: ImageServer, fakes: Fakes, tmp_path: Path) -> None:
    root = remote_site(tmp_path / "site", fakes, f"{server.url}/missing.png")

    assert "x:sent" in run_at(root, PUBLISHED + timedelta(hours=2), {})

    [written] = (root / "outbox" / "posts" / "x").glob("*.json")
    assert f'"url": "{server.url}/missing.png"' in written.read_text(encoding="utf-8")
    assert server.asked == []


@pytest.mark.parametrize(
    "url", ["https://cepei.example.org/media/a.jpg", "http://example.com/a.png", "https://images.site.invalid/a.png"]
)
def test_a_name_reserved_for_examples_is_never_looked_up(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled site's image is on cepei.example.org: no DNS query leaves the machine for it (RFC 2606)."""

    def no_lookup(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"looked up {args[0]}")

    monkeypatch.setattr(remote_image.socket, "getaddrinfo", no_lookup)
    with pytest.raises(ImageUnavailable, match="reserved for examples") as refused:
        fetch(url, FetchPolicy(allow_private=True))
    assert refused.value.permanent


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2606:4700::1111", True),
        ("169.254.169.254", False),  # a cloud's metadata service
    ],
)
def test_an_ipv4_address_carried_in_ipv6_is_judged_as_itself(address: str, public: bool) -> None:
    assert remote_image._is_public(address) is public


def test_build_warns_of_a_broken_image_url_also_when_the_record_comes_from_its_cache(
    server: ImageServer, fakes: Fakes, tmp_path: Path
) -> None:
    root = remote_site(tmp_path / "site", fakes, f"{server.url}/missing.png")
    line = RECORD.splitlines().index("  src: media/foro.png") + 1
    record = root / "events" / "2026-11-27-foro.md"
    os.utime(record, ns=(record.stat().st_mtime_ns - 5 * 10**9,) * 2)  # old enough for its times to be trusted
    warning = f"warning: events/2026-11-27-foro.md:{line}: image.src: the image cannot be had"

    first = CliRunner().invoke(cli, ["--site", str(root), "build"], env={})
    again = CliRunner().invoke(cli, ["--site", str(root), "build"], env={})  # the record is not parsed again

    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert warning in first.stderr and warning in again.stderr
    assert server.asked.count("/missing.png") == 2  # asked on each build: it may be there by now
