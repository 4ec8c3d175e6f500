"""The morning summary: once per working day after SLA_SUMMARY_TIME, overdue and due today."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sla import queries
from lpse_helpdesk.sla.texts import summary_text
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import OutboxItem, OutboxStatus
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import WIB
from tests.sla_support import act, monitor, open_ticket, wib


def _summaries(db: Database) -> list[OutboxItem]:
    return db.run_sync(
        lambda s: list(
            s.scalars(
                select(OutboxItem)
                .where(OutboxItem.dedup_key.like("sla-summary:%"))
                .order_by(OutboxItem.id)
            )
        )
    )


def _three_tickets(db: Database, workflow: Workflow, clock: FixedClock) -> tuple[int, int, int]:
    """Opened on Monday 23 November: one overdue, one due on Tuesday, one waiting."""
    clock.set(wib(2026, 11, 23, 9, 0))
    due = open_ticket(db, workflow, clock, subject="Verifikasi akun")
    clock.set(wib(2026, 11, 23, 9, 1))
    act(db, workflow, due, Action.SET_PRIORITY, priority="rendah")  # analysis due Tue 09:01
    waiting = open_ticket(db, workflow, clock, subject="Lupa password")
    act(db, workflow, waiting, Action.SET_PRIORITY, priority="rendah")
    act(db, workflow, waiting, Action.REQUEST_DATA, text="Mohon kirim NIB.")
    act(db, workflow, waiting, Action.CONFIRM_PHONE)
    clock.set(wib(2026, 11, 23, 15, 0))
    late = open_ticket(db, workflow, clock, subject="Gagal unggah")  # priority due 15:05
    return late, due, waiting


def test_once_per_working_day_after_the_summary_time(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    late, due, _waiting = _three_tickets(db, workflow, clock)
    sla = monitor(db, clock, calendar, domain)
    clock.set(wib(2026, 11, 24, 7, 44, 59))
    assert db.run_sync(sla.scan).summary is None
    clock.set(wib(2026, 11, 24, 7, 45))
    assert db.run_sync(sla.scan).summary == dt.date(2026, 11, 24)
    clock.set(wib(2026, 11, 24, 8, 0))
    assert db.run_sync(sla.scan).summary is None
    clock.set(wib(2026, 11, 24, 15, 0))
    assert db.run_sync(sla.scan).summary is None

    (summary,) = _summaries(db)
    assert summary.kind == "alert" and summary.ticket_id is None
    assert summary.status is OutboxStatus.PENDING
    assert summary.dedup_key == "sla-summary:2026-11-24"
    assert summary.payload == {
        "alert": "sla_summary",
        "date": "2026-11-24",
        "overdue": [late],
        "due_today": [due],
        "open": 3,
    }
    clock.set(wib(2026, 11, 25, 7, 50))
    assert db.run_sync(sla.scan).summary == dt.date(2026, 11, 25)
    assert [s.payload["date"] for s in _summaries(db)] == ["2026-11-24", "2026-11-25"]


def test_no_summary_on_weekends_holidays_or_cuti_bersama(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    _three_tickets(db, workflow, clock)
    sla = monitor(db, clock, calendar, domain)
    for day in (
        wib(2026, 11, 28, 9, 0),  # Saturday
        wib(2026, 11, 29, 9, 0),  # Sunday
        wib(2026, 12, 24, 9, 0),  # cuti bersama
        wib(2026, 12, 25, 9, 0),  # Christmas
        wib(2026, 8, 17, 9, 0),  # Independence Day
    ):
        clock.set(day)
        assert db.run_sync(sla.scan).summary is None, day
    assert _summaries(db) == []


def test_all_clear_when_open_tickets_are_only_waiting(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    ticket_id = open_ticket(db, workflow, clock)
    act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="rendah")
    act(db, workflow, ticket_id, Action.REQUEST_DATA, text="Mohon kirim NIB.")
    act(db, workflow, ticket_id, Action.CONFIRM_PHONE)
    clock.set(wib(2026, 11, 25, 7, 45))
    sla = monitor(db, clock, calendar, domain)
    db.run_sync(sla.scan)
    (summary,) = _summaries(db)
    assert summary.status is OutboxStatus.PENDING
    assert summary.payload["overdue"] == [] and summary.payload["due_today"] == []
    text = summary_text(summary.payload, {}, WIB)
    assert "Tidak ada tiket yang terlambat" in text and "Tiket terbuka: 1." in text


def test_a_quiet_day_is_decided_once_and_not_announced(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    clock.set(wib(2026, 11, 24, 7, 45))
    sla = monitor(db, clock, calendar, domain)
    assert db.run_sync(sla.scan).summary == dt.date(2026, 11, 24)
    (quiet,) = _summaries(db)
    assert quiet.status is OutboxStatus.CANCELLED and quiet.payload["open"] == 0
    # A ticket arriving later that day does not bring a "morning" summary at noon.
    clock.set(wib(2026, 11, 24, 12, 0))
    open_ticket(db, workflow, clock)
    assert db.run_sync(sla.scan).summary is None
    assert len(_summaries(db)) == 1


def test_summary_lines_and_text_from_the_database(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    late, due, _waiting = _three_tickets(db, workflow, clock)
    clock.set(wib(2026, 11, 24, 7, 45))
    sla = monitor(db, clock, calendar, domain)
    db.run_sync(sla.scan)
    (summary,) = _summaries(db)
    ids = summary.payload["overdue"] + summary.payload["due_today"]
    lines = db.run_sync(lambda s: queries.summary_lines(s, ids))
    assert lines[late].step_label == "Penetapan prioritas"
    assert lines[due].step_label == "Analisis"
    text = summary_text(summary.payload, lines, WIB)
    assert text.splitlines()[0] == "📋 <b>Ringkasan Mutu Baku Waktu · Selasa, 24 November 2026</b>"
    assert "⚠️ <b>Terlambat</b> (1)" in text and "⏰ <b>Jatuh tempo hari ini</b> (1)" in text
    assert "<b>LPSE-2026-00003</b> Gagal unggah — Penetapan prioritas" in text
    assert "batas Sen 23 Nov 15.05 WIB" in text
    assert "<b>LPSE-2026-00001</b> Verifikasi akun — Analisis, batas 09.01 WIB" in text
