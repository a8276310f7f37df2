"""Bluesky: the real atproto client talking XRPC to a fake PDS on loopback.

The fake records every request; the tests read what was actually sent (text,
facets' byte ranges, langs, blobs, alt text, reply refs, record keys).
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grapheme
import pytest
from atproto_client import Client
from atproto_client.exceptions import BadRequestError, NetworkError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from publisher.channels.bluesky import MAX_BLOB_BYTES, BlueskyChannel, record_key
from publisher.channels.image_fit import fit_image
from publisher.channels.social import AuthFailed
from publisher.render.social import Post, PostImage, render_posts
from publisher.site.config import load_site
from publisher.site.records import load_records
from tests.fakes import CLOSE, Reply
from tests.fakes.bluesky_api import PASS, TID, FakeBluesky, route

HANDLE = "cepei.example.org"
PASSWORD = "abcd-efgh-ijkl-mnop"
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
CREATE = route("com.atproto.repo.createRecord")
GET_RECORD = route("com.atproto.repo.getRecord")
UPLOAD = route("com.atproto.repo.uploadBlob")
SPANISH = "Cooperación Sur-Sur 🌍 https://cepei.example.org/noticias/café #ODS"


@dataclass(frozen=True)
class CardPost(Post):
    """A post with a picture for its link card (a field the renderer may add to `Post`)."""

    card_image: PostImage | None = None


@pytest.fixture
def fake() -> Iterator[FakeBluesky]:
    with FakeBluesky(handle=HANDLE, password=PASSWORD, known={"undp.example.org": "did:plc:undp4example"}) as server:
        yield server


@pytest.fixture
def naps() -> list[float]:
    return []


@pytest.fixture
def channel(fake: FakeBluesky, naps: list[float]) -> BlueskyChannel:
    return BlueskyChannel(fake.url, HANDLE, PASSWORD, timeout=5, sleep=naps.append, clock=lambda: NOW)


def post(text: str = SPANISH, **fields: Any) -> Post:
    fields.setdefault("language", "es")
    return Post(network="bluesky", record_id="2026-11-28-cooperacion", text=text, **fields)


def noise_png(path: Path, side: int = 1024) -> Path:
    """A PNG of random pixels: about 3 MB that no encoder can shrink much."""
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, format="PNG")
    return path


def facet_slices(record: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
    data = record["text"].encode("utf-8")
    return [
        (data[facet["index"]["byteStart"] : facet["index"]["byteEnd"]], facet["features"][0])
        for facet in record.get("facets") or []
    ]


# text, facets, language -------------------------------------------------------------


def test_non_ascii_post_has_facets_at_utf8_byte_offsets_and_the_record_language(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    published = channel.publish(post(), key="dispatch-1", media_root=tmp_path)

    assert published.outcome == "posted"
    [record] = fake.created()
    assert record["text"] == SPANISH
    assert record["langs"] == ["es"]
    url, tag = "https://cepei.example.org/noticias/café", "#ODS"
    slices = facet_slices(record)
    assert slices == [
        (url.encode(), {"$type": "app.bsky.richtext.facet#link", "uri": url}),
        (tag.encode(), {"$type": "app.bsky.richtext.facet#tag", "tag": "ODS"}),
    ]
    # "Cooperación" has one two-byte letter and 🌍 four bytes: the link starts at
    # character 22 but at byte 26, where Bluesky reads it.
    assert SPANISH.index(url) == 22
    assert record["facets"][0]["index"] == {
        "$type": "app.bsky.richtext.facet#byteSlice",
        "byteStart": 26,
        "byteEnd": 66,
    }


def test_posted_answer_names_the_at_uri_and_the_web_address(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    published = channel.publish(post(), key="dispatch-1", media_root=tmp_path)

    rkey = record_key("dispatch-1", 0)
    assert published.ids == (f"at://{fake.account.did}/app.bsky.feed.post/{rkey}",)
    assert published.url == f"https://bsky.app/profile/{HANDLE}/post/{rkey}"
    assert list(fake.records) == list(published.ids)
    assert fake.created()[0]["createdAt"] == "2026-11-28T09:00:00.000Z"


def test_known_mentions_become_facets_with_the_did_unknown_ones_stay_text(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    text = "Con @undp.example.org y @nobody.example.org en Nueva York"
    channel.publish(post(text), key="d-mentions", media_root=tmp_path)

    [record] = fake.created()
    assert facet_slices(record) == [
        (b"@undp.example.org", {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:undp4example"})
    ]
    asked = [r.query["handle"][0] for r in fake.received(route("com.atproto.identity.resolveHandle"))]
    assert asked == ["undp.example.org", "nobody.example.org"]


def test_the_record_language_is_sent_never_the_clients_default_english(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    channel.publish(post("Hello from Bogotá", language="pt-BR"), key="d-pt", media_root=tmp_path)
    assert fake.created()[0]["langs"] == ["pt-BR"]


# length rule ---------------------------------------------------------------------------------


def test_a_post_over_300_graphemes_fails_and_nothing_is_sent(fake: FakeBluesky, channel: BlueskyChannel) -> None:
    text = "é" * 280 + " " + "🇨🇴" * 20  # 301 graphemes, 321 characters: the client would send it
    assert grapheme.length(text) == 301

    published = channel.publish(post(text), key="d-long", media_root=Path("."))

    assert published.outcome == "failed"
    assert "301 graphemes" in published.message and "at most 300" in published.message
    assert not published.retryable
    assert fake.requests == []  # not even a login


def test_a_thread_part_over_the_limit_fails_the_whole_post_before_sending(
    fake: FakeBluesky, channel: BlueskyChannel
) -> None:
    published = channel.publish(post("short", thread=("fine", "x" * 301)), key="d-t", media_root=Path("."))

    assert published.outcome == "failed"
    assert published.message.startswith("part 3 of 3 is 301 graphemes long")
    assert fake.requests == []


def test_300_graphemes_of_many_bytes_each_are_refused_by_bytes(fake: FakeBluesky, channel: BlueskyChannel) -> None:
    family = "👨\u200d👩\u200d👧"  # one grapheme, 18 bytes
    published = channel.publish(post(family * 200), key="d-bytes", media_root=Path("."))

    assert published.outcome == "failed"
    assert "3,600 bytes" in published.message
    assert fake.requests == []
    client = Client(base_url=fake.url)
    client.login(HANDLE, PASSWORD, fetch_bsky_profile=False)
    with pytest.raises(BadRequestError, match=r"string too big \(maximum 3000, got 3600\)"):  # the PDS's words
        client.send_post(family * 200, profile_identify=HANDLE, langs=["es"])


def test_exactly_300_graphemes_pass_our_check_and_the_fakes(fake: FakeBluesky, channel: BlueskyChannel) -> None:
    text = ("Sur-Sur 🇨🇴 " * 30)[:-1]
    text += "!" * (300 - grapheme.length(text))
    assert grapheme.length(text) == 300

    assert channel.publish(post(text), key="d-300", media_root=Path(".")).outcome == "posted"
    assert fake.created()[0]["text"] == text


def test_the_fake_refuses_301_graphemes_like_the_pds(fake: FakeBluesky) -> None:
    client = Client(base_url=fake.url)
    client.login(HANDLE, PASSWORD, fetch_bsky_profile=False)
    with pytest.raises(BadRequestError) as refused:
        client.send_post("x" * 301, profile_identify=HANDLE, langs=["en"])
    assert refused.value.response.content.error == "InvalidRequest"
    # the reference PDS's words (tests/test_bluesky_pds.py meets them)
    assert "grapheme too big (maximum 300, got 301) at $.record.text" in refused.value.response.content.message


# images, cards ---------------------------------------------------------------------------------


def test_a_large_image_is_recompressed_under_the_limit_and_sent_with_its_alt_text(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    (tmp_path / "media").mkdir()
    big = noise_png(tmp_path / "media" / "panel.png")
    assert big.stat().st_size > 3 * MAX_BLOB_BYTES - 200_000
    alt = "Joyce Zhang, Mario Pezzini y Jorge Chediek en el panel de París"
    image = PostImage(url="https://cepei.example.org/media/panel.png", alt=alt, path=Path("media/panel.png"))

    published = channel.publish(
        post(images=(image,), url="https://cepei.example.org/x"), key="d-img", media_root=tmp_path
    )

    assert published.outcome == "posted"
    [upload] = fake.received(UPLOAD)
    assert len(upload.body) <= MAX_BLOB_BYTES
    assert upload.body[:3] == b"\xff\xd8\xff"  # re-encoded as JPEG
    assert upload.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(upload.body)) as sent:
        width, height = sent.size
    [record] = fake.created()
    assert record["embed"]["$type"] == "app.bsky.embed.images"  # images win over the link card
    [attached] = record["embed"]["images"]
    assert attached["alt"] == alt
    assert (attached["aspectRatio"]["width"], attached["aspectRatio"]["height"]) == (width, height)
    assert width == height  # the square stays square
    assert fake.blobs[attached["image"]["ref"]["$link"]] == ("image/jpeg", upload.body)


def test_four_images_at_most(fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path) -> None:
    images = tuple(PostImage(url=f"https://cepei.example.org/{n}.png", alt=str(n)) for n in range(5))
    published = channel.publish(post(images=images), key="d-5", media_root=tmp_path)

    assert published.outcome == "failed"
    assert "at most 4" in published.message
    assert fake.requests == []


def test_an_image_under_the_limit_is_sent_as_it_is(tmp_path: Path) -> None:
    small = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 120, 200)).save(small, format="PNG")
    fitted = fit_image(small.getvalue(), MAX_BLOB_BYTES)
    assert (fitted.data, fitted.mime_type, fitted.width, fitted.height) == (small.getvalue(), "image/png", 400, 300)


def test_a_post_with_a_url_and_no_image_gets_a_link_card_with_an_uploaded_thumbnail(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    noise_png(tmp_path / "card.png", side=600)
    url = "https://cepei.example.org/noticias/café"
    card = CardPost(
        network="bluesky",
        record_id="r",
        text=SPANISH,
        language="es",
        url=url,
        card_title="Cooperación Sur-Sur en París",
        card_description="Expertos de la OCDE y la UNOSSC preparan BAPA+40.",
        card_image=PostImage(url="https://cepei.example.org/card.png", alt="", path=Path("card.png")),
    )

    assert channel.publish(card, key="d-card", media_root=tmp_path).outcome == "posted"

    [upload] = fake.received(UPLOAD)
    [record] = fake.created()
    external = record["embed"]["external"]
    assert record["embed"]["$type"] == "app.bsky.embed.external"
    assert (external["uri"], external["title"], external["description"]) == (
        url,
        "Cooperación Sur-Sur en París",
        "Expertos de la OCDE y la UNOSSC preparan BAPA+40.",
    )
    assert external["thumb"]["ref"]["$link"] in fake.blobs
    assert fake.blobs[external["thumb"]["ref"]["$link"]][1] == upload.body
    assert external["thumb"]["size"] == len(upload.body) <= MAX_BLOB_BYTES


def test_without_card_fields_the_card_takes_the_first_line_of_the_text(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    text = "Nuevo informe sobre los ODS\nLéalo: https://cepei.example.org/informe"
    channel.publish(post(text, url="https://cepei.example.org/informe"), key="d-c2", media_root=tmp_path)

    external = fake.created()[0]["embed"]["external"]
    assert (external["title"], external["description"], "thumb" in external) == (
        "Nuevo informe sobre los ODS",
        "",
        False,
    )
    assert fake.received(UPLOAD) == []


def test_the_fake_refuses_a_blob_over_one_million_bytes(fake: FakeBluesky) -> None:
    client = Client(base_url=fake.url)
    client.login(HANDLE, PASSWORD, fetch_bsky_profile=False)
    with pytest.raises(BadRequestError) as refused:
        client.upload_blob(b"\0" * (MAX_BLOB_BYTES + 1))
    assert refused.value.response.content.error == "BlobTooLarge"
    client.upload_blob(b"\0" * MAX_BLOB_BYTES)  # the limit itself is fine


# threads ------------------------------------------------------------------------------------------


def test_a_thread_is_posted_as_replies_to_the_root_and_the_previous_part(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    thread = ("2/3 Participaron la OCDE y la UNOSSC. #BAPA40", "3/3 Más en https://cepei.example.org/bapa")
    published = channel.publish(post(thread=thread), key="d-thread", media_root=tmp_path)

    assert published.outcome == "posted"
    first, second, third = fake.created()
    uris = list(fake.records)
    refs = [{"uri": uri, "cid": fake.cids[uri]} for uri in uris]
    assert published.ids == tuple(uris)
    assert [r["text"] for r in (first, second, third)] == [SPANISH, *thread]
    assert "reply" not in first
    assert _strip(second["reply"]) == {"root": refs[0], "parent": refs[0]}
    assert _strip(third["reply"]) == {"root": refs[0], "parent": refs[1]}
    assert [r["langs"] for r in (first, second, third)] == [["es"]] * 3
    assert [r["createdAt"] for r in (first, second, third)] == [
        "2026-11-28T09:00:00.000Z",
        "2026-11-28T09:00:00.001Z",
        "2026-11-28T09:00:00.002Z",
    ]
    assert facet_slices(second)[0][0] == b"#BAPA40"
    assert [uri.rsplit("/", 1)[1] for uri in uris] == [record_key("d-thread", n) for n in range(3)]


def _strip(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: {"uri": v["uri"], "cid": v["cid"]} for k, v in reply.items() if k != "$type"}


# failures -----------------------------------------------------------------------------------------


def test_429_answers_rate_limited_until_the_reset_and_posts_nothing(
    fake: FakeBluesky, channel: BlueskyChannel, naps: list[float], tmp_path: Path
) -> None:
    reset = int((NOW + timedelta(minutes=12)).timestamp())
    headers = {"ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset)}
    fake.script(CREATE, [Reply(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers)])

    published = channel.publish(post(), key="d-429", media_root=tmp_path)

    assert published.outcome == "rate_limited"
    assert published.retry_at == NOW + timedelta(minutes=12)
    assert published.remaining == 0
    assert published.ids == ()
    assert fake.created() == [] and naps == []


def test_a_5xx_is_retried_with_backoff_and_posts_once(
    fake: FakeBluesky, channel: BlueskyChannel, naps: list[float], tmp_path: Path
) -> None:
    fake.script(CREATE, [(502, {"error": "UpstreamFailure"}), (503, {"error": "NotEnoughResources"})])

    published = channel.publish(post(), key="d-5xx", media_root=tmp_path)

    assert published.outcome == "posted"
    assert len(fake.created()) == 1
    assert len(fake.received(CREATE)) == 3
    assert naps == [1.0, 2.0]


def test_a_5xx_that_never_ends_fails_and_says_a_retry_may_help(
    fake: FakeBluesky, channel: BlueskyChannel, naps: list[float], tmp_path: Path
) -> None:
    fake.script(route("com.atproto.server.createSession"), [(500, {"error": "InternalServerError"})] * 4)

    published = channel.publish(post(), key="d-down", media_root=tmp_path)

    assert published.outcome == "failed"
    assert published.retryable
    assert "HTTP 500 InternalServerError" in published.message
    assert naps == [1.0, 2.0, 4.0]
    assert fake.received(CREATE) == []


def test_a_dropped_connection_after_the_create_was_read_does_not_post_twice(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    fake.script(CREATE, [Reply(then="close", process=True)])  # written, but the client hears nothing
    fake.script(GET_RECORD, [CLOSE])  # and the check fails too: the create is sent again

    published = channel.publish(post(), key="d-drop", media_root=tmp_path)

    assert published.outcome == "posted"
    assert len(fake.created()) == 1
    creates = fake.received(CREATE)
    assert len(creates) == 2
    assert creates[0].json["rkey"] == creates[1].json["rkey"] == record_key("d-drop", 0)
    assert published.ids == tuple(fake.records)


@pytest.mark.parametrize("duplicate", ["reference", "explicit"])
def test_publishing_the_same_dispatch_again_finds_the_posts_instead_of_doubling_them(
    duplicate: str, tmp_path: Path
) -> None:
    with FakeBluesky(handle=HANDLE, password=PASSWORD, duplicate=duplicate) as fake:
        channel = BlueskyChannel(fake.url, HANDLE, PASSWORD, timeout=5, sleep=lambda _: None, clock=lambda: NOW)
        first = channel.publish(post(thread=("dos",)), key="d-again", media_root=tmp_path)
        again = channel.publish(post(thread=("dos",)), key="d-again", media_root=tmp_path)

        assert first.outcome == again.outcome == "posted"
        assert again.ids == first.ids and again.url == first.url
        assert len(fake.created()) == 2
        assert len(fake.received(CREATE)) == 4  # two refused as duplicates...
        assert len(fake.received(GET_RECORD)) == 2  # ...then found where they were


def test_a_half_posted_thread_is_completed_by_the_next_dispatch(
    fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path
) -> None:
    reset = int((NOW + timedelta(minutes=5)).timestamp())
    fake.script(CREATE, [PASS, Reply(429, {"error": "RateLimitExceeded"}, {"ratelimit-reset": str(reset)})])
    thread = post(thread=("dos", "tres"))

    first = channel.publish(thread, key="d-half", media_root=tmp_path)

    assert first.outcome == "rate_limited"
    assert first.ids == tuple(fake.records)  # the root is out: said, but not as posted
    assert len(first.ids) == 1

    second = channel.publish(thread, key="d-half", media_root=tmp_path)

    assert second.outcome == "posted"
    assert second.ids[0] == first.ids[0]
    assert len(fake.created()) == 3
    assert _strip(fake.created()[1]["reply"])["root"]["uri"] == first.ids[0]


def test_a_timeout_after_the_create_was_sent_finds_the_post_instead_of_sending_it_again(
    fake: FakeBluesky, naps: list[float], tmp_path: Path
) -> None:
    channel = BlueskyChannel(fake.url, HANDLE, PASSWORD, timeout=0.5, sleep=naps.append, clock=lambda: NOW)
    fake.script(CREATE, [Reply(then="hang", process=True)])  # written; the answer never comes

    published = channel.publish(post(), key="d-slow", media_root=tmp_path)

    assert published.outcome == "posted"
    assert len(fake.received(CREATE)) == 1 and len(fake.received(GET_RECORD)) == 1
    assert published.ids == tuple(fake.records)
    assert naps == []


def test_no_answer_at_all_after_sending_is_unknown_and_a_later_retry_posts_once(
    fake: FakeBluesky, channel: BlueskyChannel, naps: list[float], tmp_path: Path
) -> None:
    fake.script(CREATE, [CLOSE] * 4)

    published = channel.publish(post(), key="d-unknown", media_root=tmp_path)

    assert published.outcome == "unknown"
    assert published.retryable
    assert published.ids == ()
    assert record_key("d-unknown", 0) in published.message
    assert naps == [1.0, 2.0, 4.0]
    assert fake.created() == []

    assert channel.publish(post(), key="d-unknown", media_root=tmp_path).outcome == "posted"
    assert len(fake.created()) == 1


def test_a_service_that_cannot_be_reached_fails_retryable(naps: list[float], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = BlueskyChannel(f"http://127.0.0.1:{port}", HANDLE, PASSWORD, timeout=2, sleep=naps.append)

    published = channel.publish(post(), key="d-nothing", media_root=tmp_path)

    assert (published.outcome, published.retryable) == ("failed", True)
    assert published.message.startswith("ConnectError")
    assert naps == [1.0, 2.0, 4.0]


def test_a_wrong_app_password_stops_the_channel_without_showing_the_password(fake: FakeBluesky, tmp_path: Path) -> None:
    wrong = "wxyz-wxyz-wxyz-wxyz"
    channel = BlueskyChannel(fake.url, HANDLE, wrong, timeout=5, sleep=lambda _: None)

    with pytest.raises(AuthFailed) as refused:
        channel.publish(post(), key="d-auth", media_root=tmp_path)

    message = str(refused.value)
    assert HANDLE in message and "Invalid identifier or password" in message
    assert wrong not in message and wrong not in repr(channel)
    assert refused.value.permanent
    assert [r.path for r in fake.requests] == ["/xrpc/com.atproto.server.createSession"]


def test_posting_asks_nothing_of_the_appview(fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path) -> None:
    """A PDS whose AppView is down (502 on app.bsky.*, the fake's default) still takes our posts."""
    published = channel.publish(post(), key="d-pds-only", media_root=tmp_path)

    assert published.outcome == "posted", published.message
    assert published.url == f"https://bsky.app/profile/{HANDLE}/post/{record_key('d-pds-only', 0)}"
    assert not [r for r in fake.requests if r.path.startswith("/xrpc/app.bsky.")]
    with pytest.raises(NetworkError, match="UpstreamFailure"):  # what the client's own login would have met
        Client(base_url=fake.url).login(HANDLE, PASSWORD)


def test_a_revoked_session_logs_in_again_once(fake: FakeBluesky, channel: BlueskyChannel, tmp_path: Path) -> None:
    channel.publish(post("uno"), key="d-s1", media_root=tmp_path)
    fake.access.clear()  # every access token revoked

    assert channel.publish(post("dos"), key="d-s2", media_root=tmp_path).outcome == "posted"
    assert len(fake.received(route("com.atproto.server.createSession"))) == 2
    assert len(fake.created()) == 2


def test_every_bluesky_post_of_the_example_site_goes_out_as_rendered(
    fake: FakeBluesky, channel: BlueskyChannel, example_site: Path
) -> None:
    site = load_site(example_site)
    posts = [
        # images given as outside URLs would be fetched from outside this machine: left out here
        replace(p, images=tuple(i for i in p.images if i.path is not None))
        for record in load_records(site.events, site.root)
        for p in render_posts(record, site.settings, site.templates)
        if p.network == "bluesky"
    ]
    assert len(posts) >= 4 and any(p.images for p in posts) and any(p.language == "es" for p in posts)

    for number, rendered in enumerate(posts):
        published = channel.publish(rendered, key=f"example-{number}", media_root=site.root)
        assert published.outcome == "posted", published.message
        record = fake.records[published.ids[0]]
        assert (record["text"], record["langs"]) == (rendered.text, [rendered.language])
        assert rendered.url is not None and rendered.url.encode() in [data for data, _ in facet_slices(record)]
        kind = "app.bsky.embed.images" if rendered.images else "app.bsky.embed.external"
        assert record["embed"]["$type"] == kind
        assert [i["alt"] for i in record["embed"].get("images", [])] == [i.alt for i in rendered.images]


# record keys and facets, for every input ------------------------------------------------------------------


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=50))
def test_record_keys_are_valid_tids_and_stable(key: str, part: int) -> None:
    rkey = record_key(key, part)
    assert TID.fullmatch(rkey)
    assert rkey == record_key(key, part) != record_key(key, part + 1)


