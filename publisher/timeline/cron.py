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
* **Daylight saving.** Times are wall-clock times in the cron's zone.
  - A time that does not exist (spring forward, 02:30 in Europe/Paris on
    2026-03-29) fires once, read with the offset in force *before* the change:
    02:30+01:00 = 01:30 UTC, i.e. 03:30 on the new wall clock. This is what
    APScheduler 3.11.3 does, and what :mod:`zoneinfo` does with ``fold=0``.
  - A time that happens twice (fall back, 02:30 on 2026-10-25) fires once, the
    first time (summer time, 00:30 UTC). APScheduler yields both; the second
    (``fold=1``) is dropped here. A digest that runs every half hour therefore
    has one longer window that night: nothing is lost, since windows are
    contiguous.
"""

from __future__ import annotations

import datetime as dt
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
_MICROSECOND = dt.timedelta(microseconds=1)


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
            trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=ap_days, timezone=zone)
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
        """Occurrences strictly after `start` (and at or before `until`), in the cron's zone."""
        if start.tzinfo is None:
            raise ValueError("start: needs a time zone")
        limit = (start + _BACK[-1] * 2) if until is None else until
        previous: dt.datetime | None = None
        # Strictly after: APScheduler starts at the next whole second at or after its `now`.
        current = self.trigger.get_next_fire_time(None, (start + _MICROSECOND).astimezone(self.zone))
        while current is not None and current <= limit:
            if not _repeated(current):
                # Through UTC: astimezone() to the same tzinfo would keep a wall time from the gap.
                yield current.astimezone(dt.UTC).astimezone(self.zone)
            previous = current
            current = self.trigger.get_next_fire_time(previous, previous)

    def before(self, moment: dt.datetime) -> dt.datetime | None:
        """The last occurrence at or before `moment` (None if none in 9 years)."""
        for back in _BACK:
            found = None
            for occurrence in self.after(moment - back, until=moment):
                found = occurrence
            if found is not None:
                return found
        return None


def _repeated(moment: dt.datetime) -> bool:
    """The second pass of a wall-clock time that happens twice (fall back)."""
    return moment.fold == 1 and moment.replace(fold=0).utcoffset() != moment.utcoffset()
