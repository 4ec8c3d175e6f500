"""Open a ForceReply question for a staff member's typed text: one place for both flows."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.models import PromptStatus, TelegramPrompt
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

#: How long a question waits for its answer; the typed text is given back after that.
PROMPT_MINUTES = 15


def open_prompt(
    session: Session,
    *,
    chat_id: int,
    user_id: int,
    actor: Actor,
    ticket_id: int,
    action: Action,
    now: dt.datetime,
) -> TelegramPrompt:
    """Store the question and queue it; the latest press wins over a pending one."""
    pending = session.scalars(
        select(TelegramPrompt).where(
            TelegramPrompt.user_id == user_id,
            TelegramPrompt.ticket_id == ticket_id,
            TelegramPrompt.status == PromptStatus.PENDING,
            TelegramPrompt.expires_at > now,
        )
    ).all()
    for old in pending:
        old.status = PromptStatus.CANCELLED
    prompt = TelegramPrompt(
        chat_id=chat_id,
        user_id=user_id,
        user_name=actor.name or "",
        ticket_id=ticket_id,
        action=action.value,
        status=PromptStatus.PENDING,
        created_at=now,
        expires_at=now + dt.timedelta(minutes=PROMPT_MINUTES),
    )
    session.add(prompt)
    session.flush()
    enqueue_telegram(
        session,
        TelegramOp.PROMPT,
        ticket_id=ticket_id,
        payload={"prompt": prompt.id},
        importance=Importance.PROMPT,
        now=now,
    )
    return prompt
