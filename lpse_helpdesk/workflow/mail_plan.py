"""Turn a SendMail effect into an outbox row: recipient, thread, fixed Message-ID, snapshot.

The mail is rendered when it is sent, from the snapshot written here, so that what the
user receives is what was decided at the time of the action, and a retry after a crash
sends the same Message-ID again.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import MailKind, Recipient, SendMail
from lpse_helpdesk.storage.models import Direction, Message, MessageKind, Ticket
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.outbox import enqueue_mail


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
    ) -> None: ...


def new_message_id(address: str) -> str:
    """A unique Message-ID in our own domain, e.g. <20261128.ab12...@lpse.example.go.id>."""
    domain = address.rpartition("@")[2] or "lpse-helpdesk.invalid"
    return f"<{secrets.token_hex(12)}@{domain}>"


@dataclass(frozen=True)
class Addresses:
    helpdesk: str
    lkpp: str


class OutboxMailPlanner:
    """Writes mails for the outbound bridge to render and send."""

    def __init__(self, domain: DomainConfig, addresses: Addresses) -> None:
        self.domain = domain
        self.addresses = addresses

    def plan(
        self,
        session: Session,
        ticket: Ticket,
        effect: SendMail,
        *,
        text: str | None,
        actor: Actor,
        now: dt.datetime,
    ) -> None:
        to = self.addresses.lkpp if effect.to is Recipient.LKPP else ticket.requester_email
        payload: dict[str, Any] = {
            "staff_text": text,
            "staff_name": actor.name,
            "completes": effect.completes.value if effect.completes else None,
            "category": self.domain.category_label(ticket.category or ticket.suggested_category),
            "priority": self.domain.priority_label(ticket.priority),
        }
        payload.update(self.thread(session, ticket, effect.to))
        if effect.kind is MailKind.LKPP_FORWARD:
            payload["original_message_pk"] = self.first_user_message(session, ticket.id)
        enqueue_mail(
            session,
            kind=effect.kind.value,
            ticket_id=ticket.id,
            recipient=to,
            message_id=new_message_id(self.addresses.helpdesk),
            payload=payload,
            now=now,
        )

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
            last = session.scalars(
                select(Message)
                .where(
                    Message.ticket_id == ticket.id,
                    Message.direction == Direction.OUT,
                    Message.to_addresses.is_not(None),
                )
                .order_by(Message.id.desc())
            ).first()
            if last is not None and self.addresses.lkpp not in last.to_addresses:
                last = None
        if last is None:
            return {"in_reply_to": None, "references": []}
        return {"in_reply_to": last.message_id, "references": [*last.references, last.message_id]}

    @staticmethod
    def first_user_message(session: Session, ticket_id: int) -> int | None:
        return session.scalar(
            select(Message.id)
            .where(Message.ticket_id == ticket_id, Message.direction == Direction.IN)
            .order_by(Message.id)
            .limit(1)
        )
