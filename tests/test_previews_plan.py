"""A build keeps the plan that picks its previews (`publisher.build.previews`), and reads it for a day.

What the kept plan answers must be what planning at the build's `now` answers,
at every `now` it serves (the window's edges included), and it must never
answer for other rules, other records' dates or a `now` it does not cover.
The reference is `preview_ids` without a code digest: planning at `now`,
keeping nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.build import previews
from publisher.build.cache import Source
from publisher.build.previews import PLAN_FILE, SPAN, preview_ids
from publisher.site.config import Kept, Site
from publisher.site.settings import Settings
from publisher.timeline.plan import HORIZON, LOOKBACK, plan
from tests.test_build import outputs

CODE = "0123456789abcdef0123456789abcdef"
BASE = dt.datetime(2024, 3, 28, tzinfo=dt.UTC)  # three days before Paris's clocks go forward
MICRO = dt.timedelta(microseconds=1)


def source(id: str, published: dt.datetime, status: str = "published", **dates: dt.datetime | None) -> Source:
    starts, ends = dates.get("starts"), dates.get("ends")
    return Source(
        f"key-{id}",
        id,
        status,
        published.timestamp(),
        "membership",
        None,
        None,
        f"events/{id}.md",
        starts=starts.timestamp() if starts else None,
        ends=ends.timestamp() if ends else None,
    )


def settings_data(rules: list[dict[str, Any]], previews_count: int = 1) -> dict[str, Any]:
    return {
        "site": {"title": "T", "url": "https://example.org", "timezone": "Europe/Paris"},
        "newsletter": {"lists": ["news", "weekly"]},
        "build": {"previews": previews_count},
        "timeline": rules,
    }


def validated(root: Path, data: dict[str, Any]) -> Site:
    return Site(root, Settings.model_validate(data))


def kept_site(root: Path, data: dict[str, Any]) -> Site:
    """A site whose settings were kept by an earlier build: nothing validated until `site.settings` is read."""
    plain = msgspec.json.decode(Settings.model_validate(data).model_dump_json(by_alias=True))
    return Site(root, kept=Kept("key", data, plain))


@contextmanager
def planning() -> Iterator[mock.MagicMock]:
    """Counts the plans made for keeping (`previews.make_plan`), each made as it would be."""
    with mock.patch.object(previews, "make_plan", wraps=previews.make_plan) as made:
        yield made


def newest_first(live: list[Source]) -> list[Source]:
    return sorted(live, key=lambda s: (s.published, s.id), reverse=True)


# --- the kept plan answers as planning at `now` does ------------------------------------------------

SINGLES = ("published", "published + 2 hours", "published + 7 days", "starts - 1 day", "starts - 6 hours", "ends")
CRONS = ("0 9 * * mon", "30 */6 * * *", "0 0 1 * *", "15 3 * * *")
HOURS = 24 * 45


@st.composite
def rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 4))):
        rule: dict[str, Any] = {"name": f"rule{n}", "review": draw(st.booleans())}
        if draw(st.booleans()):
            rule |= {"when": draw(st.sampled_from(SINGLES)), "channel": draw(st.sampled_from(["x", "mastodon"]))}
        else:
            rule |= {"cron": draw(st.sampled_from(CRONS)), "channel": "email", "list": "weekly"}
            if draw(st.booleans()):
                rule["timezone"] = "America/New_York"
        found.append(rule)
    return found


# Where records fall around t0 besides anywhere: where the window's edges will be during [t0, t0 + SPAN].
NEAR = (dt.timedelta(0), -LOOKBACK, HORIZON, -LOOKBACK - dt.timedelta(days=1))


@st.composite
def records(draw: st.DrawFn, t0: dt.datetime) -> list[Source]:
    """A few records around t0, and one far ahead: the newest, always previewed, so that whether any other is
    previewed says what the plan does with it."""
    live = [source("newest", t0 + dt.timedelta(days=400))]
    for n in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 3)):
            around = draw(st.sampled_from(NEAR)) + dt.timedelta(hours=draw(st.integers(-30, 30)))
        else:
            around = dt.timedelta(hours=draw(st.integers(-HOURS, HOURS)))
        published = t0 + around + dt.timedelta(minutes=draw(st.sampled_from([0, 30])))
        starts = ends = None
        if draw(st.booleans()):
            starts = published + dt.timedelta(hours=draw(st.integers(0, HOURS)))
            ends = starts + dt.timedelta(hours=draw(st.integers(0, 48))) if draw(st.booleans()) else None
        status = draw(st.sampled_from(["published", "published", "published", "cancelled"]))
        live.append(source(f"r{n}", published, status, starts=starts, ends=ends))
    return newest_first(live)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Source], list[dict[str, Any]], dt.datetime]:
    """Records, rules and t0 (on the half hour, as the crons are: their occurrences fall on the edges)."""
    t0 = BASE + dt.timedelta(minutes=30 * draw(st.integers(-24 * 2 * 40, 24 * 2 * 40)))
    return draw(records(t0)), draw(rules()), t0


def edges(live: list[Source], data: dict[str, Any], t0: dt.datetime) -> set[dt.datetime]:
    """The moments in [t0, t0 + SPAN] where a dispatch of the plan enters or leaves what counts: its due time,
    its due time plus the look-back, minus the horizon; each a microsecond either side too; and both ends."""
    dated = previews._dated(live)
    dues = [d.due for d in plan(dated, Settings.model_validate(data), t0, horizon=HORIZON + SPAN)]
    moments = {t0, t0 + SPAN}
    for due in dues:
        for edge in (due, due + LOOKBACK, due - HORIZON):
            moments |= {edge - MICRO, edge, edge + MICRO}
    return {moment for moment in moments if t0 <= moment <= t0 + SPAN}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), later=st.lists(st.timedeltas(dt.timedelta(0), SPAN), max_size=3))
def test_the_kept_plan_picks_what_planning_at_now_picks(
    scenario: tuple[list[Source], list[dict[str, Any]], dt.datetime], later: list[dt.timedelta]
) -> None:
    live, rules, t0 = scenario
    data = settings_data(rules)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        assert preview_ids(live, kept_site(root, data), t0, CODE) == preview_ids(live, validated(root, data), t0)
        assert (root / PLAN_FILE).is_file()
        for now in sorted(edges(live, data, t0) | {t0 + delta for delta in later}):
            site = kept_site(root, data)
            with planning() as made:
                kept = preview_ids(live, site, now, CODE)
            assert made.call_count == 0, now  # read from the kept plan ...
            assert site._settings is None  # ... without validating the settings
            assert kept == preview_ids(live, validated(root, data), now), now


DIGEST = {"cron": "0 9 * * mon", "channel": "email", "list": "weekly", "review": True}
REMINDER = {"when": "starts - 1 day", "channel": "x"}
# Mondays 09:00 Paris (07:00 UTC): 2024-04-01, 04-08, 04-15, ...; a digest holds the week before it.
MONDAY = dt.datetime(2024, 4, 8, 7, tzinfo=dt.UTC)


def edge_site() -> list[Source]:
    """r0 the newest (always previewed); r1 in the digest of MONDAY, r2 in the one before; r3 a reminder due
    at MONDAY; r4 in the digest HORIZON after MONDAY."""
    return newest_first(
        [
            source("r0", MONDAY + HORIZON + dt.timedelta(days=30)),
            source("r1", MONDAY - dt.timedelta(days=2)),
            source("r2", MONDAY - dt.timedelta(days=9)),
            source("r3", BASE - dt.timedelta(days=300), starts=MONDAY + dt.timedelta(days=1)),
            source("r4", MONDAY + HORIZON - dt.timedelta(days=1)),
        ]
    )


@pytest.mark.parametrize(
    ("t0", "now", "expected"),
    [
        # r1's digest held for review: counted while due after now - LOOKBACK, not at it.
        (MONDAY + LOOKBACK - SPAN, MONDAY + LOOKBACK - MICRO, {"r0", "r1", "r4"}),
        (MONDAY + LOOKBACK - SPAN, MONDAY + LOOKBACK, {"r0", "r4"}),
        # At MONDAY: r2's digest (held) leaves the look-back, r4's enters the horizon (inclusive), and r3's
        # reminder, due then and not held, is no longer to come.
        (MONDAY - SPAN, MONDAY - MICRO, {"r0", "r1", "r2", "r3"}),
        (MONDAY - SPAN, MONDAY, {"r0", "r1", "r4"}),
        (MONDAY - SPAN, MONDAY - dt.timedelta(hours=1), {"r0", "r1", "r2", "r3"}),
        (MONDAY, MONDAY + SPAN, {"r0", "r1", "r4"}),
    ],
)
def test_the_window_edges_count_as_the_plan_counts_them(
    tmp_path: Path, t0: dt.datetime, now: dt.datetime, expected: set[str]
) -> None:
    live = edge_site()
    data = settings_data([DIGEST, REMINDER])
    assert preview_ids(live, validated(tmp_path, data), now) == expected  # the reference, as planned at `now`
    preview_ids(live, kept_site(tmp_path, data), t0, CODE)
    with planning() as made:
        assert preview_ids(live, kept_site(tmp_path, data), now, CODE) == expected
    assert made.call_count == 0


# --- what makes the kept plan be planned again --------------------------------------------------------

NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
RULES: list[dict[str, Any]] = [
    {"when": "starts - 1 day", "channel": "x"},
    {"cron": "0 9 * * mon", "channel": "x", "review": True},
]


def invalidation_site() -> list[Source]:
    """r0 the newest; r1's event is in three days (a reminder to come); r2 is long past."""
    return newest_first(
        [
            source("r0", NOW - dt.timedelta(days=30)),
            source("r1", NOW - dt.timedelta(days=60), starts=NOW + dt.timedelta(days=3)),
            source("r2", NOW - dt.timedelta(days=90), starts=NOW + dt.timedelta(days=40)),
        ]
    )


