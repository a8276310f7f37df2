"""The store's tables, as SQLAlchemy Core objects, and the column types they use.

The schema itself is created and changed only by the Alembic migrations in
``publisher/store/migrations/``; these objects describe it for queries (a test checks
that the two agree). Every time is stored in UTC and comes back aware UTC.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

SUBSCRIBER_STATES = frozenset({"pending", "active", "unsubscribed", "bounced", "complained"})
SUPPRESSED = frozenset({"unsubscribed", "bounced", "complained"})
# The states of a dispatch, defined here once; every other module imports them.
DispatchState = Literal[
    "planned",
    "due",
    "waiting_review",
    "approved",
    "sending",
    "sent",
    "partly_sent",
    "failed",
    "unknown",
    "rate_limited",
    "skipped",
]
DISPATCH_STATES: tuple[DispatchState, ...] = get_args(DispatchState)
# Not started: re-planning may still change or drop it.
UNSTARTED: frozenset[DispatchState] = frozenset({"planned", "due", "waiting_review", "approved"})
# Nothing more to do for it by itself (`resend` can still retry its failures).
FINAL: frozenset[DispatchState] = frozenset({"sent", "failed", "skipped", "unknown"})
# Entering one of these sets `finished_at` (a partly sent dispatch may still have a retry to come).
FINISHED: frozenset[DispatchState] = FINAL | {"partly_sent"}
DELIVERY_STATES = ("pending", "sending", "sent", "failed_temporary", "failed_permanent", "unknown")


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """An aware datetime in, an aware UTC datetime out, on every database.

    PostgreSQL keeps a ``timestamptz``; SQLite keeps naive UTC text, which sorts
    and compares in time order. A naive datetime is refused at once.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"needs an aware datetime (got {value!r})")
        utc = value.astimezone(dt.UTC)
        return utc if dialect.name == "postgresql" else utc.replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class JsonText(sa.types.TypeDecorator[Any]):
    """A JSON value kept as text, the same on SQLite and PostgreSQL (LIKE works on it)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


# SQLite only makes an INTEGER PRIMARY KEY an auto-numbered row id.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("email_key", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("language", sa.Text),
    sa.Column("lists", JsonText, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("consent_at", UtcDateTime),
    sa.Column("consent_source", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("unsubscribed_at", UtcDateTime),
    sa.UniqueConstraint("email_key", name="uq_subscribers_email_key"),
    sa.Index("ix_subscribers_status", "status"),
)

dispatches = sa.Table(
    "dispatches",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("rule_key", sa.Text, nullable=False),
    sa.Column("due", UtcDateTime, nullable=False),
    sa.Column("record_ids", JsonText, nullable=False),
    sa.Column("list_name", sa.Text),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("review_approved_at", UtcDateTime),
    sa.Column("result_id", sa.Text),
    sa.Column("result_url", sa.Text),
    sa.Column("counts", JsonText),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_dispatches_state_due", "state", "due"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
    sa.Column("dispatch_id", sa.Text, sa.ForeignKey("dispatches.id", name="fk_deliveries_dispatch"), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_reply", sa.Text),
    sa.Column("message_id", sa.Text),
    sa.Column("remote_id", sa.Text),
    sa.Column("remote_url", sa.Text),
    sa.Column("worker", sa.Text),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("next_attempt_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime),
    sa.UniqueConstraint("dispatch_id", "target", name="uq_deliveries_dispatch_target"),
    # Claiming walks this index in id order, one state at a time.
    sa.Index("ix_deliveries_dispatch_state", "dispatch_id", "state", "id"),
)

# What came back after a send: kind is "hard", "soft" or "complaint"; status the DSN's code
# (5.1.1) or the report's feedback type (abuse); event_key makes a report seen twice count once.
FEEDBACK_KINDS = ("hard", "soft", "complaint")
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
    sa.Column("dispatch_id", sa.Text, sa.ForeignKey("dispatches.id", name="fk_feedback_dispatch"), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("event_key", sa.Text, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("event_key", name="uq_feedback_event_key"),
    sa.Index("ix_feedback_target_kind", "target", "kind", "occurred_at"),
    sa.Index("ix_feedback_dispatch", "dispatch_id", "kind"),
)

# Addresses forgotten at their owner's request: only a keyed hash (publisher.audience.erasure), never the address.
erased = sa.Table(
    "erased",
    metadata,
    sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
    sa.Column("address_hash", sa.Text, nullable=False),
    sa.Column("erased_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("address_hash", name="uq_erased_address_hash"),
)

scheduler_lock = sa.Table(
    "scheduler_lock",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("heartbeat_at", UtcDateTime, nullable=False),
)
