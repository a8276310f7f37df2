"""The timeline: rules × records × now → the plan (pure; fixed clocks and zones)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.errors import InvalidInput
from publisher.site.records import Record
from publisher.site.settings import Settings, load_settings
from publisher.timeline.cron import Cron, weekdays
from publisher.timeline.plan import (
    Dispatch,
    Offset,
    check_rules,
    due,
    grace_seconds,
    parse_offset,
    plan,
    rule_key,
    shift,
    validate_rules,
)

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")
BOGOTA = ZoneInfo("America/Bogota")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


def record(rid: str, published: dt.datetime, **extra: Any) -> Record:
    return Record(id=rid, title=rid.title(), published=published, summary="s", **extra)


def make_settings(*rules: dict[str, Any], timezone: str = "Europe/Paris") -> Settings:
    return Settings.model_validate(
        {
            "site": {"title": "T", "url": "https://example.org", "timezone": timezone},
            "newsletter": {"lists": ["news", "weekly"]},
            "timeline": list(rules),
        }
    )


FEEDS = {"when": "published", "channel": "feeds"}
NEWS = {"when": "published", "channel": "email", "list": "news"}
REMIND = {"when": "starts - 1 day", "channel": "bluesky"}
WEEKLY = {"cron": "0 9 * * mon", "channel": "email", "list": "weekly"}


def by_key(dispatches: Sequence[Dispatch]) -> dict[tuple[str, tuple[str, ...]], Dispatch]:
    return {(d.rule_key, d.record_ids if d.kind == "single" else (d.due.isoformat(),)): d for d in dispatches}


# --- offsets and durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("published", ("published", Offset())),
        ("starts - 1 day", ("starts", Offset(days=-1))),
        ("starts-2 weeks", ("starts", Offset(days=-14))),
        ("published + 2 hours", ("published", Offset(seconds=7200))),
        ("ends + 1 minute", ("ends", Offset(seconds=60))),
        ("  published +0 minutes ", ("published", Offset())),
    ],
)
def test_parse_offset(text: str, expected: tuple[str, Offset]) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize(
    "text", ["", "publish", "starts - 1 fortnight", "starts -1.5 days", "starts - day", "x + 1 day"]
)
def test_parse_offset_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="'published', 'starts' or 'ends'"):
        parse_offset(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6 hours", 21600.0), ("1 hour", 3600.0), ("30 minutes", 1800.0), ("1.5 days", 129600.0), ("90 seconds", 90.0)],
)
def test_grace_seconds(text: str, seconds: float) -> None:
    assert grace_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "6 hrs", "-1 hour", "soon"])
def test_grace_seconds_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        grace_seconds(text)


# --- daylight saving in offsets ------------------------------------------------------------------
# Europe/Paris: 2026-03-29 01:00 UTC clocks go 02:00 → 03:00; 2026-10-25 01:00 UTC 03:00 → 02:00.


def test_day_offsets_keep_the_wall_clock_across_spring_forward() -> None:
    starts = at(2026, 3, 29, 9, tz=PARIS)  # 09:00 CEST = 07:00 UTC, the day summer time starts
    # One day before on the wall clock: 2026-03-28 09:00 CET = 08:00 UTC (not 24 h before: 07:00 UTC).
    assert shift(starts, Offset(days=-1), PARIS) == at(2026, 3, 28, 8)
    assert shift(starts, Offset(seconds=-24 * 3600), PARIS) == at(2026, 3, 28, 7)


def test_week_offsets_keep_the_wall_clock_across_fall_back() -> None:
    starts = at(2026, 10, 25, 9, tz=PARIS)  # 09:00 CET = 08:00 UTC
    assert shift(starts, Offset(days=-7), PARIS) == at(2026, 10, 18, 7)  # 09:00 CEST
    assert shift(starts, Offset(seconds=-7 * 86400), PARIS) == at(2026, 10, 18, 8)


def test_day_offset_landing_in_the_gap_reads_the_time_with_the_old_offset() -> None:
    starts = at(2026, 3, 30, 2, 30, tz=PARIS)  # 00:30 UTC
    # 2026-03-29 02:30 does not exist in Paris; read as 02:30+01:00 = 01:30 UTC (03:30 CEST).
    result = shift(starts, Offset(days=-1), PARIS)
    assert result == at(2026, 3, 29, 1, 30)
    assert result.astimezone(PARIS).strftime("%H:%M %z") == "03:30 +0200"


def test_day_offset_landing_in_the_repeat_takes_the_first_pass() -> None:
    starts = at(2026, 10, 26, 2, 30, tz=PARIS)  # 01:30 UTC
    # 2026-10-25 02:30 happens twice; the first is 02:30+02:00 = 00:30 UTC.
    assert shift(starts, Offset(days=-1), PARIS) == at(2026, 10, 25, 0, 30)


def test_reminder_uses_the_rule_zone_over_the_site_zone() -> None:
    starts = at(2026, 3, 29, 9, tz=PARIS)
    rule = {"when": "starts - 1 day", "channel": "x", "timezone": "America/Bogota"}
    [reminder] = plan([record("a", at(2026, 1, 1), starts=starts)], make_settings(rule), at(2026, 3, 1))
    # Bogota has no DST: one wall-clock day there is 24 h.
    assert reminder.due == at(2026, 3, 28, 7)
    assert reminder.occurrence.tzinfo == BOGOTA


# --- single dispatches -----------------------------------------------------------------------------

NOW = at(2026, 3, 10, 12)


def sample_records() -> list[Record]:
    return [
        record("old", at(2026, 1, 5, 9)),  # long before the lookback
        record("recent", at(2026, 3, 8, 10)),
        record("meeting", at(2026, 3, 9, 15), starts=at(2026, 3, 20, 9, tz=PARIS), ends=at(2026, 3, 20, 17, tz=PARIS)),
        record("future", at(2026, 3, 12, 8)),
        record("draft", at(2026, 3, 9, 8), status="draft", starts=at(2026, 3, 21, 9)),
        record("gone", at(2026, 3, 9, 9), status="cancelled", starts=at(2026, 3, 22, 9)),
    ]


def test_single_dispatches_due_times_and_fields() -> None:
    rules = (NEWS, {"when": "published + 2 hours", "channel": "mastodon", "review": True}, REMIND)
    result = plan(sample_records(), make_settings(*rules), NOW)
    singles = {(d.rule_key, d.record_ids[0]): d for d in result}
    assert set(singles) == {
        ("email:news:published+0", "recent"),
        ("email:news:published+0", "meeting"),
        ("email:news:published+0", "future"),
        ("mastodon:-:published+120m", "recent"),
        ("mastodon:-:published+120m", "meeting"),
        ("mastodon:-:published+120m", "future"),
        ("bluesky:-:starts-1d", "meeting"),
    }
    post = singles[("mastodon:-:published+120m", "meeting")]
    assert (post.due, post.channel, post.list, post.review, post.kind) == (
        at(2026, 3, 9, 17),
        "mastodon",
        None,
        True,
        "single",
    )
    mail = singles[("email:news:published+0", "future")]
    assert (mail.list, mail.review, mail.rule_index, mail.note) == ("news", False, 0, "")
    assert singles[("bluesky:-:starts-1d", "meeting")].due == at(2026, 3, 19, 8)  # 09:00 CET the day before
    assert [(d.due, d.id) for d in result] == sorted((d.due, d.id) for d in result)
    assert all(d.due.utcoffset() == dt.timedelta(0) for d in result)


def test_ends_rule_skips_records_without_ends() -> None:
    result = plan(sample_records(), make_settings({"when": "ends + 1 hour", "channel": "x"}), NOW)
    assert [(d.record_ids, d.due) for d in result] == [(("meeting",), at(2026, 3, 20, 17))]


def test_drafts_and_cancelled_records_are_never_planned() -> None:
    result = plan(sample_records(), make_settings(FEEDS, REMIND, WEEKLY), NOW, lookback=dt.timedelta(days=400))
    planned = {rid for d in result for rid in d.record_ids}
    assert planned == {"old", "recent", "meeting", "future"}


def test_lookback_and_since_bound_the_past() -> None:
    records = sample_records()
    rules = make_settings(FEEDS)
    assert {d.record_ids[0] for d in plan(records, rules, NOW)} == {"recent", "meeting", "future"}
    wide = plan(records, rules, NOW, lookback=dt.timedelta(days=90))
    assert {d.record_ids[0] for d in wide} == {"old", "recent", "meeting", "future"}
    since = plan(records, rules, NOW, since=at(2026, 3, 9, 0))
    assert {d.record_ids[0] for d in since} == {"meeting", "future"}
    # A future single dispatch is planned however far ahead it is.
    later = [*records, record("far", at(2027, 1, 1))]
    assert "far" in {d.record_ids[0] for d in plan(later, rules, NOW)}


def test_due_lists_what_is_due_now() -> None:
    result = plan(sample_records(), make_settings(FEEDS), NOW)
    assert [d.record_ids[0] for d in due(result, NOW)] == ["recent", "meeting"]
    assert [d.record_ids[0] for d in due(result, at(2026, 3, 12, 8))] == ["recent", "meeting", "future"]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now"):
        plan([], make_settings(FEEDS), dt.datetime(2026, 3, 10))


# --- stable ids ---------------------------------------------------------------------------------------


def test_ids_are_stable_across_plans_and_rule_order() -> None:
    records = sample_records()
    first = plan(records, make_settings(FEEDS, NEWS, REMIND, WEEKLY), NOW)
    again = plan(records, make_settings(FEEDS, NEWS, REMIND, WEEKLY), NOW)
    reordered = plan(list(reversed(records)), make_settings(WEEKLY, REMIND, FEEDS, NEWS), NOW)
    assert first == again
    assert [d.id for d in first] == [d.id for d in reordered]
    assert len({d.id for d in first}) == len(first)
    assert {d.rule_index for d in reordered if d.channel == "feeds"} == {2}


def test_id_is_a_hash_of_rule_record_and_occurrence() -> None:
    import hashlib

    [dispatch] = plan([record("a", at(2026, 3, 12, 8))], make_settings(NEWS), NOW)
    text = "email:news:published+0|a|2026-03-12T08:00:00+00:00"
    assert dispatch.id == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_review_and_grace_do_not_change_ids_but_a_name_does() -> None:
    records = sample_records()
    base = {d.id for d in plan(records, make_settings(NEWS), NOW)}
    assert {d.id for d in plan(records, make_settings({**NEWS, "review": True, "grace": "1 hour"}), NOW)} == base
    assert {d.id for d in plan(records, make_settings({**NEWS, "name": "second"}), NOW)}.isdisjoint(base)


def test_adding_a_record_changes_no_other_id() -> None:
    records = sample_records()
    rules = make_settings(FEEDS, NEWS, REMIND, WEEKLY)
    before = by_key(plan(records, rules, NOW))
    after = by_key(plan([*records, record("new", at(2026, 3, 10, 9))], rules, NOW))
    added = set(after) - set(before)
    assert added == {("feeds:-:published+0", ("new",)), ("email:news:published+0", ("new",))}
    assert all(after[key].id == before[key].id for key in before)
    # The new record joins the upcoming digest, whose id stays.
    digest = after[("email:weekly:cron(0 9 * * mon@Europe/Paris)", ("2026-03-16T08:00:00+00:00",))]
    assert digest.record_ids == ("future", "new", "meeting")  # (03-09 09:00, 03-16 09:00], newest first
    assert digest.id == before[(digest.rule_key, ("2026-03-16T08:00:00+00:00",))].id


def test_editing_a_record_changes_only_its_own_dispatches() -> None:
    records = sample_records()
    rules = make_settings(FEEDS, REMIND)
    before = plan(records, rules, NOW)
    edited = [r.model_copy(update={"published": at(2026, 3, 11, 8)}) if r.id == "future" else r for r in records]
    after = plan(edited, rules, NOW)
    gone = {d.id for d in before} - {d.id for d in after}
    new = {d.id for d in after} - {d.id for d in before}
    [old_dispatch] = [d for d in before if d.id in gone]
    [new_dispatch] = [d for d in after if d.id in new]
    assert (old_dispatch.record_ids, old_dispatch.due) == (("future",), at(2026, 3, 12, 8))
    assert (new_dispatch.record_ids, new_dispatch.due) == (("future",), at(2026, 3, 11, 8))


def test_cancelling_a_record_removes_its_dispatches() -> None:
    records = sample_records()
    rules = make_settings(FEEDS, REMIND)
    cancelled = [r.model_copy(update={"status": "cancelled"}) if r.id == "meeting" else r for r in records]
    before, after = plan(records, rules, NOW), plan(cancelled, rules, NOW)
    assert {d.id for d in after} == {d.id for d in before if "meeting" not in d.record_ids}
    assert len(before) - len(after) == 2


# --- cron digests -------------------------------------------------------------------------------------


def test_digest_windows_hold_records_published_since_the_previous_one() -> None:
    monday = at(2026, 3, 9, 9, tz=PARIS)  # 08:00 UTC
    records = [
        record("before", monday - dt.timedelta(days=7, seconds=1)),  # falls in the window ending 03-02
        record("on-prev", monday - dt.timedelta(days=7)),  # exactly on the 03-02 occurrence: that one's
        record("after-prev", monday - dt.timedelta(days=7) + dt.timedelta(seconds=1)),
        record("sunday", at(2026, 3, 8, 20, tz=PARIS)),
        record("on-time", monday),  # exactly at 09:00: in this digest
        record("just-late", monday + dt.timedelta(minutes=1)),
        record("draft", at(2026, 3, 8, 21), status="draft"),
        record("gone", at(2026, 3, 8, 22), status="cancelled"),
    ]
    result = plan(records, make_settings(WEEKLY), at(2026, 3, 10, 12), horizon=dt.timedelta(days=14))
    got = [(d.due, d.record_ids, d.note, d.kind) for d in result]
    assert got == [
        (at(2026, 3, 9, 8), ("on-time", "sunday", "after-prev"), "", "digest"),
        (at(2026, 3, 16, 8), ("just-late",), "", "digest"),
        (at(2026, 3, 23, 8), (), "no new records since 2026-03-16T09:00+01:00", "digest"),
    ]
    assert result[0].occurrence == monday and result[0].occurrence.tzinfo == PARIS
    assert result[0].list == "weekly" and result[0].channel == "email"


def test_first_digest_after_a_long_quiet_time_reaches_back_to_the_previous_occurrence() -> None:
    # Monthly on the 1st at 08:00 UTC: the window of 2026-03-01 starts at 2026-02-01.
    rule = {"cron": "0 8 1 * *", "channel": "email", "list": "weekly", "timezone": "UTC"}
    records = [record("jan", at(2026, 1, 31, 23)), record("feb", at(2026, 2, 3))]
    [digest] = plan(records, make_settings(rule), at(2026, 3, 2), horizon=dt.timedelta(days=1))
    assert (digest.due, digest.record_ids) == (at(2026, 3, 1, 8), ("feb",))


def test_crontab_weekday_numbers_count_from_sunday() -> None:
    # APScheduler 3.x alone reads 1 as Tuesday; crontab (and we) read it as Monday.
    rule = {"cron": "0 9 * * 1", "channel": "feeds"}
    result = plan([], make_settings(rule), at(2026, 3, 10), horizon=dt.timedelta(days=14))
    assert {d.occurrence.strftime("%A") for d in result} == {"Monday"}
    assert sorted(weekdays("0")) == [0] == sorted(weekdays("7"))
    assert sorted(weekdays("fri-mon")) == [0, 1, 5, 6]
    assert sorted(weekdays("mon-fri/2")) == [1, 3, 5]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 9 * *", "needs 5 fields"),
        ("61 9 * * *", "61"),
        ("0 9 * * 8", "day of week"),
        ("0 9 1 * mon", "not both"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_cron_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cron.parse(expression, PARIS)


def paris_day(dispatches: Sequence[Dispatch], day: dt.date) -> list[Dispatch]:
    return [d for d in dispatches if d.due.astimezone(PARIS).date() == day]


def test_cron_on_the_spring_forward_day_happens_once() -> None:
    rule = {"cron": "30 2 * * *", "channel": "email", "list": "weekly"}
    result = plan(
        [], make_settings(rule), at(2026, 3, 29, 12), lookback=dt.timedelta(days=3), horizon=dt.timedelta(days=2)
    )
    [dispatch] = paris_day(result, dt.date(2026, 3, 29))
    # 02:30 does not exist that night: it is read as 02:30+01:00 = 01:30 UTC = 03:30 summer time.
    assert dispatch.due == at(2026, 3, 29, 1, 30)
    assert dispatch.occurrence.strftime("%H:%M%z") == "03:30+0200"
    assert [d.due for d in result] == [
        at(2026, 3, 27, 1, 30),
        at(2026, 3, 28, 1, 30),
        at(2026, 3, 29, 1, 30),
        at(2026, 3, 30, 0, 30),
        at(2026, 3, 31, 0, 30),
    ]


def test_cron_on_the_fall_back_day_happens_once() -> None:
    rule = {"cron": "30 2 * * *", "channel": "email", "list": "weekly"}
    result = plan(
        [], make_settings(rule), at(2026, 10, 25, 12), lookback=dt.timedelta(days=2), horizon=dt.timedelta(days=2)
    )
    [dispatch] = paris_day(result, dt.date(2026, 10, 25))
    assert dispatch.due == at(2026, 10, 25, 0, 30)  # the first 02:30, still summer time
    assert [d.due for d in result] == [
        at(2026, 10, 24, 0, 30),
        at(2026, 10, 25, 0, 30),
        at(2026, 10, 26, 1, 30),
        at(2026, 10, 27, 1, 30),
    ]


def test_hourly_digest_over_the_repeated_hour_loses_no_record() -> None:
    rule = {"cron": "0 * * * *", "channel": "email", "list": "weekly"}
    records = [record("repeat", at(2026, 10, 25, 1, 30))]  # 02:30 CET, the second pass of 02:30
    result = plan(records, make_settings(rule), at(2026, 10, 26, 12), lookback=dt.timedelta(days=2))
    day = paris_day(result, dt.date(2026, 10, 25))
    assert len(day) == 24  # a 25-hour day, the repeated 02:00 fired once
    [holder] = [d for d in result if d.record_ids]
    assert holder.due == at(2026, 10, 25, 2)  # 03:00 CET: its window is (02:00 CEST, 03:00 CET], two hours
    assert holder.note == ""


def test_weekly_cron_stays_at_nine_local_across_dst() -> None:
    result = plan([], make_settings(WEEKLY), at(2026, 3, 20), horizon=dt.timedelta(days=14))
    assert [d.due for d in result] == [at(2026, 3, 16, 8), at(2026, 3, 23, 8), at(2026, 3, 30, 7)]
    assert {d.occurrence.strftime("%H:%M") for d in result} == {"09:00"}


# --- rule validation ----------------------------------------------------------------------------------

BAD_CONFIG = """\
[site]
title = "T"
url = "https://example.org"
timezone = "Europe/Paris"