LETTERS = "abcdefghijklmnopqrstuvwxyzáéíóúñüçãõ漢字ДЖ"
words = st.text(alphabet=LETTERS + "0123456789", min_size=1, max_size=8) | st.sampled_from(
    ["🌍", "🇨🇴", "e\u0301", "Sur-Sur", "(ODS)", "¿qué?", "2030"]
)
hosts = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}\.(org|com|net|co)", fullmatch=True)
paths = st.lists(st.text(alphabet=LETTERS + "0123456789-_", min_size=1, max_size=10), max_size=3)
urls = st.builds(lambda host, parts: f"https://{host}/" + "/".join(parts), hosts, paths)
tags = st.builds(
    lambda first, rest: "#" + first + rest,
    st.sampled_from(LETTERS[:26] + "áñ漢"),
    st.text(alphabet=LETTERS + "0123456789", max_size=12),
)
tokens = st.lists(
    st.one_of(words.map(lambda w: ("word", w)), urls.map(lambda u: ("link", u)), tags.map(lambda t: ("tag", t))),
    min_size=1,
    max_size=30,
)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[FakeBluesky, BlueskyChannel]]:
    with FakeBluesky(handle=HANDLE, password=PASSWORD) as server:
        channel = BlueskyChannel(server.url, HANDLE, PASSWORD, timeout=5, sleep=lambda _: None, clock=lambda: NOW)
        yield server, channel


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tokens, st.sampled_from([" ", "\n", "  "]))
def test_links_and_hashtags_always_get_facets_that_slice_exactly_their_text(
    shared: tuple[FakeBluesky, BlueskyChannel], found: list[tuple[str, str]], separator: str
) -> None:
    fake, channel = shared
    text = separator.join(token for _, token in found)
    if grapheme.length(text) > 300:
        text = separator.join(token for _, token in found[:5])
        found = found[:5]
    key = f"prop-{len(fake.records)}"

    assert channel.publish(post(text), key=key, media_root=Path(".")).outcome == "posted"

    record = fake.records[fake.uri_of(record_key(key, 0))]
    slices = facet_slices(record)
    expected = sorted(token.encode() for kind, token in found if kind in ("link", "tag"))
    assert sorted(data for data, _ in slices) == expected
    for data, feature in slices:
        if feature["$type"].endswith("#link"):
            assert feature["uri"] == data.decode()
        else:
            assert "#" + feature["tag"] == data.decode()
