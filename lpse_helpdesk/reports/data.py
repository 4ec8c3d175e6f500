"""Read the tickets of a period and their SLA clocks, streamed in batches.

Only the columns the recap needs are selected (no mail bodies, no phone numbers); rows come
as plain tuples, a batch at a time, so 50,000 tickets never sit in memory together. The
queries are SQLAlchemy Core on the schema's tables (storage/tables.py): `lpse-helpdesk rekap`
reads on a plain Connection and never imports the ORM; the bot and the monthly job pass
their Session, whose connection (and transaction) is used.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, DateTime, Select, func, select, type_coerce

from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.reports.period import Period
from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.tables import sla_clocks, tickets

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

BATCH_SIZE = 500  # also bounds the IN (...) list of the clock query


@dataclass(frozen=True, slots=True)
class ClockRow:
    """One run of an SOP step's clock."""

    step: SopStep
    started_at: dt.datetime
    deadline_at: dt.datetime | None
    stopped_at: dt.datetime | None
    budget_minutes: float
    business_minutes: float | None
    used_minutes: float
    resumed_at: dt.datetime | None
    paused_at: dt.datetime | None
    met: bool | None

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def overdue(self, now: dt.datetime) -> bool:
        """Still running and past its deadline: it will be missed."""
        return self.running and self.deadline_at is not None and self.deadline_at < now


@dataclass(frozen=True, slots=True)
class TicketRow:
    """What the recap needs of one ticket."""

    id: int
    number: str
    requester_name: str
    requester_email: str
    subject: str
    problem_text: str
    solution: str | None
    category: str | None
    priority: str | None
    state: State
    received_at: dt.datetime
    resolved_at: dt.datetime | None
    escalated_at: dt.datetime | None
    lkpp_answered_at: dt.datetime | None
    closed_at: dt.datetime | None
    reopen_count: int
    linked_number: str | None
    clocks: tuple[ClockRow, ...] = ()

    @property
    def resolved(self) -> bool:
        """Solved by the helpdesk: the solution went out and the ticket was not reopened since."""
        return self.resolved_at is not None and self.state in (State.RESOLVED, State.CLOSED)

    @property
    def closed_unresolved(self) -> bool:
        return self.state is State.CLOSED and self.resolved_at is None

    @property
    def finished_at(self) -> dt.datetime | None:
        """Tgl Selesai: when solved; a ticket closed without a solution, when closed."""
        if self.resolved:
            return self.resolved_at
        if self.closed_unresolved:
            return self.closed_at
        return None

    def missed_steps(self, now: dt.datetime) -> tuple[SopStep, ...]:
        """Steps whose time standard was missed, or is being missed now, in SOP order."""
        missed = {c.step for c in self.clocks if c.met is False or c.overdue(now)}
        return tuple(step for step in SopStep if step in missed)


def connection_of(db: Connection | Session) -> Connection:
    """The connection to read on: `db` itself, or the session's (inside its transaction),
    after flushing what the session holds, as its own queries would (autoflush)."""
    if isinstance(db, Connection):
        return db
    if db.autoflush:
        db.flush()
    return db.connection()


_LINKED = tickets.alias("linked")
# Times are read with the plain DateTime type and made aware here: the storage type's
# per-value conversion was a third of the reading time of a large recap.
_PLAIN_TIME = DateTime(timezone=True)


def _time(column: Any) -> Any:
    return type_coerce(column, _PLAIN_TIME).label(column.key)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """Stored times are UTC; SQLite gives them back without a zone."""
    if value is None or value.tzinfo is not None:
        return value
    return _combine(value, value.time(), dt.UTC)  # five times faster than .replace(tzinfo=)


_combine = dt.datetime.combine


def _ticket_query(period: Period) -> Select[*tuple[Any, ...]]:
    t = tickets.c
    return (
        select(
            t.id,
            t.number,
            t.requester_name,
            t.requester_email,
            t.subject,
            t.problem_text,
            t.solution,
            t.category,
            t.priority,
            t.state,
            _time(t.received_at),
            _time(t.resolved_at),
            _time(t.escalated_at),
            _time(t.lkpp_answered_at),
            _time(t.closed_at),
            t.reopen_count,
            _LINKED.c.number.label("linked_number"),
        )
        .select_from(tickets.outerjoin(_LINKED, _LINKED.c.id == t.linked_ticket_id))
        .where(t.received_at >= period.start_utc, t.received_at < period.end_utc)
        .order_by(t.received_at, t.id)
    )


def _clocks_for(connection: Connection, ticket_ids: Sequence[int]) -> dict[int, list[ClockRow]]:
    c = sla_clocks.c
    query = (
        select(
            c.ticket_id,
            c.step,
            _time(c.started_at),
            _time(c.deadline_at),
            _time(c.stopped_at),
            c.budget_minutes,
            c.business_minutes,
            c.used_minutes,
            _time(c.resumed_at),
            _time(c.paused_at),
            c.met,
        )
        .where(c.ticket_id.in_(ticket_ids))
        .order_by(c.ticket_id, c.id)
    )
    clocks: dict[int, list[ClockRow]] = defaultdict(list)
    rows = connection.execute(query)
    for (
        ticket,
        step,
        started,
        deadline,
        stopped,
        budget,
        used_final,
        used,
        resumed,
        paused,
        met,
    ) in rows:
        clocks[ticket].append(
            ClockRow(
                step,
                _combine(started, started.time(), dt.UTC) if started.tzinfo is None else started,
                _aware(deadline),
                _aware(stopped),
                budget,
                used_final,
                used,
                _aware(resumed),
                _aware(paused),
                met,
            )
        )
    return clocks


def iter_tickets(
    db: Connection | Session, period: Period, *, batch_size: int = BATCH_SIZE
) -> Iterator[TicketRow]:
    """The tickets received in `period`, oldest first, each with its SLA clocks."""
    connection = connection_of(db)
    result = connection.execute(_ticket_query(period).execution_options(yield_per=batch_size))
    for batch in result.partitions():
        clocks = _clocks_for(connection, [row[0] for row in batch])
        for row in batch:
            (
                ticket_id,
                number,
                name,
                email,
                subject,
                problem,
                solution,
                category,
                priority,
                state,
                received,
                resolved,
                escalated,
                answered,
                closed,
                reopen_count,
                linked_number,
            ) = row
            yield TicketRow(
                ticket_id,
                number,
                name,
                email,
                subject,
                problem,
                solution,
                category,
                priority,
                state,
                _combine(received, received.time(), dt.UTC)
                if received.tzinfo is None
                else received,
                _aware(resolved),
                _aware(escalated),
                _aware(answered),
                _aware(closed),
                reopen_count,
                linked_number,
                tuple(clocks.get(ticket_id, ())),
            )


def count_tickets(db: Connection | Session, period: Period) -> int:
    """How many tickets were received in `period`."""
    received = tickets.c.received_at
    query = (
        select(func.count())
        .select_from(tickets)
        .where(received >= period.start_utc, received < period.end_utc)
    )
    return int(connection_of(db).scalar(query) or 0)
