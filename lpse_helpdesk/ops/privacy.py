"""Personal data under UU 27/2022 (PDP): retention, export for one person, erasure.

Masking keeps what the recap needs (ticket numbers, states, categories, priorities, dates
and SOP clocks) and removes what identifies a person: the raw mails with their
attachments, names, e-mail addresses, phone numbers and NIK in every stored text.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import zipfile
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    Attachment,
    AuditEvent,
    Channel,
    FailedMail,
    FlaggedAddress,
    MailPreview,
    Message,
    MessageKind,
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.worker import PollingWorker

log = logging.getLogger(__name__)

MASK = "[disamarkan]"
MASKED_ADDRESS = "disamarkan@invalid"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w])(?:\+62|62|0)[\s.-]?\d{2,4}(?:[\s.-]?\d{2,5}){1,3}(?![\w])")
_NIK = re.compile(r"(?<!\d)\d{16}(?!\d)")
#: The retention job looks for work this often.
RETENTION_CHECK_SECONDS = 6 * 3600.0
DONE_STATES = (State.CLOSED, State.RESOLVED)


def mask_text(text: str, names: Iterable[str] = ()) -> str:
    """Mask e-mail addresses, phone numbers, NIK and the given names in `text`."""
    if not text:
        return text
    text = _EMAIL.sub(MASK, text)
    text = _NIK.sub(MASK, text)
    text = _PHONE.sub(MASK, text)
    for name in sorted({n.strip() for n in names if len(n.strip()) >= 3}, key=len, reverse=True):
        text = re.sub(re.escape(name), MASK, text, flags=re.IGNORECASE)
    return text


def _mask_json(value: Any, names: Iterable[str]) -> Any:
    if isinstance(value, str):
        return mask_text(value, names)
    if isinstance(value, list):
        return [_mask_json(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _mask_json(v, names) for k, v in value.items()}
    return value


def _names(ticket: Ticket, messages: list[Message]) -> list[str]:
    names = [ticket.requester_name, *(m.from_name for m in messages)]
    return [n for n in names if n]


def _sending(ticket_id: Any) -> Any:
    """The ticket still has a mail waiting in the outbox (it must go out as written)."""
    return exists().where(
        OutboxItem.ticket_id == ticket_id,
        OutboxItem.channel == OutboxChannel.MAIL,
        OutboxItem.status == OutboxStatus.PENDING,
    )


def mask_ticket(session: Session, ticket: Ticket, now: dt.datetime) -> bool:
    """Drop the raw mails and attachments of one ticket; mask its texts. Idempotent.

    A mail still waiting in the outbox is left as it is (it must still go out, and its sent
    copy is stored as sent): the ticket is then not marked masked, and True is returned only
    once no such mail was left. A Telegram message still waiting is masked: staff then see
    the card of an erased person masked, as everywhere else."""
    messages = list(session.scalars(select(Message).where(Message.ticket_id == ticket.id)))
    names = _names(ticket, messages)
    _mask_messages(session, messages, names)
    ticket.subject = mask_text(ticket.subject, names)
    ticket.problem_text = mask_text(ticket.problem_text, names)
    ticket.solution = mask_text(ticket.solution, names) if ticket.solution else ticket.solution
    ticket.remarks = mask_text(ticket.remarks, names) if ticket.remarks else ticket.remarks
    ticket.requester_name = ""
    ticket.requester_email = MASKED_ADDRESS
    ticket.phone_numbers = []
    complete = not session.scalar(select(_sending(ticket.id)))
    if complete:
        ticket.masked_at = now
    for item in session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id)):
        if item.status is not OutboxStatus.PENDING:
            item.payload = {}
            if item.recipient and item.kind != "lkpp_forward":
                item.recipient = MASKED_ADDRESS
        elif item.channel is OutboxChannel.TELEGRAM:
            item.payload = _mask_json(item.payload, names)
    for preview in session.scalars(select(MailPreview).where(MailPreview.ticket_id == ticket.id)):
        preview.text = mask_text(preview.text, names)
    for event in session.scalars(select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)):
        event.detail = _mask_json(event.detail, names)
        if event.channel is Channel.EMAIL:
            event.actor_id = MASKED_ADDRESS
            event.actor_name = ""
    return complete


def apply_retention(session: Session, now: dt.datetime, days: int) -> int:
    """Mask every ticket done for longer than `days`, and finish the erasures `data erase`
    left to the outbox; drop old quarantined raw mail."""
    cutoff = now - dt.timedelta(days=days)
    done_at = func.coalesce(Ticket.closed_at, Ticket.resolved_at)
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.state.in_(DONE_STATES),
                Ticket.masked_at.is_(None),
                or_(done_at < cutoff, Ticket.erase_requested_at.is_not(None)),
                ~_sending(Ticket.id),  # the next round, once its outbox has gone out
            )
            .order_by(Ticket.id)
            .limit(500)
        )
    )
    for ticket in tickets:
        mask_ticket(session, ticket, now)
    for failed in session.scalars(select(FailedMail).where(FailedMail.updated_at < cutoff)):
        session.delete(failed)
    for message in session.scalars(
        select(Message).where(Message.ticket_id.is_(None), Message.at < cutoff, Message.size > 0)
    ):
        _mask_loose_message(session, message)
    if tickets:
        session.add(
            AuditEvent(
                ticket_id=None,
                at=now,
                channel=Channel.SYSTEM,
                action="retention_applied",
                detail={"tickets": len(tickets), "days": days},
            )
        )
    return len(tickets)


def _mask_messages(session: Session, messages: list[Message], names: list[str]) -> None:
    """The raw mails and attachment names go; names, addresses, phones and NIK are masked.

    Our own address and LKPP's are kept (they identify no person); every other address a
    mail came from or went to (the requester, a colleague in CC) is masked."""
    kept = {m.from_address.lower() for m in messages if m.from_address and _ours_or_lkpp(m)}
    for message in messages:
        message.raw, message.size = b"", 0
        message.text = mask_text(message.text, names)
        message.stripped_text = mask_text(message.stripped_text, names)
        message.subject = mask_text(message.subject, names)
        message.from_name = ""
        if message.from_address and not _ours_or_lkpp(message):
            message.from_address = MASKED_ADDRESS
        message.to_addresses = [
            a if a.lower() in kept else MASKED_ADDRESS for a in message.to_addresses
        ]
        for attachment in session.scalars(
            select(Attachment).where(Attachment.message_id == message.id)
        ):
            attachment.filename = ""
            attachment.part_index = None
            attachment.content_id = None
            attachment.omitted_reason = "dihapus (retensi data pribadi)"


def _ours_or_lkpp(message: Message) -> bool:
    return message.kind in (MessageKind.HELPDESK, MessageKind.LKPP)


def _mask_loose_message(session: Session, message: Message) -> None:
    """A stored mail without a ticket (a bounce, an auto-reply, our own mail seen again)."""
    _mask_messages(session, [message], [message.from_name] if message.from_name else [])


def _person_tickets(session: Session, address: str) -> list[Ticket]:
    address = address.strip().lower()
    from_them = select(Message.ticket_id).where(func.lower(Message.from_address) == address)
    return list(
        session.scalars(
            select(Ticket)
            .where(or_(func.lower(Ticket.requester_email) == address, Ticket.id.in_(from_them)))
            .order_by(Ticket.id)
        )
    )


def _failed_mails_of(session: Session, address: str) -> list[FailedMail]:
    """The mails not processed (retried, or quarantined) that name `address` anywhere: they
    are kept only raw, so the raw bytes are searched (the table is small)."""
    needle = address.strip().lower().encode()
    return [f for f in session.scalars(select(FailedMail)) if needle in f.raw.lower()]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_person(session: Session, address: str) -> bytes:
    """A zip of everything held about `address`: data.json and the raw mails (.eml)."""
    address = address.strip().lower()
    buffer = io.BytesIO()
    tickets = _person_tickets(session, address)
    data: dict[str, Any] = {"email": address, "tickets": [], "mails_without_ticket": []}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:

        def message_entry(message: Message) -> dict[str, Any]:
            name = None
            if message.raw:
                name = f"mails/{message.id}.eml"
                archive.writestr(name, message.raw)
            attachments = session.scalars(
                select(Attachment.filename).where(Attachment.message_id == message.id)
            ).all()
            return {
                "direction": message.direction.value,
                "message_id": message.message_id,
                "from": message.from_address,
                "from_name": message.from_name,
                "to": message.to_addresses,
                "subject": message.subject,
                "at": _iso(message.at),
                "text": message.stripped_text or message.text,
                "attachments": [filename for filename in attachments if filename],
                "raw_file": name,
            }

        for ticket in tickets:
            messages = session.scalars(
                select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
            ).all()
            events = session.scalars(
                select(AuditEvent).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.id)
            ).all()
            data["tickets"].append(
                {
                    "number": ticket.number,
                    "state": ticket.state.value,
                    "requester_name": ticket.requester_name,
                    "requester_email": ticket.requester_email,
                    "subject": ticket.subject,
                    "problem": ticket.problem_text,
                    "solution": ticket.solution,
                    "remarks": ticket.remarks,
                    "phone_numbers": ticket.phone_numbers,
                    "received_at": _iso(ticket.received_at),
                    "closed_at": _iso(ticket.closed_at),
                    "masked_at": _iso(ticket.masked_at),
                    "messages": [message_entry(m) for m in messages],
                    "history": [
                        {
                            "at": _iso(e.at),
                            "action": e.action,
                            "to_state": e.to_state,
                            "detail": e.detail,
                        }
                        for e in events
                    ],
                }
            )
        for message in session.scalars(
            select(Message).where(
                Message.ticket_id.is_(None), func.lower(Message.from_address) == address
            )
        ):
            data["mails_without_ticket"].append(message_entry(message))
        data["mails_not_processed"] = []
        for failed in _failed_mails_of(session, address):
            name = f"not_processed/{failed.id}.eml"
            archive.writestr(name, failed.raw)
            data["mails_not_processed"].append(
                {
                    "received_at": _iso(failed.created_at),
                    "quarantined": failed.quarantined,
                    "reason": failed.last_error,
                    "raw_file": name,
                }
            )
        flagged = session.get(FlaggedAddress, address)
        data["flagged_address"] = (
            {"reason": flagged.reason, "at": _iso(flagged.flagged_at)} if flagged else None
        )
        archive.writestr("data.json", json.dumps(data, indent=2, ensure_ascii=False))
    return buffer.getvalue()


class Erasure(NamedTuple):
    masked: int  # tickets masked now
    still_open: list[str]  # numbers of tickets still being handled: left until they are done
    finishing: list[str]  # masked but for what waits in the outbox: retention finishes them


def erase_person(session: Session, address: str, now: dt.datetime, actor: str) -> Erasure:
    """Mask the closed tickets of `address` now (audited)."""
    address = address.strip().lower()
    masked, still_open, finishing = 0, [], []
    for ticket in _person_tickets(session, address):
        if ticket.state not in DONE_STATES:
            still_open.append(ticket.number)
            continue
        if ticket.masked_at is None:
            ticket.erase_requested_at = ticket.erase_requested_at or now
            if mask_ticket(session, ticket, now):
                masked += 1
            else:
                finishing.append(ticket.number)
    for message in session.scalars(
        select(Message).where(
            Message.ticket_id.is_(None), func.lower(Message.from_address) == address
        )
    ):
        _mask_loose_message(session, message)
    # A mail that could not be processed (retried or quarantined) is kept raw only: it goes.
    not_processed = _failed_mails_of(session, address)
    for failed in not_processed:
        session.delete(failed)
    flagged = session.get(FlaggedAddress, address)
    if flagged is not None:
        session.delete(flagged)
    session.add(
        AuditEvent(
            ticket_id=None,
            at=now,
            channel=Channel.CLI,
            actor_id=actor,
            action="personal_data_erased",
            detail={
                "tickets": masked,
                "open": still_open,
                "finishing": finishing,
                "not_processed": len(not_processed),
            },
        )
    )
    return Erasure(masked, still_open, finishing)


class RetentionService(PollingWorker):
    """Piece (the retention role): applies RETENTION_DAYS a few times a day."""

    name = "retention"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        days: int,
        *,
        check_seconds: float = RETENTION_CHECK_SECONDS,
    ) -> None:
        super().__init__()
        self.db = db
        self.clock = clock
        self.days = days
        self.poll_seconds = check_seconds

    async def work_once(self) -> bool:
        """Mask one batch of expired tickets; True while there are more."""
        count = await self.db.run(lambda s: apply_retention(s, self.clock.now(), self.days))
        if count:
            log.info("retention: masked %d tickets older than %d days", count, self.days)
        return bool(count) and not self.stopping
