"""Ticket numbers as links to their cards, wherever the bot writes a number."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot.cards import ticket_link
from lpse_helpdesk.storage.models import TelegramCard, Ticket


def numbers(session: Session, ticket_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """{ticket id: (number as HTML, linked to its card when posted; subject)}."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(
            Ticket.id, Ticket.number, Ticket.subject, TelegramCard.chat_id, TelegramCard.message_id
        )
        .outerjoin(TelegramCard, TelegramCard.ticket_id == Ticket.id)
        .where(Ticket.id.in_(ids))
    ).all()
    return {
        ticket_id: (ticket_link(number, chat_id, message_id), subject)
        for ticket_id, number, subject, chat_id, message_id in rows
    }
