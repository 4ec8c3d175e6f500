"""Read the stored SLA clocks: running clocks, due notices, the last staff actor, summaries.

A clock is *running* while it is neither stopped nor paused; only then has it a deadline.
The queries filter on `stopped_at` and `deadline_at` (index ix_sla_clocks_open).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import SOP_STEP_LABELS
from lpse_helpdesk.sla.texts import SummaryLine
from lpse_helpdesk.sop.machine import OPEN_STATES, State
from lpse_helpdesk.storage.models import AuditEvent, Channel, SlaClock, Ticket


def running() -> ColumnElement[bool]:
    return and_(
        SlaClock.stopped_at.is_(None),
        SlaClock.deadline_at.is_not(None),
        SlaClock.paused_at.is_(None),
    )


def breach_candidates(session: Session, now: dt.datetime) -> list[SlaClock]:
    """Running clocks past their deadline whose breach was not alerted yet, locked."""
    return list(
        session.scalars(
            select(SlaClock)
            .where(running(), SlaClock.deadline_at <= now, SlaClock.breach_alerted_at.is_(None))
            .order_by(SlaClock.deadline_at, SlaClock.id)
            .with_for_update(skip_locked=True)
        )
    )


def reminder_candidates(session: Session, now: dt.datetime) -> list[SlaClock]:
    """Running clocks before their deadline that were not reminded yet, locked."""
    return list(
        session.scalars(
            select(SlaClock)
            .where(running(), SlaClock.deadline_at > now, SlaClock.reminded_at.is_(None))
            .order_by(SlaClock.deadline_at, SlaClock.id)
            .with_for_update(skip_locked=True)
        )
    )


def last_actor(session: Session, ticket_id: int) -> str | None:
    """The name of the staff member who last acted on the ticket from Telegram."""
    return session.scalar(
        select(AuditEvent.actor_name)
        .where(AuditEvent.ticket_id == ticket_id, AuditEvent.channel == Channel.TELEGRAM)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(1)
    )


def handler(session: Session, ticket_id: int) -> str | None:
    """Who said "Saya tangani" for the ticket."""
    return session.scalar(select(Ticket.handler_name).where(Ticket.id == ticket_id))


def current_clock(session: Session, ticket_id: int) -> SlaClock | None:
    """The ticket's running clock with the nearest deadline (for its card), if any."""
    return session.scalars(
        select(SlaClock)
        .where(SlaClock.ticket_id == ticket_id, running())
        .order_by(SlaClock.deadline_at, SlaClock.id)
        .limit(1)
    ).first()


def deadlines_before(session: Session, end: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """(ticket id, deadline) of running clocks due before `end`, earliest first."""
    rows = session.execute(
        select(SlaClock.ticket_id, SlaClock.deadline_at)
        .join(Ticket, Ticket.id == SlaClock.ticket_id)
        .where(running(), SlaClock.deadline_at < end, Ticket.state != State.CLOSED)
        .order_by(SlaClock.deadline_at, SlaClock.id)
    )
    return [(ticket_id, deadline) for ticket_id, deadline in rows if deadline is not None]


def open_ticket_count(session: Session) -> int:
    count = session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.state.in_(OPEN_STATES))
    )
    return int(count or 0)


def summary_lines(session: Session, ticket_ids: Iterable[int]) -> dict[int, SummaryLine]:
    """The lines of a summary's tickets, each with its most urgent running step (if any)."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    tickets = session.execute(
        select(Ticket.id, Ticket.number, Ticket.subject).where(Ticket.id.in_(ids))
    ).all()
    clocks: dict[int, SlaClock] = {}
    for clock in session.scalars(
        select(SlaClock)
        .where(SlaClock.ticket_id.in_(ids), running())
        .order_by(SlaClock.deadline_at.desc(), SlaClock.id.desc())
    ):
        clocks[clock.ticket_id] = clock  # the earliest deadline is written last
    lines: dict[int, SummaryLine] = {}
    for ticket_id, number, subject in tickets:
        urgent = clocks.get(ticket_id)
        lines[ticket_id] = SummaryLine(
            number=number,
            subject=subject,
            step_label=SOP_STEP_LABELS[urgent.step] if urgent else "-",
            deadline=urgent.deadline_at if urgent else None,
        )
    return lines
