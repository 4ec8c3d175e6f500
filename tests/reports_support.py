"""Helpers shared by the tests/test_reports_*.py modules: tickets made by the real Workflow."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.reports.export import write_report
from lpse_helpdesk.reports.lines import RecapContext
from lpse_helpdesk.reports.period import Period, ReportFormat
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow
from tests.conftest import WIB

STAFF = Actor.telegram(1001, "Budi")
#: The settings every command requires, with test values.
REQUIRED_SETTINGS = {
    "TELEGRAM_BOT_TOKEN": "123456789:AAtest-token",
    "HELPDESK_CHAT_ID": "-1001234567890",
    "IMAP_HOST": "127.0.0.1",
    "IMAP_USER": "helpdesk@lpse.test",
    "IMAP_PASSWORD": "imap-password",
    "SMTP_HOST": "127.0.0.1",
    "HELPDESK_EMAIL": "helpdesk@lpse.test",
    "LKPP_HELPDESK_EMAIL": "helpdesk@lkpp.test",
}

LPSE = "LPSE Kabupaten Contoh"


def wib(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=WIB)


def open_ticket(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    at: dt.datetime | None = None,
    *,
    name: str = "Siti Vendor",
    email: str = "siti@vendor.co.id",
    subject: str = "Gagal unggah penawaran",
    problem: str = "Tidak bisa unggah dokumen penawaran.",
    category: str | None = "TENDER_UNGGAH_PENAWARAN",
    linked_ticket_id: int | None = None,
) -> int:
    """A mail received at `at` (default: now) becomes a ticket; the clock moves there."""
    if at is not None:
        clock.set(at)
    new = NewTicket(
        requester_name=name,
        requester_email=email,
        subject=subject,
        problem_text=problem,
        received_at=clock.now(),
        suggested_category=category,
        suggested_priority="tinggi",
        linked_ticket_id=linked_ticket_id,
    )
    return db.run_sync(lambda s: workflow.open_ticket(s, new, Actor.email(email)).id)


def act(db: Database, workflow: Workflow, ticket_id: int, action: Action, **kw: str) -> None:
    db.run_sync(lambda s: workflow.act(s, ticket_id, action, STAFF, **kw))  # type: ignore[arg-type]


def delivered(
    db: Database, workflow: Workflow, clock: FixedClock, ticket_id: int, step: SopStep
) -> None:
    """The mail that ends step 9 or 10 went out (what the outbound bridge records)."""
    db.run_sync(lambda s: workflow.sla.complete(s, ticket_id, step, clock.now()))


def resolve(
    db: Database, workflow: Workflow, clock: FixedClock, ticket_id: int, text: str = "Sudah."
) -> None:
    act(db, workflow, ticket_id, Action.RESOLVE, text=text)
    delivered(db, workflow, clock, ticket_id, SopStep.REPLY_AFTER_SOLVED)


def context(
    domain: DomainConfig,
    period: Period,
    now: dt.datetime,
    *,
    mask_email: bool = False,
) -> RecapContext:
    return RecapContext(period, domain, LPSE, now, mask_email=mask_email)


def export(db: Database, fmt: ReportFormat, recap: RecapContext) -> bytes:
    out = io.BytesIO()
    with Session(db.engine) as session:
        write_report(session, fmt, recap, out)
    return out.getvalue()


def november(zone: ZoneInfo = WIB) -> Period:
    return Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30), zone)
