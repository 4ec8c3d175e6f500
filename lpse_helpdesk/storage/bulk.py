"""Rows a batch only inserts (tickets, messages, audit events, outbox items...), in bulk.

The ORM's flush spends far more per row than the database does: change tracking, cascades,
dependency sorting, one parameter set built at a time. A batch of mails adds hundreds of
rows that nothing in the batch changes after they are written (a later mail of the batch
that changes its ticket loads the ticket again). `write_in_bulk` takes the new rows of the
given classes out of each flush and writes them just before it, one executemany per table,
in the order of the foreign keys (their ids were taken ahead, storage/ids.py, so nothing
needs RETURNING). Rows of other classes are flushed as usual, after them.

A written row stays with its owner, detached as if just loaded. Should the batch change it
after it was written (the ORM would have written that change, here it would be lost), the
commit refuses (`ChangedAfterBulkWrite`) and the caller stores the batch again the ordinary
way: nothing is lost, only time.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import MetaData, Table, event, insert, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached

_KEY = "storage_bulk"


class ChangedAfterBulkWrite(RuntimeError):
    """A row written in bulk was changed afterwards in the same transaction."""


class _Bulk:
    def __init__(self, classes: Collection[type[Any]]) -> None:
        self.classes = frozenset(classes)
        #: The rows written. Held until the commit: a row changed and then dropped by its
        #: owner must still be seen as changed.
        self.written: list[Any] = []


def write_in_bulk(session: Session, classes: Collection[type[Any]]) -> None:
    """For the rest of this transaction, new rows of `classes` are written in bulk."""
    session.info[_KEY] = _Bulk(classes)
    for name, listener in (
        ("before_flush", _write),
        ("before_commit", _check),
        ("after_commit", _done),
        ("after_rollback", _done),
    ):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)


def in_bulk(session: Session) -> bool:
    """Whether this session's new rows of some classes are written in bulk."""
    return _KEY in session.info


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
        table, columns = _plan(type(row))
        state = row.__dict__
        if state.get("id", 0) is None:  # storage/ids.py gives ids in an earlier listener
            raise RuntimeError(f"a {type(row).__name__} without an id taken ahead")
        values: dict[str, Any] = {}
        for key, column_key, default in columns:
            if key in state:
                values[column_key] = state[key]
            else:
                # As a flush leaves the row: every column loaded, defaults applied.
                values[column_key] = state[key] = default() if default is not None else None
        session.expunge(row)
        # Detached as if just loaded: a later change to it shows as modified at commit.
        make_transient_to_detached(row)
        by_table[table].append(values)
        bulk.written.append(row)
    if not by_table:
        return
    connection = session.connection()
    dialect = connection.dialect
    for table in sorted(by_table, key=_dependency_order):  # the rows pointed at first
        rows = by_table[table]
        if "id" in table.c:
            rows.sort(key=lambda values: values["id"] or 0)  # e.g. a ticket linked to an older
        if dialect.paramstyle == "qmark":
            # SQLite: the statement and the columns' conversions are prepared once; per row
            # only the values are converted, as the compiled statement would convert them.
            sql, converters = _positional_insert(table, dialect)
            connection.exec_driver_sql(sql, [_parameters(row, converters) for row in rows])
        else:
            # PostgreSQL: SQLAlchemy's own executemany packs the rows into multi-row INSERTs.
            connection.execute(insert(table), rows)


_Plan = tuple[Table, tuple[tuple[str, str, Callable[[], Any] | None], ...]]
_PLANS: dict[type[Any], _Plan] = {}


def _plan(cls: type[Any]) -> _Plan:
    """A class's table and, per column: attribute key, column key, the default (or None)."""
    if cls in _PLANS:
        return _PLANS[cls]
    mapper: Mapper[Any] = inspect(cls)
    table = mapper.local_table
    assert isinstance(table, Table)
    columns = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        default: Callable[[], Any] | None = None
        if column is mapper.version_id_col and callable(mapper.version_id_generator):
            generate = mapper.version_id_generator
            default = functools.partial(generate, None)  # the first version, as a flush
        elif column.default is not None and column.default.is_scalar:
            default = functools.partial(_same, column.default.arg)
        elif column.default is not None and column.default.is_callable:
            default = functools.partial(column.default.arg, None)
        columns.append((prop.key, column.key, default))
    _PLANS[cls] = (table, tuple(columns))
    return _PLANS[cls]


_Processor = Callable[[Any], Any]
_INSERTS: dict[tuple[Table, str], tuple[str, tuple[tuple[str, _Processor | None], ...]]] = {}


def _positional_insert(
    table: Table, dialect: Dialect
) -> tuple[str, tuple[tuple[str, _Processor | None], ...]]:
    """The table's INSERT of every column with positional parameters, and per parameter
    its column key and the conversion its type applies on the way to the driver."""
    cache_key = (table, dialect.name)
    if cache_key not in _INSERTS:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(table.c.keys()))
        order = compiled.positiontup or []
        binds = compiled.binds
        columns = tuple(
            (
                binds[name].key,
                binds[name].type.dialect_impl(dialect).bind_processor(dialect),
            )
            for name in order
        )
        _INSERTS[cache_key] = (compiled.string, columns)
    return _INSERTS[cache_key]


def _parameters(
    row: dict[str, Any], columns: tuple[tuple[str, _Processor | None], ...]
) -> tuple[Any, ...]:
    return tuple(row[key] if process is None else process(row[key]) for key, process in columns)


def _same(value: Any) -> Any:
    return value


def _dependency_order(table: Table) -> int:
    return _order(table.metadata).get(table.name, 0)


@functools.cache
def _order(metadata: MetaData) -> dict[str, int]:
    return {table.name: index for index, table in enumerate(metadata.sorted_tables)}


def _check(session: Session) -> None:
    bulk: _Bulk | None = session.info.get(_KEY)
    if bulk is None:
        return
    for row in bulk.written:
        if inspect(row).modified:
            raise ChangedAfterBulkWrite(f"a {type(row).__name__} changed after it was written")


def _done(session: Session) -> None:
    """The transaction is over: let go of its rows at once (a closed session may wait for
    the cyclic collector, and a batch's rows with it)."""
    session.info.pop(_KEY, None)
