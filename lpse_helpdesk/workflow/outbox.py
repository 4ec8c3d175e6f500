"""Write outbox items: mails and Telegram operations, in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import OutboxChannel, OutboxItem, OutboxStatus


class TelegramOp(enum.StrEnum):
    CARD = "card"  # post the ticket's card, or edit it in place when it exists
    NOTICE = "notice"  # a short message in reply to the card
    ALERT = "alert"  # a message to the group not tied to one card (e.g. IMAP down)
    PROMPT = "prompt"  # a ForceReply question for a staff member's typed text
    MESSAGE = "message"  # a ready-made text (payload: chat_id, text, reply_to)
    DOCUMENT = "document"  # a file (payload: chat_id, filename, content_hex, caption, reply_to)
    DELETE = "delete"  # remove a bot message that served its purpose (payload: chat_id, message_id)
    REACTION = "reaction"  # confirm a staff message with an emoji (chat_id, message_id, emoji)
    BOARD = "board"  # redraw the pinned queue board (payload: {})


#: Card edits wait this long so that changes made within a second become one edit.
CARD_EDIT_DELAY = dt.timedelta(seconds=1)


class Importance(enum.IntEnum):
    """Lower goes first when the Telegram budget is short."""

    PROMPT = 5  # a person is waiting for it
    NEW_TICKET = 10
    SLA_ALERT = 20
    NOTICE = 30
    CARD_EDIT = 40
    MAIL = 50


def enqueue_mail(
    session: Session,
    *,
    kind: str,
    ticket_id: int | None,
    recipient: str,
    message_id: str,
    payload: dict[str, Any],
    now: dt.datetime,
    dedup_key: str | None = None,
) -> OutboxItem:
    item = OutboxItem(
        channel=OutboxChannel.MAIL,
        kind=kind,
        ticket_id=ticket_id,
        recipient=recipient,
        message_id=message_id,
        payload=payload,
        importance=Importance.MAIL,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        dedup_key=dedup_key,
    )
    session.add(item)
    return item


def enqueue_telegram(
    session: Session,
    op: TelegramOp,
    *,
    ticket_id: int | None,
    payload: dict[str, Any],
    importance: Importance,
    now: dt.datetime,
    dedup_key: str | None = None,
    new_ticket: bool = False,
) -> OutboxItem | None:
    """Queue a Telegram operation; a card edit already pending for the ticket is reused.

    `new_ticket`: the ticket was created in this transaction, so nothing can be pending.
    """
    if op is TelegramOp.CARD and ticket_id is not None and not new_ticket:
        pending = session.scalars(
            select(OutboxItem).where(
                OutboxItem.channel == OutboxChannel.TELEGRAM,
                OutboxItem.kind == TelegramOp.CARD.value,
                OutboxItem.ticket_id == ticket_id,
                OutboxItem.status == OutboxStatus.PENDING,
            )
        ).first()
        if pending is not None:
            pending.importance = min(pending.importance, importance)
            return pending
    if dedup_key is not None:
        exists = session.scalar(select(OutboxItem.id).where(OutboxItem.dedup_key == dedup_key))
        if exists is not None:
            return None
    delay = (
        CARD_EDIT_DELAY if op is TelegramOp.CARD and importance >= Importance.CARD_EDIT else None
    )
    item = OutboxItem(
        channel=OutboxChannel.TELEGRAM,
        kind=op.value,
        ticket_id=ticket_id,
        payload=payload,
        importance=importance,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=now + delay if delay else now,
        created_at=now,
        dedup_key=dedup_key,
    )
    session.add(item)
    return item
