"""Write outbox items: mails and Telegram operations, in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import os
import socket
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, inspect, or_, select, update
from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import OutboxChannel, OutboxItem, OutboxStatus
from lpse_helpdesk.workflow.batch import lookups
from lpse_helpdesk.workflow.waker import wake_after_commit


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


#: How long a claimed row stays with the instance that claimed it. A sender that dies holds
#: its rows this long at most; then another instance sends them.
LEASE = dt.timedelta(seconds=120)

#: How long a card edit waits before it is due. None: a staff member who pressed a button
#: watches the card, and the commit wakes the sender at once. Edits still coalesce: changes
#: made while an edit is pending (the sender busy or short of budget) join that one edit.
CARD_EDIT_DELAY = dt.timedelta(0)


class Importance(enum.IntEnum):
    """Lower goes first when the Telegram budget is short."""

    PROMPT = 5  # a person is waiting for it
    NEW_TICKET = 10
    SLA_ALERT = 20
    NOTICE = 30
    CARD_EDIT = 40
    MAIL = 50
    STRANGER = 60  # answers to people who are not staff: after everything else


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
    batch = lookups(session)
    if batch is not None:
        batch.queued_with_id(message_id, ticket_id)
    wake_after_commit(session, OutboxChannel.MAIL.value)
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
    batch = lookups(session)
    if op is TelegramOp.CARD and ticket_id is not None and not new_ticket:
        pending = _pending_card(session, ticket_id, now)
        if pending is not None:
            if importance < pending.importance:
                if inspect(pending).detached:  # written in bulk by this batch: load it again
                    pending = session.get(OutboxItem, pending.id) or pending
                pending.importance = importance
            wake_after_commit(session, OutboxChannel.TELEGRAM.value)
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
    if batch is not None and op is TelegramOp.CARD and ticket_id is not None:
        batch.queued_card(ticket_id, item)
    wake_after_commit(session, OutboxChannel.TELEGRAM.value)
    return item


def _pending_card(session: Session, ticket_id: int, now: dt.datetime) -> OutboxItem | None:
    """The ticket's queued card edit that no sender has claimed (a claimed edit may already
    be rendered: a new one is queued then)."""
    batch = lookups(session)
    if batch is not None:
        answered, item = batch.card(ticket_id)
        if answered:
            return item
    return session.scalars(
        select(OutboxItem).where(
            OutboxItem.channel == OutboxChannel.TELEGRAM,
            OutboxItem.kind == TelegramOp.CARD.value,
            OutboxItem.ticket_id == ticket_id,
            OutboxItem.status == OutboxStatus.PENDING,
            or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until <= now),
        )
    ).first()


@functools.cache
def this_instance() -> str:
    """This process's name among the instances sharing the database: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_due(
    session: Session,
    channel: OutboxChannel,
    *,
    now: dt.datetime,
    limit: int,
    instance: str | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    lease: dt.timedelta = LEASE,
) -> list[int]:
    """Claim up to `limit` due rows of one channel for this instance; their ids, in order.

    The one selection of due work per channel (a wake-up on new rows calls it too). On
    PostgreSQL the rows are locked with FOR UPDATE SKIP LOCKED, so instances claiming at the
    same moment get different rows, and the lease keeps them claimed after the commit; a
    row whose lease ran out (its sender died) is claimed again. SQLite has one writer at a
    time and one instance, so the same statements give the same guarantee there.
    """
    instance = instance or this_instance()
    free = or_(
        OutboxItem.lease_until.is_(None),
        OutboxItem.lease_until <= now,
        OutboxItem.claimed_by == instance,
    )
    query = (
        select(OutboxItem.id)
        .where(
            OutboxItem.channel == channel,
            OutboxItem.status == OutboxStatus.PENDING,
            OutboxItem.next_attempt_at <= now,
            free,
            *where,
        )
        .order_by(OutboxItem.importance, OutboxItem.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxItem)
    )
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.id.in_(ids))
            .values(claimed_by=instance, lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
    return ids


def renew_claim(
    session: Session,
    item_id: int,
    *,
    now: dt.datetime,
    instance: str | None = None,
    lease: dt.timedelta = LEASE,
) -> bool:
    """Just before sending: True (and a fresh lease) while the row is still this instance's.

    A sender slowed down past its lease (a slow SMTP server) may have lost the row to
    another instance; it then leaves the row alone instead of sending it a second time.
    """
    result = session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.id == item_id,
            OutboxItem.status == OutboxStatus.PENDING,
            OutboxItem.claimed_by == (instance or this_instance()),
        )
        .values(lease_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def earliest_pending(
    session: Session, channel: OutboxChannel, *, now: dt.datetime, instance: str | None = None
) -> dt.datetime | None:
    """When the next pending row of `channel` this instance may claim falls due (perhaps
    already): its sender sleeps until then instead of polling."""
    instance = instance or this_instance()
    free = or_(
        OutboxItem.lease_until.is_(None),
        OutboxItem.lease_until <= now,
        OutboxItem.claimed_by == instance,
    )
    return session.scalar(
        select(func.min(OutboxItem.next_attempt_at)).where(
            OutboxItem.channel == channel, OutboxItem.status == OutboxStatus.PENDING, free
        )
    )
