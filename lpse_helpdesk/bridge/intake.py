"""Turn one raw mail into a ticket, or join it to its ticket, in the caller's transaction.

A pipeline of small decisions (duplicate? our own? auto-reply? bounce? which ticket?)
followed by one place that acts: the workflow for state changes, the outbox for what
staff and users must be told. The IMAP side marks the mail handled only after this
transaction has committed.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.hygiene import MailClass, MailClassKind
from lpse_helpdesk.bridge.parsing import ParsedMail
from lpse_helpdesk.bridge.prepare import Prepared, prepare
from lpse_helpdesk.bridge.tags import find_ticket_number
from lpse_helpdesk.bridge.thanks import is_thanks_only
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import MailKind, Recipient, SendMail, State
from lpse_helpdesk.storage.models import (
    Attachment,
    Direction,
    FlaggedAddress,
    Message,
    MessageKind,
    OutboxItem,
    Ticket,
)
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    OPENED = "opened"  # a new ticket
    OPENED_LINKED = "opened_linked"  # a new ticket linked to an older one
    JOINED = "joined"  # added to its ticket (and the SOP action it causes applied)
    DUPLICATE = "duplicate"  # the same Message-ID was ingested before
    AUTO_REPLY = "auto_reply"  # recorded, never answered, never a ticket
    BOUNCE = "bounce"  # attached to the ticket whose mail bounced; address flagged
    OWN = "own"  # from our own address: ignored (kept)
    FLOOD = "flood"  # over the per-sender cap of new tickets: kept, staff told


@dataclass(frozen=True)
class IntakeResult:
    outcome: Outcome
    ticket_id: int | None
    message_pk: int | None
    reason: str = ""


@dataclass(frozen=True)
class IntakeConfig:
    helpdesk_addresses: frozenset[str]
    lkpp_address: str
    ticket_prefix: str = "LPSE"
    max_bytes: int = 25 * 1024 * 1024
    reopen_days: int = 7
    new_tickets_per_sender_per_hour: int = 10
    send_acknowledgement: bool = True


_SYSTEM = Actor.system()


class Intake:
    def __init__(self, workflow: Workflow, domain: DomainConfig, config: IntakeConfig) -> None:
        self.workflow = workflow
        self.domain = domain
        self.config = config
        self.lkpp = config.lkpp_address.lower()

    # --- the pipeline ----------------------------------------------------------------------

    def ingest(
        self,
        session: Session,
        raw: bytes,
        *,
        mailbox: str | None = None,
        uid: int | None = None,
        uidvalidity: int | None = None,
    ) -> IntakeResult:
        config = self.config
        prepared = prepare(raw, config.max_bytes, config.helpdesk_addresses, self.domain)
        return self.ingest_prepared(
            session, prepared, mailbox=mailbox, uid=uid, uidvalidity=uidvalidity
        )

    def ingest_prepared(
        self,
        session: Session,
        prepared: Prepared,
        *,
        mailbox: str | None = None,
        uid: int | None = None,
        uidvalidity: int | None = None,
    ) -> IntakeResult:
        mail, kind = prepared.mail, prepared.kind
        existing = self._duplicate(session, mail.message_id[:998])
        if existing is not None:
            return IntakeResult(Outcome.DUPLICATE, existing.ticket_id, existing.id)
        thread = self._thread_ticket(session, mail)
        now = self.workflow.clock.now()
        stored = _Stored(session, prepared, (mailbox, uidvalidity, uid), now, self.config)

        if kind.kind in (MailClassKind.OWN, MailClassKind.LOOP):
            message = stored.save(thread, MessageKind.HELPDESK, note=kind.reason)
            return IntakeResult(Outcome.OWN, message.ticket_id, message.id, kind.reason)
        if kind.kind is MailClassKind.AUTO_REPLY:
            message = stored.save(thread, MessageKind.AUTO_REPLY, note=kind.reason)
            return IntakeResult(Outcome.AUTO_REPLY, message.ticket_id, message.id, kind.reason)
        if kind.kind is MailClassKind.BOUNCE:
            return self._bounce(session, stored, kind, thread)

        from_lkpp = mail.from_address.lower() == self.lkpp
        linked: Ticket | None = None
        ticket = thread
        if ticket is None:
            ticket, linked = self._tagged_ticket(session, mail, from_lkpp)
        if ticket is not None and self._too_late(ticket):
            ticket, linked = None, ticket
        if ticket is not None:
            return self._join(session, stored, ticket, from_lkpp)
        return self._open(session, stored, linked)

    # --- decisions -------------------------------------------------------------------------

    @staticmethod
    def _duplicate(session: Session, message_id: str) -> Message | None:
        return session.scalars(
            select(Message).where(
                Message.message_id == message_id, Message.direction == Direction.IN
            )
        ).first()

    @staticmethod
    def _thread_ticket(session: Session, mail: ParsedMail) -> Ticket | None:
        """In-Reply-To first, then References right to left, against every stored id."""
        candidates = list(dict.fromkeys([*mail.in_reply_to, *reversed(mail.references)]))
        candidates = [c for c in candidates if c and c != mail.message_id][:50]
        if not candidates:
            return None
        found: dict[str, int] = {}
        queries = (
            select(Message.message_id, Message.ticket_id).where(
                Message.message_id.in_(candidates), Message.ticket_id.is_not(None)
            ),
            select(OutboxItem.message_id, OutboxItem.ticket_id).where(
                OutboxItem.message_id.in_(candidates), OutboxItem.ticket_id.is_not(None)
            ),
        )
        for query in queries:
            for message_id, ticket_id in session.execute(query):
                if message_id is not None and ticket_id is not None:
                    found.setdefault(message_id, ticket_id)
        for candidate in candidates:
            if candidate in found:
                return session.get(Ticket, found[candidate])
        return None

    def _tagged_ticket(
        self, session: Session, mail: ParsedMail, from_lkpp: bool
    ) -> tuple[Ticket | None, Ticket | None]:
        """(ticket, None) when the subject tag may be trusted, (None, ticket) to link only."""
        number = find_ticket_number(mail.subject, self.config.ticket_prefix)
        if number is None:
            return None, None
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).first()
        if ticket is None:
            return None, None
        sender = mail.from_address.lower()
        if from_lkpp or sender == ticket.requester_email:
            return ticket, None
        on_thread = any(
            sender == from_address.lower() or sender in (a.lower() for a in to_addresses)
            for from_address, to_addresses in session.execute(
                select(Message.from_address, Message.to_addresses).where(
                    Message.ticket_id == ticket.id
                )
            )
        )
        if on_thread:
            return ticket, None
        log.info("subject tag %s from an address not on the ticket: new linked ticket", number)
        return None, ticket

    def _too_late(self, ticket: Ticket) -> bool:
        """A closed ticket, or one resolved more than REOPEN_DAYS ago, is not reopened."""
        if ticket.state is State.CLOSED:
            return True
        if ticket.state is State.RESOLVED and ticket.resolved_at is not None:
            age = self.workflow.clock.now() - ticket.resolved_at
            return age > dt.timedelta(days=self.config.reopen_days)
        return False

    # --- actions ---------------------------------------------------------------------------

    def _join(
        self, session: Session, stored: _Stored, ticket: Ticket, from_lkpp: bool
    ) -> IntakeResult:
        kind = MessageKind.LKPP if from_lkpp else MessageKind.USER
        message = stored.save(ticket, kind)
        thanks = ticket.state is State.RESOLVED and is_thanks_only(
            stored.mail.stripped_text or stored.mail.text,
            new_attachments=sum(1 for a in stored.mail.attachments if not a.inline),
        )
        action = machine.mail_action(ticket.state, from_lkpp=from_lkpp, thanks=thanks)
        actor = Actor.email(stored.mail.from_address, stored.mail.from_name or None)
        if action is not None and machine.allowed(ticket.state, action):
            self.workflow.act(session, ticket.id, action, actor, message_pk=message.id)
        else:
            self._notice(session, ticket.id, machine.Notice.USER_MAIL, message.id)
        return IntakeResult(Outcome.JOINED, ticket.id, message.id)

    def _open(self, session: Session, stored: _Stored, linked: Ticket | None) -> IntakeResult:
        mail = stored.mail
        requester = mail.requester_address or mail.from_address
        if self._flooding(session, requester):
            message = stored.save(None, MessageKind.USER, note="flood: over the hourly cap")
            hour = stored.now.strftime("%Y%m%d%H")
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={"alert": "flood", "address": requester, "message": message.id},
                importance=Importance.SLA_ALERT,
                now=stored.now,
                dedup_key=f"flood:{requester}:{hour}",
            )
            return IntakeResult(Outcome.FLOOD, None, message.id, "flood")
        text = mail.stripped_text or mail.text
        suggestion = stored.prepared.suggestion
        ticket = self.workflow.open_ticket(
            session,
            NewTicket(
                requester_name=mail.requester_name[:255],
                requester_email=(requester or "(tanpa alamat)")[:320],
                subject=mail.subject,
                problem_text=text,
                received_at=stored.now,
                suggested_category=suggestion.category,
                suggested_priority=suggestion.priority,
                tender_codes=stored.prepared.tender_codes,
                phone_numbers=stored.prepared.phone_numbers,
                linked_ticket_id=linked.id if linked is not None else None,
            ),
            Actor.email(requester, mail.requester_name or None),
        )
        message = stored.save(ticket, MessageKind.USER)
        if self.config.send_acknowledgement:
            self._mail(session, ticket, MailKind.ACKNOWLEDGEMENT, message)
        if stored.omitted:
            self._mail(session, ticket, MailKind.ATTACHMENT_TOO_LARGE, message)
        if not text.strip() and not mail.attachments and mail.defects:
            # Nothing readable survived decoding: ask politely for the problem again.
            self._mail(session, ticket, MailKind.UNREADABLE_MAIL, message)
        outcome = Outcome.OPENED if linked is None else Outcome.OPENED_LINKED
        return IntakeResult(outcome, ticket.id, message.id)

    def _bounce(
        self, session: Session, stored: _Stored, kind: MailClass, thread: Ticket | None
    ) -> IntakeResult:
        ticket = thread
        if kind.bounced_message_ids:
            probe = stored.mail
            ticket = (
                self._thread_ticket(
                    session,
                    _with_ids(probe, kind.bounced_message_ids),
                )
                or ticket
            )
        message = stored.save(ticket, MessageKind.BOUNCE, note=kind.reason)
        if not kind.transient:
            for address in kind.failed_recipients:
                address = address.lower()
                if session.get(FlaggedAddress, address) is None:
                    session.add(
                        FlaggedAddress(
                            address=address,
                            reason=kind.reason[:500],
                            permanent=True,
                            ticket_id=ticket.id if ticket else None,
                            flagged_at=stored.now,
                        )
                    )
        if ticket is not None:
            enqueue_telegram(
                session,
                TelegramOp.NOTICE,
                ticket_id=ticket.id,
                payload={
                    "notice": "bounce",
                    "addresses": list(kind.failed_recipients),
                    "transient": kind.transient,
                    "message": message.id,
                },
                importance=Importance.NOTICE,
                now=stored.now,
            )
        return IntakeResult(Outcome.BOUNCE, ticket.id if ticket else None, message.id, kind.reason)

    def _flooding(self, session: Session, requester: str) -> bool:
        since = self.workflow.clock.now() - dt.timedelta(hours=1)
        recent = session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.requester_email == requester.lower(), Ticket.received_at > since)
        )
        return (recent or 0) >= self.config.new_tickets_per_sender_per_hour

    def _mail(self, session: Session, ticket: Ticket, kind: MailKind, answering: Message) -> None:
        self.workflow.mail.plan(
            session,
            ticket,
            SendMail(kind, Recipient.USER),
            text=None,
            actor=_SYSTEM,
            now=self.workflow.clock.now(),
            reply_to=answering,
        )

    def _notice(
        self, session: Session, ticket_id: int, notice: machine.Notice, message_pk: int
    ) -> None:
        enqueue_telegram(
            session,
            TelegramOp.NOTICE,
            ticket_id=ticket_id,
            payload={"notice": notice.value, "message": message_pk},
            importance=Importance.NOTICE,
            now=self.workflow.clock.now(),
        )


def _with_ids(mail: ParsedMail, ids: tuple[str, ...]) -> ParsedMail:
    """A copy of `mail` whose In-Reply-To is the bounced mail's ids (to find its ticket)."""
    import dataclasses

    return dataclasses.replace(mail, in_reply_to=ids, references=())


