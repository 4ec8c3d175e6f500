"""Rows a batch only inserts (audit events, clocks, outbox items...), written in bulk.

The ORM's flush spends far more per row than the database does: change tracking, cascades,
dependency sorting, one parameter set built at a time. A batch of mails adds hundreds of
rows that nothing in the batch changes after they are written. `write_in_bulk` takes the new
rows of the given classes out of each flush and writes them right after it with one
executemany per table (their ids were taken ahead, storage/ids.py, so nothing needs
RETURNING). What the flush writes itself (tickets, messages) goes first, so the rows that
point at them find them.

Should the batch change such a row after it was written (the ORM would have written that
change, here it would be lost), the commit refuses (`ChangedAfterBulkWrite`) and the caller
stores the batch again the ordinary way: nothing is lost, only time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from sqlalchemy import Table, event, insert, inspect
from sqlalchemy.orm import Mapper, Session

_KEY = "storage_bulk"


class ChangedAfterBulkWrite(RuntimeError):
    """A row written in bulk was changed afterwards in the same transaction."""


class _Bulk:
    def __init__(self, classes: Collection[type[Any]]) -> None:
        self.classes = frozenset(classes)
        self.pending: list[tuple[Any, Table, dict[str, Any], dict[str, Any]]] = []
        self.written: list[tuple[Any, dict[str, Any]]] = []
        #: The classes of the rows the current flush takes out (see `taken_out`).
        self.flushing: set[type[Any]] = set()


def write_in_bulk(session: Session, classes: Collection[type[Any]]) -> None:
    """For the rest of this transaction, new rows of `classes` are written in bulk."""
    session.info[_KEY] = _Bulk(classes)
    for name, listener in (
        ("before_flush", _take_out),
        ("after_flush", _write),
        ("before_commit", _check),
    ):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)


def _take_out(session: Session, _context: object, _instances: object) -> None:
    bulk: _Bulk | None = session.info.get(_KEY)
    if bulk is None:
        return
    bulk.flushing = set()
    for row in list(session.new):
        if type(row) not in bulk.classes:
            continue
        bulk.flushing.add(type(row))
        mapper: Mapper[Any] = inspect(type(row))
        table = mapper.local_table
        assert isinstance(table, Table)
        values: dict[str, Any] = {}
        attributes: dict[str, Any] = {}
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if prop.key in row.__dict__:
                value = row.__dict__[prop.key]
            elif column.default is not None and column.default.is_scalar:
                value = column.default.arg
            elif column.default is not None and column.default.is_callable:
                value = column.default.arg(None)
            else:
                value = None
            values[column.key] = value
            attributes[prop.key] = value
        session.expunge(row)
        bulk.pending.append((row, table, values, attributes))


def taken_out(session: Session) -> set[type[Any]]:
    """During a flush (e.g. in an ``after_flush`` listener): the classes of the new rows
    this flush writes in bulk; they are no longer in ``session.new``."""
    bulk: _Bulk | None = session.info.get(_KEY)
    return set(bulk.flushing) if bulk is not None else set()


def _write(session: Session, _context: object) -> None:
    bulk: _Bulk | None = session.info.get(_KEY)
    if bulk is None or not bulk.pending:
        return
    by_table: dict[Table, list[dict[str, Any]]] = defaultdict(list)
    for row, table, values, attributes in bulk.pending:
        by_table[table].append(values)
        bulk.written.append((row, attributes))
    bulk.pending.clear()
    connection = session.connection()
    for table, rows in by_table.items():
        connection.execute(insert(table), rows)


def _check(session: Session) -> None:
    bulk: _Bulk | None = session.info.get(_KEY)
    if bulk is None:
        return
    for row, attributes in bulk.written:
        for key, value in attributes.items():
            if row.__dict__.get(key, value) is not value and row.__dict__.get(key) != value:
                raise ChangedAfterBulkWrite(
                    f"{type(row).__name__}.{key} changed after it was written"
                )
