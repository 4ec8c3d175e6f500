"""Alembic environment: runs on the connection handed over by lpse_helpdesk.storage.db."""

from __future__ import annotations

from alembic import context

from lpse_helpdesk.storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` run by hand against a URL
    raise SystemExit("run migrations with `lpse-helpdesk db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
