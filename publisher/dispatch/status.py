"""What `publisher plan` shows: every dispatch with its state, counts and why.

Reading the plan changes nothing: the states shown for dispatches that have
not started are what `run` would do at `now` (due, or skipped and why); the
others come from the store, with the ledger's counts. Dispatches that have
started and since left the plan (their record changed or went) are listed too:
history stays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from publisher.audience import recipients
from publisher.dispatch.context import Outcome, Runner
from publisher.dispatch.release import lateness
from publisher.dispatch.runner import dispatch_of, skip_reason
from publisher.site.config import CONFIG_FILE, Site
from publisher.site.planned import Planned
from publisher.site.settings import Settings
from publisher.store import feedback
from publisher.store.dispatches import DispatchRow, PlannedDispatch, Store
from publisher.store.tables import UNSTARTED
from publisher.timeline.plan import LOOKBACK, Dispatch, check_rules, plan

if TYPE_CHECKING:
    from publisher.site.dated import Dated


@dataclass(frozen=True)
class PlanLine:
    id: str
    due: dt.datetime
    due_local: dt.datetime
    channel: str
    records: tuple[str, ...]
    target: str
    state: str
    note: str
    recipients: int | None
    counts: dict[str, int]
    outbox: str | None
    url: str | None
    release: str | None = None  # the command that sends it anyway, for one skipped as too late
    feedback: str | None = None  # bounce and complaint rates of a sent email dispatch (`audience.bounces`)

    def as_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELDS}  # not asdict: it deep-copies, 6,000 lines are slow
        data["counts"] = dict(self.counts)
        data["due"] = self.due.isoformat()
        data["due_local"] = self.due_local.isoformat()
        data["records"] = list(self.records)
        if self.feedback is None:  # only a dispatch something came back for has the key
            del data["feedback"]
        return data


_FIELDS = tuple(field.name for field in fields(PlanLine))


def outbox_note(site: Site, channel: str) -> str | None:
    """Why a channel only writes to the outbox, or None when it really sends."""
    if channel == "email":
        url = site.email_url
        return None if url.startswith("smtp") else f"outbox only: mail goes to {url} (no SMTP URL set)"
    if channel == "feeds":
        return None
    from publisher.channels.social import credentials  # not dispatch.social's is_outbox: it imports all sending

    if credentials(channel, site.env) is None:
        return f"outbox only: outbox/posts/{channel}/ (PUBLISHER_{channel.upper()}_* not set)"
    return None


def _state(settings: Settings, d: Dispatch, row: DispatchRow | None, now: dt.datetime) -> tuple[str, str]:
    """The state to show and why: the store's once started, else what `run` would do at `now`."""
    if row is not None and (row.started_at is not None or row.state not in UNSTARTED):
        return row.state, row.note or ""
    state = row.state if row is not None else ("waiting_review" if d.review else "planned")
    if state == "waiting_review":
        return state, f"held for review: publisher approve {d.id}"
    if d.due <= now:
        reason = skip_reason(settings, d, now, row.review_approved_at if row is not None else None)
        return ("skipped", reason) if reason else ("due", "")
    if not d.record_ids:
        return state, f"nothing to send yet: {d.note}"
    return state, ""


def plan_lines(site: Site, store: Store, records: Sequence[Planned], now: dt.datetime) -> list[PlanLine]:
    """The plan of `records` (`timeline_records`) at `now`, with what the store knows of each dispatch.
    Writes nothing."""
    dispatches = plan(records, site.settings, now)
    rows = {row.id: row for row in store.list_dispatches(due_from=now - LOOKBACK)}
    planned = {d.id for d in dispatches}
    history = [dispatch_of(site, row) for row in rows.values() if row.started_at and row.id not in planned]
    notes = {channel: outbox_note(site, channel) for channel in {d.channel for d in (*dispatches, *history)}}
    audience: dict[str, int] = {}
    lines = []
    for d in sorted((*dispatches, *history), key=lambda one: (one.due, one.id)):
        row = rows.get(d.id)
        state, note = _state(site.settings, d, row, now)
        late = state == "skipped" and d.id in planned and lateness(site.settings, d, row, now) is not None
        counts = store.counts(d.id) if row is not None and row.started_at is not None else {}
        count = None
        if d.channel == "email":
            list_name = d.list or site.settings.newsletter.lists[0]
            if sum(counts.values()):
                count = sum(counts.values())
            else:
                if list_name not in audience:  # one count per list, not one query per dispatch
                    audience[list_name] = recipients.audience_size(store, list_name)
                count = audience[list_name]
        lines.append(
            PlanLine(
                id=d.id,
                due=d.due,
                due_local=d.due.astimezone(site.settings.site.zone),
                channel=d.channel,
                records=d.record_ids,
                target=d.list or ("site feeds" if d.channel == "feeds" else d.channel),
                state=state,
                note=note,
                recipients=count,
                counts=counts,
                outbox=notes.get(d.channel),
                url=row.result_url if row else None,
                release=f"publisher release {d.id}" if late else None,
            )
        )
    came_back = feedback.counts(store, [line.id for line in lines if line.channel == "email" and line.counts])
    if not came_back:
        return lines
    from publisher.audience import bounces  # only when something came back: it reads mailboxes, a slow import

    return [replace(line, feedback=bounces.rates_note(came_back[line.id], line.counts.get("sent", 0)))
            if line.id in came_back else line for line in lines]  # fmt: skip


