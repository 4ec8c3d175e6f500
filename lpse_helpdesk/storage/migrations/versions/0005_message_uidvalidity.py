"""the UIDVALIDITY a stored mail's UID belongs to

After a mailbox is renumbered, old UIDs collide with new ones; only a UID together with its
UIDVALIDITY identifies a mail on the server.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("uidvalidity", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("uidvalidity")
