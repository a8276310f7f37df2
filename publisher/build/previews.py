"""Which records a build writes previews for (newsletter issues and posts): where someone will look.

A feed shows its newest `[feeds] max_items`; nobody reads the issue or the
posts of a record ten years old that will never be sent. So `build` writes
them for the newest `[build] previews` records and for every record the
timeline still has something to do with at the build's `now`: a dispatch due
later, or one held for review (a `review = true` rule's dispatch in the plan's
look-back window, which may be waiting for approval). `build --all` writes
every record's.

**The kept plan.** Planning needs the validated rules (pydantic) and the
planner (APScheduler), and looks at every record: most of a rebuild's time at
10,000 records. Yet a plan depends on `now` only through its window, so a build
keeps what choosing previews needs of one plan made at `made` (t0) with a
horizon longer by `SPAN` (`PLAN_FILE`), and a later build at t0 <= now <= t0 +
SPAN, of the same code, settings and records' dates, reads its answer from it:
the dispatches `plan(now)` would list are the kept ones due after now -
LOOKBACK (singles) and up to now + HORIZON (digests), each digest with the same
records (those published since its previous occurrence, whatever the window).
Anything else (another key, a `now` out of that day, a file that does not
decode to the shape) plans again and keeps the new plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from publisher.build.cache import CACHE_FOLDER, Source
from publisher.build.stored import save_bytes
from publisher.errors import InvalidInput
from publisher.site.config import Site
from publisher.site.dated import Dated  # a record as the plan reads it, here from the build cache's row
from publisher.timeline.window import HORIZON, LOOKBACK

PLAN_FILE = f"{CACHE_FOLDER}/previews-plan.json"
#: How long after it was made a kept plan serves: it was planned with a horizon this much longer.
SPAN = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class Due(msgspec.Struct, array_like=True, frozen=True):
    """One dispatch of a kept plan, as choosing previews reads it."""

    due: int  # microseconds since the epoch: exact (a float timestamp rounds past a microsecond's width)
    review: bool
    digest: bool  # listed up to now + HORIZON only (a single is listed however far ahead)
    records: tuple[str, ...]


class KeptPlan(msgspec.Struct, frozen=True):
    """`PLAN_FILE`: the plan made at `made` (microseconds since the epoch) for the records and settings `key`
    digests; `invalid` when the rules do not hold (every record's previews are written then)."""

    key: str
    made: int
    invalid: bool
    dispatches: tuple[Due, ...]


_DECODER = msgspec.json.Decoder(KeptPlan)


def _moment(timestamp: float | None) -> dt.datetime | None:
    return None if timestamp is None else dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def preview_ids(live: Sequence[Source], site: Site, now: dt.datetime | None, code: str | None = None) -> set[str]:
    """The ids of the records (`live`: not drafts, newest first) whose previews a build writes.

    Without `now` (the library's default: every record counts as published)
    nothing is still to come, so only the newest count. Timeline rules that do
    not hold (`check` reports them) leave no way to know what is to come: every
    record's previews are written then, as before this rule. With `code` (the
    build's `code_digest`) the plan is kept in `PLAN_FILE` and read from it
    while it holds; without it, planned at `now` and kept nowhere.
    """
    settings = site.plain  # without pydantic, when the settings were kept
    wanted = {source.id for source in live[: settings["build"]["previews"]]}
    if now is None or not settings["timeline"]:
        return wanted
    if code is None:
        return wanted | _planned_now(live, site, now)
    kept = kept_plan(live, site, now, code)
    if kept.invalid:
        return {source.id for source in live}
    return wanted | to_come(kept.dispatches, _micros(now))


def _dated(live: Sequence[Source]) -> list[Dated]:
    return [
        Dated(
            s.id, s.status, dt.datetime.fromtimestamp(s.published, dt.UTC), _moment(s.starts), _moment(s.ends), s.shown
        )
        for s in live
    ]


def _planned_now(live: Sequence[Source], site: Site, now: dt.datetime) -> set[str]:
    """The records of the dispatches due after `now` or held for review in the plan at `now`: every record
    when the rules do not hold."""
    from publisher.timeline.plan import plan  # here: a site without a timeline never loads it (nor APScheduler)

    try:
        dispatches = plan(_dated(live), site.settings, now)
    except InvalidInput:
        return {source.id for source in live}
    return {id for dispatch in dispatches if dispatch.due > now or dispatch.review for id in dispatch.record_ids}


def to_come(dispatches: Iterable[Due], now: int) -> set[str]:
    """The records of the kept dispatches that `plan(now)` lists (`now` in microseconds) and are due after
    `now` or held for review. The window as `plan` has it: after now - LOOKBACK (exclusive), and a digest up
    to now + HORIZON (inclusive)."""
    start, end = now - LOOKBACK // _MICROSECOND, now + HORIZON // _MICROSECOND
    found: set[str] = set()
    for dispatch in dispatches:
        listed = dispatch.due > start and (not dispatch.digest or dispatch.due <= end)
        if listed and (dispatch.due > now or dispatch.review):
            found.update(dispatch.records)
    return found


def plan_key(live: Sequence[Source], plain: object, code: str) -> str:
    """A digest of all a kept plan depends on besides `now`: the code, the window's sizes, the whole settings,
    and each record's id, status and dates."""
    h = hashlib.sha256(f"{code}|{LOOKBACK}|{HORIZON}|{SPAN}|".encode())
    h.update(msgspec.json.encode(plain))
    h.update(msgspec.json.encode([(s.id, s.status, s.published, s.starts, s.ends) for s in live]))
    return h.hexdigest()


def kept_plan(live: Sequence[Source], site: Site, now: dt.datetime, code: str) -> KeptPlan:
    """The kept plan when it holds for `now` and these records and settings; else a new one, kept."""
    path = site.root / PLAN_FILE
    key = plan_key(live, site.plain, code)
    moment = _micros(now)
    kept = read_plan(path, key)
    if kept is not None and kept.made <= moment <= kept.made + SPAN // _MICROSECOND:
        return kept
    made = make_plan(live, site, now, key)
    save_bytes(path, msgspec.json.encode(made))
    return made


def read_plan(path: Path, key: str) -> KeptPlan | None:
    """The plan kept in `path` for `key`; None when there is none, it is for another key, or it is not of the
    shape (a file cut short, of an older publisher, or written by anyone who can write the folder)."""
    try:
        kept = _DECODER.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):  # a ValidationError is a DecodeError
        return None
    return kept if kept.key == key else None


def make_plan(live: Sequence[Source], site: Site, now: dt.datetime, key: str) -> KeptPlan:
    """The plan at `now` with a horizon longer by SPAN, reduced to what `to_come` reads at any time in
    [now, now + SPAN]: a dispatch due by `now` and not held for review is wanted at none of them."""
    from publisher.timeline.plan import plan  # the planner and pydantic: only when the kept plan does not hold

    try:
        dispatches = plan(_dated(live), site.settings, now, horizon=HORIZON + SPAN)
    except InvalidInput:
        return KeptPlan(key, _micros(now), True, ())
    kept = tuple(
        Due(_micros(d.due), d.review, d.kind == "digest", d.record_ids) for d in dispatches if d.due > now or d.review
    )
    return KeptPlan(key, _micros(now), False, kept)