[newsletter]
lists = ["news"]

[scheduler]
grace = "6 hrs"  # M-scheduler

[[timeline]]  # M-rule0
when = "published"
channel = "feeds"

[[timeline]]
when = "starts minus one day"  # M-bad-when
channel = "bluesky"

[[timeline]]  # M-rule2
channel = "email"

[[timeline]]
when = "published"  # M-both
cron = "0 9 * * mon"
channel = "x"

[[timeline]]
cron = "0 9 * *"  # M-short-cron
channel = "email"
list = "weekly"  # M-unknown-list

[[timeline]]
when = "published + 1 hour"
channel = "mastodon"
list = "news"  # M-social-list

[[timeline]]
cron = "0 9 1 * mon"  # M-dom-dow
channel = "feeds"

[[timeline]]  # M-duplicate
when = "published"
channel = "feeds"

[[timeline]]
when = "published"
channel = "x"
grace = "later"  # M-grace
"""


def line_of(text: str, marker: str) -> int:
    [number] = [n for n, line in enumerate(text.splitlines(), start=1) if line.endswith(f"# {marker}")]
    return number


def test_rule_validation_names_field_and_line(tmp_path: Path) -> None:
    path = tmp_path / "publisher.toml"
    path.write_text(BAD_CONFIG, encoding="utf-8")
    settings = load_settings(path, tmp_path)
    problems = validate_rules(settings, "publisher.toml", BAD_CONFIG)
    got = [(p.line, p.field) for p in problems]
    expected = [
        ("M-bad-when", "timeline.1.when"),
        ("M-rule2", "timeline.2.when"),
        ("M-rule2", "timeline.2.list"),
        ("M-both", "timeline.3.when"),
        ("M-short-cron", "timeline.4.cron"),
        ("M-unknown-list", "timeline.4.list"),
        ("M-social-list", "timeline.5.list"),
        ("M-dom-dow", "timeline.6.cron"),
        ("M-duplicate", "timeline.7"),
        ("M-grace", "timeline.8.grace"),
        ("M-scheduler", "scheduler.grace"),
    ]
    assert got == [(line_of(BAD_CONFIG, marker), field) for marker, field in expected]
    messages = {p.field: p.message for p in problems}
    assert messages["timeline.2.when"] == "needs `when` or `cron`"
    assert messages["timeline.2.list"] == "an email rule needs a list (one of: news)"
    assert messages["timeline.3.when"] == "give `when` or `cron`, not both"
    assert messages["timeline.4.list"] == "'weekly' is not in newsletter.lists (news)"
    assert messages["timeline.7"] == "the same rule as timeline.0 (give one of them a `name`)"
    assert "needs 5 fields" in messages["timeline.4.cron"]
    with pytest.raises(InvalidInput) as caught:
        check_rules(settings, "publisher.toml", BAD_CONFIG)
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"publisher.toml:{line_of(BAD_CONFIG, 'M-scheduler')}: scheduler.grace: is a duration")
    assert f"publisher.toml:{line_of(BAD_CONFIG, 'M-bad-when')}: timeline.1.when: is 'published'" in str(caught.value)


def test_the_bundled_site_rules_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "publisher.toml").read_text(encoding="utf-8")
    settings = load_settings(root / "publisher.toml", root)
    assert validate_rules(settings, "publisher.toml", text) == []
    assert rule_key(settings.timeline[2], settings) == "email:weekly:cron(0 9 * * mon@America/Bogota)"


def test_plan_refuses_invalid_rules() -> None:
    with pytest.raises(InvalidInput, match=r"timeline\.0\.list"):
        plan([], make_settings({"when": "published", "channel": "email"}), NOW)


# --- properties ---------------------------------------------------------------------------------------

START = at(2026, 3, 1)
moments = st.integers(min_value=0, max_value=60 * 24 * 90).map(lambda m: START + dt.timedelta(minutes=m))
statuses = st.sampled_from(["published", "published", "published", "draft", "cancelled"])
records_strategy = st.lists(st.tuples(moments, statuses, st.booleans()), max_size=25).map(
    lambda rows: [
        record(f"r{i}", published, status=status, starts=published + dt.timedelta(days=3) if meeting else None)
        for i, (published, status, meeting) in enumerate(rows)
    ]
)
DIGEST = {"cron": "0 */7 * * *", "channel": "email", "list": "weekly"}


@settings(max_examples=60, deadline=None)
@given(records=records_strategy, now=moments, order=st.permutations([FEEDS, NEWS, REMIND, WEEKLY, DIGEST]))
def test_plan_properties(records: list[Record], now: dt.datetime, order: list[dict[str, Any]]) -> None:
    canonical = plan(records, make_settings(FEEDS, NEWS, REMIND, WEEKLY, DIGEST), now)
    shuffled = plan(records, make_settings(*order), now)
    assert {(d.id, d.due, d.record_ids) for d in shuffled} == {(d.id, d.due, d.record_ids) for d in canonical}
    assert len({d.id for d in canonical}) == len(canonical)
    live = {r.id: r for r in records if r.status == "published"}
    assert {rid for d in canonical for rid in d.record_ids} <= set(live)
    assert all(d.due > now - dt.timedelta(days=7) for d in canonical)
    for rule in ("email:weekly:cron(0 9 * * mon@Europe/Paris)", "email:weekly:cron(0 */7 * * *@Europe/Paris)"):
        digests = [d for d in canonical if d.rule_key == rule]
        held = [rid for d in digests for rid in d.record_ids]
        assert len(held) == len(set(held)), "a record sits in two digests"
        for d in digests:
            assert all(live[rid].published <= d.due for rid in d.record_ids)
            assert bool(d.record_ids) != d.note.startswith("no new records since")
        if digests:  # every live record between the first window's start and the last digest is held
            first_start = Cron.parse(rule.split("(")[1].split("@")[0], PARIS).before(
                digests[0].due - dt.timedelta(seconds=1)
            )
            assert first_start is not None
            inside = {rid for rid, r in live.items() if first_start < r.published <= digests[-1].due}
            assert inside == set(held)


# --- only the records that can fall in the window are shifted ---------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    hours=st.lists(st.integers(min_value=0, max_value=24 * 400), min_size=1, max_size=40),
    offsets=st.lists(st.sampled_from(["+ 3 hours", "- 2 hours", "+ 1 day", "- 1 day", "+ 2 weeks", "- 6 days", ""]),
                     min_size=1, max_size=4, unique=True),
    zone=st.sampled_from(["Europe/Paris", "America/Bogota", "Australia/Lord_Howe", "Pacific/Apia"]),
    since_hours=st.integers(min_value=0, max_value=24 * 400),
)  # fmt: skip
def test_skipping_early_records_plans_what_shifting_every_record_plans(
    hours: list[int], offsets: list[str], zone: str, since_hours: int
) -> None:
    """Around DST changes too (Lord Howe moves by half an hour; Apia skipped a whole day in 2011)."""
    start = at(2010, 6, 1)
    records = [
        record(f"r{i}", start + dt.timedelta(hours=h), starts=start + dt.timedelta(hours=h + 30), ends=None)
        for i, h in enumerate(hours)
    ]
    rules = [
        {"when": f"{anchor} {offset}".strip(), "channel": "x"}
        for offset in offsets
        for anchor in ("published", "starts")
    ]
    chosen = make_settings(*rules, timezone=zone)
    now = start + dt.timedelta(hours=since_hours)
    fast = plan(records, chosen, now)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("publisher.timeline.plan._SHIFT_SLACK", dt.timedelta(days=3_000_000))  # every record
        assert plan(records, chosen, now) == fast


# --- a plan depends on `now` only through its window ------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    zone=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]),
    cron=st.sampled_from(["*/30 1-3 * * *", "0 2 * * *", "15 0 * * *", "0 0 1 * *", "30 2 * * sun"]),
    when=st.sampled_from(["published", "starts - 1 day", "starts + 1 week", "starts - 2 hours", "ends + 1 day"]),
    minutes=st.lists(st.integers(min_value=0, max_value=60 * 24 * 365), max_size=12),
    first=st.integers(min_value=0, max_value=60 * 24 * 365),
    step=st.integers(min_value=1, max_value=60 * 24 * 3),
)  # fmt: skip
def test_plans_at_two_nows_agree_on_every_dispatch_both_windows_hold(
    zone: str, cron: str, when: str, minutes: list[int], first: int, step: int
) -> None:
    """What the clock's kept plan relies on (`dispatch.runner.current_plan`), over a year of offset changes: the
    same ids, due times and digest records, whichever `now` planned them."""
    start = at(2026, 1, 1)
    records = [
        record(f"r{i}", start + dt.timedelta(minutes=m), starts=start + dt.timedelta(minutes=m + 3000),
               ends=start + dt.timedelta(minutes=m + 3100))
        for i, m in enumerate(minutes)
    ]  # fmt: skip
    chosen = make_settings({"cron": cron, "channel": "email", "list": "weekly"}, {"when": when, "channel": "x"},
                           timezone=zone)  # fmt: skip
    earlier = start + dt.timedelta(minutes=first)
    later = earlier + dt.timedelta(minutes=step)

    def shared(dispatches: list[Dispatch]) -> set[tuple[str, dt.datetime, tuple[str, ...]]]:
        """Those after the later look-back, and digests up to the earlier horizon."""
        reach = earlier + dt.timedelta(days=35)
        return {
            (d.id, d.due, d.record_ids)
            for d in dispatches
            if d.due > later - dt.timedelta(days=7) and (d.kind == "single" or d.due <= reach)
        }

    assert shared(plan(records, chosen, earlier)) == shared(plan(records, chosen, later))
