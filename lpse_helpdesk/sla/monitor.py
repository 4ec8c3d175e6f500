"""Scan the stored SLA clocks and queue reminders, breach alerts and the morning summary.

Everything the monitor needs is in the database (deadlines, `reminded_at`,
`breach_alerted_at`, the outbox), so one periodic scan replaces per-ticket timers and a
restart loses nothing. Each notice is sent once: its clock column is set in the same
transaction as the outbox row, the row carries a unique dedup key, and the clocks are read
with FOR UPDATE SKIP LOCKED so that two concurrent scans do not both take the same clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sla import queries
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import OutboxItem, OutboxStatus, SlaClock
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import Clock, as_utc
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.sla import SlaKeeper

log = logging.getLogger(__name__)


class SlaNotice(enum.StrEnum):
    """`payload["notice"]` of the NOTICE items the monitor queues (in reply to the card)."""

    REMINDER = "sla_reminder"
    BREACH = "sla_breach"


SUMMARY_ALERT = "sla_summary"  # payload["alert"] of the morning summary
SCAN_ALERT = "sla_scan"  # payload["alert"] of one scan's reminders and breaches together
COMBINED = "sent in the scan's combined message"
NOTHING_TO_REPORT = "no open tickets: summary not sent"


@dataclass(frozen=True)
class ScanReport:
    """What one scan queued: clock ids reminded and alerted, and the summary's date."""

    reminded: tuple[int, ...] = ()
    breached: tuple[int, ...] = ()
    summary: dt.date | None = None  # set when the day's summary was decided in this scan