def render_lines(lines: Sequence[PlanLine]) -> str:
    """The human table of `publisher plan`."""
    if not lines:
        return "nothing planned"
    out = []
    for line in lines:
        when = f"{line.due_local:%Y-%m-%d %H:%M %Z} ({line.due:%H:%M} UTC)"
        what = ", ".join(line.records) or "-"
        extra = []
        if line.recipients is not None:
            extra.append(f"{line.recipients} recipient{'s' if line.recipients != 1 else ''}")
        shown = {state: number for state, number in line.counts.items() if number}
        if shown:
            extra.append(" ".join(f"{state}={number}" for state, number in shown.items()))
        if line.note:
            extra.append(line.note)
        if line.url and line.url not in line.note:
            extra.append(line.url)
        if line.outbox:
            extra.append(line.outbox)
        if line.release:
            extra.append(f"release it with: {line.release}")
        if line.feedback:
            extra.append(line.feedback)
        state = line.state.replace("_", " ")
        out.append(f"{line.id}  {when}  {line.channel:<8} {line.target:<10} {state:<14} {what}")
        out.extend(f"    {e}" for e in extra)
    return "\n".join(out)


def timeline_records(site: Site) -> list[Dated]:
    """The site's records as the timeline plans them (`publisher.site.dated`: at 10,000 records, no record
    validated again); a bad timeline rule is refused here with its own line in publisher.toml."""
    from publisher.site.dated import load_dated

    check_rules(site.settings, CONFIG_FILE, (site.root / CONFIG_FILE).read_text(encoding="utf-8-sig"))
    return load_dated(site.events, site.root)


def open_runner(site: Site, store: Store, now: dt.datetime) -> Runner:
    """A runner over the site's records at `now`; a bad timeline rule is refused here with its own line
    in publisher.toml (the plan itself, given no file text, could only name line 1)."""
    from publisher.site.records import load_records

    check_rules(site.settings, CONFIG_FILE, (site.root / CONFIG_FILE).read_text(encoding="utf-8-sig"))
    return Runner(site, store, load_records(site.events, site.root, keep=True), lambda: now)


def outcome_line(outcome: Outcome) -> str:
    """One dispatch run as `publisher run` prints it: id, channel, state, the ledger's counts, the note."""
    counts = " ".join(f"{state}={number}" for state, number in outcome.counts.items() if number)
    return f"{outcome.dispatch_id}  {outcome.channel:<8} {outcome.state:<12} {counts}  {outcome.note}".rstrip()


def mirrored_row(site: Site, store: Store, dispatch_id: str, now: dt.datetime) -> DispatchRow | None:
    """The store's row of `dispatch_id`; a dispatch only the plan knows yet is mirrored into the store first."""
    row = store.get_dispatch(dispatch_id)
    if row is not None:
        return row
    runner = open_runner(site, store, now)
    found = next((d for d in plan(runner.records, site.settings, now) if d.id == dispatch_id), None)
    return None if found is None else store.upsert_dispatch(PlannedDispatch.of(found), now)


class Approval(NamedTuple):
    """What approving did: `row` is None when no dispatch has that id (in the store or the plan);
    `approved` is False when it was not waiting for review (`row.state` says what it is)."""

    row: DispatchRow | None
    approved: bool


def approve(site: Site, store: Store, dispatch_id: str, now: dt.datetime) -> Approval:
    """`publisher approve` and the team page's button: a dispatch waiting for review goes out at its due time.

    One place for both, so they cannot drift apart. A dispatch only the plan
    knows yet is mirrored into the store first; the move is guarded by the
    state, so two approvals at once approve it once.
    """
    row = mirrored_row(site, store, dispatch_id, now)
    approved = (
        row is not None
        and row.state == "waiting_review"
        and store.set_dispatch_state(
            dispatch_id, "approved", now, note="approved", expect=("waiting_review",), review_approved_at=now
        )
    )
    return Approval(row, approved)
