"""What `publisher plan` shows: every dispatch with its state, counts and why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from publisher import subscribers
from publisher.config import Site
from publisher.dispatch import Runner, current_plan, skip_reason
from publisher.store import Store


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

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["due"] = self.due.isoformat()
        data["due_local"] = self.due_local.isoformat()
        data["records"] = list(self.records)
        return data


def outbox_note(site: Site, channel: str) -> str | None:
    """Why a channel only writes to the outbox, or None when it really sends."""
    if channel == "email":
        url = site.email_url
        return None if url.startswith("smtp") else f"outbox only: mail goes to {url} (no SMTP URL set)"
    if channel == "feeds":
        return None
    from publisher.dispatch_social import is_outbox

    if is_outbox(site, channel):
        return f"outbox only: outbox/posts/{channel}/ (PUBLISHER_{channel.upper()}_* not set)"
    return None


def plan_lines(runner: Runner, now: dt.datetime) -> list[PlanLine]:
    """The plan at `now`, with what the store knows of each dispatch."""
    site, store = runner.site, runner.store
    zone = site.settings.site.zone
    lines = []
    audience: dict[str, int] = {}
    notes = {c: outbox_note(site, c) for c in ("email", "feeds", "x", "mastodon", "bluesky")}
    for d in current_plan(runner, now):
        row = store.get_dispatch(d.id)
        state = row.state if row else "planned"
        note = (row.note if row else None) or d.note or ""
        if state in ("planned", "approved") and d.due <= now:
            reason = skip_reason(runner, d, now)
            state, note = ("skipped", reason) if reason else ("due", note)
        elif state == "planned" and not d.record_ids:
            state, note = "skipped", d.note
        recipients = None
        if d.channel == "email" and d.list:
            if d.list not in audience:
                audience[d.list] = subscribers.recipient_count(store, d.list)
            counts = store.counts(d.id)
            recipients = sum(counts.values()) if counts else audience[d.list]
        target = d.list or ("site feeds" if d.channel == "feeds" else d.channel)
        lines.append(
            PlanLine(
                id=d.id,
                due=d.due,
                due_local=d.due.astimezone(zone),
                channel=d.channel,
                records=d.record_ids,
                target=target,
                state=state,
                note=note,
                recipients=recipients,
                counts=store.counts(d.id),
                outbox=notes.get(d.channel),
                url=row.result_url if row else None,
            )
        )
    return lines


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
            extra.append(f"{line.recipients} recipients")
        if line.counts:
            extra.append(" ".join(f"{k}={v}" for k, v in sorted(line.counts.items())))
        if line.note:
            extra.append(line.note)
        if line.url:
            extra.append(line.url)
        if line.outbox:
            extra.append(line.outbox)
        out.append(f"{line.id}  {when}  {line.channel:<8} {line.target:<10} {line.state:<14} {what}")
        out.extend(f"    {e}" for e in extra)
    return "\n".join(out)


def open_runner(site: Site, store: Store, now: dt.datetime) -> Runner:
    from publisher.records import load_records

    return Runner(site, store, load_records(site.events, site.root), lambda: now)
