"""outbox indexes for the hourly cap and for threading replies

Without them every new ticket scanned the whole outbox (which only grows): 4-5 ms a mail
at 10,000 mails, and the intake's cost per mail grew with the mailbox's history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_recipient", "outbox", ["recipient", "created_at"], unique=False)
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_message_id", table_name="outbox")
    op.drop_index("ix_outbox_recipient", table_name="outbox")