class _Stored:
    """Writes the mail's Message and Attachment rows."""

    def __init__(
        self,
        session: Session,
        prepared: Prepared,
        place: tuple[str | None, int | None, int | None],  # folder, UIDVALIDITY, UID
        now: dt.datetime,
        config: IntakeConfig,
    ) -> None:
        self.session = session
        self.prepared = prepared
        self.mail = prepared.mail
        self.raw = prepared.raw
        self.mailbox, self.uidvalidity, self.uid = place
        self.now = now
        self.config = config
        self.omitted = any(a.omitted_reason for a in prepared.mail.attachments)

    def save(self, ticket: Ticket | None, kind: MessageKind, *, note: str | None = None) -> Message:
        mail = self.mail
        raw = self.raw
        notes = [note] if note else []
        if len(raw) > self.config.max_bytes:
            # The headers and text are kept; the full original stays on the mail server.
            head, _, _ = raw.partition(b"\r\n\r\n")
            if head == raw:
                head, _, _ = raw.partition(b"\n\n")
            raw = head
            notes.append(f"original of {len(self.raw)} bytes kept on the server only")
        message = Message(
            ticket_id=ticket.id if ticket is not None else None,
            direction=Direction.IN,
            kind=kind,
            message_id=mail.message_id[:998],
            in_reply_to=mail.in_reply_to[0][:998] if mail.in_reply_to else None,
            references=list(mail.references),
            from_address=mail.from_address[:320],
            from_name=mail.from_name[:255],
            to_addresses=[*mail.to, *mail.cc],
            subject=mail.subject,
            text=mail.text,
            stripped_text=mail.stripped_text,
            raw=raw,
            size=mail.size,
            at=self.now,
            mailbox=self.mailbox,
            uid=self.uid,
            uidvalidity=self.uidvalidity,
            note="; ".join(notes) or None,
        )
        self.session.add(message)
        self.session.flush()
        for index, attachment in enumerate(mail.attachments):
            self.session.add(
                Attachment(
                    message_id=message.id,
                    filename=attachment.filename[:255],
                    content_type=attachment.content_type[:255],
                    size=attachment.size,
                    inline=attachment.inline,
                    content_id=(attachment.content_id or None) and attachment.content_id[:998],
                    part_index=index,
                    omitted_reason=attachment.omitted_reason,
                )
            )
        return message
