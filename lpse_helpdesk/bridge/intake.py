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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.compose import AUTOMATIC_KINDS
from lpse_helpdesk.bridge.copies import remember_copy
from lpse_helpdesk.bridge.dedup import dedup_key
from lpse_helpdesk.bridge.flags import flag_address
from lpse_helpdesk.bridge.hygiene import MailClass, MailClassKind
from lpse_helpdesk.bridge.parsing import ParsedMail
from lpse_helpdesk.bridge.prepare import Prepared, prepare
from lpse_helpdesk.bridge.tags import find_ticket_number
from lpse_helpdesk.bridge.thanks import is_thanks_only
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import MailKind, Recipient, SendMail, State
from lpse_helpdesk.storage.ids import assign_id
from lpse_helpdesk.storage.models import (
    Attachment,
    Direction,
    FlaggedAddress,
    Message,
    MessageKind,
    OutboxChannel,
    OutboxItem,
    SlaClock,
    Ticket,
)
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.batch import HOUR, BatchLookups, attach, lookups
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow, lock_ticket

log = logging.getLogger(__name__)

#: Session.info key: during a batch (`Intake.expect_batch`), the dedup keys and Message-IDs
#: that may be stored already; a mail matching neither is new without a query.
_MAYBE_STORED = "intake_maybe_stored"
#: Session.info key: during a batch, each mail's dedup key by id() of its ParsedMail.
_KEYS = "intake_dedup_keys"


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


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
#: A Date header further than this from our clock is not a plausible arrival time.
PLAUSIBLE_DATE_SKEW = dt.timedelta(days=3)
#: A bounce flags an address we mailed within this time (when it names no mail of ours).
BOUNCE_LOOKBACK = dt.timedelta(days=14)


