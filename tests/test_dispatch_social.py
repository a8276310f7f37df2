"""Social dispatches end to end: timeline rules → run → the real clients → local fakes of each API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from publisher.cli.main import cli
from publisher.dispatch import social as dispatch_social
from publisher.dispatch.clock import run_once
from publisher.site.config import load_site
from publisher.store.dispatches import open_store
from tests.fakes import CLOSE
from tests.fakes.bluesky_api import FakeBluesky
from tests.fakes.mastodon_api import FakeMastodon
from tests.fakes.x_api import FakeX

PUBLISHED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HANDLE = "team.example.org"
PASSWORD = "abcd-efgh-ijkl-mnop"
RECORD = """---
title: Foro regional sobre financiación de los ODS
summary: Ministros y sociedad civil discuten cómo financiar los ODS.
published: 2026-11-27T09:00:00+00:00
language: es
url: https://example.org/noticias/foro
image:
  src: media/foro.png
  alt: La sala del foro con el panel en el escenario
social:
  hashtags: [ODS]
  x:
    text: "Foro regional sobre financiación de los ODS https://example.org/noticias/foro"
    thread: ["Segunda parte del hilo.", "Tercera parte del hilo."]
---
El foro reunió a ministros de finanzas y a la sociedad civil.
"""


@dataclass
class Fakes:
    x: FakeX
    mastodon: FakeMastodon
    bluesky: FakeBluesky


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with FakeX() as x, FakeMastodon() as mastodon, FakeBluesky(handle=HANDLE, password=PASSWORD) as bluesky:
        yield Fakes(x, mastodon, bluesky)
    dispatch_social._OPEN.clear()


def make_site(root: Path, fakes: Fakes, *, review: bool = False) -> Path:
    (root / "events").mkdir(parents=True)
    (root / "media").mkdir()
    Image.new("RGB", (64, 48), (30, 90, 140)).save(root / "media" / "foro.png")
    (root / "events" / "2026-11-27-foro.md").write_text(RECORD, encoding="utf-8")
    (root / "publisher.toml").write_text(
        f"""[site]
title = "Team"
url = "https://example.org"
timezone = "UTC"

[x]
api_url = "{fakes.x.url}"
upload_url = "{fakes.x.url}"

[mastodon]
instance = "{fakes.mastodon.url}"

[bluesky]
service = "{fakes.bluesky.url}"

[[timeline]]
when = "published"
channel = "x"

[[timeline]]
when = "published"
channel = "mastodon"

