"""Piece: on the 1st, the previous month's recap goes to every supervisor (REKAP_MONTHLY)."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.reports.delivery import RecapDelivery
from lpse_helpdesk.reports.monthly import due_monthly_period, month_key
from lpse_helpdesk.reports.period import RekapRequest, ReportFormat
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import OutboxItem
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.worker import PollingWorker

log = logging.getLogger(__name__)
KEY_PREFIX = "rekap-monthly:"


class MonthlyRecapService(PollingWorker):
    name = "monthly recap"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        delivery: RecapDelivery,
        supervisors: frozenset[int],
        timezone: ZoneInfo,
        *,
        check_seconds: float = 600.0,
    ) -> None:
        super().__init__()
        self.db = db
        self.clock = clock
        self.delivery = delivery
        self.supervisors = supervisors
        self.timezone = timezone
        self.poll_seconds = check_seconds

    async def work_once(self) -> bool:
        """Queue the recap when it is due; missed months follow one per check."""
        await self.db.run(self.send_if_due)
        return False

    def send_if_due(self, session: Session) -> str | None:
        """Queue the recap when due; the month key is recorded by the outbox rows' keys."""
        if not self.supervisors:
            return None
        keys = session.scalars(
            select(OutboxItem.dedup_key).where(OutboxItem.dedup_key.like(f"{KEY_PREFIX}%"))
        ).all()
        months = sorted({key.split(":")[1] for key in keys if key})
        period = due_monthly_period(self.clock.now(), months[-1] if months else None, self.timezone)
        if period is None:
            return None
        key = month_key(period)
        request = RekapRequest(ReportFormat.XLSX, period)
        for supervisor in sorted(self.supervisors):
            # A private chat's id is the user's id; the supervisor must have /start-ed the bot.
            self.delivery.queue(
                session, request, supervisor, dedup_key=f"{KEY_PREFIX}{key}:{supervisor}"
            )
        log.info("monthly recap %s queued for %d supervisors", key, len(self.supervisors))
        return key
