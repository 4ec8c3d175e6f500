"""Primary keys taken ahead, so that a batch need not flush each new row to learn its id.

An id is normally known only once the row is INSERTed: code that needs a new ticket's id
(for its clock, its audit event, its card) flushes the session, one round trip and one
unit of work per row. A batch that writes hundreds of rows in one transaction takes the
ids ahead instead, and its rows are written together at the end:

* SQLite: the batch transaction began with BEGIN IMMEDIATE, so it holds the write lock;
  ``max(id) + 1`` onwards is free until it commits.
* PostgreSQL: the column's own sequence, a block of values per round trip; other
  instances draw from the same sequence, so ids never collide (gaps are harmless).

Outside a batch, `assign_id` flushes as before.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event, text
from sqlalchemy.orm import Session

#: Session.info key of the batch's IdBlock.
_IDS = "storage_ids"
#: PostgreSQL: sequence values fetched per round trip.
BLOCK = 64


class IdBlock:
    """Hands out ids of some tables for one transaction (see the module's doc)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._sequences = session.get_bind().dialect.name == "postgresql"
        self._next: dict[str, int] = {}
        self._left: dict[str, list[int]] = {}

    def take(self, table: Table) -> int:
        if self._sequences:
            return self._from_sequence(table)
        name = table.name
        if name not in self._next:
            # Connection-level: no autoflush, and the pending rows all have their ids here.
            # Written out: a batch asks this of half a dozen tables, compiling costs more.
            top = (
                self.session.connection()
                .exec_driver_sql(f"SELECT max(id) FROM {table.name}")  # noqa: S608 - our names
                .scalar()
            )
            self._next[name] = int(top or 0) + 1
        value = self._next[name]
        self._next[name] = value + 1
        return value

    def _from_sequence(self, table: Table) -> int:
        left = self._left.setdefault(table.name, [])
        if not left:
            rows = self.session.connection().execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"table": table.name, "n": BLOCK},
            )
            left.extend(sorted(int(row[0]) for row in rows))
            left.reverse()  # pop() from the end gives them in order
        return left.pop()


def take_ids_ahead(session: Session) -> IdBlock:
    """From now on in this transaction, `assign_id` takes ids ahead instead of flushing,
    and every new row with an integer ``id`` gets one before it is flushed: the flush then
    writes each table's rows with one executemany instead of one INSERT ... RETURNING.
    When the transaction ends the block goes (a later transaction would find other rows)."""
    block = IdBlock(session)
    session.info[_IDS] = block
    for name, listener in (
        ("before_flush", _ids_before_flush),
        ("after_commit", _stop_taking_ids),
        ("after_rollback", _stop_taking_ids),
    ):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)
    return block


def _ids_before_flush(session: Session, _context: object, _instances: object) -> None:
    block: IdBlock | None = session.info.get(_IDS)
    if block is None:
        return
    for row in session.new:
        table = getattr(row, "__table__", None)
        if (
            isinstance(table, Table)
            and getattr(row, "id", 0) is None
            and "id" in table.c
            and table.c.id.primary_key
            and table.c.id.autoincrement in (True, "auto")
        ):
            row.id = block.take(table)


def _stop_taking_ids(session: Session) -> None:
    session.info.pop(_IDS, None)


def assign_id(session: Session, row: Any) -> None:
    """Give `row` (added to `session`, with an integer ``id`` key) its id now."""
    if row.id is not None:
        return
    block: IdBlock | None = session.info.get(_IDS)
    if block is None:
        session.flush()
        return
    table = row.__table__
    assert isinstance(table, Table)
    row.id = block.take(table)
