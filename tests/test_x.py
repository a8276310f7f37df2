"""The X channel: the real tweepy talking HTTP to a fake X on loopback."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from oauthlib.oauth1 import Client  # type: ignore[import-untyped]  # no stubs installed
from oauthlib.oauth1.rfc5849 import signature  # type: ignore[import-untyped]

from publisher.channels.social import AuthFailed, OutboxChannel, Published
from publisher.channels.x import MediaRoute, XChannel, open_x
from publisher.render.social import Post, PostImage
from publisher.site.config import load_site
from tests.fakes import HANG, Reply, problem
from tests.fakes.x_api import DUPLICATE, FakeX, oauth_params
from tests.fakes.x_contract import find_route

REPO = Path(__file__).resolve().parent.parent
IMAGE = PostImage(
    "https://cepei.example.org/media/forum-bogota.png", "Panel of five speakers", Path("media/forum-bogota.png")
)
CREDENTIALS = {
    "api_key": "test-api-key",
    "api_secret": "api-secret-do-not-show",
    "access_token": "1234-access-token-do-not-show",
    "access_secret": "access-secret-do-not-show",
}


@pytest.fixture
def fake() -> Iterator[FakeX]:
    server = FakeX(reset=1_900_000_000)
    with server:
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def channel(
    fake: FakeX, *, route: MediaRoute = "v2", timeout: float = 5.0, sleep: Sleeps | None = None, **keys: str
) -> XChannel:
    return XChannel(
        fake.url,
        fake.url,
        {**CREDENTIALS, **keys},
        route,
        timeout=timeout,
        sleep=sleep if sleep is not None else Sleeps(),
    )


def post(text: str = "The Bogotá forum report is out https://cepei.example.org/r/forum", **more: object) -> Post:
    return Post("x", "forum", text, "en", **more)  # type: ignore[arg-type]


def publish(ch: XChannel, p: Post) -> Published:
    return ch.publish(p, key="dispatch-1", media_root=REPO)


def test_a_thread_is_three_tweets_chained_by_reply_ids(fake: FakeX) -> None:
    thread = ("Part two: the findings.", "Part three: what comes next.")
    result = channel(fake).publish(post(thread=thread), key="d1", media_root=REPO)

    assert result.outcome == "posted"
    assert len(result.ids) == 3
    assert fake.thread(result.ids[-1]) == [post().text, *thread]
    assert [fake.tweets[i]["reply_to"] for i in result.ids] == [None, result.ids[0], result.ids[1]]
    assert result.url == f"https://x.com/i/web/status/{result.ids[0]}"
    # the dispatcher can pace itself on what X said after the last create
    assert result.remaining == 200 - 3


@pytest.mark.parametrize("route", ["v2", "v1.1"])
def test_an_image_goes_up_with_its_alt_text(fake: FakeX, route: MediaRoute) -> None:
    result = channel(fake, route=route).publish(post(images=(IMAGE,), thread=("More.",)), key="d1", media_root=REPO)

    assert result.outcome == "posted"
    [media_id] = fake.media
    assert fake.media[media_id]["data"] == (REPO / "media/forum-bogota.png").read_bytes()
    assert fake.media[media_id]["alt"] == "Panel of five speakers"
    assert fake.tweets[result.ids[0]]["media_ids"] == [media_id]
    assert fake.tweets[result.ids[1]]["media_ids"] == []  # the image goes with the first part only
    if route == "v2":
        assert fake.received("POST /2/media/upload")[0].json["media_category"] == "tweet_image"
        [metadata] = fake.received("POST /2/media/metadata")
        assert metadata.json == {"id": media_id, "metadata": {"alt_text": {"text": "Panel of five speakers"}}}
    else:
        assert len(fake.received("POST /1.1/media/upload.json")) == 1
        assert not fake.received("POST /2/media/upload")


def test_every_request_of_a_post_with_an_image_is_one_xs_sdk_has_and_x_takes(fake: FakeX) -> None:
    result = publish(channel(fake), post(images=(IMAGE,), thread=("More.",)))

    assert result.outcome == "posted"
    routes = [r.route for r in fake.requests]
    assert routes == ["POST /2/media/upload", "POST /2/media/metadata", "POST /2/tweets", "POST /2/tweets"]
    assert all(find_route(r.method, r.path) is not None for r in fake.requests)


def test_the_fake_answers_a_path_x_does_not_have_with_404_and_a_wrong_body_with_400(fake: FakeX) -> None:
    """The fake is what holds the channel to X's contract: it must refuse what X refuses."""
    ch = channel(fake)
    ch._upload(IMAGE, REPO)  # a media id the fake knows
    [media_id] = fake.media
    old_path = requests.post(f"{fake.url}/2/media/metadata/create", auth=ch._sign, json={"id": media_id})
    old_body = requests.post(
        f"{fake.url}/2/media/metadata", auth=ch._sign, json={"media_id": media_id, "alt_text": {"text": "x"}}
    )
    multipart = requests.post(
        f"{fake.url}/2/media/upload", auth=ch._sign, files={"media": ("a.png", b"png")}, data={"media_category": "x"}
    )
    stray_field = requests.post(
        f"{fake.url}/2/media/metadata", auth=ch._sign, json={"id": media_id, "metadata": {"alt": {"text": "x"}}}
    )

    assert old_path.status_code == 404
    assert old_body.status_code == 400
    assert "id: Field required" in old_body.text
    assert multipart.status_code == 400  # the SDK sends JSON with the media in base64
    assert stray_field.status_code == 400
    assert fake.media[media_id]["alt"] == "Panel of five speakers"


