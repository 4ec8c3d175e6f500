"""Helpers shared by the tests/test_sla_*.py modules: open tickets, act, scan, read back."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.sla.monitor import SlaMonitor
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import OutboxChannel, OutboxItem, SlaClock
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow
from tests.conftest import WIB

BUDI = Actor.telegram(1001, "Budi")
SARI = Actor.telegram(1002, "Sari")
USER = Actor.email("vendor@example.co.id", "Siti Vendor")


def wib(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=WIB)


def open_ticket(
    db: Database, workflow: Workflow, clock: FixedClock, subject: str = "Gagal unggah"
) -> int:
    """A mail received now (the clock's time) becomes a ticket."""
    new = NewTicket(
        requester_name="Siti Vendor",
        requester_email="vendor@example.co.id",
        subject=subject,
        problem_text="Tidak bisa unggah dokumen penawaran.",
        received_at=clock.now(),
    )
    return db.run_sync(lambda s: workflow.open_ticket(s, new, USER).id)


def act(
    db: Database,
    workflow: Workflow,
    ticket_id: int,
    action: Action,
    actor: Actor = BUDI,
    **kw: str,
) -> None:
    db.run_sync(lambda s: workflow.act(s, ticket_id, action, actor, **kw))  # type: ignore[arg-type]


def monitor(
    db: Database,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
    *,
    ratio: float = 0.8,
    summary_time: dt.time = dt.time(7, 45),
) -> SlaMonitor:
    return SlaMonitor(
        db, clock, calendar, domain, remind_ratio=ratio, summary_time=summary_time, timezone=WIB
    )


def sla_items(db: Database) -> list[OutboxItem]:
    """The Telegram outbox rows the SLA monitor queued, oldest first."""

    def work(session: Session) -> list[OutboxItem]:
        return list(
            session.scalars(
                select(OutboxItem)
                .where(
                    OutboxItem.channel == OutboxChannel.TELEGRAM,
                    OutboxItem.dedup_key.like("sla-%"),
                )
                .order_by(OutboxItem.id)
            )
        )

    return db.run_sync(work)


def clocks(db: Database, ticket_id: int) -> dict[SopStep, SlaClock]:
    """The ticket's latest clock per step."""

    def work(session: Session) -> dict[SopStep, SlaClock]:
        rows = session.scalars(
            select(SlaClock).where(SlaClock.ticket_id == ticket_id).order_by(SlaClock.id)
        )
        return {clock.step: clock for clock in rows}

    return db.run_sync(work)
