"""mail brought in by `lpse-helpdesk import` is marked as such

The import leaves history mail on the server as it is. Without a mark, the next start took
such a mail for one the live intake had committed but not yet marked, and flagged it \\Seen
(and moved it into IMAP_PROCESSED_FOLDER). Mails imported before this revision are known by
the note the import wrote on them. The start's look-up of the stored UIDs reads an index
(the rows hold the raw mail, and an inbox may hold years of it).

Revision ID: 0011_message_imported
Revises: 0010_group
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_message_imported"
down_revision = "0010_group"
branch_labels = None
depends_on = None

IMPORT_NOTE = "imported from the mailbox's history"  # bridge/intake.py writes it


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_messages_uid", ["mailbox", "uidvalidity", "imported", "uid"])
    messages = sa.table("messages", sa.column("imported", sa.Boolean), sa.column("note"))
    op.execute(
        messages.update().where(messages.c.note.like(f"%{IMPORT_NOTE}%")).values(imported=sa.true())
    )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_uid")
        batch.drop_column("imported")