def test_alt_text_sent_to_a_path_x_does_not_have_fails_the_post(fake: FakeX, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the issue saw: with the old path the image is refused and nothing is posted."""
    ch = channel(fake)
    send = ch._v2
    monkeypatch.setattr(ch, "_v2", lambda path, **body: send(path.replace("/metadata", "/metadata/create"), **body))

    result = publish(ch, post(images=(IMAGE,)))

    assert result.outcome == "failed"
    assert "404" in result.message
    assert not fake.tweets


def test_requests_are_signed_for_the_address_they_really_go_to(fake: FakeX) -> None:
    publish(channel(fake), post())

    [create] = fake.received("POST /2/tweets")
    header = create.headers["authorization"]
    params = signature.collect_parameters(headers={"Authorization": header})
    base = signature.signature_base_string(
        "POST", signature.base_string_uri(fake.url + create.path), signature.normalize_parameters(params)
    )
    signer = Client(
        CREDENTIALS["api_key"], CREDENTIALS["api_secret"], resource_owner_secret=CREDENTIALS["access_secret"]
    )
    expected = signature.sign_hmac_sha1_with_client(base, signer)
    assert oauth_params(header)["oauth_signature"] == expected


def test_a_429_is_rate_limited_until_xs_reset_time(fake: FakeX) -> None:
    headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": "1900000000"}
    fake.script("POST /2/tweets", [(429, problem(429, "Too Many Requests", "Too Many Requests"), headers)])

    result = publish(channel(fake), post())

    assert result.outcome == "rate_limited"
    assert result.retry_at == datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
    assert result.retryable
    assert not fake.tweets


@pytest.mark.parametrize("lost", [Reply(process=True, then="hang"), Reply(process=True, then="close")], ids=str)
def test_an_answer_lost_after_sending_is_unknown_and_not_sent_again(fake: FakeX, lost: Reply) -> None:
    fake.script("POST /2/tweets", [lost])

    result = publish(channel(fake, timeout=0.5), post())

    assert result.outcome == "unknown"
    assert not result.retryable
    assert len(fake.received("POST /2/tweets")) == 1
    assert len(fake.tweets) == 1  # it was posted after all: that is why it must not be sent again


def test_a_thread_cut_by_a_lost_answer_says_which_parts_are_up(fake: FakeX) -> None:
    fake.script("POST /2/tweets", [Reply(201, {"data": {"id": "1"}}, process=True), HANG])

    result = publish(channel(fake, timeout=0.5), post(thread=("two", "three")))

    assert result.outcome == "unknown"
    assert result.ids == ("1",)
    assert "part 2 of 3" in result.message
    assert len(fake.received("POST /2/tweets")) == 2


def test_a_5xx_on_create_is_unknown_not_retried(fake: FakeX) -> None:
    fake.script("POST /2/tweets", [(503, problem(503, "Service Unavailable", "Service Unavailable"))])

    result = publish(channel(fake), post())

    assert result.outcome == "unknown"
    assert "503" in result.message
    assert len(fake.received("POST /2/tweets")) == 1


def test_an_unreachable_x_failed_and_can_be_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ch = XChannel(f"http://127.0.0.1:{port}", None, CREDENTIALS, timeout=2)

    result = ch.publish(post(), key="d1", media_root=REPO)

    assert result.outcome == "failed"
    assert result.retryable


def test_the_same_text_twice_is_a_duplicate(fake: FakeX) -> None:
    first = publish(channel(fake), post())
    second = publish(channel(fake), post())

    assert first.outcome == "posted"
    assert second.outcome == "duplicate"
    assert DUPLICATE in second.message
    assert len(fake.tweets) == 1


def test_a_text_x_refuses_fails_with_xs_words(fake: FakeX) -> None:
    result = publish(channel(fake), post("é" * 281))

    assert result.outcome == "failed"
    assert "too long" in result.message
    assert not fake.tweets


def test_a_media_5xx_is_retried_with_backoff(fake: FakeX) -> None:
    fake.script("POST /2/media/upload", [(503, problem(503, "Service Unavailable", "busy"))])
    sleeps = Sleeps()

    result = channel(fake, sleep=sleeps).publish(post(images=(IMAGE,)), key="d1", media_root=REPO)

    assert result.outcome == "posted"
    assert len(fake.received("POST /2/media/upload")) == 2
    assert sleeps == [1.0]
    assert len(fake.media) == 1


def test_a_media_upload_failing_three_times_posts_nothing(fake: FakeX) -> None:
    fake.script("POST /2/media/upload", [(500, problem(500, "Internal Error", "oops"))] * 3)
    sleeps = Sleeps()

    result = channel(fake, sleep=sleeps).publish(post(images=(IMAGE,)), key="d1", media_root=REPO)

    assert result.outcome == "failed"
    assert result.retryable
    assert sleeps == [1.0, 2.0]
    assert not fake.received("POST /2/tweets")


def test_a_missing_image_file_fails_before_anything_is_sent(fake: FakeX) -> None:
    missing = PostImage("https://cepei.example.org/media/gone.png", "gone", Path("media/gone.png"))

    result = publish(channel(fake), post(images=(missing,)))

    assert result.outcome == "failed"
    assert "gone.png" in result.message
    assert not fake.requests


@pytest.mark.parametrize("images", [(), (IMAGE,)], ids=["create", "media"])
def test_refused_credentials_stop_the_channel_without_showing_them(fake: FakeX, images: tuple[PostImage, ...]) -> None:
    ch = channel(fake, api_key="revoked-key")

    with pytest.raises(AuthFailed) as refused:
        ch.publish(post(images=images), key="d1", media_root=REPO)

    shown = f"{refused.value} {refused.value!r} {ch!r}"
    assert "401" in shown
    for secret in CREDENTIALS.values():
        assert secret not in shown
    assert not fake.tweets


def test_without_credentials_posts_go_to_the_outbox(example_site: Path) -> None:
    assert isinstance(open_x(load_site(example_site, env={})), OutboxChannel)
    env = {
        "PUBLISHER_X_API_KEY": "k",
        "PUBLISHER_X_API_SECRET": "s",
        "PUBLISHER_X_ACCESS_TOKEN": "t",
        "PUBLISHER_X_ACCESS_SECRET": "a",
    }
    assert isinstance(open_x(load_site(example_site, env=env)), XChannel)


def test_no_credential_reaches_the_logs_even_at_debug(fake: FakeX, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    publish(channel(fake), post(images=(IMAGE,)))

    assert caplog.records  # the libraries did log
    logged = caplog.text
    for secret in CREDENTIALS.values():
        assert secret not in logged