class SlaMonitor:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        calendar: BusinessCalendar,
        domain: DomainConfig,
        *,
        remind_ratio: float,
        summary_time: dt.time,
        timezone: ZoneInfo,
    ) -> None:
        if not 0 < remind_ratio < 1:
            raise ValueError(f"remind_ratio must be between 0 and 1, not {remind_ratio}")
        self.db = db
        self.clock = clock
        self.calendar = calendar
        self.keeper = SlaKeeper(domain, calendar)
        self.remind_ratio = remind_ratio
        self.summary_time = summary_time
        self.timezone = timezone
        self._queued: list[OutboxItem] = []  # this scan's per-clock rows, to combine

    async def run_once(self) -> ScanReport:
        """One scan in its own transaction, on a database worker thread."""
        try:
            report = await self.db.run(self.scan)
        except IntegrityError:
            # Another process queued the same notice first (unique dedup key): scan again,
            # this time seeing its rows.
            log.info("a concurrent SLA scan queued the same notice; scanning again")
            report = await self.db.run(self.scan)
        if report.reminded or report.breached:
            log.info(
                "SLA scan queued %d reminder(s) and %d breach alert(s)",
                len(report.reminded),
                len(report.breached),
            )
        return report

    def scan(self, session: Session) -> ScanReport:
        """Queue what is due now; pure database work in the caller's transaction."""
        now = self.clock.now()
        self._queued = []
        breached = tuple(
            clock.id
            for clock in queries.breach_candidates(session, now)
            if self._breach(session, clock, now)
        )
        reminded = tuple(
            clock.id
            for clock in queries.reminder_candidates(session, now)
            if self._reminder_due(clock, now) and self._remind(session, clock, now)
        )
        self._combine(session, now)
        return ScanReport(reminded, breached, self._summary(session, now))

    def _combine(self, session: Session, now: dt.datetime) -> None:
        """One group message for everything this scan found, breaches first.

        Each clock's own row stays (it records, with its unique key, that the clock was
        reminded or alerted once) but is not sent by itself: at 07:30 after a night of
        mail the group gets one message with links, not a wall of them.
        """
        rows, self._queued = self._queued, []
        if not rows:
            return
        entries: dict[str, list[dict[str, Any]]] = {"breaches": [], "reminders": []}
        for item in sorted(rows, key=lambda i: str(i.payload.get("deadline"))):
            key = "breaches" if item.payload["notice"] == SlaNotice.BREACH else "reminders"
            entries[key].append({**item.payload, "ticket": item.ticket_id})
            item.status = OutboxStatus.CANCELLED
            item.last_error = COMBINED
            item.done_at = now
        enqueue_telegram(
            session,
            TelegramOp.ALERT,
            ticket_id=None,
            payload={"alert": SCAN_ALERT, **entries},
            importance=Importance.SLA_ALERT,
            now=now,
        )

    # --- Per-clock notices -------------------------------------------------------------------

    def _reminder_due(self, clock: SlaClock, now: dt.datetime) -> bool:
        return self.keeper.used(clock, now) >= self.remind_ratio * clock.budget_minutes - 1e-6

    def _remind(self, session: Session, clock: SlaClock, now: dt.datetime) -> bool:
        clock.reminded_at = now
        return self._notify(session, clock, SlaNotice.REMINDER, f"sla-remind:{clock.id}", now)

    def _breach(self, session: Session, clock: SlaClock, now: dt.datetime) -> bool:
        clock.breach_alerted_at = now
        return self._notify(session, clock, SlaNotice.BREACH, f"sla-breach:{clock.id}", now)

    def _notify(
        self, session: Session, clock: SlaClock, notice: SlaNotice, key: str, now: dt.datetime
    ) -> bool:
        assert clock.deadline_at is not None  # running clocks have one
        payload: dict[str, Any] = {
            "notice": notice.value,
            "step": clock.step.value,
            "deadline": clock.deadline_at.isoformat(),
            "last_actor": queries.last_actor(session, clock.ticket_id),
        }
        handler = queries.handler(session, clock.ticket_id)
        if handler:
            payload["handler"] = handler
        item = enqueue_telegram(
            session,
            TelegramOp.NOTICE,
            ticket_id=clock.ticket_id,
            payload=payload,
            importance=Importance.SLA_ALERT,
            now=now,
            dedup_key=key,
        )
        if item is None:
            return False  # queued before (e.g. the column was reset by hand)
        self._queued.append(item)
        # The card shows the deadline; redraw it now that it is close or past.
        enqueue_telegram(
            session,
            TelegramOp.CARD,
            ticket_id=clock.ticket_id,
            payload={},
            importance=Importance.CARD_EDIT,
            now=now,
        )
        log.info("queued %s for ticket %d, step %s", notice.value, clock.ticket_id, clock.step)
        return True

    # --- The morning summary -----------------------------------------------------------------

    def _summary(self, session: Session, now: dt.datetime) -> dt.date | None:
        local = now.astimezone(self.timezone)
        today = local.date()
        if local.time() < self.summary_time or not self.calendar.is_working_day(today):
            return None
        key = f"sla-summary:{today.isoformat()}"
        if session.scalar(select(OutboxItem.id).where(OutboxItem.dedup_key == key)) is not None:
            return None
        end_of_day = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), self.timezone)
        overdue: list[int] = []
        due_today: list[int] = []
        seen: set[int] = set()
        for ticket_id, deadline in queries.deadlines_before(session, end_of_day):
            if ticket_id not in seen:  # listed once, by its earliest deadline
                seen.add(ticket_id)
                (overdue if deadline <= now else due_today).append(ticket_id)
        open_count = queries.open_ticket_count(session)
        item = enqueue_telegram(
            session,
            TelegramOp.ALERT,
            ticket_id=None,
            payload={
                "alert": SUMMARY_ALERT,
                "date": today.isoformat(),
                "overdue": overdue,
                "due_today": due_today,
                "open": open_count,
            },
            importance=Importance.SLA_ALERT,
            now=now,
            dedup_key=key,
        )
        if item is not None and not (overdue or due_today or open_count):
            # Decided once per day: a quiet day is recorded, not announced.
            item.status = OutboxStatus.CANCELLED
            item.last_error = NOTHING_TO_REPORT
            item.done_at = now
        log.info(
            "SLA summary for %s: %d overdue, %d due today, %d open",
            today,
            len(overdue),
            len(due_today),
            open_count,
        )
        return today

    # --- When the next scan has something to do ---------------------------------------------

    async def next_due(self) -> dt.datetime | None:
        """The next moment a scan will queue something (a reminder, a breach alert or the
        morning summary), perhaps already past; the scheduler sleeps until then."""
        return await self.db.run(self.next_due_in)

    def next_due_in(self, session: Session) -> dt.datetime | None:
        now = self.clock.now()
        moments: list[dt.datetime] = [self._next_summary(now)]
        for clock in session.scalars(
            select(SlaClock).where(queries.running(), SlaClock.breach_alerted_at.is_(None))
        ):
            assert clock.deadline_at is not None  # running clocks have one
            moments.append(as_utc(clock.deadline_at))
            if clock.reminded_at is None:
                left = self.remind_ratio * clock.budget_minutes - self.keeper.used(clock, now)
                moments.append(now if left <= 0 else self.calendar.add_minutes(now, left))
        return min(moments)

    def _next_summary(self, now: dt.datetime) -> dt.datetime:
        local = now.astimezone(self.timezone)
        day = local.date() if local.time() < self.summary_time else local.date() + dt.timedelta(1)
        return as_utc(dt.datetime.combine(day, self.summary_time, self.timezone))
