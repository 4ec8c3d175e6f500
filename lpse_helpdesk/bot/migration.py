"""The group became a supergroup: move everything to the new chat id, lose nothing.

Telegram gives a group a new chat id when it becomes a supergroup (an admin turned on
topics, a public link, some admin rights); every call to the old id then fails with
`ChatMigrated`. `apply_migration` runs in one transaction: the new id is stored (it wins over
HELPDESK_CHAT_ID from then on), pending items aimed at the old chat are re-aimed, pending
prompts are asked again in the new chat, and the cards of tickets that are not closed are
posted again there (the old card links are kept in the migration record, marked migrated).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot.group import MIGRATED, record_migration
from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.models import (
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    PromptStatus,
    TelegramCard,
    TelegramPrompt,
    TelegramState,
    Ticket,
)
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationResult:
    new: bool  # False: this process or another one had applied it already
    cards: int = 0
    prompts: int = 0
    items: int = 0


def migration_notice(old: int, new: int, cards: int) -> str:
    return (
        "ℹ️ Telegram telah mengubah grup helpdesk menjadi <b>supergroup</b> dengan id baru "
        f"<code>{new}</code> (sebelumnya <code>{old}</code>). "
        + (
            f"Kartu {cards} tiket yang belum ditutup dikirim ulang di sini; "
            if cards
            else "Tidak ada kartu yang perlu dikirim ulang; "
        )
        + "tombol pada kartu lama tidak berlaku lagi.\n"
        f"Operator: ubah <code>HELPDESK_CHAT_ID={new}</code> di berkas .env."
    )


def apply_migration(
    session: Session,
    old: int,
    new: int,
    now: dt.datetime,
    supervisor_ids: frozenset[int] = frozenset(),
) -> MigrationResult:
    if not record_migration(session, old, new, now):
        return MigrationResult(new=False)
    items = 0
    pending = session.scalars(
        select(OutboxItem).where(
            OutboxItem.channel == OutboxChannel.TELEGRAM,
            OutboxItem.status == OutboxStatus.PENDING,
        )
    ).all()
    for item in pending:
        if item.payload.get("chat_id") == old:
            # Message ids of the old chat mean nothing in the new one.
            item.payload = {**item.payload, "chat_id": new, "reply_to": None}
            item.next_attempt_at = now
            items += 1
    prompts = 0
    for prompt in session.scalars(
        select(TelegramPrompt).where(
            TelegramPrompt.chat_id == old, TelegramPrompt.status == PromptStatus.PENDING
        )
    ).all():
        prompt.chat_id = new
        if prompt.message_id is not None:  # asked in the old chat: ask again
            prompt.message_id = None
            enqueue_telegram(
                session,
                TelegramOp.PROMPT,
                ticket_id=prompt.ticket_id,
                payload={"prompt": prompt.id},
                importance=Importance.PROMPT,
                now=now,
            )
        prompts += 1
    old_links: list[list[int]] = []
    rows = session.execute(
        select(TelegramCard, Ticket.state)
        .join(Ticket, Ticket.id == TelegramCard.ticket_id)
        .where(TelegramCard.chat_id == old)
        .order_by(TelegramCard.ticket_id)
    ).all()
    for card, state in rows:
        if state is State.CLOSED:
            continue
        old_links.append([card.ticket_id, card.message_id])
        session.delete(card)
        session.flush()
        repost = enqueue_telegram(
            session,
            TelegramOp.CARD,
            ticket_id=card.ticket_id,
            payload={},
            importance=Importance.NOTICE,
            now=now,
        )
        if repost is not None:
            # Announced by the migration notice; not listed again as "new tickets".
            repost.payload = {**repost.payload, "digested": True, "repost": "migrated"}
            repost.next_attempt_at = now
    record = session.get(TelegramState, f"{MIGRATED}{old}")
    if record is not None:
        record.value = {**record.value, "old_cards": old_links, "cards_migrated": True}
    notice = migration_notice(old, new, len(old_links))
    for chat_id in (new, *sorted(supervisor_ids)):
        enqueue_telegram(
            session,
            TelegramOp.MESSAGE,
            ticket_id=None,
            payload={"chat_id": chat_id, "text": notice, "reply_to": None},
            importance=Importance.PROMPT,
            now=now,
        )
    log.warning(
        "the helpdesk group %s became supergroup %s; now using %s (stored in the database). "
        "Update HELPDESK_CHAT_ID=%s in .env. Re-posting %d cards, %d prompts, %d items moved.",
        old,
        new,
        new,
        new,
        len(old_links),
        prompts,
        items,
    )
    return MigrationResult(new=True, cards=len(old_links), prompts=prompts, items=items)
