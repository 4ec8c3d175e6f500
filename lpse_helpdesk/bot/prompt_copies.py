"""A prompt sent twice (the first send timed out but was delivered) is answered in either copy.

After a `TimedOut`, the dispatcher cannot know whether Telegram posted the prompt; it marks
the prompt's outbox item `maybe_delivered` and sends again. The copy the staff member then
answers may be the first one, whose message id was never learned. A reply to a bot message
that is no known prompt is matched to the replying user's pending, possibly-doubled prompt
in that chat when the replied text names the same ticket.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from telegram import Message as TgMessage

from lpse_helpdesk.storage.models import (
    OutboxChannel,
    OutboxItem,
    PromptStatus,
    TelegramPrompt,
    Ticket,
)
from lpse_helpdesk.workflow.outbox import TelegramOp

MAYBE_DELIVERED = "maybe_delivered"


def prompt_copy(session: Session, chat_id: int, replied: TgMessage | None, user_id: int) -> int:
    """The message id the reply should count for (the replied one unless it is a copy)."""
    if replied is None:
        return 0
    message_id = replied.message_id
    known = session.scalar(
        select(TelegramPrompt.id).where(
            TelegramPrompt.chat_id == chat_id, TelegramPrompt.message_id == message_id
        )
    )
    if known is not None or replied.from_user is None or not replied.from_user.is_bot:
        return message_id
    text = replied.text or ""
    pending = session.scalars(
        select(TelegramPrompt)
        .where(
            TelegramPrompt.chat_id == chat_id,
            TelegramPrompt.user_id == user_id,
            TelegramPrompt.status == PromptStatus.PENDING,
        )
        .order_by(TelegramPrompt.id.desc())
    ).all()
    for prompt in pending:
        ticket = session.get(Ticket, prompt.ticket_id)
        if ticket is None or ticket.number not in text or not _maybe_doubled(session, prompt):
            continue
        if prompt.message_id is None:
            prompt.message_id = message_id  # the retry has not gone out yet: adopt this copy
        return int(prompt.message_id)
    return message_id


def _maybe_doubled(session: Session, prompt: TelegramPrompt) -> bool:
    items = session.scalars(
        select(OutboxItem).where(
            OutboxItem.channel == OutboxChannel.TELEGRAM,
            OutboxItem.kind == TelegramOp.PROMPT.value,
            OutboxItem.ticket_id == prompt.ticket_id,
        )
    ).all()
    return any(
        item.payload.get("prompt") == prompt.id and item.payload.get(MAYBE_DELIVERED)
        for item in items
    )
