"""The shared social interface: credentials, the outbox, image bytes."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from publisher.channels.loopback import is_loopback_host, is_loopback_url
from publisher.channels.social import CREDENTIAL_NAMES, OutboxChannel, credentials, fetch_image, image_bytes
from publisher.errors import ChannelError
from publisher.render.social import Post, PostImage
from publisher.site.rules import NETWORKS
from tests.fakes import Answer, FakeServer, Recorded

REPO = Path(__file__).resolve().parent.parent
IMAGE = PostImage("https://cepei.example.org/media/forum-bogota.png", "Panel", Path("media/forum-bogota.png"))


def test_credentials_come_only_from_their_variables() -> None:
    env = {
        "PUBLISHER_X_API_KEY": "k",
        "PUBLISHER_X_API_SECRET": "s",
        "PUBLISHER_X_ACCESS_TOKEN": "t",
        "PUBLISHER_X_ACCESS_SECRET": "a",
        "PUBLISHER_MASTODON_TOKEN": " m ",
        "PUBLISHER_BLUESKY_HANDLE": "team.example.org",
    }
    assert credentials("x", env) == {"api_key": "k", "api_secret": "s", "access_token": "t", "access_secret": "a"}
    assert credentials("mastodon", env) == {"token": "m"}
    assert credentials("bluesky", env) is None  # no app password: the outbox
    assert credentials("x", {**env, "PUBLISHER_X_ACCESS_SECRET": ""}) is None
    with pytest.raises(ValueError):
        credentials("myspace", env)


def test_the_outbox_writes_one_json_file_per_key_and_overwrites_it(tmp_path: Path) -> None:
    outbox = OutboxChannel("mastodon", tmp_path / "outbox")
    first = Post("mastodon", "forum", "Primera versión", "es", images=(IMAGE,), thread=("dos",))

    result = outbox.publish(first, key="forum-published-mastodon", media_root=REPO)
    again = outbox.publish(Post("mastodon", "forum", "Segunda", "es"), key="forum-published-mastodon", media_root=REPO)

    target = tmp_path / "outbox" / "posts" / "mastodon" / "forum-published-mastodon.json"
    assert result.outcome == "posted"
    assert result.ids == ("forum-published-mastodon",)
    assert result.url == target.resolve().as_uri()
    assert again.url == result.url
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert json.loads(target.read_text(encoding="utf-8"))["text"] == "Segunda"


def test_the_outbox_keeps_everything_a_person_needs_to_post_by_hand(tmp_path: Path) -> None:
    post = Post("x", "forum", "Report out", "en", url="https://cepei.example.org/r", images=(IMAGE,), thread=("2/2",))

    OutboxChannel("x", tmp_path).publish(post, key="k/../1", media_root=REPO)

    [written] = (tmp_path / "posts" / "x").iterdir()
    content = json.loads(written.read_text(encoding="utf-8"))
    assert content["text"] == "Report out"
    assert content["thread"] == ["2/2"]
    assert content["language"] == "en"
    assert content["images"] == [{"url": IMAGE.url, "alt": "Panel", "path": "media/forum-bogota.png"}]
    assert written.parent == tmp_path / "posts" / "x"  # the key cannot climb out of the folder


class ImageHost(FakeServer):
    def answer(self, request: Recorded) -> Answer:
        return 200, PNG, {"Content-Type": "image/png"}


PNG = (REPO / "media/forum-bogota.png").read_bytes()


def test_an_image_url_is_fetched_from_loopback_only_when_private_addresses_are_allowed() -> None:
    with ImageHost() as host:
        assert fetch_image(f"{host.url}/media/a.png", timeout=2, allow_private=True) == PNG
        with pytest.raises(ChannelError, match="private address"):
            fetch_image(f"{host.url}/media/a.png", timeout=2)
        with pytest.raises(ChannelError, match="private address"):
            image_bytes(f"{host.url}/b.png", None, REPO, timeout=2)


def test_a_site_image_is_read_from_the_media_root() -> None:
    assert image_bytes(IMAGE.url, IMAGE.path, REPO, timeout=2) == (REPO / "media/forum-bogota.png").read_bytes()
    with pytest.raises(ChannelError, match="cannot read the image"):
        image_bytes(IMAGE.url, Path("media/missing.png"), REPO, timeout=2)


def test_every_network_a_record_names_has_its_credentials() -> None:
    assert set(CREDENTIAL_NAMES) == set(NETWORKS)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080/a.png", True),
        ("https://127.3.4.5/a.png", True),
        ("http://[::1]:9000/a.png", True),
        ("http://LOCALHOST/a.png", True),
        ("http://localhost.localdomain/a.png", True),  # the mail server's check says so too: one answer
        ("ftp://127.0.0.1/a.png", False),
        ("http://localhost.example.org/a.png", False),
        ("http://10.0.0.1/a.png", False),
        ("http:///a.png", False),
    ],
)
def test_a_url_is_loopback_when_its_host_is(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
    host = urllib.parse.urlsplit(url).hostname
    if host and url.startswith("http"):
        assert is_loopback_host(host) is loopback
