"""Open tickets and apply SOP actions: the state change, its mails and Telegram messages,
its SLA clocks and its audit event are written in the caller's one transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import Action, Effect, State
from lpse_helpdesk.storage.ids import assign_id
from lpse_helpdesk.storage.models import AuditEvent, OutboxStatus, Ticket
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.mail_plan import MailPlanner
from lpse_helpdesk.workflow.numbering import next_number
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.sla import SlaKeeper


class Refused(Exception):
    """A request that changes nothing; `message` is a short Indonesian text for staff."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TicketNotFound(Refused):
    def __init__(self) -> None:
        super().__init__("Tiket tidak ditemukan.")


class StaleTicket(Refused):
    def __init__(self) -> None:
        super().__init__(
            "Tiket ini baru saja berubah (oleh petugas lain atau e-mail baru). Kartu terbaru "
            "ditampilkan; silakan periksa lalu ulangi bila masih perlu."
        )


@dataclass(frozen=True)
class NewTicket:
    requester_name: str
    requester_email: str
    subject: str
    problem_text: str
    received_at: dt.datetime
    suggested_category: str | None = None
    suggested_priority: str | None = None
    tender_codes: tuple[str, ...] = ()
    phone_numbers: tuple[str, ...] = ()
    linked_ticket_id: int | None = None


@dataclass(frozen=True)
class ActionResult:
    ticket_id: int
    number: str
    action: Action
    from_state: State
    to_state: State
    version: int
    effects: tuple[Effect, ...] = field(default_factory=tuple)


