"""the helpdesk group: ticket handler, forum topics per ticket, the pinned queue board

Revision ID: 0010_group
Revises: 0006_intake_field
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_group"
down_revision = "0006_intake_field"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("handler_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("handler_name", sa.String(255), nullable=True))
    op.create_table(
        "telegram_topics",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_telegram_topics_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_telegram_topics")),
    )
    op.create_table(
        "telegram_boards",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("rendered_hash", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_telegram_boards")),
    )


def downgrade() -> None:
    op.drop_table("telegram_boards")
    op.drop_table("telegram_topics")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("handler_name")
        batch.drop_column("handler_id")
