"""the UIDs of the copies of a stored mail that the intake handled

A copy (the same Message-ID and content, e.g. sent to two addresses of the helpdesk, or the
whole folder again after a UIDVALIDITY change) gets no row in messages. A start finishes the
marking of what the intake handled from the stored UIDs; without this table, such a copy
stayed in the folder for good after a crash before its \\Seen or a refused move.

Revision ID: 0012_handled_copies
Revises: 0011_message_imported
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lpse_helpdesk.storage.types import UTCDateTime

revision = "0012_handled_copies"
down_revision = "0011_message_imported"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handled_copies",
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("uid", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("folder", "uidvalidity", "uid", name=op.f("pk_handled_copies")),
    )


def downgrade() -> None:
    op.drop_table("handled_copies")