def lock_ticket(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket read afresh and locked for the rest of the transaction (FOR UPDATE on
    PostgreSQL; SQLite's writer holds the whole database), or None when there is none."""
    try:
        return session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    except StaleDataError:
        raise StaleTicket from None


class Workflow:
    """The one place where SOP outcomes are applied to storage."""

    def __init__(
        self,
        domain: DomainConfig,
        calendar: BusinessCalendar,
        clock: Clock,
        mail: MailPlanner,
        *,
        ticket_prefix: str = "LPSE",
        timezone: ZoneInfo | None = None,
    ) -> None:
        self.domain = domain
        self.calendar = calendar
        self.clock = clock
        self.mail = mail
        self.sla = SlaKeeper(domain, calendar)
        self.ticket_prefix = ticket_prefix
        self.timezone = timezone or calendar.timezone

    def open_ticket(self, session: Session, new: NewTicket, actor: Actor) -> Ticket:
        now = self.clock.now()
        year = new.received_at.astimezone(self.timezone).year
        ticket = Ticket(
            number=next_number(session, self.ticket_prefix, year),
            requester_name=new.requester_name,
            requester_email=new.requester_email.lower(),
            subject=new.subject,
            problem_text=new.problem_text,
            suggested_category=new.suggested_category,
            suggested_priority=new.suggested_priority,
            state=State.NEW,
            tender_codes=list(new.tender_codes),
            phone_numbers=list(new.phone_numbers),
            linked_ticket_id=new.linked_ticket_id,
            reopen_count=0,
            received_at=new.received_at,
            updated_at=now,
        )
        session.add(ticket)
        assign_id(session, ticket)
        self.sla.start(session, ticket, SopStep.SET_PRIORITY, new.received_at, new_ticket=True)
        self._audit(session, ticket, actor, "open", None, State.NEW, {})
        enqueue_telegram(
            session,
            TelegramOp.CARD,
            ticket_id=ticket.id,
            payload={},
            importance=Importance.NEW_TICKET,
            now=now,
            new_ticket=True,
        )
        return ticket

    def act(
        self,
        session: Session,
        ticket_id: int,
        action: Action,
        actor: Actor,
        *,
        expected_version: int | None = None,
        text: str | None = None,
        priority: str | None = None,
        category: str | None = None,
        message_pk: int | None = None,
        mail_extras: dict[str, object] | None = None,
        locked: Ticket | None = None,
    ) -> ActionResult:
        """Apply `action`; raise Refused (or machine.ActionNotAllowed) and change nothing.

        `mail_extras`: what the staff's mail carries besides the text (attachments, the
        canned answer it came from), handed to the mail planner. `locked`: the ticket as
        the caller read it in this transaction with `lock_ticket` (not read again).
        """
        ticket = locked if locked is not None and locked.id == ticket_id else None
        if ticket is None:
            ticket = lock_ticket(session, ticket_id)
        if ticket is None:
            raise TicketNotFound
        if expected_version is not None and ticket.version != expected_version:
            raise StaleTicket
        self._validate(ticket.state, action, text=text, priority=priority, category=category)
        facts = machine.TicketFacts(
            state=ticket.state,
            priority=ticket.priority,
            phone_confirmed=ticket.phone_confirmed_at is not None,
            category=ticket.category,
        )
        outcome = machine.apply(facts, action, priority=priority, category=category)
        now = self.clock.now()
        before = ticket.state
        detail: dict[str, object] = {}
        if priority is not None:
            detail["priority"] = priority
            ticket.priority = priority
            if ticket.category is None and ticket.suggested_category is not None:
                ticket.category = ticket.suggested_category  # confirmed with the priority
        if category is not None:
            detail["category"] = category
            ticket.category = category
        if text is not None:
            detail["text"] = text
        if action is Action.RESOLVE:
            relayed = any(m.kind is machine.MailKind.LKPP_ANSWER_RELAY for m in outcome.mails())
            if text and text.strip():
                ticket.solution = text
            elif relayed:
                ticket.solution = "Jawaban Helpdesk LKPP diteruskan kepada pengguna."
        if mail_extras:
            detail.update({k: v for k, v in mail_extras.items() if k != "attachments"})
        if message_pk is not None:
            detail["message"] = message_pk
        if action is Action.REOPEN:
            ticket.reopen_count += 1
        ticket.state = outcome.state
        ticket.updated_at = now
        self._apply_effects(
            session,
            ticket,
            outcome.effects,
            text=text,
            actor=actor,
            now=now,
            message_pk=message_pk,
            mail_extras=mail_extras,
        )
        self._audit(session, ticket, actor, action.value, before, outcome.state, detail)
        try:
            session.flush()  # bumps the version; a concurrent change fails here
        except StaleDataError:
            raise StaleTicket from None
        return ActionResult(
            ticket_id=ticket.id,
            number=ticket.number,
            action=action,
            from_state=before,
            to_state=outcome.state,
            version=ticket.version,
            effects=outcome.effects,
        )

    def take(
        self, session: Session, ticket_id: int, actor: Actor, *, expected_version: int
    ) -> str | None:
        """Make `actor` the ticket's handler; returns the previous handler's name, if any.

        Who handles a ticket is not an SOP rule: any officer may take any open ticket.
        """
        ticket = self._locked(session, ticket_id, expected_version)
        if ticket.state not in machine.OPEN_STATES:
            raise Refused("Tiket ini sudah tidak terbuka.")
        if actor.id is not None and ticket.handler_id == actor.id:
            raise Refused("Anda sudah menangani tiket ini.")
        previous = ticket.handler_name
        ticket.handler_id = actor.id[:64] if actor.id else None
        ticket.handler_name = (actor.name or "Petugas")[:255]
        ticket.updated_at = self.clock.now()
        detail: dict[str, object] = {"previous": previous} if previous else {}
        self._audit(session, ticket, actor, "take", ticket.state, ticket.state, detail)
        self._refresh_card(session, ticket)
        return previous

    def record_phone_unanswered(
        self, session: Session, ticket_id: int, actor: Actor, *, expected_version: int
    ) -> None:
        """A call to confirm the data request did not connect: recorded, the step goes on.

        Allowed exactly when the SOP allows the phone confirmation it tries to reach.
        """
        ticket = self._locked(session, ticket_id, expected_version)
        facts = machine.TicketFacts(
            state=ticket.state,
            priority=ticket.priority,
            phone_confirmed=ticket.phone_confirmed_at is not None,
            category=ticket.category,
        )
        machine.apply(facts, Action.CONFIRM_PHONE)  # raises ActionNotAllowed when not now
        ticket.updated_at = self.clock.now()
        self._audit(session, ticket, actor, "phone_unanswered", ticket.state, ticket.state, {})
        self._refresh_card(session, ticket)

    def _locked(self, session: Session, ticket_id: int, expected_version: int) -> Ticket:
        ticket = lock_ticket(session, ticket_id)
        if ticket is None:
            raise TicketNotFound
        if ticket.version != expected_version:
            raise StaleTicket
        return ticket

    def _refresh_card(self, session: Session, ticket: Ticket) -> None:
        try:
            session.flush()  # bumps the version; a concurrent change fails here
        except StaleDataError:
            raise StaleTicket from None
        enqueue_telegram(
            session,
            TelegramOp.CARD,
            ticket_id=ticket.id,
            payload={},
            importance=Importance.CARD_EDIT,
            now=self.clock.now(),
        )

    def _validate(
        self,
        state: State,
        action: Action,
        *,
        text: str | None,
        priority: str | None,
        category: str | None,
    ) -> None:
        priorities = {p.code for p in self.domain.priorities}
        categories = {c.code for c in self.domain.categories}
        if action is Action.SET_PRIORITY and priority not in priorities:
            raise Refused("Prioritas tidak dikenal.")
        if action is Action.SET_CATEGORY and category not in categories:
            raise Refused("Kategori tidak dikenal.")
        if machine.needs_text(state, action) and (text is None or not text.strip()):
            raise Refused("Teks tidak boleh kosong.")

    def _apply_effects(
        self,
        session: Session,
        ticket: Ticket,
        effects: tuple[Effect, ...],
        *,
        text: str | None,
        actor: Actor,
        now: dt.datetime,
        message_pk: int | None = None,
        mail_extras: dict[str, object] | None = None,
    ) -> None:
        unsendable: list[SopStep] = []  # steps whose mail was refused (loop rules)
        for effect in effects:
            if isinstance(effect, machine.SetStamp):
                setattr(ticket, effect.stamp.value, now)
            elif isinstance(effect, machine.SendMail):
                item = self.mail.plan(
                    session, ticket, effect, text=text, actor=actor, now=now, extras=mail_extras
                )
                if effect.completes and item.status is OutboxStatus.CANCELLED:
                    unsendable.append(effect.completes)
            elif isinstance(effect, machine.UpdateCard):
                enqueue_telegram(
                    session,
                    TelegramOp.CARD,
                    ticket_id=ticket.id,
                    payload={},
                    importance=Importance.CARD_EDIT,
                    now=now,
                )
            elif isinstance(effect, machine.PostNotice):
                enqueue_telegram(
                    session,
                    TelegramOp.NOTICE,
                    ticket_id=ticket.id,
                    payload={"notice": effect.notice.value, "message": message_pk},
                    importance=Importance.NOTICE,
                    now=now,
                )
            else:
                self.sla.apply(session, ticket, effect, now)
        for step in unsendable:
            # The user cannot be told by mail: the step is not met (staff see why on the card).
            self.sla.complete(session, ticket.id, step, now, missed=True)

    def _audit(
        self,
        session: Session,
        ticket: Ticket,
        actor: Actor,
        action: str,
        before: State | None,
        after: State | None,
        detail: dict[str, object],
    ) -> None:
        session.add(
            AuditEvent(
                ticket_id=ticket.id,
                at=self.clock.now(),
                channel=actor.channel,
                actor_id=actor.id[:64] if actor.id else None,  # the columns' sizes
                actor_name=actor.name[:255] if actor.name else None,
                action=action,
                from_state=before.value if before else None,
                to_state=after.value if after else None,
                detail=detail,
            )
        )
