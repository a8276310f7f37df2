"""Five-field cron expressions as a pure, deterministic iterator of instants.

The arithmetic is APScheduler 3.11's :class:`CronTrigger` (used here without a
scheduler: ``get_next_fire_time`` is a pure function). Three things are added:

* **Weekday numbers as in crontab.** APScheduler 3.x reads ``0`` as Monday;
  crontab(5) reads ``0`` (and ``7``) as Sunday. The day-of-week field is
  translated to weekday names first, so ``0 9 * * 1`` means Mondays here as
  everywhere else. A range may wrap around the week: ``fri-mon``.
* **Day of month and day of week together are refused.** crontab fires when
  *either* matches, APScheduler only when *both* do; rather than pick one
  silently, such an expression is an error (write two rules instead).
* **Daylight saving.** Times are wall-clock times in the cron's zone. The
  trigger runs on that wall clock written as UTC, where no day is 23 or 25
  hours long: APScheduler's own arithmetic in the zone skips occurrences after
  an offset change (see `_wall`). Each wall time is then read in the zone:
  - A time that does not exist (spring forward, 02:30 in Europe/Paris on
    2026-03-29) fires once, read with the offset in force *before* the change:
    02:30+01:00 = 01:30 UTC, i.e. 03:30 on the new wall clock: what
    :mod:`zoneinfo` does with ``fold=0``. Where the cron also fires at 03:30,
    the two are one occurrence.
  - A time that happens twice (fall back, 02:30 on 2026-10-25) fires once, the
    first time (summer time, 00:30 UTC). A digest that runs every half hour
    therefore has one longer window that night: nothing is lost, since windows
    are contiguous.
"""

from __future__ import annotations

import datetime as dt
import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 = Sunday
_LONG_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_AP_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # APScheduler's order
_DAY_ITEM = re.compile(r"^(?P<first>\*|\w+)(?:-(?P<last>\w+))?(?:/(?P<step>\d+))?$")
# How far back to look for the occurrence before a time: short first, up to
# past the longest gap a valid expression can have (29 February, 8 years).
_BACK = tuple(dt.timedelta(days=d) for d in (1 / 24, 1, 8, 32, 367, 9 * 366))
#: More than a zone's UTC offset has changed at once in the tz database since 2012 (two hours at most): how far a
#: wall time's instant can stray. (Apia's whole day in 2011 was more: its skipped day's times are the next day's.)
_SLACK = dt.timedelta(hours=3)


def _day_number(text: str) -> int:
    """0-7 (0 and 7 are Sunday) or a day name, short or long, as crontab writes it."""
    if text.isdigit() and int(text) <= 7:
        return int(text)
    name = text.lower()
    if name[:3] in _DAYS and name in (name[:3], _LONG_DAYS[_DAYS.index(name[:3])]):
        return _DAYS.index(name[:3])
    raise ValueError(f"day of week: {text!r} is not 0-7 or a day name")


def weekdays(field: str) -> frozenset[int]:
    """The days (0 = Sunday … 6 = Saturday) a crontab day-of-week field names.

    Items are ``*``, ``N``, ``A-B`` (wrapping past Saturday when B < A), each with
    an optional ``/STEP``; ``N/STEP`` runs from N to Saturday.
    """
    days: set[int] = set()
    for item in field.split(","):
        match = _DAY_ITEM.match(item.strip())
        if not match or (match["first"] == "*" and match["last"]):
            raise ValueError(f"day of week: cannot read {item!r}")
        step = int(match["step"] or 1)
        if step < 1:
            raise ValueError(f"day of week: a step must be at least 1 (got {item!r})")
        if match["first"] == "*":
            first, last = 0, 6
        else:
            first = _day_number(match["first"])
            last = _day_number(match["last"]) if match["last"] else (6 if match["step"] else first)
            if last < first:
                last += 7
        days.update(day % 7 for day in range(first, last + 1, step))
    return frozenset(days)


