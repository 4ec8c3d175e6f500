"""The mail sender: delivers the outbox's mails over SMTP, retries, records what was sent.

Delivery is at least once. Each outbox row carries the Message-ID fixed when the action
was taken; a crash after the SMTP server accepted the mail but before the row was marked
sent makes the sender send it again with the same Message-ID (and the same content, since
it is rendered from the row's snapshot), which mail clients and Gmail show as one mail.
A row is never rendered with a new Message-ID, so a retry can never become a second,
different mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.compose import compose
from lpse_helpdesk.bridge.flags import flag_address
from lpse_helpdesk.bridge.letters import Letterhead, mail_context, staff_attachments
from lpse_helpdesk.bridge.oauth2 import OAuth2Error, TokenSource
from lpse_helpdesk.bridge.smtp_send import (
    AuthenticationFailure,
    PermanentFailure,
    TemporaryFailure,
    backoff_seconds,
    send,
)
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.config.settings import Security
from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.ops import metrics
from lpse_helpdesk.sop.machine import MailKind
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    AuditEvent,
    Channel,
    Direction,
    Message,
    MessageKind,
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import Clock, as_utc
from lpse_helpdesk.workflow import outbox as outbox_rows
from lpse_helpdesk.workflow.outbox import (
    LEASE,
    Importance,
    TelegramOp,
    claim_due,
    earliest_pending,
    enqueue_telegram,
    renew_claim,
)
from lpse_helpdesk.workflow.sla import SlaKeeper
from lpse_helpdesk.workflow.worker import PollingWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpAccount:
    host: str
    port: int
    security: Security
    username: str | None
    password: str | None
    timeout: float = 30.0
    #: Log in as ``username`` with XOAUTH2 and tokens from here instead of the password.
    oauth2: TokenSource | None = None


@dataclass(frozen=True)
class SenderOptions:
    helpdesk_address: str
    helpdesk_name: str
    lpse_name: str
    timezone: ZoneInfo
    helpdesk_phone: str | None = None
    template_dir: Path | None = None
    retry_hours: float = 24.0
    max_bytes: int = 25 * 1024 * 1024
    poll_seconds: float = 5.0  # a safety net: commits that queue mail wake the sender
    batch: int = 20
    #: While one mail is being sent, its claim is renewed this often (a big attachment on a
    #: slow uplink can take longer than the lease; another instance must not send it again).
    renew_seconds: float = LEASE.total_seconds() / 4
    helpdesk_hours: str | None = None
    application: str | None = "SPSE"

    @property
    def letterhead(self) -> Letterhead:
        return Letterhead(
            helpdesk_address=self.helpdesk_address,
            helpdesk_name=self.helpdesk_name,
            lpse_name=self.lpse_name,
            timezone=self.timezone,
            helpdesk_phone=self.helpdesk_phone,
            helpdesk_hours=self.helpdesk_hours,
            application=self.application,
            max_bytes=self.max_bytes,
        )


@dataclass(frozen=True)
class _Prepared:
    item_id: int
    recipient: str
    message: EmailMessage


class MailSenderService(PollingWorker):
    name = "mail sender (SMTP)"

    def __init__(
        self,
        account: SmtpAccount,
        db: Database,
        clock: Clock,
        sla: SlaKeeper,
        options: SenderOptions,
    ) -> None:
        super().__init__()
        self.account = account
        self.db = db
        self.clock = clock
        self.sla = sla
        self.options = options
        self.renderer = Renderer(options.template_dir)
        self.poll_seconds = options.poll_seconds
        self._auth_reported = False
        self._next_due: dt.datetime | None = None

    async def work_once(self) -> bool:
        return await self.deliver_due() > 0

    def wake_source(self) -> tuple[Database, str]:
        return self.db, OutboxChannel.MAIL.value

    def seconds_until_due(self) -> float | None:
        if self._next_due is None:
            return None
        seconds = (self._next_due - self.clock.now()).total_seconds()
        return seconds if seconds > 0 else None  # due but not sent: the poll looks again

    # --- one round -------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Send what is due now; returns how many rows were handled."""
        claimed_at = self.clock.now()
        prepared = await self.db.run(self._prepare_due)
        for item in prepared:
            await self._deliver(item, claimed_at)
        return len(prepared)

    def _prepare_due(self, session: Session) -> list[_Prepared]:
        now = self.clock.now()
        ids = claim_due(session, OutboxChannel.MAIL, now=now, limit=self.options.batch)
        if not ids:
            next_due = earliest_pending(session, OutboxChannel.MAIL, now=now)
            self._next_due = as_utc(next_due) if next_due is not None else None
        items = session.scalars(
            select(OutboxItem)
            .where(OutboxItem.id.in_(ids))
            .order_by(OutboxItem.importance, OutboxItem.id)
        ).all()
        prepared = []
        for item in items:
            try:
                message = self._render(session, item)  # reads only
                prepared.append(_Prepared(item.id, item.recipient or "", message))
            except Exception as error:
                # A mail that cannot be made (a broken custom template, a missing original)
                # will not get better by retrying; one such row must not hold up the rest.
                log.exception("outbox mail %s cannot be composed", item.id)
                reason = f"cannot compose: {type(error).__name__}: {error}"[:500]
                self._fail(session, item, reason, now)
        return prepared

    def _render(self, session: Session, item: OutboxItem) -> EmailMessage:
        if item.ticket_id is None or item.recipient is None or item.message_id is None:
            raise ValueError("outbox row without ticket, recipient or Message-ID")
        ticket = session.get_one(Ticket, item.ticket_id)
        payload = item.payload
        kind = MailKind(item.kind)
        files = staff_attachments(session, payload)
        context = mail_context(
            session,
            ticket,
            payload,
            self.options.letterhead,
            attachment_names=tuple(f.filename for f in files),
        )
        original = None
        if kind is MailKind.LKPP_FORWARD and payload.get("original_message_pk"):
            original = session.get_one(Message, payload["original_message_pk"]).raw
        return compose(
            kind,
            context,
            to=item.recipient,
            to_name=ticket.requester_name if item.recipient == ticket.requester_email else None,
            message_id=item.message_id,
            in_reply_to=payload.get("in_reply_to"),
            references=payload.get("references") or [],
            date=item.created_at,
            renderer=self.renderer,
            original=original,
            attachments=files,
        )

    async def _deliver(self, prepared: _Prepared, claimed_at: dt.datetime | None = None) -> None:
        now = self.clock.now()
        # After a slow round (a slow SMTP server) the lease may have run out meanwhile.
        slow = claimed_at is None or now - claimed_at > LEASE / 2
        if slow and not await self.db.run(lambda s: renew_claim(s, prepared.item_id, now=now)):
            return  # another instance took the row over
        try:
            await self._send_holding_claim(prepared)
        except PermanentFailure as error:
            reason, refused = error.reason, error.recipient
            metrics.failed("mail")
            log.warning("mail %s refused permanently: %s", prepared.item_id, reason)
            await self.db.run(lambda s: self._permanent(s, prepared.item_id, reason, refused))
        except TemporaryFailure as error:
            reason = error.reason
            metrics.failed("mail")
            log.warning("mail %s not sent yet: %s", prepared.item_id, reason)
            report_auth = isinstance(error, AuthenticationFailure) and not self._auth_reported
            self._auth_reported = self._auth_reported or report_auth
            await self.db.run(lambda s: self._temporary(s, prepared.item_id, reason, report_auth))
        else:
            self._auth_reported = False
            metrics.sent("mail")
            await self.db.run(lambda s: self._sent(s, prepared))

    async def _send_holding_claim(self, prepared: _Prepared) -> None:
        """The send, with the row's lease renewed while it lasts."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.options.renew_seconds)
                renewal = partial(renew_claim, item_id=prepared.item_id, now=self.clock.now())
                if not await self.db.run(renewal):
                    log.warning("mail %s: claim lost during a long send", prepared.item_id)
                    return

        keeper = asyncio.create_task(renew(), name=f"lease-{prepared.item_id}")
        try:
            await self._send(prepared)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _send(self, prepared: _Prepared) -> None:
        """One delivery; with OAuth2 a refused access token is replaced, once, at once (it may
        have been revoked or have expired early; the refusal comes before MAIL FROM)."""
        source = self.account.oauth2
        if source is None:
            await self._send_with(prepared, None)
            return
        token = await _access_token(source)
        try:
            await self._send_with(prepared, token)
        except AuthenticationFailure as error:
            if error.code is None:  # no XOAUTH2 on the server: a new token will not help
                raise
            source.invalidate(token)
            log.info("SMTP refused the OAuth2 access token; retrying once with a fresh one")
            await self._send_with(prepared, await _access_token(source))

    async def _send_with(self, prepared: _Prepared, oauth2_token: str | None) -> None:
        account = self.account
        await send(
            prepared.message,
            host=account.host,
            port=account.port,
            security=account.security,
            username=account.username,
            password=account.password,
            timeout=account.timeout,
            sender=self.options.helpdesk_address,
            recipients=[prepared.recipient],
            oauth2_token=oauth2_token,
        )

    # --- outcomes --------------------------------------------------------------------------

    def _sent(self, session: Session, prepared: _Prepared) -> None:
        now = self.clock.now()
        item = session.get_one(OutboxItem, prepared.item_id)
        if item.status is not OutboxStatus.PENDING:
            return
        item.status = OutboxStatus.SENT
        item.attempts += 1
        item.done_at = now
        item.last_error = None
        message = prepared.message
        raw = message.as_bytes()
        session.add(
            Message(
                ticket_id=item.ticket_id,
                direction=Direction.OUT,
                kind=MessageKind.HELPDESK,
                message_id=item.message_id or "",
                in_reply_to=item.payload.get("in_reply_to"),
                references=list(item.payload.get("references") or []),
                from_address=self.options.helpdesk_address,
                from_name=self.options.helpdesk_name,
                to_addresses=[prepared.recipient],
                subject=str(message["Subject"] or ""),
                text="",
                stripped_text=item.payload.get("staff_text") or "",
                raw=raw,
                size=len(raw),
                at=now,
                note=item.kind,
            )
        )
        completes = item.payload.get("completes")
        if completes and item.ticket_id is not None:
            self.sla.complete(session, item.ticket_id, SopStep(completes), now)
        self._audit(session, item, "mail_sent", {"kind": item.kind})

    @staticmethod
    def _still_ours(item: OutboxItem) -> bool:
        """A late outcome must not overwrite a row another instance took over and finished."""
        return (
            item.status is OutboxStatus.PENDING and item.claimed_by == outbox_rows.this_instance()
        )

    def _temporary(self, session: Session, item_id: int, reason: str, report_auth: bool) -> None:
        now = self.clock.now()
        item = session.get_one(OutboxItem, item_id)
        if not self._still_ours(item):
            return
        item.attempts += 1
        item.last_error = reason
        if now - item.created_at >= dt.timedelta(hours=self.options.retry_hours):
            self._fail(session, item, f"gave up after {item.attempts} attempts: {reason}", now)
            return
        item.next_attempt_at = now + dt.timedelta(seconds=backoff_seconds(item.attempts))
        if report_auth:
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={"alert": "smtp_login", "error": reason},
                importance=Importance.SLA_ALERT,
                now=now,
            )

    def _permanent(
        self, session: Session, item_id: int, reason: str, recipient_refused: bool = False
    ) -> None:
        item = session.get_one(OutboxItem, item_id)
        if not self._still_ours(item):
            return
        item.attempts += 1
        now = self.clock.now()
        flagged: list[str] = []
        if recipient_refused and item.recipient:
            # As the bounce of the same refusal would: the card shows it, automatic mail stops.
            flag_address(session, item.recipient, reason, item.ticket_id, now)
            flagged.append(item.recipient.lower())
        self._fail(session, item, reason, now, flagged=flagged)

    def _fail(
        self,
        session: Session,
        item: OutboxItem,
        reason: str,
        now: dt.datetime,
        *,
        flagged: list[str] | None = None,
    ) -> None:
        """Recorded on the ticket and told to staff (with the addresses it flagged, which
        the notice's button can clear); never silently dropped."""
        item.status = OutboxStatus.FAILED
        item.last_error = reason
        item.done_at = now
        completes = item.payload.get("completes")
        if completes and item.ticket_id is not None:
            self.sla.complete(session, item.ticket_id, SopStep(completes), now, missed=True)
        self._audit(session, item, "mail_failed", {"kind": item.kind, "error": reason})
        enqueue_telegram(
            session,
            TelegramOp.NOTICE,
            ticket_id=item.ticket_id,
            payload={
                "notice": "mail_failed",
                "kind": item.kind,
                "recipient": item.recipient,
                "error": reason,
                "flagged": flagged or [],
            },
            importance=Importance.SLA_ALERT,
            now=now,
        )

    def _audit(
        self, session: Session, item: OutboxItem, action: str, detail: dict[str, object]
    ) -> None:
        session.add(
            AuditEvent(
                ticket_id=item.ticket_id,
                at=self.clock.now(),
                channel=Channel.EMAIL,
                actor_id=None,
                actor_name="sistem",
                action=action,
                detail={**detail, "outbox": item.id, "to": item.recipient},
            )
        )


async def _access_token(source: TokenSource) -> str:
    """A token for the next login; a failed refresh is a failed login (the mail waits)."""
    try:
        return await source.atoken()
    except OAuth2Error as error:
        failure = AuthenticationFailure if error.refused else TemporaryFailure
        raise failure(f"OAuth2: {error.reason}") from None