def arrival_time(
    internaldate: dt.datetime | None, header_date: dt.datetime | None, now: dt.datetime
) -> dt.datetime:
    """When the mail reached the mailbox: the server's INTERNALDATE; without one the Date
    header when it is plausible (not in the future, not days before now); else now.

    A time after ``now`` (a server clock ahead of ours) is taken as now: nothing arrives in
    the future, and an SLA clock must not start later than the ticket is seen.
    """
    if internaldate is not None:
        return min(internaldate.astimezone(dt.UTC), now)
    if header_date is not None and now - PLAUSIBLE_DATE_SKEW <= header_date <= now + dt.timedelta(
        hours=1
    ):
        return min(header_date, now)
    return now


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
        internaldate: dt.datetime | None = None,
        imported: bool = False,
    ) -> IntakeResult:
        config = self.config
        prepared = prepare(raw, config.max_bytes, config.helpdesk_addresses, self.domain)
        return self.ingest_prepared(
            session,
            prepared,
            mailbox=mailbox,
            uid=uid,
            uidvalidity=uidvalidity,
            internaldate=internaldate,
            imported=imported,
        )

    def ingest_prepared(
        self,
        session: Session,
        prepared: Prepared,
        *,
        mailbox: str | None = None,
        uid: int | None = None,
        uidvalidity: int | None = None,
        internaldate: dt.datetime | None = None,
        imported: bool = False,
    ) -> IntakeResult:
        """`internaldate`: the server's arrival time; `imported`: history brought in by
        ``lpse-helpdesk import`` (no acknowledgement, no SLA clocks, no card of its own)."""
        mail, kind = prepared.mail, prepared.kind
        keys: dict[int, str] = session.info.get(_KEYS, {})
        key = keys.get(id(mail)) or dedup_key(mail)
        message_id = mail.message_id[:998]
        maybe = session.info.get(_MAYBE_STORED)
        if maybe is None or key in maybe or message_id in maybe:
            existing = self._duplicate(session, message_id, key)
            if existing is not None:
                if not imported:  # an import leaves the server's mail as it is
                    self._remember_copy(session, mailbox, uidvalidity, uid)
                return IntakeResult(Outcome.DUPLICATE, existing.ticket_id, existing.id)
        if maybe is not None:
            maybe.update((key, message_id))  # a copy later in the same batch is looked up
        thread = self._thread_ticket(session, mail)
        arrived = arrival_time(internaldate, mail.date, self.workflow.clock.now())
        stored = _Stored(session, prepared, (mailbox, uidvalidity, uid), arrived, self.config)
        stored.dedup_key = key
        stored.imported = imported

        if kind.kind in (MailClassKind.OWN, MailClassKind.LOOP):
            message = stored.save(thread, MessageKind.HELPDESK, note=kind.reason)
            return IntakeResult(Outcome.OWN, message.ticket_id, message.id, kind.reason)
        if kind.kind is MailClassKind.AUTO_REPLY:
            message = stored.save(thread, MessageKind.AUTO_REPLY, note=kind.reason)
            return IntakeResult(Outcome.AUTO_REPLY, message.ticket_id, message.id, kind.reason)
        if kind.kind is MailClassKind.BOUNCE:
            return self._bounce(session, stored, kind, thread)

        if not imported:
            self._unflag(session, mail.from_address)
        lkpp_sender = mail.from_address.lower() == self.lkpp
        from_lkpp = lkpp_sender and self._verified_lkpp(session, mail)
        if lkpp_sender and not from_lkpp:
            stored.notes.append(UNVERIFIED_LKPP)
        requester = (mail.requester_address or mail.from_address).lower()
        if mail.reply_to_address and mail.reply_to_address.lower() != requester:
            stored.notes.append(REPLY_TO_NOT_USED + mail.reply_to_address[:320])
        linked: Ticket | None = None
        ticket = thread
        if ticket is None:
            ticket, linked = self._tagged_ticket(session, mail, lkpp_sender)
        if ticket is not None and self._too_late(ticket):
            ticket, linked = None, ticket
        if ticket is not None:
            return self._join(session, stored, ticket, from_lkpp, locked=ticket is thread)
        return self._open(session, stored, linked)

    def expect_batch(
        self, session: Session, batch: Sequence[tuple[Prepared, dt.datetime | None]]
    ) -> None:
        """Before a batch in one transaction (each mail with its INTERNALDATE): one query
        finds which of its mails may be stored already, so that the others skip the
        per-mail duplicate lookup; three more answer, for all its addresses, the questions
        each new ticket asks (flagged? automatic mails and tickets in the last hour?)."""
        computed = {id(p.mail): dedup_key(p.mail) for p, _ in batch}
        session.info[_KEYS] = computed  # each mail's key, computed once
        keys = set(computed.values())
        ids = {p.mail.message_id[:998] for p, _ in batch}
        found: set[str] = set()
        connection = session.connection()
        for chunk in _chunks(sorted(keys), 400):
            found.update(
                str(k)
                for k in connection.scalars(
                    select(Message.dedup_key).where(Message.dedup_key.in_(chunk))
                )
            )
        for chunk in _chunks(sorted(ids), 400):
            found.update(
                str(m)
                for m in connection.scalars(
                    select(Message.message_id).where(Message.message_id.in_(chunk))
                )
            )
        session.info[_MAYBE_STORED] = found
        now = self.workflow.clock.now()
        addresses = {a for p, _ in batch for a in (p.mail.from_address, p.mail.requester_address)}
        earliest = min(
            (arrival_time(internaldate, p.mail.date, now) for p, internaldate in batch),
            default=now,
        )
        attach(
            session,
            BatchLookups.load(
                session,
                addresses,
                automatic_kinds=[k.value for k in AUTOMATIC_KINDS],
                mails_since=now - HOUR,
                tickets_since=earliest - HOUR,
                thread_ids={i for p, _ in batch for i in thread_candidates(p.mail)},
                now=now,
            ),
        )

    # --- decisions -------------------------------------------------------------------------

    def _remember_copy(
        self, session: Session, mailbox: str | None, uidvalidity: int | None, uid: int | None
    ) -> None:
        """Its UID, for a start to finish marking it on the server (bridge/copies.py)."""
        if mailbox is not None and uidvalidity is not None and uid is not None:
            remember_copy(session, mailbox, uidvalidity, uid, self.workflow.clock.now())

    @staticmethod
    def _duplicate(session: Session, message_id: str, key: str) -> Message | None:
        """The same mail stored before: same Message-ID and content (rows stored before
        the dedup key existed match on the Message-ID alone)."""
        return session.scalars(
            select(Message).where(
                or_(
                    Message.dedup_key == key,
                    (Message.message_id == message_id)
                    & (Message.direction == Direction.IN)
                    & Message.dedup_key.is_(None),
                )
            )
        ).first()

    def _verified_lkpp(self, session: Session, mail: ParsedMail) -> bool:
        """A mail from LKPP's address is LKPP's answer only when it threads on our forward
        to LKPP or its Authentication-Results show a pass for LKPP's domain; a From header
        and a subject tag alone are easy to forge."""
        ids = [i for i in (*mail.in_reply_to, *mail.references) if i][:50]
        if ids:
            forwarded = session.scalar(
                select(OutboxItem.id)
                .where(
                    OutboxItem.message_id.in_(ids),
                    OutboxItem.channel == OutboxChannel.MAIL,
                    func.lower(OutboxItem.recipient) == self.lkpp,
                )
                .limit(1)
            )
            if forwarded is not None:
                return True
        domain = self.lkpp.rpartition("@")[2]
        return any(
            authenticated_pass(value, domain)
            for value in mail.header_values("Authentication-Results")
        )

    @staticmethod
    def _unflag(session: Session, address: str) -> None:
        """An address that mails us again is reachable again: its bounce flag goes."""
        if not address:
            return
        address = address.lower()
        batch = lookups(session)
        if batch is not None and batch.is_flagged(address) is False:
            return  # not flagged when the batch began, nor since
        # Not synchronised with the session: nothing loaded a flag in this transaction,
        # and evaluating the criteria against every loaded object costs each mail.
        session.execute(
            delete(FlaggedAddress).where(FlaggedAddress.address == address),
            execution_options={"synchronize_session": False},
        )
        if batch is not None:
            batch.unflag(address)

    @staticmethod
    def _thread_ticket(session: Session, mail: ParsedMail) -> Ticket | None:
        """In-Reply-To first, then References right to left, against every stored id; the
        ticket found is locked (a reply to it is usually acted on next)."""
        candidates = thread_candidates(mail)
        if not candidates:
            return None
        batch = lookups(session)
        if batch is not None:
            answered, ticket_id = batch.thread_ticket(candidates)
            if answered:
                return lock_ticket(session, ticket_id) if ticket_id is not None else None
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
                return lock_ticket(session, found[candidate])
        return None

    def _tagged_ticket(
        self, session: Session, mail: ParsedMail, from_lkpp: bool
    ) -> tuple[Ticket | None, Ticket | None]:
        # `from_lkpp`: LKPP's From address (verified or not) may follow a tag of ours.
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
        self,
        session: Session,
        stored: _Stored,
        ticket: Ticket,
        from_lkpp: bool,
        *,
        locked: bool = False,
    ) -> IntakeResult:
        """`locked`: `ticket` was read with `lock_ticket` in this transaction."""
        kind = MessageKind.LKPP if from_lkpp else MessageKind.USER
        message = stored.save(ticket, kind)
        if stored.imported:
            return IntakeResult(Outcome.JOINED, ticket.id, message.id, "imported")
        thanks = ticket.state is State.RESOLVED and is_thanks_only(
            stored.mail.stripped_text or stored.mail.text,
            new_attachments=sum(1 for a in stored.mail.attachments if not a.inline),
        )
        action = machine.mail_action(ticket.state, from_lkpp=from_lkpp, thanks=thanks)
        actor = Actor.email(stored.mail.from_address, stored.mail.from_name or None)
        if action is not None and machine.allowed(ticket.state, action):
            self.workflow.act(
                session,
                ticket.id,
                action,
                actor,
                message_pk=message.id,
                locked=ticket if locked else None,
            )
        else:
            self._notice(session, ticket.id, machine.Notice.USER_MAIL, message.id)
        return IntakeResult(Outcome.JOINED, ticket.id, message.id)

    def _open(self, session: Session, stored: _Stored, linked: Ticket | None) -> IntakeResult:
        mail = stored.mail
        requester = mail.requester_address or mail.from_address
        if not stored.imported and self._flooding(session, requester, stored.now):
            message = stored.save(None, MessageKind.USER, note="flood: over the hourly cap")
            hour = stored.now.strftime("%Y%m%d%H")
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={"alert": "flood", "address": requester, "message": message.id},
                importance=Importance.SLA_ALERT,
                now=self.workflow.clock.now(),
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
        batch = lookups(session)
        if batch is not None:
            batch.opened(ticket.requester_email, ticket.received_at)
        message = stored.save(ticket, MessageKind.USER)
        if stored.imported:
            # History: the sender was answered back then (or not); no clock runs on it and
            # the group gets one summary for the whole import instead of a card each.
            session.execute(delete(SlaClock).where(SlaClock.ticket_id == ticket.id))
            session.execute(
                delete(OutboxItem).where(
                    OutboxItem.ticket_id == ticket.id, OutboxItem.channel == OutboxChannel.TELEGRAM
                )
            )
            outcome = Outcome.OPENED if linked is None else Outcome.OPENED_LINKED
            return IntakeResult(outcome, ticket.id, message.id, "imported")
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
        ours = self._names_our_mail(session, kind.bounced_message_ids)
        if not ours and thread is not None:
            ours = True  # it threads on a mail of ours
        flagged: list[str] = []
        message = stored.save(ticket, MessageKind.BOUNCE, note=kind.reason)
        if not kind.transient:
            for address in kind.failed_recipients:
                address = address.lower()
                if not (ours or self._mailed_recently(session, address, stored.now)):
                    continue  # a bounce of mail we never sent (spoofed or backscatter)
                flagged.append(address)
                batch = lookups(session)
                if batch is not None:
                    batch.flag(address)  # a later mail of the batch unflags it
                flag_address(
                    session, address, kind.reason, ticket.id if ticket else None, stored.now
                )
        if ticket is not None and not stored.imported:
            enqueue_telegram(
                session,
                TelegramOp.NOTICE,
                ticket_id=ticket.id,
                payload={
                    "notice": "bounce",
                    "addresses": list(kind.failed_recipients),
                    "flagged": flagged,
                    "transient": kind.transient,
                    "message": message.id,
                },
                importance=Importance.NOTICE,
                now=self.workflow.clock.now(),
            )
        return IntakeResult(Outcome.BOUNCE, ticket.id if ticket else None, message.id, kind.reason)

    @staticmethod
    def _names_our_mail(session: Session, ids: tuple[str, ...]) -> bool:
        wanted = [i[:998] for i in ids if i][:50]
        if not wanted:
            return False
        found = session.scalar(
            select(OutboxItem.id).where(OutboxItem.message_id.in_(wanted)).limit(1)
        ) or session.scalar(
            select(Message.id)
            .where(Message.message_id.in_(wanted), Message.direction == Direction.OUT)
            .limit(1)
        )
        return found is not None

    @staticmethod
    def _mailed_recently(session: Session, address: str, now: dt.datetime) -> bool:
        found = session.scalar(
            select(OutboxItem.id)
            .where(
                OutboxItem.channel == OutboxChannel.MAIL,
                func.lower(OutboxItem.recipient) == address,
                OutboxItem.created_at > now - BOUNCE_LOOKBACK,
            )
            .limit(1)
        )
        return found is not None

    def _flooding(self, session: Session, requester: str, arrived: dt.datetime) -> bool:
        """Over the cap of new tickets in the hour before this mail arrived."""
        since = arrived - HOUR
        batch = lookups(session)
        recent = batch.tickets_between(requester, since, arrived) if batch is not None else None
        if recent is None:
            recent = session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(
                    Ticket.requester_email == requester.lower(),
                    Ticket.received_at > since,
                    Ticket.received_at <= arrived,
                )
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