[[timeline]]
when = "published + 1 hour"
channel = "bluesky"
review = {"true" if review else "false"}
""",
        encoding="utf-8",
    )
    return root


def env(*networks: str) -> dict[str, str]:
    values = {
        "x": {
            "PUBLISHER_X_API_KEY": "test-api-key",
            "PUBLISHER_X_API_SECRET": "s3cret-api",
            "PUBLISHER_X_ACCESS_TOKEN": "token-1",
            "PUBLISHER_X_ACCESS_SECRET": "s3cret-access",
        },
        "mastodon": {"PUBLISHER_MASTODON_TOKEN": "test-token"},
        "bluesky": {"PUBLISHER_BLUESKY_HANDLE": HANDLE, "PUBLISHER_BLUESKY_APP_PASSWORD": PASSWORD},
    }
    return {k: v for n in networks for k, v in values[n].items()}


def run_at(root: Path, when: datetime, environment: dict[str, str]) -> list[str]:
    site = load_site(root, environment)
    dispatch_social._OPEN.clear()
    outcomes = run_once(site, when, lambda: when)
    return [f"{o.channel}:{o.state}" for o in outcomes]


def plan_json(root: Path, when: datetime, environment: dict[str, str]) -> list[dict[str, object]]:
    result = CliRunner().invoke(
        cli, ["--site", str(root), "--json", "plan", "--now", when.isoformat()], env=environment
    )
    assert result.exit_code == 0, result.output
    dispatches: list[dict[str, object]] = json.loads(result.output)["dispatches"]
    return dispatches


def by_channel(lines: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {line["channel"]: line for line in lines}


def test_posts_go_out_once_with_image_alt_text_language_and_thread(tmp_path: Path, fakes: Fakes) -> None:
    root = make_site(tmp_path / "site", fakes)
    environment = env("x", "mastodon", "bluesky")
    soon = PUBLISHED + timedelta(minutes=5)
    assert sorted(run_at(root, soon, environment)) == ["mastodon:sent", "x:sent"]

    tweets = list(fakes.x.tweets.values())
    assert [t["text"] for t in tweets][1:] == ["Segunda parte del hilo.", "Tercera parte del hilo."]
    assert tweets[0]["media_ids"] and tweets[1]["reply_to"] is not None
    (metadata,) = fakes.x.received("POST /2/media/metadata")
    assert metadata.json["metadata"]["alt_text"]["text"] == "La sala del foro con el panel en el escenario"
    (status,) = fakes.mastodon.statuses.values()
    assert status["language"] == "es"
    (media,) = fakes.mastodon.media.values()
    assert media["description"] == "La sala del foro con el panel en el escenario"

    # Running again at a later time posts nothing more anywhere.
    later = PUBLISHED + timedelta(minutes=30)
    assert run_at(root, later, environment) == []
    assert len(fakes.x.tweets) == 3 and len(fakes.mastodon.statuses) == 1

    lines = by_channel(plan_json(root, later, environment))
    assert lines["x"]["state"] == "sent" and str(lines["x"]["url"]).startswith("https://x.com/i/web/status/")
    assert lines["mastodon"]["state"] == "sent" and lines["mastodon"]["url"]
    assert lines["bluesky"]["state"] == "planned" and lines["x"]["outbox"] is None

    assert run_at(root, PUBLISHED + timedelta(hours=1, minutes=1), environment) == ["bluesky:sent"]
    (post,) = fakes.bluesky.created()
    assert post["langs"] == ["es"]
    assert post["embed"]["images"][0]["alt"] == "La sala del foro con el panel en el escenario"


def test_a_rule_with_review_holds_its_post_until_approved(tmp_path: Path, fakes: Fakes) -> None:
    root = make_site(tmp_path / "site", fakes, review=True)
    environment = env("bluesky")
    late = PUBLISHED + timedelta(hours=2)
    assert "bluesky:sent" not in run_at(root, late, environment)
    assert not fakes.bluesky.created()
    line = by_channel(plan_json(root, late, environment))["bluesky"]
    assert line["state"] == "waiting_review"

    approved = CliRunner().invoke(
        cli, ["--site", str(root), "approve", str(line["id"]), "--now", late.isoformat()], env=environment
    )
    assert approved.exit_code == 0, approved.output
    assert "bluesky:sent" in run_at(root, late + timedelta(minutes=1), environment)
    assert len(fakes.bluesky.created()) == 1


def test_without_credentials_posts_land_in_the_outbox_and_plan_says_so(tmp_path: Path, fakes: Fakes) -> None:
    root = make_site(tmp_path / "site", fakes)
    soon = PUBLISHED + timedelta(minutes=5)
    lines = by_channel(plan_json(root, soon, {}))
    assert "outbox only" in str(lines["x"]["outbox"]) and "PUBLISHER_X_" in str(lines["x"]["outbox"])
    run_at(root, soon, {})
    files = list((root / "outbox" / "posts" / "x").glob("*.json"))
    assert len(files) == 1
    written = json.loads(files[0].read_text())
    assert written["images"][0]["alt"] == "La sala del foro con el panel en el escenario"
    assert not fakes.x.tweets and not fakes.x.requests


def test_an_x_answer_lost_after_sending_is_unknown_and_never_posted_again(tmp_path: Path, fakes: Fakes) -> None:
    root = make_site(tmp_path / "site", fakes)
    environment = env("x")
    fakes.x.script("POST /2/tweets", [CLOSE])
    soon = PUBLISHED + timedelta(minutes=5)
    assert "x:unknown" in run_at(root, soon, environment)
    assert run_at(root, soon + timedelta(minutes=10), environment) == []
    assert len(fakes.x.received("POST /2/tweets")) == 1
    line = by_channel(plan_json(root, soon + timedelta(minutes=10), environment))["x"]
    assert line["state"] == "unknown" and line["url"] is None
    store = open_store(load_site(root, environment).database_url)
    try:
        row = store.get_dispatch(str(line["id"]))
    finally:
        store.close()
    assert row is not None and row.finished_at == soon  # recorded as finished when the answer was lost


def test_a_rate_limited_post_waits_for_the_networks_reset_time(tmp_path: Path, fakes: Fakes) -> None:
    root = make_site(tmp_path / "site", fakes)
    environment = env("mastodon")
    reset = PUBLISHED + timedelta(minutes=20)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset.isoformat().replace("+00:00", ".000Z")}
    fakes.mastodon.script("POST /api/v1/statuses", [(429, {"error": "Too many requests"}, headers)])
    soon = PUBLISHED + timedelta(minutes=5)
    assert "mastodon:rate_limited" in run_at(root, soon, environment)
    line = by_channel(plan_json(root, soon, environment))["mastodon"]
    assert line["state"] == "rate_limited" and reset.isoformat() in str(line["note"])

    assert run_at(root, reset - timedelta(minutes=1), environment) == []
    assert not fakes.mastodon.statuses
    assert "mastodon:sent" in run_at(root, reset + timedelta(minutes=1), environment)
    assert len(fakes.mastodon.statuses) == 1


def test_an_approval_after_the_grace_still_sends_counting_lateness_from_the_approval(
    tmp_path: Path, fakes: Fakes
) -> None:
    root = make_site(tmp_path / "site", fakes, review=True)
    environment = env("bluesky")
    much_later = PUBLISHED + timedelta(hours=1 + 9)  # 9 hours past due: beyond the 6-hour grace
    line = by_channel(plan_json(root, much_later, environment))["bluesky"]
    assert line["state"] == "waiting_review"
    approved = CliRunner().invoke(
        cli, ["--site", str(root), "approve", str(line["id"]), "--now", much_later.isoformat()], env=environment
    )
    assert approved.exit_code == 0, approved.output
    assert "bluesky:sent" in run_at(root, much_later + timedelta(minutes=2), environment)
    assert len(fakes.bluesky.created()) == 1


def test_a_dispatch_on_a_channel_with_no_sender_is_refused_never_posted(tmp_path: Path, fakes: Fakes) -> None:
    """A stored dispatch naming an unknown channel fails, naming it; it is never sent as a social post."""
    from dataclasses import replace

    from publisher.dispatch.context import Runner
    from publisher.dispatch.runner import execute
    from publisher.dispatch.senders import sender_for
    from publisher.errors import UnknownChannel
    from publisher.site.records import load_records
    from publisher.store.dispatches import PlannedDispatch
    from publisher.timeline.plan import plan

    with pytest.raises(UnknownChannel, match="'fax'"):
        sender_for("fax")
    root = make_site(tmp_path / "site", fakes)
    site = load_site(root, env("x", "mastodon", "bluesky"))  # a social fallback would really post
    soon = PUBLISHED + timedelta(minutes=5)
    records = load_records(site.events, site.root)
    x = next(d for d in plan(records, site.settings, soon) if d.channel == "x")
    fax = replace(x, id="f" * 16, channel="fax")
    store = open_store(site.database_url)
    try:
        store.upsert_dispatch(PlannedDispatch.of(fax), soon)
        outcome = execute(Runner(site, store, records, lambda: soon), fax)
        row = store.get_dispatch(fax.id)
    finally:
        store.close()
    assert outcome.state == "failed" and outcome.error is not None and "'fax'" in outcome.error
    assert row is not None and row.state == "failed" and "'fax'" in (row.note or "")
    assert not fakes.x.requests and not fakes.mastodon.requests and not fakes.bluesky.created()