def rebuilt(root: Path, live: list[Source], data: dict[str, Any], now: dt.datetime) -> tuple[set[str], int]:
    """The ids at `now` with the plan kept in `root`, and how many plans were made for them."""
    with planning() as made:
        ids = preview_ids(live, kept_site(root, data), now, CODE)
    assert ids == preview_ids(live, validated(root, data), now)  # always what planning at `now` gives
    return ids, made.call_count


def test_the_kept_plan_serves_the_same_key_for_a_day(tmp_path: Path) -> None:
    live, data = invalidation_site(), settings_data(RULES)
    assert rebuilt(tmp_path, live, data, NOW) == ({"r0", "r1", "r2"}, 1)
    assert rebuilt(tmp_path, live, data, NOW + SPAN) == ({"r0", "r1", "r2"}, 0)
    assert rebuilt(tmp_path, live, data, NOW + dt.timedelta(hours=2)) == ({"r0", "r1", "r2"}, 0)


def test_a_changed_rule_plans_again(tmp_path: Path) -> None:
    live = invalidation_site()
    rebuilt(tmp_path, live, settings_data(RULES), NOW)
    changed = settings_data([{"when": "starts - 5 days", "channel": "x"}, RULES[1]])  # r1's reminder is past
    assert rebuilt(tmp_path, live, changed, NOW) == ({"r0", "r2"}, 1)
    held = settings_data([RULES[0], {**RULES[1], "review": False}])  # not part of a rule's key, but of the plan's
    rebuilt(tmp_path, live, held, NOW)
    assert rebuilt(tmp_path, live, settings_data(RULES), NOW)[1] == 1