UNVERIFIED_LKPP = "unverified: LKPP's From address without our thread or an authentication pass"
#: Noted when Reply-To is at another domain than From, so the card can show both addresses.
REPLY_TO_NOT_USED = "reply-to at another domain, not answered: "


def thread_candidates(mail: ParsedMail) -> list[str]:
    """The ids a mail answers, the likeliest first: In-Reply-To, then References right to
    left (at most 50)."""
    candidates = list(dict.fromkeys([*mail.in_reply_to, *reversed(mail.references)]))
    return [c for c in candidates if c and c != mail.message_id][:50]


def unused_reply_to(note: str | None) -> str | None:
    """The Reply-To address a message's note says was not answered, if any."""
    for part in (note or "").split("; "):
        if part.startswith(REPLY_TO_NOT_USED):
            return part.removeprefix(REPLY_TO_NOT_USED)
    return None


def authenticated_pass(value: str, domain: str) -> bool:
    """Whether one Authentication-Results value reports dkim/dmarc pass for `domain` (or an
    address at it). Read with plain string operations: the value is sender-controlled text."""
    domain = domain.lower()
    for clause in value.lower().split(";")[1:]:
        words = clause.split()
        if not words or words[0] not in ("dkim=pass", "dmarc=pass"):
            continue
        for word in words[1:]:
            _, eq, target = word.partition("=")
            if eq and (target == domain or target.endswith("@" + domain)):
                return True
    return False


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
        self.dedup_key: str | None = None
        self.imported = False
        self.notes: list[str] = []

    def save(self, ticket: Ticket | None, kind: MessageKind, *, note: str | None = None) -> Message:
        mail = self.mail
        raw = self.raw
        notes = [*([note] if note else []), *self.notes]
        if self.imported:
            notes.append("imported from the mailbox's history")
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
            stripped_text=mail.stripped_text if mail.stripped_text != mail.text else "",
            raw=raw,
            size=mail.size,
            at=self.now,
            mailbox=self.mailbox,
            uid=self.uid,
            uidvalidity=self.uidvalidity,
            note="; ".join(notes) or None,
            dedup_key=self.dedup_key,
            imported=self.imported,
        )
        self.session.add(message)
        assign_id(self.session, message)
        batch = lookups(self.session)
        if batch is not None:
            batch.stored_mail(message.message_id, message.ticket_id)
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
