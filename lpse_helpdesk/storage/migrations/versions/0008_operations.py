"""operations: outbox leases, what each instance reports, tickets masked under retention

Several instances share one PostgreSQL: an outbox row is claimed by one of them for a lease
(`claimed_by`, `lease_until`); each instance reports its pieces' state (`instance_status`)
for `lpse-helpdesk status`; `tickets.masked_at` marks a ticket whose personal data was
masked (retention or an erase request).

Revision ID: 0008_operations
Revises: 0009_replies
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lpse_helpdesk.storage.types import UTCDateTime

revision = "0008_operations"
down_revision = "0009_replies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("masked_at", UTCDateTime(), nullable=True))
    op.create_table(
        "instance_status",
        sa.Column("instance", sa.String(length=128), nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("instance", "component", name=op.f("pk_instance_status")),
    )


def downgrade() -> None:
    op.drop_table("instance_status")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("masked_at")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("claimed_by")
