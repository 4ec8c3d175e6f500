"""telegram_state: the group's migrated chat id and the bot's membership, kept across restarts

Revision ID: 0007_telegram_field
Revises: 0008_operations
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_telegram_field"
down_revision = "0008_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telegram_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_telegram_state")),
    )


def downgrade() -> None:
    op.drop_table("telegram_state")
