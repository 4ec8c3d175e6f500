"""Human-friendly ticket numbers: PREFIX-YEAR-NNNNN, unique, gap-free per year."""

from __future__ import annotations

from sqlalchemy.orm import Session

#: One upsert that takes the year's next number, in the SQL both databases speak. Written
#: out (not built with the expression language) because a backlog opens hundreds of tickets
#: a second and building, caching and compiling the statement cost more than running it.
_TAKE = (
    "INSERT INTO ticket_counters (year, last) VALUES ({year}, 1) "
    "ON CONFLICT (year) DO UPDATE SET last = ticket_counters.last + 1 RETURNING last"
)
_PARAMETER = {"sqlite": "?", "postgresql": "%s"}


def next_number(session: Session, prefix: str, year: int) -> str:
    """Take the next number of `year` atomically (one upsert, safe under concurrency)."""
    connection = session.connection()  # the counter needs nothing pending flushed first
    dialect = connection.dialect.name
    if dialect not in _PARAMETER:  # pragma: no cover - only SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database {dialect}")
    sql = _TAKE.format(year=_PARAMETER[dialect])
    sequence = int(connection.exec_driver_sql(sql, (year,)).scalar_one())
    return format_number(prefix, year, sequence)


def format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:05d}"
