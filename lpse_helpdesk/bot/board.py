"""The queue board: one pinned message in the group (General topic in a forum).

Counts per state, then the tickets that need action, overdue first, each a link to its card.
It is edited in place, at most once a minute (`EDIT_EVERY`), and never re-posted while its
message exists. `request` is called with every card change; the dispatcher draws it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot import queries
from lpse_helpdesk.bot.cards import STATE_ICONS
from lpse_helpdesk.sop import machine
from lpse_helpdesk.storage.models import (
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    TelegramBoard,
)
from lpse_helpdesk.timekeeping.clock import as_utc
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

EDIT_EVERY = dt.timedelta(minutes=1)
BOARD_LINES = 15


def render(session: Session, now: dt.datetime, tz: ZoneInfo) -> str:
    rows = queries.open_tickets(session)
    local = now.astimezone(tz)
    lines = ["📋 <b>Papan antrian helpdesk</b>"]
    if not rows:
        lines.append("Tidak ada tiket terbuka. 🎉")
    else:
        counts = []
        for state in machine.State:
            if state not in machine.OPEN_STATES:
                continue
            n = sum(1 for r in rows if r.ticket.state is state)
            if n:
                counts.append(f"{STATE_ICONS[state]} {machine.STATE_LABELS[state]}: {n}")
        lines.append(" · ".join(counts))
        action = [r for r in rows if r.ticket.state in queries.GROUPS[0][1]]
        overdue = sum(1 for r in action if r.due is not None and r.due < now)
        title = f"<b>Perlu tindakan</b> ({len(action)}"
        title += f", {overdue} terlambat)" if overdue else ")"
        lines += ["", title]
        lines.extend(queries.row_line(r, now, tz) for r in action[:BOARD_LINES])
        if len(action) > BOARD_LINES:
            lines.append(f"… dan {len(action) - BOARD_LINES} tiket lainnya: /antrian")
    lines += ["", f"<i>Diperbarui {local:%H.%M}. Daftar lengkap: /antrian</i>"]
    return "\n".join(lines)


def request(session: Session, now: dt.datetime) -> None:
    """Ask for a redraw: one pending at a time, a minute after the last one at the earliest."""
    pending = session.scalar(
        select(OutboxItem.id).where(
            OutboxItem.channel == OutboxChannel.TELEGRAM,
            OutboxItem.kind == TelegramOp.BOARD.value,
            OutboxItem.status == OutboxStatus.PENDING,
        )
    )
    if pending is not None:
        return
    item = enqueue_telegram(
        session,
        TelegramOp.BOARD,
        ticket_id=None,
        payload={},
        importance=Importance.CARD_EDIT,
        now=now,
    )
    board = session.scalar(select(TelegramBoard).limit(1))
    if item is not None and board is not None:
        item.next_attempt_at = max(now, as_utc(board.updated_at) + EDIT_EVERY)


def current(session: Session, chat_id: int) -> TelegramBoard | None:
    return session.get(TelegramBoard, chat_id)


def store(
    session: Session, chat_id: int, message_id: int, fingerprint: str, now: dt.datetime
) -> None:
    board = session.get(TelegramBoard, chat_id)
    if board is None:
        session.add(
            TelegramBoard(
                chat_id=chat_id, message_id=message_id, rendered_hash=fingerprint, updated_at=now
            )
        )
    else:
        board.message_id, board.rendered_hash, board.updated_at = message_id, fingerprint, now


def forget(session: Session, chat_id: int) -> None:
    board = session.get(TelegramBoard, chat_id)
    if board is not None:
        session.delete(board)
