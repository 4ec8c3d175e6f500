"""Lookups behind /tiket, /antrian, /cari and /saya; each returns ready HTML lines."""

from __future__ import annotations

import datetime as dt
import re
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot.cards import STATE_ICONS
from lpse_helpdesk.sop import machine
from lpse_helpdesk.storage.models import AuditEvent, Channel, SlaClock, Ticket
from lpse_helpdesk.timekeeping.clock import as_utc
from lpse_helpdesk.timekeeping.localtime import short_datetime

LIMIT = 25
_NUMBER = re.compile(r"^\[?([A-Za-z][A-Za-z0-9]{1,11})-(\d{4})-(\d{1,7})\]?$")


def find_ticket(
    session: Session, query: str, prefix: str, now: dt.datetime, tz: ZoneInfo
) -> Ticket | None:
    """By full number (LPSE-2026-00042), or by its sequence in the current year (42)."""
    query = query.strip()
    match = _NUMBER.match(query)
    if match:
        number = f"{match.group(1).upper()}-{match.group(2)}-{int(match.group(3)):05d}"
    elif query.isdigit():
        number = f"{prefix}-{now.astimezone(tz).year}-{int(query):05d}"
    else:
        return None
    return session.scalars(select(Ticket).where(Ticket.number == number)).first()


def _line(ticket: Ticket, extra: str = "") -> str:
    subject = ticket.subject if len(ticket.subject) <= 50 else ticket.subject[:50] + "…"
    who = ticket.requester_name or ticket.requester_email
    return (
        f"{STATE_ICONS[ticket.state]} <b>{escape(ticket.number)}</b> {extra}"
        f"{escape(who[:30])}: {escape(subject)}"
    )


def queue(session: Session, now: dt.datetime, tz: ZoneInfo) -> list[str]:
    """Open tickets, the most urgent first: overdue, then by the nearest SOP deadline."""
    deadline = (
        select(SlaClock.ticket_id, func.min(SlaClock.deadline_at).label("due"))
        .where(SlaClock.stopped_at.is_(None), SlaClock.deadline_at.is_not(None))
        .group_by(SlaClock.ticket_id)
        .subquery()
    )
    rows = session.execute(
        select(Ticket, deadline.c.due)
        .outerjoin(deadline, deadline.c.ticket_id == Ticket.id)
        .where(Ticket.state.in_(list(machine.OPEN_STATES)))
        .order_by(deadline.c.due.is_(None), deadline.c.due, Ticket.received_at)
        .limit(LIMIT)
    ).all()
    lines = []
    for ticket, due in rows:
        extra = ""
        if due is not None:
            due = as_utc(due)
            extra = "🚨 " if due < now else f"⏰ {short_datetime(due, tz, zone=False)} "
        lines.append(_line(ticket, extra))
    return lines


def search(session: Session, text: str) -> list[str]:
    words = text.strip()
    if not words:
        return []
    pattern = f"%{words.lower()}%"
    rows = session.scalars(
        select(Ticket)
        .where(
            or_(
                func.lower(Ticket.number).like(pattern),
                func.lower(Ticket.requester_email).like(pattern),
                func.lower(Ticket.requester_name).like(pattern),
                func.lower(Ticket.subject).like(pattern),
                func.lower(Ticket.problem_text).like(pattern),
            )
        )
        .order_by(Ticket.id.desc())
        .limit(LIMIT)
    ).all()
    return [_line(ticket) for ticket in rows]


def mine(session: Session, user_id: int) -> list[str]:
    touched = (
        select(AuditEvent.ticket_id, func.max(AuditEvent.at).label("last"))
        .where(AuditEvent.channel == Channel.TELEGRAM, AuditEvent.actor_id == str(user_id))
        .group_by(AuditEvent.ticket_id)
        .subquery()
    )
    rows = session.scalars(
        select(Ticket)
        .join(touched, touched.c.ticket_id == Ticket.id)
        .order_by(touched.c.last.desc())
        .limit(LIMIT)
    ).all()
    return [_line(ticket) for ticket in rows]