def test_a_records_changed_date_or_status_plans_again(tmp_path: Path) -> None:
    live, data = invalidation_site(), settings_data(RULES)
    rebuilt(tmp_path, live, data, NOW)
    moved = [
        source("r1", NOW - dt.timedelta(days=60), starts=NOW - dt.timedelta(days=3)) if s.id == "r1" else s
        for s in live
    ]
    assert rebuilt(tmp_path, moved, data, NOW) == ({"r0", "r2"}, 1)
    cancelled = [
        source("r2", NOW - dt.timedelta(days=90), "cancelled", starts=NOW + dt.timedelta(days=40))
        if s.id == "r2"
        else s
        for s in moved
    ]
    assert rebuilt(tmp_path, cancelled, data, NOW) == ({"r0"}, 1)


def test_a_new_record_plans_again(tmp_path: Path) -> None:
    live, data = invalidation_site(), settings_data(RULES)
    rebuilt(tmp_path, live, data, NOW)
    new = source("r9", NOW - dt.timedelta(days=100), starts=NOW + dt.timedelta(days=5))
    assert rebuilt(tmp_path, newest_first([*live, new]), data, NOW) == ({"r0", "r1", "r2", "r9"}, 1)


@pytest.mark.parametrize("offset", [-MICRO, -dt.timedelta(days=10), SPAN + MICRO, dt.timedelta(days=4)])
def test_a_now_out_of_the_kept_day_plans_again(tmp_path: Path, offset: dt.timedelta) -> None:
    live, data = invalidation_site(), settings_data(RULES)
    rebuilt(tmp_path, live, data, NOW)
    ids, made = rebuilt(tmp_path, live, data, NOW + offset)
    assert made == 1
    assert ("r1" in ids) == (offset < dt.timedelta(days=2))  # its reminder is due two days after NOW


