"""A letter's facts from the database: the MailContext of an outbox mail, and its preview.

The mail sender and the bot's preview build the letter the same way, so what staff see
before pressing Kirim is what the user receives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.compose import (
    MailContext,
    StaffAttachment,
    compose,
    make_message_id,
    subject_for,
)
from lpse_helpdesk.bridge.salutation import organisation
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.sop.machine import MailKind
from lpse_helpdesk.storage.models import Attachment, Direction, Message, ReplyAttachment, Ticket
from lpse_helpdesk.timekeeping.localtime import long_datetime

__all__ = ["Letterhead", "Preview", "mail_context", "preview", "staff_attachments"]


@dataclass(frozen=True)
class Letterhead:
    """The helpdesk's side of every letter (settings)."""

    helpdesk_address: str
    helpdesk_name: str
    lpse_name: str
    timezone: ZoneInfo
    helpdesk_phone: str | None = None
    helpdesk_hours: str | None = None
    application: str | None = "SPSE"
    max_bytes: int = 25 * 1024 * 1024


@dataclass(frozen=True)
class Preview:
    kind: MailKind
    recipient: str
    subject: str
    text: str
    attachment_names: tuple[str, ...]


def staff_attachments(session: Session, payload: Mapping[str, Any]) -> list[StaffAttachment]:
    ids = [int(i) for i in payload.get("staff_attachments") or []]
    if not ids:
        return []
    rows = session.scalars(
        select(ReplyAttachment).where(ReplyAttachment.id.in_(ids)).order_by(ReplyAttachment.id)
    ).all()
    return [StaffAttachment(r.filename, r.content_type, r.data) for r in rows]


def mail_context(
    session: Session,
    ticket: Ticket,
    payload: Mapping[str, Any],
    head: Letterhead,
    *,
    attachment_names: tuple[str, ...] = (),
) -> MailContext:
    first = session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.IN)
        .order_by(Message.id)
        .limit(1)
    ).first()
    attachments = (
        session.scalars(select(Attachment).where(Attachment.message_id == first.id)).all()
        if first is not None
        else []
    )
    return MailContext(
        ticket_number=ticket.number,
        requester_name=ticket.requester_name,
        requester_address=ticket.requester_email,
        subject=ticket.subject,
        problem_text=ticket.problem_text,
        lpse_name=head.lpse_name,
        helpdesk_name=head.helpdesk_name,
        helpdesk_address=head.helpdesk_address,
        received_at_local=long_datetime(ticket.received_at, head.timezone),
        category_label=payload.get("category"),
        priority_label=payload.get("priority"),
        tender_codes=tuple(ticket.tender_codes),
        staff_text=payload.get("staff_text"),
        staff_name=payload.get("staff_name"),
        staff_position=payload.get("staff_position"),
        requester_organization=organisation(ticket.requester_name),
        requester_phone=ticket.phone_numbers[0] if ticket.phone_numbers else None,
        helpdesk_phone=head.helpdesk_phone,
        helpdesk_hours=head.helpdesk_hours,
        application=head.application,
        attachment_names=tuple(a.filename for a in attachments if not a.inline),
        lkpp_answer_text=payload.get("lkpp_answer_text"),
        attachment_limit=f"{head.max_bytes // (1024 * 1024)} MB",
        oversized_attachments=tuple(a.filename for a in attachments if a.omitted_reason),
        staff_attachment_names=attachment_names,
        service_times=tuple(str(t) for t in payload.get("service_times") or ()),
        escalated_at_local=(
            long_datetime(ticket.escalated_at, head.timezone) if ticket.escalated_at else None
        ),
    )


def preview(
    session: Session,
    ticket: Ticket,
    kind: MailKind,
    recipient: str,
    payload: Mapping[str, Any],
    head: Letterhead,
    renderer: Renderer,
    now: dt.datetime,
) -> Preview:
    """The mail as it would go out now (the same templates and checks as the sender)."""
    files = staff_attachments(session, payload)
    names = tuple(f.filename for f in files)
    context = mail_context(session, ticket, payload, head, attachment_names=names)
    domain = head.helpdesk_address.rpartition("@")[2] or "localhost"
    message = compose(
        kind,
        context,
        to=recipient,
        message_id=make_message_id(domain),
        in_reply_to=None,
        references=[],
        date=now,
        renderer=renderer,
    )
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return Preview(kind, recipient, subject_for(kind, context), str(text), names)
