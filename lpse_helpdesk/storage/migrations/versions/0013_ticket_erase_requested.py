"""when `lpse-helpdesk data erase` asked for a ticket to be masked

A ticket whose mail or Telegram message is still in the outbox is masked except for that
item, which must still go out; the sent copy is then stored as it was sent. The request is
kept so that the retention job finishes the masking once the outbox is empty, instead of
RETENTION_DAYS later.

Revision ID: 0013_ticket_erase_requested
Revises: 0012_handled_copies
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lpse_helpdesk.storage.types import UTCDateTime

revision = "0013_ticket_erase_requested"
down_revision = "0012_handled_copies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("erase_requested_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("erase_requested_at")
