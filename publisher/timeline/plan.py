"""The timeline: timeline rules × records × now → the plan, a list of dispatches.

Pure: no clock (``now`` is passed in), no I/O. The same input gives the same
plan, and every dispatch has a stable id, so planning again never duplicates.

**Ids.** A dispatch id is the first 16 hex digits of a SHA-256 over the rule's
key (:func:`rule_key`: channel, list, trigger, name; not its place in the file,
so reordering rules changes no id), the record id (single dispatches only) and
the occurrence as a UTC instant.

* Single (``when``) dispatches hash rule + record + occurrence. Editing a
  record's anchor (``published``, ``starts``, ``ends``) moves the occurrence,
  so the edited record gets a new id and its old planned dispatch leaves the
  plan: changing a record changes its future dispatches. Dispatches already
  sent stay in the store's history; the plan never lists what it cannot plan.
* Digest (``cron``) dispatches hash rule + occurrence only: the occurrence *is*
  the identity, and its ``record_ids`` may grow until it is sent.

**Records.** Drafts are never planned. Cancelled records yield nothing: no
single dispatch, no place in a digest. A digest holds the records published in
(previous occurrence, this occurrence], newest first; an empty one is still
planned, with no records and a note saying why (the caller shows it as skipped,
never sends it).

**Time.** ``when = "starts - 1 day"``: minutes and hours are absolute time;
days and weeks are wall-clock days in the rule's zone (``timezone``, else the
site's), so a reminder one day before a 09:00 start stays at 09:00 across a
daylight-saving change. A wall-clock result that does not exist (spring forward)
is read with the offset in force before the change (zoneinfo ``fold=0``: 02:30
becomes 03:30 on the new clock); one that happens twice (fall back) is the first
of the two. Cron rules follow the same convention (see :mod:`publisher.cron`).

**Window.** Past dispatches are planned only if due after ``since`` (default:
``now - lookback``, 7 days); future ``when`` dispatches are all planned, future
digests up to ``now + horizon`` (35 days). Whether a past one is still sent is
the scheduler's call (its grace), not the plan's.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from publisher.errors import InvalidInput, Problem
from publisher.site.planned import Planned
from publisher.site.settings import Settings, TimelineRule, key_line
from publisher.timeline.cron import Cron
from publisher.timeline.window import HORIZON as HORIZON  # re-exported: callers import them from here too
from publisher.timeline.window import LOOKBACK as LOOKBACK

Anchor = Literal["published", "starts", "ends"]
Kind = Literal["single", "digest"]
UTC = dt.UTC

_WHEN = re.compile(
    r"^\s*(?P<anchor>published|starts|ends)\s*"
    r"(?:(?P<sign>[+-])\s*(?P<count>\d+)\s*(?P<unit>minute|hour|day|week)s?)?\s*$"
)
_GRACE = re.compile(r"^\s*(?P<count>\d+(?:\.\d+)?)\s*(?P<unit>second|minute|hour|day|week)s?\s*$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


class Offset(NamedTuple):
    """How far from the anchor: wall-clock `days` first, then absolute `seconds`."""

    days: int = 0
    seconds: int = 0

    def __str__(self) -> str:
        if self.days:
            return f"{self.days:+d}d"
        if self.seconds:
            return f"{self.seconds // 60:+d}m"
        return "+0"


MAX_SHIFT_DAYS = 36500  # 100 years: a record's date (years 1000 to 8999) shifted stays inside datetime's years


def parse_offset(text: str) -> tuple[Anchor, Offset]:
    """``"starts - 1 day"`` → ``("starts", Offset(days=-1))``; ValueError if unreadable or beyond 100 years."""
    match = _WHEN.match(text)
    if not match:
        raise ValueError(
            f"is 'published', 'starts' or 'ends' with an optional offset such as 'starts - 1 day' "
            f"or 'published + 2 hours' (units: minutes, hours, days, weeks) (got {text!r})"
        )
    anchor: Anchor = match["anchor"]  # type: ignore[assignment]  # the regex allows only these three
    if not match["count"]:
        return anchor, Offset()
    count = int(match["count"]) * (-1 if match["sign"] == "-" else 1)
    unit = match["unit"]
    if abs(count) * _UNIT_SECONDS[unit] > MAX_SHIFT_DAYS * 86400:  # a due time past the calendar, never computed
        raise ValueError(
            f"shifts by more than {MAX_SHIFT_DAYS // 365} years, past any date publisher plans (got {text!r})"
        )
    if unit in ("day", "week"):
        return anchor, Offset(days=count * (7 if unit == "week" else 1))
    return anchor, Offset(seconds=count * _UNIT_SECONDS[unit])


def grace_seconds(text: str) -> float:
    """``"6 hours"`` → 21600.0: how late a dispatch may still be sent."""
    match = _GRACE.match(text)
    if not match:
        raise ValueError(f"is a duration such as '6 hours' or '30 minutes' (got {text!r})")
    return float(match["count"]) * _UNIT_SECONDS[match["unit"]]


def shift(anchor: dt.datetime, offset: Offset, zone: ZoneInfo) -> dt.datetime:
    """`anchor` moved by `offset`: days on the wall clock in `zone`, seconds in absolute time; UTC."""
    moment = anchor
    if offset.days:
        local = anchor.astimezone(zone).replace(tzinfo=None) + dt.timedelta(days=offset.days)
        moment = local.replace(tzinfo=zone, fold=0)
    return moment.astimezone(UTC) + dt.timedelta(seconds=offset.seconds)


@dataclass(frozen=True)
class Dispatch:
    """One thing to send on one channel at one time: a record, or a digest of records."""

    id: str
    rule_index: int
    rule_key: str
    channel: str
    due: dt.datetime
    record_ids: tuple[str, ...]
    list: str | None
    review: bool
    kind: Kind
    occurrence: dt.datetime
    note: str = ""

    def __post_init__(self) -> None:
        if self.due.tzinfo is None or self.occurrence.tzinfo is None:
            raise ValueError("due: needs a time zone")


def _zone(rule: TimelineRule, settings: Settings) -> ZoneInfo:
    return ZoneInfo(rule.timezone or settings.site.timezone)


def rule_key(rule: TimelineRule, settings: Settings) -> str:
    """A stable text of a rule, e.g. ``email:news:published+0`` or ``email:weekly:cron(0 9 * * mon@Europe/Paris)``.

    It is what dispatch ids hash instead of the rule's position in the file.
    `review` and `grace` are not part of it: changing them keeps the ids.
    """
    if rule.cron is not None:
        trigger = f"cron({Cron.parse(rule.cron, _zone(rule, settings)).canonical})"
    else:
        anchor, offset = parse_offset(rule.when or "")
        trigger = f"{anchor}{offset}"
    key = f"{rule.channel}:{rule.list or '-'}:{trigger}"
    return f"{key}:{rule.name}" if rule.name else key


def rule_grace(rule: TimelineRule, settings: Settings) -> float:
    """Seconds a dispatch of this rule may be late and still go out."""
    return grace_seconds(rule.grace or settings.scheduler.grace)


def _id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# --- validation -------------------------------------------------------------------------------


def _rule_line(text: str, index: int, key: str, present: bool) -> int:
    if present:
        return key_line(text, ["timeline", str(index), key])
    headers = [
        number
        for number, raw in enumerate(text.splitlines(), start=1)
        if re.fullmatch(r"\[\[\s*timeline\s*\]\]", raw.split("#", 1)[0].strip())
    ]
    return headers[index] if index < len(headers) else 1


def _rule_problems(rule: TimelineRule, settings: Settings) -> list[tuple[str, str]]:
    """(key, message) for everything wrong with one rule."""
    found: list[tuple[str, str]] = []
    if (rule.when is None) == (rule.cron is None):
        message = "give `when` or `cron`, not both" if rule.when else "needs `when` or `cron`"
        found.append(("when", message))
    elif rule.when is not None:
        try:
            parse_offset(rule.when)
        except ValueError as exc:
            found.append(("when", str(exc)))
    else:
        try:
            Cron.parse(rule.cron or "", _zone(rule, settings))
        except ValueError as exc:
            found.append(("cron", f"{exc} (got {rule.cron!r})"))
    lists = settings.newsletter.lists
    if rule.channel == "email" and rule.list is None:
        found.append(("list", f"an email rule needs a list (one of: {', '.join(lists)})"))
    elif rule.channel == "email" and rule.list not in lists:
        found.append(("list", f"{rule.list!r} is not in newsletter.lists ({', '.join(lists)})"))
    elif rule.channel != "email" and rule.list is not None:
        found.append(("list", f"only email rules take a list (this rule's channel is {rule.channel!r})"))
    if rule.grace is not None:
        try:
            grace_seconds(rule.grace)
        except ValueError as exc:
            found.append(("grace", str(exc)))
    return found


def validate_rules(settings: Settings, shown_path: str, text: str) -> list[Problem]:
    """Every problem in the timeline rules (and the scheduler's grace), with its line in `text`."""
    problems: list[Problem] = []
    keys: dict[str, int] = {}
    for index, rule in enumerate(settings.timeline):
        found = _rule_problems(rule, settings)
        for key, message in found:
            line = _rule_line(text, index, key, getattr(rule, key) is not None)
            problems.append(Problem(shown_path, line, f"timeline.{index}.{key}", message))
        if found:
            continue
        key = rule_key(rule, settings)
        if key in keys:
            line = _rule_line(text, index, "name", rule.name is not None)
            message = f"the same rule as timeline.{keys[key]} (give one of them a `name`)"
            problems.append(Problem(shown_path, line, f"timeline.{index}", message))
        keys.setdefault(key, index)
    try:
        grace_seconds(settings.scheduler.grace)
    except ValueError as exc:
        line = key_line(text, ["scheduler", "grace"])
        problems.append(Problem(shown_path, line, "scheduler.grace", str(exc)))
    return problems


def check_rules(settings: Settings, shown_path: str = "publisher.toml", text: str = "") -> None:
    """:func:`validate_rules`, raising :class:`InvalidInput` when anything is wrong."""
    problems = validate_rules(settings, shown_path, text)
    if problems:
        raise InvalidInput(problems)


# --- planning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    start: dt.datetime  # exclusive
    end: dt.datetime  # inclusive, digests only


def plan(
    records: Sequence[Planned],
    settings: Settings,
    now: dt.datetime,
    *,
    horizon: dt.timedelta = HORIZON,
    lookback: dt.timedelta = LOOKBACK,
    since: dt.datetime | None = None,
) -> list[Dispatch]:
    """Every dispatch due after ``since`` (default ``now - lookback``), sorted by (due, id).

    Future single dispatches are all listed; future digests up to ``now + horizon``.
    Raises :class:`InvalidInput` if a rule is invalid (see :func:`validate_rules`).
    """
    if now.tzinfo is None or (since is not None and since.tzinfo is None):
        raise ValueError("now: needs a time zone")
    check_rules(settings)
    window = _Window(since if since is not None else now - lookback, now + horizon)
    live = [record for record in records if record.status == "published"]
    by_time = sorted(live, key=lambda record: (record.published, record.id))
    times = [record.published for record in by_time]
    anchored: dict[str, tuple[list[Planned], list[dt.datetime]]] = {}
    dispatches: list[Dispatch] = []
    for index, rule in enumerate(settings.timeline):
        if rule.cron is not None:
            dispatches.extend(_digests(index, rule, settings, by_time, times, window))
        else:
            dispatches.extend(_singles(index, rule, settings, live, window, anchored))
    dispatches.sort(key=lambda dispatch: (dispatch.due, dispatch.id))
    return dispatches


#: More than any shift of wall-clock days moves an instant besides the days themselves (a change of UTC offset).
_SHIFT_SLACK = dt.timedelta(days=2)


def _singles(
    index: int,
    rule: TimelineRule,
    settings: Settings,
    records: Sequence[Planned],
    window: _Window,
    anchored: dict[str, tuple[list[Planned], list[dt.datetime]]],
) -> list[Dispatch]:
    """One dispatch per record whose anchor, shifted, falls after the window's start.

    Only the records whose anchor comes late enough are looked at: `anchored` keeps, per anchor, the records
    that have one sorted by it (made once per plan), and a bisection skips those that, shifted by the offset and
    a slack for any change of UTC offset, still fall before the window (a plan of 10,000 records and 50 rules
    otherwise shifts and hashes half a million times to keep a few thousand).
    """
    anchor, offset = parse_offset(rule.when or "")
    zone = _zone(rule, settings)
    key = rule_key(rule, settings)
    if anchor not in anchored:
        having = sorted((r for r in records if getattr(r, anchor) is not None), key=lambda r: getattr(r, anchor))
        anchored[anchor] = (having, [getattr(r, anchor) for r in having])
    having, moments = anchored[anchor]
    reach = dt.timedelta(days=offset.days, seconds=offset.seconds)
    try:
        first = bisect.bisect_right(moments, window.start - reach - _SHIFT_SLACK)
    except OverflowError:  # the window's start is near the calendar's end: look at every record
        first = 0
    out = []
    for record in having[first:]:
        moment: dt.datetime = getattr(record, anchor)
        due = shift(moment, offset, zone)
        if due <= window.start:
            continue
        out.append(
            Dispatch(
                id=_id(key, record.id, due.isoformat()),
                rule_index=index,
                rule_key=key,
                channel=rule.channel,
                due=due,
                record_ids=(record.id,),
                list=rule.list,
                review=rule.review,
                kind="single",
                occurrence=due.astimezone(zone),
            )
        )
    return out


def _digests(
    index: int,
    rule: TimelineRule,
    settings: Settings,
    by_time: Sequence[Planned],
    times: Sequence[dt.datetime],
    window: _Window,
) -> list[Dispatch]:
    cron = Cron.parse(rule.cron or "", _zone(rule, settings))
    key = rule_key(rule, settings)
    previous = cron.before(window.start)
    out = []
    for occurrence in cron.after(window.start, until=window.end):
        due = occurrence.astimezone(UTC)
        low = 0 if previous is None else bisect.bisect_right(times, previous)
        high = bisect.bisect_right(times, occurrence)
        ids = tuple(record.id for record in reversed(by_time[low:high]))
        since = "the start" if previous is None else previous.isoformat(timespec="minutes")
        out.append(
            Dispatch(
                id=_id(key, due.isoformat()),
                rule_index=index,
                rule_key=key,
                channel=rule.channel,
                due=due,
                record_ids=ids,
                list=rule.list,
                review=rule.review,
                kind="digest",
                occurrence=occurrence,
                note="" if ids else f"no new records since {since}",
            )
        )
        previous = occurrence
    return out


def due(dispatches: Sequence[Dispatch], now: dt.datetime) -> list[Dispatch]:
    """The dispatches due at `now` (due <= now), in plan order."""
    return [dispatch for dispatch in dispatches if dispatch.due <= now]
