"""The Mastodon channel against `mastodon-mock`, a server implementing Mastodon's API (PyPI).

Beside our own fake (tests/fakes/mastodon_api.py, which records what was sent),
these tests post through Mastodon.py to a server we did not write and read the
statuses back through its API: language, visibility, media descriptions, the
thread's replies, and the `Idempotency-Key` turning a retry into the status
already made. Its length check counts code points, not Mastodon's graphemes, so
post lengths are judged in tests/test_mastodon.py, never here.

The server runs as `python -m mastodon_mock serve --in-memory` on a free port,
once for this module; each test works with its own dispatch keys.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from publisher.channels.mastodon import MastodonChannel, open_mastodon
from publisher.channels.remote_image import with_images
from publisher.render.social import Post, PostImage, render_posts
from publisher.site.config import load_site
from publisher.site.records import load_records
from tests.fakes.losing_proxy import LosingProxy
from tests.test_remote_image import ALLOWED, ImageServer, server

__all__ = ["server"]  # the fixture, used by name

REPO = Path(__file__).resolve().parent.parent
TOKEN = "mock_token"  # the account mastodon-mock seeds by default (testuser)
IMAGE = PostImage(
    "https://cepei.example.org/media/forum-bogota.png", "Cinco panelistas en el foro", Path("media/forum-bogota.png")
)


@dataclass(frozen=True)
class Mock:
    """A running mastodon-mock: its base URL and the seeded account's id."""

    url: str
    account: str

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(
            f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def status(self, status_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/api/v1/statuses/{status_id}")
        return found

    def source_text(self, status_id: str) -> str:
        return str(self.get(f"/api/v1/statuses/{status_id}/source")["text"])

    def statuses(self) -> list[dict[str, Any]]:
        """Every status of the account, newest first."""
        found: list[dict[str, Any]] = self.get(f"/api/v1/accounts/{self.account}/statuses", limit=40)
        assert len(found) < 40, "more statuses than one page: the counts below would be wrong"
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mock]:
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("mastodon-mock"))}  # its media, under pytest's cleanup
    command = [sys.executable, "-m", "mastodon_mock", "serve", "--in-memory", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                output = server.stdout.read() if server.stdout else ""
                pytest.fail(f"mastodon-mock exited with {server.returncode} before answering:\n{output}")
            try:
                me = requests.get(
                    f"{url}/api/v1/accounts/verify_credentials",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=2,
                )
                if me.ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mastodon-mock did not answer on {url} within 60 s (`{' '.join(command)}`)")
            time.sleep(0.2)
        yield Mock(url, str(me.json()["id"]))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()


def channel(mock: Mock, visibility: Any = "unlisted", timeout: float = 10.0, **more: Any) -> MastodonChannel:
    more.setdefault("sleep", lambda _: None)
    return MastodonChannel(mock.url, TOKEN, visibility, timeout, **more)


def post(text: str = "Publicamos el informe del foro de Bogotá", language: str = "es-CO", **more: Any) -> Post:
    return Post("mastodon", "foro", text, language, **more)


@pytest.mark.parametrize(("visibility", "language"), [("public", "en"), ("unlisted", "pt-BR"), ("private", "es-CO")])
def test_a_thread_is_stored_with_its_language_visibility_and_replies(
    mock: Mock, visibility: str, language: str
) -> None:
    thread = ("Segunda parte: los hallazgos.", "Tercera parte: lo que sigue.")

    published = channel(mock, visibility).publish(
        post(language=language, thread=thread), key=f"thread-{visibility}", media_root=REPO
    )

    assert published.outcome == "posted", published.message
    stored = [mock.status(i) for i in published.ids]
    assert [mock.source_text(i) for i in published.ids] == [post().text, *thread]
    assert [s["in_reply_to_id"] for s in stored] == [None, *published.ids[:-1]]
    assert {s["language"] for s in stored} == {language.split("-")[0]}  # Mastodon keeps ISO 639-1
    assert {s["visibility"] for s in stored} == {visibility}
    assert published.url == stored[0]["url"]


def test_an_image_is_stored_with_its_description(mock: Mock) -> None:
    published = channel(mock).publish(post(images=(IMAGE,), thread=("Más.",)), key="image", media_root=REPO)

    assert published.outcome == "posted", published.message
    first, second = (mock.status(i) for i in published.ids)
    [media] = first["media_attachments"]
    assert (media["type"], media["description"]) == ("image", IMAGE.alt)
    assert second["media_attachments"] == []  # the image goes with the first part only


def test_publishing_the_same_dispatch_again_gives_back_the_statuses_already_made(mock: Mock) -> None:
    before = len(mock.statuses())
    thread = post("Una sola vez, aunque se reintente", thread=("Y su respuesta, también una vez.",))

    first = channel(mock).publish(thread, key="again", media_root=REPO)
    # a new channel, nothing remembered on our side: the same requests as a retry after a lost answer
    again = channel(mock).publish(thread, key="again", media_root=REPO)
    other = channel(mock).publish(thread, key="another-dispatch", media_root=REPO)

    assert first.outcome == again.outcome == other.outcome == "posted"
    assert again.ids == first.ids and again.url == first.url
    assert set(other.ids).isdisjoint(first.ids)  # another key is another status: the server does not dedupe by text
    assert len(mock.statuses()) == before + 4


def test_a_status_whose_answer_was_lost_is_not_made_again_by_the_retry(mock: Mock) -> None:
    before = len(mock.statuses())
    naps: list[float] = []
    with LosingProxy(mock.url, "POST /api/v1/statuses", lose=1) as proxy:
        published = MastodonChannel(proxy.url, TOKEN, "unlisted", 10.0, sleep=naps.append).publish(
            post("Un estado cuya respuesta se pierde"), key="lost", media_root=REPO
        )

    assert published.outcome == "posted", published.message
    assert naps == [1.0]  # the lost answer was retried once, with the same key
    assert published.ids == tuple(lost["id"] for lost in proxy.lost)  # the status made the first time, given back
    assert len(mock.statuses()) == before + 1


def test_every_mastodon_post_of_the_example_site_is_stored_as_rendered(mock: Mock, example_site: Path) -> None:
    with (example_site / "publisher.toml").open("a", encoding="utf-8") as settings:
        settings.write(f'\n[mastodon]\ninstance = "{mock.url}"\nvisibility = "unlisted"\n')
    site = load_site(example_site, env={"PUBLISHER_MASTODON_TOKEN": TOKEN})
    posts = [
        # images given as outside URLs would be fetched from outside this machine: left out here
        replace(p, images=tuple(i for i in p.images if i.path is not None))
        for record in load_records(site.events, site.root)
        for p in render_posts(record, site.settings, site.templates)
        if p.network == "mastodon"
    ]
    assert len(posts) >= 4 and any(p.images for p in posts) and any(p.language == "es" for p in posts)
    mastodon = open_mastodon(site, timeout=10)
    assert isinstance(mastodon, MastodonChannel)

    for number, rendered in enumerate(posts):
        published = mastodon.publish(rendered, key=f"example-{number}", media_root=site.root)
        assert published.outcome == "posted", published.message
        [status_id] = published.ids
        stored = mock.status(status_id)
        assert mock.source_text(status_id) == rendered.text
        assert (stored["language"], stored["visibility"]) == (rendered.language, "unlisted")
        assert [m["description"] for m in stored["media_attachments"]] == [i.alt for i in rendered.images]
        assert rendered.url is not None and rendered.url in stored["content"]


def test_an_image_given_as_a_url_is_fetched_and_stored_with_its_description(
    mock: Mock, server: ImageServer, tmp_path: Path
) -> None:
    """A record whose image lives on the organisation's web server (here a server on loopback)."""
    remote = PostImage(f"{server.url}/ok.png", "Desde el servidor de la organización", None)
    fetched, missing = with_images(post(images=(remote,)), tmp_path, ALLOWED)
    assert missing == []

    published = channel(mock).publish(fetched, key="remote-image", media_root=tmp_path)

    assert published.outcome == "posted", published.message
    [media] = mock.status(published.ids[0])["media_attachments"]
    assert (media["type"], media["description"]) == ("image", remote.alt)
    assert server.asked.count("/ok.png") == 1
