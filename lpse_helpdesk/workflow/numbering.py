"""Human-friendly ticket numbers: PREFIX-YEAR-NNNNN, unique, gap-free per year."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import TicketCounter


def next_number(session: Session, prefix: str, year: int) -> str:
    """Take the next number of `year` atomically (one upsert, safe under concurrency)."""
    dialect = session.get_bind().dialect.name
    table = TicketCounter.__table__
    assert isinstance(table, Table)
    if dialect == "postgresql":
        stmt: postgresql.Insert | sqlite.Insert = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")
    stmt = stmt.values(year=year, last=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.year], set_={"last": table.c.last + 1}
    ).returning(table.c.last)
    # On the session's connection: the counter needs nothing pending flushed first.
    sequence = session.connection().execute(upsert).scalar_one()
    return format_number(prefix, year, sequence)


def format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:05d}"
