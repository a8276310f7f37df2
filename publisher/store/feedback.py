"""What came back after a send: bounces and complaints, kept per dispatch and recipient.

A report is matched to the ledger row it answers (`sent_to`: the message's
Message-ID, which is ours and stable per dispatch and recipient, or a VERP
token naming both) before anything is kept; a report that matches no row is
never stored, so a forged or stray report changes nothing. Each event is kept
once (`event_key`: a report read twice, or a webhook delivered twice, counts
once), and the counts per dispatch give `plan` its bounce and complaint rates.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from publisher.store.database import Database
from publisher.store.tables import deliveries, feedback

F = feedback.c
D = deliveries.c


@dataclass(frozen=True, slots=True)
class Event:
    """One recipient's bounce or complaint, matched to the dispatch that mailed them."""

    dispatch_id: str
    target: str
    kind: str  # "hard", "soft" or "complaint"
    status: str  # a DSN status code (5.1.1) or a report's feedback type (abuse)
    source: str  # "mailbox", "ses", "mailgun"
    event_key: str
    occurred_at: dt.datetime


def sent_to(db: Database, message_id: str) -> tuple[str, str] | None:
    """The (dispatch, target) a message with this Message-ID went to, when the ledger has it as sent."""
    local = message_id.strip().removeprefix("<").partition("@")[0]
    dispatch_id, dot, _digest = local.rpartition(".")
    if not dot:
        return None
    query = sa.select(D.dispatch_id, D.target).where(
        D.dispatch_id == dispatch_id, D.message_id == message_id.strip(), D.state == "sent"
    )
    with db.read() as connection:
        row = connection.execute(query).first()
    return None if row is None else (row.dispatch_id, row.target)


def keep(db: Database, event: Event, now: dt.datetime) -> bool:
    """Store `event`; False when it was already stored (the same report seen again)."""
    values = {
        "dispatch_id": event.dispatch_id,
        "target": event.target,
        "kind": event.kind,
        "status": event.status,
        "source": event.source,
        "event_key": event.event_key,
        "occurred_at": event.occurred_at,
        "created_at": now,
    }
    with db.write() as connection:
        query = db.insert(feedback).values(values).on_conflict_do_nothing(index_elements=["event_key"])
        return bool(connection.execute(query).rowcount)


def soft_count(db: Database, target: str, since: dt.datetime) -> int:
    """How many soft bounces `target` has had since `since` (any dispatch)."""
    query = sa.select(sa.func.count()).where(F.target == target, F.kind == "soft", F.occurred_at >= since)
    with db.read() as connection:
        return int(connection.execute(query).scalar_one())


def counts(db: Database, dispatch_ids: list[str]) -> dict[str, Counter[str]]:
    """Per dispatch, how many recipients bounced (hard, soft) or complained."""
    found: dict[str, Counter[str]] = {}
    if not dispatch_ids:
        return found
    query = (
        sa.select(F.dispatch_id, F.kind, sa.func.count(sa.distinct(F.target)))
        .where(F.dispatch_id.in_(dispatch_ids))
        .group_by(F.dispatch_id, F.kind)
    )
    with db.read() as connection:
        for dispatch_id, kind, number in connection.execute(query):
            found.setdefault(dispatch_id, Counter())[kind] = int(number)
    return found


def delivery(db: Database, delivery_id: int) -> tuple[str, str] | None:
    """The (dispatch, target) of ledger row `delivery_id`, when it was sent (a VERP token names the row)."""
    query = sa.select(D.dispatch_id, D.target).where(D.id == delivery_id, D.state == "sent")
    with db.read() as connection:
        row = connection.execute(query).first()
    return None if row is None else (row.dispatch_id, row.target)
