"""Rows a batch only inserts (audit events, clocks, outbox items...), written in bulk.

The ORM's flush spends far more per row than the database does: change tracking, cascades,
dependency sorting, one parameter set built at a time. A batch of mails adds hundreds of
rows that nothing in the batch changes after they are written (a later mail of the batch
that changes its ticket loads the ticket again). `write_in_bulk` takes the new rows of the
given classes out of each flush and writes them just before it, one executemany per table,
in the order of the foreign keys (their ids were taken ahead, storage/ids.py, so nothing
needs RETURNING). Rows of other classes are flushed as usual, after them.

Should the batch change such a row after it was written (the ORM would have written that
change, here it would be lost), the commit refuses (`ChangedAfterBulkWrite`) and the caller
stores the batch again the ordinary way: nothing is lost, only time.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection
from typing import Any

from sqlalchemy import MetaData, Table, event, insert, inspect
from sqlalchemy.orm import Mapper, Session

_KEY = "storage_bulk"


class ChangedAfterBulkWrite(RuntimeError):
    """A row written in bulk was changed afterwards in the same transaction."""


class _Bulk:
    def __init__(self, classes: Collection[type[Any]]) -> None:
        self.classes = frozenset(classes)
        self.written: list[tuple[Any, dict[str, Any]]] = []
        #: The classes of the rows written so far in this transaction (see `written_classes`).
        self.written_classes: set[type[Any]] = set()


def write_in_bulk(session: Session, classes: Collection[type[Any]]) -> None:
    """For the rest of this transaction, new rows of `classes` are written in bulk."""
    session.info[_KEY] = _Bulk(classes)
    for name, listener in (("before_flush", _write), ("before_commit", _check)):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)


def written_classes(session: Session) -> set[type[Any]]:
    """The classes of the rows this transaction wrote in bulk so far. Such rows never reach
    the flush itself (nor ``session.new`` in an ``after_flush`` listener); a flush left with
    nothing else to do does not even call ``after_flush``."""
    bulk: _Bulk | None = session.info.get(_KEY)
    return set(bulk.written_classes) if bulk is not None else set()


def _write(session: Session, _context: object, _instances: object) -> None:
    """Before the flush: the new rows of the bulk classes leave the session and are written,
    one executemany per table, the tables pointed at first."""
    bulk: _Bulk | None = session.info.get(_KEY)
    if bulk is None:
        return
    by_table: dict[Table, list[dict[str, Any]]] = defaultdict(list)
    for row in list(session.new):
        if type(row) not in bulk.classes:
            continue
        mapper: Mapper[Any] = inspect(type(row))
        table = mapper.local_table
        assert isinstance(table, Table)
        values: dict[str, Any] = {}
        attributes: dict[str, Any] = {}
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if prop.key in row.__dict__:
                value = row.__dict__[prop.key]
            elif column is mapper.version_id_col and callable(mapper.version_id_generator):
                value = mapper.version_id_generator(None)  # the first version, as a flush
            elif column.default is not None and column.default.is_scalar:
                value = column.default.arg
            elif column.default is not None and column.default.is_callable:
                value = column.default.arg(None)
            else:
                value = None
            values[column.key] = value
            attributes[prop.key] = value
        session.expunge(row)
        by_table[table].append(values)
        bulk.written.append((row, attributes))
        bulk.written_classes.add(type(row))
    if not by_table:
        return
    connection = session.connection()
    for table in sorted(by_table, key=_dependency_order):  # the rows pointed at first
        rows = by_table[table]
        if "id" in table.c:
            rows.sort(key=lambda values: values["id"] or 0)  # e.g. a ticket linked to an older
        connection.execute(insert(table), rows)


def _dependency_order(table: Table) -> int:
    return _order(table.metadata).get(table.name, 0)


@functools.cache
def _order(metadata: MetaData) -> dict[str, int]:
    return {table.name: index for index, table in enumerate(metadata.sorted_tables)}


def _check(session: Session) -> None:
    bulk: _Bulk | None = session.info.get(_KEY)
    if bulk is None:
        return
    for row, attributes in bulk.written:
        for key, value in attributes.items():
            if row.__dict__.get(key, value) is not value and row.__dict__.get(key) != value:
                name = f"{type(row).__name__}.{key}"
                raise ChangedAfterBulkWrite(f"{name} changed after it was written")
