"""A cron's occurrences across changes of UTC offset, held to a plain reading of the expression.

The reference below does not use APScheduler: it lists every wall-clock time
the fields name, day by day, and reads each in the zone as `zoneinfo` reads
``fold=0`` (a time in a spring-forward gap with the offset before the change,
a repeated time the first time). APScheduler 3.11.3's trigger, run in the
zone, skipped the occurrence after a change of offset: April's first in a
monthly digest, the day after the clocks go forward in a daily one.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.timeline.cron import Cron

PARIS = ZoneInfo("Europe/Paris")
# Lord Howe moves its clocks by half an hour; New York and Paris change on different days.
ZONES = tuple(map(ZoneInfo, ("Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Europe/London")))


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def shown(moments: list[dt.datetime]) -> list[str]:
    return [moment.isoformat(timespec="minutes") for moment in moments]


def test_a_monthly_digest_on_the_first_keeps_april_when_the_clocks_go_forward_in_march() -> None:
    cron = Cron.parse("0 0 1 * *", PARIS)
    found = list(cron.after(utc("2024-03-15T00:00"), until=utc("2024-05-15T00:00")))
    assert shown(found) == ["2024-04-01T00:00+02:00", "2024-05-01T00:00+02:00"]
    assert cron.before(utc("2024-04-15T00:00")) == found[0]


def test_a_daily_digest_after_midnight_fires_on_the_day_after_the_clocks_go_forward() -> None:
    cron = Cron.parse("15 0 * * *", PARIS)
    found = list(cron.after(utc("2026-03-28T23:00"), until=utc("2026-03-31T12:00")))
    assert shown(found) == ["2026-03-29T00:15+01:00", "2026-03-30T00:15+02:00", "2026-03-31T00:15+02:00"]


MINUTES = st.sets(st.sampled_from([0, 15, 30, 45]), min_size=1, max_size=3)
# Mostly the hours around the changes (at night, where the old trigger lost its way), a few others.
HOURS = st.sets(st.sampled_from([0, 0, 1, 1, 2, 2, 3, 4, 9, 23]), min_size=1, max_size=3)


@st.composite
def crons(draw: st.DrawFn) -> tuple[frozenset[int], frozenset[int], frozenset[int] | None, frozenset[int] | None]:
    """Minutes, hours, and days of the month or days of the week (0 = Sunday), or neither."""
    minutes, hours = frozenset(draw(MINUTES)), frozenset(draw(HOURS))
    which = draw(st.sampled_from(["every day", "days of month", "days of week"]))
    month_days = st.sets(st.sampled_from([1, 1, 2, 15, 28]), min_size=1, max_size=2)
    days = frozenset(draw(month_days)) if which == "days of month" else None
    week = frozenset(draw(st.sets(st.integers(0, 6), min_size=1, max_size=3))) if which == "days of week" else None
    return minutes, hours, days, week


def expression(
    minutes: frozenset[int], hours: frozenset[int], days: frozenset[int] | None, week: frozenset[int] | None
) -> str:
    def field(values: frozenset[int] | None) -> str:
        return "*" if values is None else ",".join(map(str, sorted(values)))

    return f"{field(minutes)} {field(hours)} {field(days)} * {field(week)}"


def reference(
    fields: tuple[frozenset[int], frozenset[int], frozenset[int] | None, frozenset[int] | None],
    zone: ZoneInfo,
    start: dt.datetime,
    until: dt.datetime,
) -> list[dt.datetime]:
    """Every wall-clock time the fields name, read with ``fold=0``, strictly after `start` and up to `until`."""
    minutes, hours, days, week = fields
    day = start.astimezone(zone).date() - dt.timedelta(days=1)
    last = until.astimezone(zone).date() + dt.timedelta(days=1)
    found = set()
    while day <= last:
        if (days is None or day.day in days) and (week is None or (day.weekday() + 1) % 7 in week):
            for hour in hours:
                for minute in minutes:
                    moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone, fold=0)
                    if start < moment <= until:
                        found.add(moment.astimezone(dt.UTC))
        day += dt.timedelta(days=1)
    return sorted(found)


def changes(zone: ZoneInfo) -> list[dt.datetime]:
    """The instants, in 2024-2026, where `zone` changes its UTC offset (to the hour, or the half hour)."""
    found, moment = [], dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    while moment.year < 2027:
        after = moment + dt.timedelta(minutes=30)
        if moment.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            found.append(after)
        moment = after
    return found


CHANGES = {zone: changes(zone) for zone in ZONES}


@st.composite
def zones_and_starts(draw: st.DrawFn) -> tuple[ZoneInfo, dt.datetime]:
    """A zone, and a start from five weeks before one of its changes of offset to a few days after."""
    zone = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(CHANGES[zone]))
    return zone, change + dt.timedelta(minutes=draw(st.integers(-35 * 24 * 60, 3 * 24 * 60)))


@settings(max_examples=300, deadline=None)
@given(fields=crons(), where=zones_and_starts(), span=st.integers(1, 40 * 24 * 60))
def test_occurrences_are_the_wall_clock_times_the_fields_name(
    fields: tuple[frozenset[int], frozenset[int], frozenset[int] | None, frozenset[int] | None],
    where: tuple[ZoneInfo, dt.datetime],
    span: int,
) -> None:
    zone, start = where
    cron = Cron.parse(expression(*fields), zone)
    until = start + dt.timedelta(minutes=span)
    found = list(cron.after(start, until=until))
    assert [moment.astimezone(dt.UTC) for moment in found] == reference(fields, zone, start, until)
    assert all(moment.tzinfo is zone for moment in found)
    if found:  # the last occurrence at or before a moment is the reference's too
        assert cron.before(until) == found[-1]