@dataclass(frozen=True)
class Cron:
    """A crontab expression in a time zone; iterate it with :meth:`after`."""

    expression: str
    zone: ZoneInfo
    trigger: CronTrigger

    @classmethod
    def parse(cls, expression: str, zone: ZoneInfo) -> Cron:
        """Read ``minute hour day month weekday``; ValueError says what is wrong."""
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(f"needs 5 fields (minute hour day month weekday), got {len(fields)}")
        minute, hour, day, month, weekday = fields
        days = weekdays(weekday)
        if day != "*" and len(days) < 7:
            raise ValueError(
                "give a day of month or a day of week, not both (crontab fires on either; write two rules)"
            )
        ap_days = "*" if len(days) == 7 else ",".join(d for d in _AP_DAYS if _DAYS.index(d) in days)
        try:
            trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=ap_days, timezone=dt.UTC)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        cron = cls(" ".join(fields).lower(), zone, trigger)
        probe = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        if next(cron.after(probe, until=probe + _BACK[-1]), None) is None:
            raise ValueError("never fires (or less than once in 9 years)")
        return cron

    @property
    def canonical(self) -> str:
        """The expression as written (whitespace-normalised) and its zone."""
        return f"{self.expression}@{self.zone.key}"

    def after(self, start: dt.datetime, until: dt.datetime | None = None) -> Iterator[dt.datetime]:
        """Occurrences strictly after `start` (and at or before `until`), in the cron's zone.

        APScheduler's trigger runs on the zone's wall clock written as UTC (see `_wall`), where no
        day is 23 or 25 hours long; each wall time is then read in the zone (`_instant`). A wall time
        `_SLACK` around the zone's offset change may come out before one found earlier, so what is found
        waits in a heap until the wall clock is `_SLACK` past it.
        """
        if start.tzinfo is None:
            raise ValueError("start: needs a time zone")
        limit = (start + _BACK[-1] * 2) if until is None else until
        end = _wall(limit, self.zone) + _SLACK
        found: list[dt.datetime] = []  # a heap of instants in UTC
        last = start
        current = self.trigger.get_next_fire_time(None, _wall(start, self.zone) - _SLACK)
        while current is not None and current <= end:
            moment = _instant(current, self.zone)
            if start < moment <= limit:
                heapq.heappush(found, moment)
            while found and found[0] < moment - _SLACK:
                earliest = heapq.heappop(found)
                if earliest > last:  # a wall time of the gap and one an hour later are one instant
                    last = earliest
                    yield earliest.astimezone(self.zone)
            current = self.trigger.get_next_fire_time(current, current)
        for earliest in sorted(found):
            if earliest > last:
                last = earliest
                yield earliest.astimezone(self.zone)

    def before(self, moment: dt.datetime) -> dt.datetime | None:
        """The last occurrence at or before `moment` (None if none in 9 years)."""
        for back in _BACK:
            found = None
            for occurrence in self.after(moment - back, until=moment):
                found = occurrence
            if found is not None:
                return found
        return None


def _wall(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The wall-clock time `moment` shows in `zone`, written as a UTC time (a time with no daylight saving).

    APScheduler 3.11.3 moves from one candidate to the next by adding the wall-clock difference in UTC
    (`CronTrigger._increment_field_value`), so across a change of offset it lands an hour off and goes
    on to the next day, month or year: from 2024-03-15, "0 0 1 * *" in Europe/Paris came out as
    1 May, April's 1st skipped; from 00:00 on the day clocks go forward, "15 0 * * *" skipped the next
    day (as in https://github.com/agronholm/apscheduler/issues/606). On a UTC clock nothing is skipped.
    """
    return moment.astimezone(zone).replace(tzinfo=dt.UTC, fold=0)


def _instant(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The instant (in UTC) of a `_wall` time, read as `zoneinfo` reads ``fold=0`` (PEP 495): in the gap of a
    spring forward with the offset before it, in the repeated hour of a fall back the first time."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
