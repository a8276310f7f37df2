"""The first schema: subscribers, dispatches, the delivery ledger and the scheduler lock.

Revision ID: 0001
Revises:
Create Date: 2026-11-20

Written out in full (not imported from publisher.store.tables) so that later changes to
the tables never change what this revision does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("email_key", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("language", sa.Text),
        sa.Column("lists", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("consent_at", TIME),
        sa.Column("consent_source", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("unsubscribed_at", TIME),
        sa.UniqueConstraint("email_key", name="uq_subscribers_email_key"),
    )
    op.create_index("ix_subscribers_status", "subscribers", ["status"])
    op.create_table(
        "dispatches",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("rule_key", sa.Text, nullable=False),
        sa.Column("due", TIME, nullable=False),
        sa.Column("record_ids", sa.Text, nullable=False),
        sa.Column("list_name", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TIME),
        sa.Column("started_at", TIME),
        sa.Column("finished_at", TIME),
        sa.Column("review_approved_at", TIME),
        sa.Column("result_id", sa.Text),
        sa.Column("result_url", sa.Text),
        sa.Column("counts", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_dispatches_state_due", "dispatches", ["state", "due"])
    op.create_table(
        "deliveries",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "dispatch_id",
            sa.Text,
            sa.ForeignKey("dispatches.id", name="fk_deliveries_dispatch"),
            nullable=False,
        ),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_reply", sa.Text),
        sa.Column("message_id", sa.Text),
        sa.Column("remote_id", sa.Text),
        sa.Column("remote_url", sa.Text),
        sa.Column("worker", sa.Text),
        sa.Column("lease_until", TIME),
        sa.Column("next_attempt_at", TIME),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("sent_at", TIME),
        sa.UniqueConstraint("dispatch_id", "target", name="uq_deliveries_dispatch_target"),
    )
    op.create_index("ix_deliveries_dispatch_state", "deliveries", ["dispatch_id", "state", "id"])
    op.create_table(
        "scheduler_lock",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("acquired_at", TIME, nullable=False),
        sa.Column("heartbeat_at", TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scheduler_lock")
    op.drop_index("ix_deliveries_dispatch_state", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_dispatches_state_due", table_name="dispatches")
    op.drop_table("dispatches")
    op.drop_index("ix_subscribers_status", table_name="subscribers")
    op.drop_table("subscribers")
