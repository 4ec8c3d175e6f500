"""Lookups behind /tiket, /antrian, /cari and /saya; each returns ready HTML lines."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot.cards import STATE_ICONS, ticket_link
from lpse_helpdesk.sla import texts as sla_texts
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.models import AuditEvent, Channel, SlaClock, TelegramCard, Ticket
from lpse_helpdesk.timekeeping.clock import as_utc

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


GROUPS: tuple[tuple[str, frozenset[State]], ...] = (
    (
        "Perlu tindakan",
        frozenset(
            {
                State.NEW,
                State.PRIORITIZED,
                State.DATA_RECEIVED,
                State.IN_ANALYSIS,
                State.LKPP_ANSWERED,
            }
        ),
    ),
    ("Menunggu pengguna", frozenset({State.WAITING_FOR_DATA})),
    ("Menunggu LKPP", frozenset({State.ESCALATED})),
)
PAGE_LINES = 15


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    due: dt.datetime | None
    chat_id: int | None
    message_id: int | None


def _line(
    ticket: Ticket,
    extra: str = "",
    chat_id: int | None = None,
    message_id: int | None = None,
) -> str:
    subject = ticket.subject if len(ticket.subject) <= 50 else ticket.subject[:50] + "…"
    who = ticket.requester_name or ticket.requester_email
    handler = f" · 🙋 {escape(ticket.handler_name[:30])}" if ticket.handler_name else ""
    number = ticket_link(short_number(ticket.number), chat_id, message_id)
    text = f"{escape(who[:30])}: {escape(subject)}{handler}"
    return f"{STATE_ICONS[ticket.state]} {number} {extra}{text}"


def short_number(number: str) -> str:
    """LPSE-2026-00042 -> 00042: the year is in the card, the sequence is what staff say."""
    return number.rsplit("-", 1)[-1]


def open_tickets(session: Session) -> list[QueueRow]:
    """Open tickets, the most urgent first: by the nearest SOP deadline, then the oldest."""
    deadline = (
        select(SlaClock.ticket_id, func.min(SlaClock.deadline_at).label("due"))
        .where(SlaClock.stopped_at.is_(None), SlaClock.deadline_at.is_not(None))
        .group_by(SlaClock.ticket_id)
        .subquery()
    )
    rows = session.execute(
        select(Ticket, deadline.c.due, TelegramCard.chat_id, TelegramCard.message_id)
        .outerjoin(deadline, deadline.c.ticket_id == Ticket.id)
        .outerjoin(TelegramCard, TelegramCard.ticket_id == Ticket.id)
        .where(Ticket.state.in_(list(machine.OPEN_STATES)))
        .order_by(deadline.c.due.is_(None), deadline.c.due, Ticket.received_at, Ticket.id)
    ).all()
    return [
        QueueRow(ticket, as_utc(due) if due is not None else None, chat_id, message_id)
        for ticket, due, chat_id, message_id in rows
    ]


def row_line(row: QueueRow, now: dt.datetime, tz: ZoneInfo) -> str:
    extra = ""
    if row.due is not None:
        today = now.astimezone(tz).date()
        extra = "🚨 " if row.due < now else f"⏰ {sla_texts.when(row.due, tz, today=today)} "
    return _line(row.ticket, extra, row.chat_id, row.message_id)


def queue_lines(session: Session, now: dt.datetime, tz: ZoneInfo) -> list[str]:
    """Every open ticket as a line under its group's heading (perlu tindakan first)."""
    rows = open_tickets(session)
    lines: list[str] = []
    for title, states in GROUPS:
        group = [r for r in rows if r.ticket.state in states]
        if group:
            lines.append(f"<b>{title}</b> ({len(group)})")
            lines.extend(row_line(r, now, tz) for r in group)
    return lines


def queue_page(
    session: Session, now: dt.datetime, tz: ZoneInfo, page: int, per_page: int = PAGE_LINES
) -> tuple[list[str], int, int]:
    """(lines of one page, the page shown, number of pages) of the grouped queue.

    A page that starts inside a group repeats the group's heading (marked "lanjutan").
    """
    rows = open_tickets(session)
    items: list[tuple[str, str]] = []  # (group title, line)
    counts: dict[str, int] = {}
    for title, states in GROUPS:
        group = [r for r in rows if r.ticket.state in states]
        counts[title] = len(group)
        items.extend((title, row_line(r, now, tz)) for r in group)
    pages = max(1, -(-len(items) // per_page))
    page = min(max(page, 0), pages - 1)
    lines: list[str] = []
    current = None
    for index, (title, line) in enumerate(items[page * per_page : (page + 1) * per_page]):
        if title != current:
            more = (
                " (lanjutan)"
                if index == 0 and page > 0 and _continues(items, page, per_page)
                else ""
            )
            lines.append(f"<b>{title}</b> ({counts[title]}){more}")
            current = title
        lines.append(line)
    return lines, page, pages


def _continues(items: list[tuple[str, str]], page: int, per_page: int) -> bool:
    start = page * per_page
    return start > 0 and items[start - 1][0] == items[start][0]


def _linked(session: Session, tickets: Sequence[Ticket]) -> list[str]:
    cards = {
        card.ticket_id: card
        for card in session.scalars(
            select(TelegramCard).where(TelegramCard.ticket_id.in_([t.id for t in tickets]))
        )
    }
    lines = []
    for ticket in tickets:
        card = cards.get(ticket.id)
        lines.append(
            _line(ticket, "", card.chat_id if card else None, card.message_id if card else None)
        )
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
    return _linked(session, rows)


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
    return _linked(session, rows)
