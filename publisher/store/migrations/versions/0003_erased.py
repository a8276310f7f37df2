"""Erased: the keyed hashes of the addresses forgotten at their owner's request (GDPR art. 17).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10

Written out in full, as 0001 is, so later changes to publisher.store.tables never change it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "erased",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("address_hash", sa.Text, nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("address_hash", name="uq_erased_address_hash"),
    )


def downgrade() -> None:
    op.drop_table("erased")