@pytest.mark.parametrize(
    "spoilt",
    [
        b"",
        b"not json",
        b'{"key": "k"',
        b"[1, 2, 3]",
        b'{"key": "%(key)s", "made": "yesterday", "invalid": false, "dispatches": []}',
        b'{"key": "%(key)s", "made": %(made)d, "invalid": false, "dispatches": [[1, true, false]]}',
        b'{"key": "%(key)s", "made": %(made)d, "invalid": false, "dispatches": [[1, true, false, [7]]]}',
        b'{"key": "another", "made": %(made)d, "invalid": false, "dispatches": []}',
    ],
)
def test_a_spoilt_kept_plan_plans_again(tmp_path: Path, spoilt: bytes) -> None:
    live, data = invalidation_site(), settings_data(RULES)
    rebuilt(tmp_path, live, data, NOW)
    kept = json.loads((tmp_path / PLAN_FILE).read_bytes())
    (tmp_path / PLAN_FILE).write_bytes(spoilt % {b"key": kept["key"].encode(), b"made": kept["made"]})
    assert rebuilt(tmp_path, live, data, NOW) == ({"r0", "r1", "r2"}, 1)
    assert json.loads((tmp_path / PLAN_FILE).read_bytes()) == kept  # and kept again


def test_rules_that_do_not_hold_are_kept_as_such(tmp_path: Path) -> None:
    """An email rule without a list: every record's previews, from the kept plan too."""
    live, data = invalidation_site(), settings_data([{"when": "published", "channel": "email"}])
    assert rebuilt(tmp_path, live, data, NOW) == ({"r0", "r1", "r2"}, 1)
    assert json.loads((tmp_path / PLAN_FILE).read_bytes())["invalid"] is True
    assert rebuilt(tmp_path, live, data, NOW + dt.timedelta(hours=1)) == ({"r0", "r1", "r2"}, 0)


# --- a rebuild in a child process -------------------------------------------------------------------

CONFIG = """[site]
title = "Kept plan"
url = "https://plan.example.org"

[newsletter]
from = "News <news@plan.example.org>"

[build]
previews = 5

[[timeline]]
when = "published + 2 hours"
channel = "mastodon"
review = true

[[timeline]]
cron = "0 9 * * mon"
channel = "email"
list = "news"

[[timeline]]
when = "starts - 1 day"
channel = "x"
"""
LOADED = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["publisher", "build", "--now", sys.argv[1]]
from publisher.cli.main import main
main()
"""


def _build(site: Path, now: dt.datetime) -> tuple[str, list[str]]:
    command = [sys.executable, "-c", LOADED, now.isoformat()]
    done = subprocess.run(command, cwd=site, capture_output=True, text=True, check=True)
    return done.stdout, json.loads(done.stderr.splitlines()[-1])


def test_a_rebuild_with_timeline_rules_plans_nothing_and_imports_no_pydantic(tmp_path: Path) -> None:
    """80 records, one a day up to NOW, one with an event to come; the oldest, in no preview, no feed and no
    dispatch, is edited: the rebuild, a minute later, reads the kept plan and leaves what a cold build writes."""
    site = tmp_path / "site"
    (site / "events").mkdir(parents=True)
    (site / "publisher.toml").write_text(CONFIG, encoding="utf-8")
    for n in range(80):
        published = NOW - dt.timedelta(days=80 - n, hours=1)
        starts = f"starts: {(NOW + dt.timedelta(days=9)).isoformat()}\n" if n == 20 else ""
        (site / "events" / f"r{n:03d}.md").write_text(
            f"---\ntitle: Record {n}\npublished: {published.isoformat()}\n{starts}"
            f"summary: The summary of record {n}.\n---\nThe body of record {n}.\n"
        )
    old = time.time() - 10
    for path in (site / "events").glob("*.md"):
        os.utime(path, (old, old))  # old enough for the build cache to trust their times
    _, first = _build(site, NOW)
    edited = site / "events" / "r000.md"
    edited.write_text(edited.read_text().replace("The summary of record 0.", "An edited summary."))
    os.utime(edited, (old + 5, old + 5))

    later = NOW + dt.timedelta(minutes=1)
    report, again = _build(site, later)

    assert "publisher.timeline.plan" in first and (site / PLAN_FILE).is_file()  # the first build planned
    assert "publisher.build.previews" in again
    assert [m for m in again if m.startswith("pydantic") or m == "publisher.timeline.plan"] == []
    assert "0 files written" in report, report
    cold = tmp_path / "cold"
    shutil.copytree(site, cold, ignore=shutil.ignore_patterns(".publisher"))
    _build(cold, later)
    assert outputs(cold) == outputs(site)
    assert {path.split("/")[-1].split(".")[0] for path in outputs(site) if path.startswith("newsletters/")} == {
        *(f"r{n:03d}" for n in range(75, 80)),  # the newest five
        "r020",  # its event's reminder is to come
        *(f"r{n:03d}" for n in range(73, 80)),  # mastodon posts held for review within the look-back
    }
