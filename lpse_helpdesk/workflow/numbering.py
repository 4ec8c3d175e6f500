"""Human-friendly ticket numbers: PREFIX-YEAR-NNNNN, unique, gap-free per year."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

#: One upsert that takes the year's next number, in the SQL both databases speak. Written
#: out (not built with the expression language) because a backlog opens hundreds of tickets
#: a second and building, caching and compiling the statement cost more than running it.
_TAKE = (
    "INSERT INTO ticket_counters (year, last) VALUES ({year}, 1) "
    "ON CONFLICT (year) DO UPDATE SET last = ticket_counters.last + 1 RETURNING last"
)
_SET = "UPDATE ticket_counters SET last = {last} WHERE year = {year}"
_PARAMETER = {"sqlite": "?", "postgresql": "%s"}
#: Session.info key of the numbers a batch counts itself (see `count_numbers_here`).
_COUNTED = "ticket_numbers_counted"


def next_number(session: Session, prefix: str, year: int) -> str:
    """Take the next number of `year` atomically (one upsert, safe under concurrency)."""
    counted: dict[int, int] | None = session.info.get(_COUNTED)
    if counted is not None and year in counted:
        counted[year] += 1
        return format_number(prefix, year, counted[year])
    connection = session.connection()  # the counter needs nothing pending flushed first
    sql = _TAKE.format(year=_parameter(session))
    sequence = int(connection.exec_driver_sql(sql, (year,)).scalar_one())
    if counted is not None:
        counted[year] = sequence
    return format_number(prefix, year, sequence)


def count_numbers_here(session: Session) -> None:
    """For the rest of this transaction, a year's numbers after its first are counted here
    and the counter is written once, at the commit.

    Safe because the first upsert holds the year's counter for the rest of the transaction
    (PostgreSQL's row lock, SQLite's write lock): nobody else takes a number meanwhile. Only
    for a transaction without savepoints: a savepoint rolled back would not give its
    numbers back, and the numbers would no longer be gap-free.
    """
    session.info[_COUNTED] = {}
    for name, listener in (
        ("before_commit", _write_counted),
        ("after_commit", _forget_counted),
        ("after_rollback", _forget_counted),
    ):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)


def _write_counted(session: Session) -> None:
    counted: dict[int, int] | None = session.info.get(_COUNTED)
    if not counted:
        return
    marker = _parameter(session)
    connection = session.connection()
    for year, last in counted.items():
        connection.exec_driver_sql(_SET.format(last=marker, year=marker), (last, year))


def _forget_counted(session: Session) -> None:
    session.info.pop(_COUNTED, None)


def _parameter(session: Session) -> str:
    dialect = session.get_bind().dialect.name
    if dialect not in _PARAMETER:  # pragma: no cover - only SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database {dialect}")
    return _PARAMETER[dialect]


def format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:05d}"
