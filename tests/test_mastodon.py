"""The Mastodon channel: the real Mastodon.py talking HTTP to a fake instance on loopback."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.channels.mastodon import MastodonChannel, instance_length, open_mastodon
from publisher.channels.social import AuthFailed, OutboxChannel, Published
from publisher.errors import ChannelError
from publisher.render.lengths import mastodon_length
from publisher.render.social import Post, PostImage
from publisher.site.config import load_site
from tests.fakes import HANG, Reply
from tests.fakes.mastodon_api import FakeMastodon

REPO = Path(__file__).resolve().parent.parent
IMAGE = PostImage(
    "https://cepei.example.org/media/forum-bogota.png", "Cinco panelistas", Path("media/forum-bogota.png")
)
TOKEN = "mastodon-token-do-not-show"
LINK = "https://cepei.example.org/events/2018/foro-de-bogota-sobre-datos-para-el-desarrollo-sostenible"


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    server = FakeMastodon(token=TOKEN)
    with server:
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def channel(
    fake: FakeMastodon, *, token: str = TOKEN, timeout: float = 5.0, sleep: Sleeps | None = None
) -> MastodonChannel:
    return MastodonChannel(fake.url, token, "unlisted", timeout, sleep=sleep if sleep is not None else Sleeps())


def post(text: str = "Publicamos el informe del foro de Bogotá", **more: object) -> Post:
    return Post("mastodon", "foro", text, "es-CO", **more)  # type: ignore[arg-type]


def publish(ch: MastodonChannel, p: Post, key: str = "dispatch-7") -> Published:
    return ch.publish(p, key=key, media_root=REPO)


def test_a_thread_is_chained_with_language_visibility_and_keys(fake: FakeMastodon) -> None:
    thread = ("Segunda parte: los hallazgos.", "Tercera parte: lo que sigue.")

    result = publish(channel(fake), post(thread=thread))

    assert result.outcome == "posted"
    assert fake.thread(result.ids[-1]) == [post().text, *thread]
    statuses = [fake.statuses[i] for i in result.ids]
    assert [s["in_reply_to_id"] for s in statuses] == [None, result.ids[0], result.ids[1]]
    assert {s["language"] for s in statuses} == {"es"}  # Mastodon takes ISO 639: "es-CO" → "es"
    assert {s["visibility"] for s in statuses} == {"unlisted"}
    assert [s["idempotency_key"] for s in statuses] == ["dispatch-7-0", "dispatch-7-1", "dispatch-7-2"]
    assert result.url == f"{fake.url}/@team/{result.ids[0]}"
    assert result.remaining == 300 - 3


def test_an_image_goes_to_the_v2_media_endpoint_with_its_alt_text(fake: FakeMastodon) -> None:
    result = publish(channel(fake), post(images=(IMAGE,), thread=("Más.",)))

    assert result.outcome == "posted"
    [upload] = fake.received("POST /api/v2/media")
    assert upload.files["file"].data == (REPO / "media/forum-bogota.png").read_bytes()
    assert upload.files["file"].content_type == "image/png"
    assert upload.field("description") == "Cinco panelistas"
    assert not fake.received("POST /api/v1/media")
    [media_id] = fake.media
    assert fake.statuses[result.ids[0]]["media_ids"] == [media_id]
    assert fake.statuses[result.ids[1]]["media_ids"] == []


def test_the_instance_is_asked_once_and_only_by_us(fake: FakeMastodon) -> None:
    ch = channel(fake)
    publish(ch, post(images=(IMAGE,)))
    publish(ch, post("Otra"))

    instance_calls = [r for r in fake.requests if "instance" in r.path]
    assert [r.path for r in instance_calls] == ["/api/v2/instance"]


def test_a_still_processing_image_is_waited_for() -> None:
    with FakeMastodon(token=TOKEN, processing_polls=2) as slow:
        sleeps = Sleeps()
        result = publish(channel(slow, sleep=sleeps), post(images=(IMAGE,)))

        assert result.outcome == "posted"
        assert len(slow.received(f"GET /api/v1/media/{next(iter(slow.media))}")) == 3
        assert sleeps == [1.0, 2.0, 4.0]


def test_a_429_is_rate_limited_until_the_reset_header(fake: FakeMastodon) -> None:
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2030-01-01T12:00:00.000Z",
    }
    fake.script("POST /api/v1/statuses", [(429, {"error": "Too many requests"}, headers)])

    result = publish(channel(fake), post())

    assert result.outcome == "rate_limited"
    assert result.retry_at == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert result.retryable
    assert not fake.statuses


def test_a_5xx_after_the_status_was_made_is_retried_once_with_the_same_key(fake: FakeMastodon) -> None:
    # the instance made the status, then a proxy answered 503: the retry must not make a second one
    fake.script("POST /api/v1/statuses", [Reply(503, {"error": "Service Unavailable"}, process=True)])
    sleeps = Sleeps()

    result = publish(channel(fake, sleep=sleeps), post())

    assert result.outcome == "posted"
    attempts = fake.received("POST /api/v1/statuses")
    assert len(attempts) == 2
    assert {a.headers["idempotency-key"] for a in attempts} == {"dispatch-7-0"}
    assert list(fake.statuses) == list(result.ids)
    assert sleeps == [1.0]


def test_a_5xx_then_success_posts_exactly_once(fake: FakeMastodon) -> None:
    fake.script("POST /api/v1/statuses", [(502, {"error": "Bad Gateway"}), (500, {"error": "oops"})])

    result = publish(channel(fake), post())

    assert result.outcome == "posted"
    assert len(fake.received("POST /api/v1/statuses")) == 3
    assert len(fake.statuses) == 1


def test_a_lost_answer_is_retried_safely(fake: FakeMastodon) -> None:
    fake.script("POST /api/v1/statuses", [Reply(process=True, then="hang")])

    result = publish(channel(fake, timeout=0.5), post())

    assert result.outcome == "posted"
    assert len(fake.received("POST /api/v1/statuses")) == 2
    assert len(fake.statuses) == 1


def test_an_instance_failing_every_try_fails_retryably(fake: FakeMastodon) -> None:
    fake.script("POST /api/v1/statuses", [(503, {"error": "down"})] * 4)
    sleeps = Sleeps()

    result = publish(channel(fake, sleep=sleeps), post())

    assert result.outcome == "failed"
    assert result.retryable
    assert "503" in result.message
    assert sleeps == [1.0, 2.0, 4.0]
    assert not fake.statuses


def test_no_answer_at_all_is_unknown_but_safe_to_retry(fake: FakeMastodon) -> None:
    fake.script("POST /api/v1/statuses", [HANG] * 4)

    result = publish(channel(fake, timeout=0.3), post())

    assert result.outcome == "unknown"
    assert result.retryable


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_stops_the_channel_without_showing_it(fake: FakeMastodon, status: int) -> None:
    if status == 403:
        fake.script("POST /api/v1/statuses", [(403, {"error": "This action is not allowed"})])
    ch = channel(fake, token=TOKEN if status == 403 else "revoked-token")

    with pytest.raises(AuthFailed) as refused:
        publish(ch, post())

    shown = f"{refused.value} {refused.value!r} {ch!r}"
    assert str(status) in shown
    assert TOKEN not in shown
    assert not fake.statuses


@pytest.mark.parametrize("status", [500, 404])
def test_a_failing_instance_endpoint_is_one_clear_error(status: int) -> None:
    with FakeMastodon(token=TOKEN, instance_status=status) as broken:
        with pytest.raises(ChannelError) as failed:
            publish(channel(broken), post())

        assert str(failed.value).startswith(f"cannot read {broken.url}/api/v2/instance: {status}")
        assert not [r for r in broken.requests if r.method == "POST"]


def test_an_unreachable_instance_is_one_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(ChannelError, match=rf"^cannot read http://127.0.0.1:{port}/api/v2/instance: "):
        MastodonChannel(f"http://127.0.0.1:{port}", TOKEN, timeout=2).limits()


def test_the_instances_own_limits_are_used() -> None:
    with FakeMastodon(token=TOKEN, max_characters=60, url_length=30) as small:
        ch = channel(small)
        assert ch.limits() == (60, 30)

        fits = f"Informe del foro: {LINK}"  # 18 + 30 = 48 with the instance's URL length
        assert instance_length(fits, 30) == 48
        assert publish(ch, post(fits)).outcome == "posted"

        too_long = post("Informe", thread=("x" * 61,))
        result = publish(ch, too_long)
        assert result.outcome == "failed"
        assert "part 2 of the thread is 61 characters" in result.message
        assert "limit of 60" in result.message
        assert len(small.statuses) == 1  # nothing of the long one was sent, not even its first part


def test_an_instance_that_does_not_say_falls_back_to_500_and_23() -> None:
    with FakeMastodon(token=TOKEN, max_characters=None, url_length=None) as quiet:
        assert channel(quiet).limits() == (500, 23)


def test_the_count_follows_mastodons_rule() -> None:
    assert instance_length("e\u0301") == 1  # one grapheme cluster
    assert instance_length("👩🏽‍💻 ok") == 4
    assert instance_length(f"see {LINK}") == 4 + 23
    assert instance_length("hi @ana@social.example") == len("hi @ana")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["e\u0301", "👩🏽‍💻", "日本", "word", " ", LINK, "https://a.example/b", "@ana@social.example"]),
        max_size=12,
    )
)
def test_the_renders_count_is_never_less_than_the_instances(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert mastodon_length(text) >= instance_length(text)


def test_without_a_token_posts_go_to_the_outbox(example_site: Path) -> None:
    assert isinstance(open_mastodon(load_site(example_site, env={})), OutboxChannel)
    channel_ = open_mastodon(load_site(example_site, env={"PUBLISHER_MASTODON_TOKEN": "t"}))
    assert isinstance(channel_, MastodonChannel)
    assert channel_.visibility == "public"


def test_the_token_never_reaches_the_logs(fake: FakeMastodon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script("POST /api/v1/statuses", [(503, {"error": "down"})])

    publish(channel(fake), post(images=(IMAGE,)))

    assert caplog.records
    assert TOKEN not in caplog.text
