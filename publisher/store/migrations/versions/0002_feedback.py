"""Feedback: what came back after a send (a bounce, a complaint), one row per recipient and report.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

Written out in full, as 0001 is, so later changes to publisher.store.tables never change it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("dispatch_id", sa.Text, sa.ForeignKey("dispatches.id", name="fk_feedback_dispatch"), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_key", sa.Text, nullable=False),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("event_key", name="uq_feedback_event_key"),
    )
    op.create_index("ix_feedback_target_kind", "feedback", ["target", "kind", "occurred_at"])
    op.create_index("ix_feedback_dispatch", "feedback", ["dispatch_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_feedback_dispatch", table_name="feedback")
    op.drop_index("ix_feedback_target_kind", table_name="feedback")
    op.drop_table("feedback")
