"""mail intake on a real mailbox: dedup key of incoming mail, first-sync cut-off

``messages.dedup_key`` (sha256 of Message-ID and content, unique) lets the database itself
refuse a duplicate, also between two processes; ``mailbox_state.skip_before`` remembers, while
a first sync runs, before which arrival time mail is left for ``lpse-helpdesk import``.

Revision ID: 0006_intake_field
Revises: 0007_telegram_field
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_intake_field"
down_revision = "0007_telegram_field"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("dedup_key", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_messages_dedup_key", ["dedup_key"])
    with op.batch_alter_table("mailbox_state") as batch:
        batch.add_column(sa.Column("skip_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailbox_state") as batch:
        batch.drop_column("skip_before")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_messages_dedup_key", type_="unique")
        batch.drop_column("dedup_key")
