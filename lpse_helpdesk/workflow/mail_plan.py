"""Turn a SendMail effect into an outbox row: recipient, thread, fixed Message-ID, snapshot.

The mail is rendered when it is sent, from the snapshot written here, so that what the
user receives is what was decided at the time of the action, and a retry after a crash
sends the same Message-ID again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.compose import AUTOMATIC_KINDS, make_message_id
from lpse_helpdesk.bridge.loops import over_hourly_cap, refusal_reason
from lpse_helpdesk.bridge.parsing import normalise_message_id
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import MailKind, Recipient, SendMail
from lpse_helpdesk.storage.models import (
    Direction,
    FlaggedAddress,
    Message,
    MessageKind,
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    Ticket,
)
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.batch import lookups
from lpse_helpdesk.workflow.outbox import enqueue_mail
from lpse_helpdesk.workflow.signatures import OfficialName, official_name

#: Mails that carry what staff wrote: they are signed by the officer and take attachments.
STAFF_MAILS = frozenset(
    {MailKind.DATA_REQUEST, MailKind.SOLUTION, MailKind.LKPP_FORWARD, MailKind.LKPP_ANSWER_RELAY}
)


class MailPlanner(Protocol):
    def plan(
        self,
        session: Session,
        ticket: Ticket,
        effect: SendMail,
        *,
        text: str | None,
        actor: Actor,
        now: dt.datetime,
        reply_to: Message | None = None,
        extras: Mapping[str, object] | None = None,
    ) -> OutboxItem: ...

    def draft(
        self,
        session: Session,
        ticket: Ticket,
        effect: SendMail,
        *,
        text: str | None,
        actor: Actor,
        extras: Mapping[str, object] | None = None,
    ) -> dict[str, Any]: ...

    def recipient(self, ticket: Ticket, effect: SendMail) -> str: ...

    def signer(self, session: Session, actor: Actor) -> OfficialName | None: ...


def new_message_id(address: str) -> str:
    """A unique Message-ID in our own domain, stored without angle brackets."""
    return normalise_message_id(make_message_id(address.rpartition("@")[2]))


@dataclass(frozen=True)
class Addresses:
    helpdesk: str
    lkpp: str
    #: Other addresses that are ours (aliases); mail to them would loop.
    aliases: frozenset[str] = field(default_factory=frozenset)

    @property
    def own(self) -> frozenset[str]:
        return frozenset({self.helpdesk.lower(), *(a.lower() for a in self.aliases)})


class OutboxMailPlanner:
    """Writes mails for the outbound bridge to render and send."""

    def __init__(
        self,
        domain: DomainConfig,
        addresses: Addresses,
        *,
        auto_mail_per_hour: int = 5,
        staff_names: Mapping[int, OfficialName] | None = None,
    ) -> None:
        self.domain = domain
        self.addresses = addresses
        self.auto_mail_per_hour = auto_mail_per_hour
        self.staff_names = dict(staff_names or {})

    def plan(
        self,
        session: Session,
        ticket: Ticket,
        effect: SendMail,
        *,
        text: str | None,
        actor: Actor,
        now: dt.datetime,
        reply_to: Message | None = None,
        extras: Mapping[str, object] | None = None,
    ) -> OutboxItem:
        """`reply_to`: the mail being answered, when the caller has it at hand.

        The signature carries the officer's official name (never the Telegram display
        name); `extras["attachments"]`: the officer's files, for mails that carry staff text.
        """
        to = self.recipient(ticket, effect)
        payload = self.draft(session, ticket, effect, text=text, actor=actor, extras=extras)
        if reply_to is not None:
            payload.update(_thread_of(reply_to))
        else:
            payload.update(self.thread(session, ticket, effect.to))
        refusal = self.refusal(session, to, effect.kind, now)
        item = enqueue_mail(
            session,
            kind=effect.kind.value,
            ticket_id=ticket.id,
            recipient=to,
            message_id=new_message_id(self.addresses.helpdesk),
            payload=payload,
            now=now,
        )
        if refusal is not None:
            # Kept for the record (and shown to staff), never sent.
            item.status = OutboxStatus.CANCELLED
            item.last_error = refusal
            item.done_at = now
        batch = lookups(session)
        if batch is not None and effect.kind in AUTOMATIC_KINDS:
            batch.queued_mail(item)
        return item

    def recipient(self, ticket: Ticket, effect: SendMail) -> str:
        return self.addresses.lkpp if effect.to is Recipient.LKPP else ticket.requester_email

    def signer(self, session: Session, actor: Actor) -> OfficialName | None:
        """Who signs what `actor` writes: the official name, or None (no personal name)."""
        return official_name(session, actor, self.staff_names)

    def draft(
        self,
        session: Session,
        ticket: Ticket,
        effect: SendMail,
        *,
        text: str | None,
        actor: Actor,
        extras: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """What the mail will say (its snapshot), without threading: also the preview's."""
        signer = self.signer(session, actor)
        payload: dict[str, Any] = {
            "staff_text": text,
            "staff_name": signer.name if signer else None,
            "staff_position": signer.position if signer else None,
            "completes": effect.completes.value if effect.completes else None,
            "category": self.domain.category_label(ticket.category or ticket.suggested_category),
            "priority": self.domain.priority_label(ticket.priority),
        }
        if effect.kind is MailKind.LKPP_FORWARD:
            payload["original_message_pk"] = self.first_user_message(session, ticket.id)
        if effect.kind is MailKind.ACKNOWLEDGEMENT:
            # What the user may expect: the resolution time of each priority.
            payload["service_times"] = [
                f"{p.label.lower()} {p.resolve_within}" for p in self.domain.priorities
            ]
        if effect.kind is MailKind.LKPP_ANSWER_RELAY:
            payload["lkpp_answer_text"] = self.last_lkpp_answer(session, ticket.id)
        attachments = (extras or {}).get("attachments")
        if effect.kind in STAFF_MAILS and isinstance(attachments, list) and attachments:
            payload["staff_attachments"] = [int(a) for a in attachments]
        return payload

    def refusal(self, session: Session, to: str, kind: MailKind, now: dt.datetime) -> str | None:
        """Why a mail must not go to `to`: loop rules, bounced address, hourly cap."""
        reason = refusal_reason(to, own_addresses=self.addresses.own)
        if reason is not None:
            return reason
        if kind not in AUTOMATIC_KINDS:
            return None  # a person wrote it: staff decide, even after a bounce
        batch = lookups(session)
        flagged = batch.is_flagged(to) if batch is not None else None
        if flagged is None:
            flagged = session.get(FlaggedAddress, to.lower()) is not None
        if flagged:
            return "address flagged after a bounce"
        sent = batch.automatic_mail_times(to, now) if batch is not None else None
        if sent is None:
            sent = list(
                session.scalars(
                    select(OutboxItem.created_at).where(
                        OutboxItem.channel == OutboxChannel.MAIL,
                        OutboxItem.recipient == to,
                        OutboxItem.kind.in_([k.value for k in AUTOMATIC_KINDS]),
                        OutboxItem.status != OutboxStatus.CANCELLED,
                        OutboxItem.created_at > now - dt.timedelta(hours=1),
                    )
                )
            )
        if over_hourly_cap(sent, now, self.auto_mail_per_hour):
            return f"more than {self.auto_mail_per_hour} automatic mails to this address per hour"
        return None

    def thread(self, session: Session, ticket: Ticket, to: Recipient) -> dict[str, Any]:
        """In-Reply-To and References so the mail lands in the recipient's thread."""
        kinds = (MessageKind.LKPP,) if to is Recipient.LKPP else (MessageKind.USER,)
        last = session.scalars(
            select(Message)
            .where(
                Message.ticket_id == ticket.id,
                Message.direction == Direction.IN,
                Message.kind.in_(kinds),
            )
            .order_by(Message.id.desc())
        ).first()
        if last is None and to is Recipient.LKPP:
            # Our own last mail to LKPP, so follow-ups stay in LKPP's thread.
            sent = session.scalars(
                select(Message)
                .where(Message.ticket_id == ticket.id, Message.direction == Direction.OUT)
                .order_by(Message.id.desc())
            )
            lkpp = self.addresses.lkpp.lower()
            last = next((m for m in sent if lkpp in (a.lower() for a in m.to_addresses)), None)
        if last is None:
            return {"in_reply_to": None, "references": []}
        return _thread_of(last)

    @staticmethod
    def last_lkpp_answer(session: Session, ticket_id: int) -> str:
        message = session.scalars(
            select(Message)
            .where(Message.ticket_id == ticket_id, Message.kind == MessageKind.LKPP)
            .order_by(Message.id.desc())
        ).first()
        if message is None:
            return "(Jawaban Helpdesk LKPP tidak tersimpan sebagai e-mail.)"
        return message.stripped_text or message.text

    @staticmethod
    def first_user_message(session: Session, ticket_id: int) -> int | None:
        return session.scalar(
            select(Message.id)
            .where(Message.ticket_id == ticket_id, Message.direction == Direction.IN)
            .order_by(Message.id)
            .limit(1)
        )


def _thread_of(message: Message) -> dict[str, Any]:
    return {
        "in_reply_to": message.message_id,
        "references": [*message.references, message.message_id],
    }
