"""The SLA monitor: reminders at the ratio, breach alerts once (also across restarts and
concurrent scans), paused clocks while waiting for the user, steps switched off."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import BusinessDuration, DomainConfig, SopStep
from lpse_helpdesk.sla.monitor import ScanReport, SlaMonitor
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database, make_engine, upgrade
from lpse_helpdesk.storage.models import OutboxItem, OutboxStatus, SlaClock
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock, as_utc
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.outbox import Importance
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP, WIB
from tests.sla_support import SARI, USER, act, clocks, monitor, open_ticket, sla_items, wib

LATE_SUMMARY = dt.time(23, 59)  # keeps the morning summary out of these tests


def test_reminder_at_the_ratio_then_one_breach_alert(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    ticket_id = open_ticket(db, workflow, clock)  # Tuesday 09:00: due 09:05
    sla = monitor(db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    clock.set(wib(2026, 11, 24, 9, 3, 59))
    assert db.run_sync(sla.scan) == ScanReport()
    clock.set(wib(2026, 11, 24, 9, 4))  # 4 of 5 minutes = 0.8
    report = db.run_sync(sla.scan)
    step = clocks(db, ticket_id)[SopStep.SET_PRIORITY]
    assert report.reminded == (step.id,) and report.breached == ()
    assert step.reminded_at == clock.now() and step.breach_alerted_at is None
    for minute in (4.5, 5, 6, 60):
        clock.set(wib(2026, 11, 24, 9, 0) + dt.timedelta(minutes=minute))
        db.run_sync(sla.scan)
    assert clocks(db, ticket_id)[SopStep.SET_PRIORITY].breach_alerted_at == as_utc(
        wib(2026, 11, 24, 9, 5)
    )

    reminder, breach = sla_items(db)
    assert reminder.kind == "notice" and reminder.ticket_id == ticket_id
    assert reminder.importance == Importance.SLA_ALERT
    assert reminder.dedup_key == f"sla-remind:{step.id}"
    assert reminder.payload == {
        "notice": "sla_reminder",
        "step": "set_priority",
        "deadline": "2026-11-24T02:05:00+00:00",
        "last_actor": None,
    }
    assert breach.dedup_key == f"sla-breach:{step.id}"
    assert breach.payload["notice"] == "sla_breach"
    assert breach.importance == Importance.SLA_ALERT


def test_the_reminder_ratio_is_configurable(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    open_ticket(db, workflow, clock)
    sla = monitor(db, clock, calendar, domain, ratio=0.5, summary_time=LATE_SUMMARY)
    clock.advance(minutes=2, seconds=29)
    assert db.run_sync(sla.scan).reminded == ()
    clock.advance(seconds=1)
    assert len(db.run_sync(sla.scan).reminded) == 1
    with pytest.raises(ValueError, match="remind_ratio"):
        monitor(db, clock, calendar, domain, ratio=1.0)


def test_breach_alert_names_the_last_staff_member_and_the_step(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    ticket_id = open_ticket(db, workflow, clock)
    clock.advance(minutes=1)
    act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="tinggi")  # Budi; 4 hours
    clock.advance(minutes=30)
    act(db, workflow, ticket_id, Action.ADD_NOTE, SARI, text="Sudah saya cek log-nya.")
    clock.advance(minutes=30)
    act(db, workflow, ticket_id, Action.RECEIVE_USER_DATA, USER)  # by e-mail: not staff
    resolve = clocks(db, ticket_id)[SopStep.RESOLVE]
    assert resolve.deadline_at == as_utc(wib(2026, 11, 24, 13, 1))

    sla = monitor(db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    clock.set(wib(2026, 11, 24, 13, 1))
    report = db.run_sync(sla.scan)
    assert resolve.id in report.breached
    breach = next(i for i in sla_items(db) if i.dedup_key == f"sla-breach:{resolve.id}")
    assert breach.payload["step"] == "resolve"
    assert breach.payload["last_actor"] == "Sari"


def test_a_restart_between_start_and_deadline_alerts_exactly_once(
    db: Database,
    sqlite_url: str,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    ticket_id = open_ticket(db, workflow, clock)
    before = monitor(db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    clock.advance(minutes=2)
    assert db.run_sync(before.scan) == ScanReport()
    # The service stops here; it comes back after the deadline with fresh objects.
    restarted = Database(make_engine(sqlite_url))
    try:
        upgrade(restarted.engine)
        clock.advance(minutes=10)
        again = monitor(restarted, clock, calendar, domain, summary_time=LATE_SUMMARY)
        step = clocks(restarted, ticket_id)[SopStep.SET_PRIORITY]
        assert restarted.run_sync(again.scan) == ScanReport(breached=(step.id,))
        assert restarted.run_sync(again.scan) == ScanReport()
        third = monitor(restarted, clock, calendar, domain, summary_time=LATE_SUMMARY)
        assert restarted.run_sync(third.scan) == ScanReport()
    finally:
        restarted.close()
    # Past the deadline only the breach goes out; its reminder is no longer useful.
    assert [i.payload["notice"] for i in sla_items(db)] == ["sla_breach"]


def test_the_dedup_key_holds_even_when_the_column_is_reset(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    open_ticket(db, workflow, clock)
    sla = monitor(db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    clock.advance(minutes=6)
    assert len(db.run_sync(sla.scan).breached) == 1
    db.run_sync(lambda s: s.execute(update(SlaClock).values(breach_alerted_at=None)))
    assert db.run_sync(sla.scan) == ScanReport()
    assert len(sla_items(db)) == 1


async def test_run_once_scans_again_after_losing_a_race(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    open_ticket(db, workflow, clock)
    clock.advance(minutes=6)
    calls: list[int] = []

    class Racing(SlaMonitor):
        def scan(self, session: Session) -> ScanReport:
            calls.append(1)
            if len(calls) == 1:
                raise IntegrityError("INSERT", {}, Exception("uq_outbox_dedup_key"))
            return super().scan(session)

    racing = Racing(
        db,
        clock,
        calendar,
        domain,
        remind_ratio=0.8,
        summary_time=LATE_SUMMARY,
        timezone=WIB,
    )
    report = await racing.run_once()
    assert len(calls) == 2 and len(report.breached) == 1


def test_clocks_pause_while_waiting_for_the_user_and_resume_with_the_rest(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    sla = monitor(db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    ticket_id = open_ticket(db, workflow, clock)  # Tuesday 09:00
    clock.set(wib(2026, 11, 24, 9, 2))
    act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="tinggi")  # 240 minutes
    clock.set(wib(2026, 11, 24, 9, 12))
    act(db, workflow, ticket_id, Action.REQUEST_DATA, text="Mohon kirim tangkapan layar.")
    clock.set(wib(2026, 11, 24, 9, 14))
    act(db, workflow, ticket_id, Action.CONFIRM_PHONE)
    paused = clocks(db, ticket_id)
    for step in (SopStep.ANALYSE, SopStep.RESOLVE):
        assert paused[step].deadline_at is None and paused[step].paused_at is not None
        assert paused[step].used_minutes == pytest.approx(10)

    # Two days of waiting for the user: nothing is due, nothing is sent.
    for day in (24, 25, 26):
        clock.set(wib(2026, 11, day, 15, 0))
        assert db.run_sync(sla.scan) == ScanReport()

    clock.set(wib(2026, 11, 26, 10, 0))  # Thursday: the user's data arrives
    act(db, workflow, ticket_id, Action.RECEIVE_USER_DATA, USER)
    resumed = clocks(db, ticket_id)[SopStep.RESOLVE]
    assert resumed.paused_at is None
    assert resumed.deadline_at == as_utc(wib(2026, 11, 26, 13, 50))  # 230 minutes left

    clock.set(wib(2026, 11, 26, 13, 1, 59))  # 10 + 181 minutes used
    assert resumed.id not in db.run_sync(sla.scan).reminded
    clock.set(wib(2026, 11, 26, 13, 2))  # 192 = 0.8 x 240
    assert resumed.id in db.run_sync(sla.scan).reminded
    clock.set(wib(2026, 11, 26, 13, 50))
    assert resumed.id in db.run_sync(sla.scan).breached

    notices = [(i.payload["notice"], i.payload["step"]) for i in sla_items(db)]
    assert ("sla_reminder", "resolve") in notices and ("sla_breach", "resolve") in notices
    assert ("sla_breach", "request_data") not in notices  # the phone call was in time


def test_a_step_switched_off_has_no_clock_and_no_notices(
    db: Database,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    steps: dict[SopStep, BusinessDuration] = {
        k: v for k, v in domain.sop_steps.items() if k is not SopStep.SET_PRIORITY
    }
    quiet = dataclasses.replace(domain, sop_steps=steps)
    planner = OutboxMailPlanner(quiet, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    workflow = Workflow(quiet, calendar, clock, planner, timezone=WIB)
    ticket_id = open_ticket(db, workflow, clock)
    assert clocks(db, ticket_id) == {}
    sla = monitor(db, clock, calendar, quiet, summary_time=LATE_SUMMARY)
    clock.advance(days=2)
    assert db.run_sync(sla.scan) == ScanReport()
    assert sla_items(db) == []


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[Database]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    database = Database(engine)
    yield database
    database.close()


@pytest.mark.postgres
def test_concurrent_scans_do_not_both_take_a_clock(
    pg_db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    open_ticket(pg_db, workflow, clock)
    clock.advance(minutes=6)
    first = monitor(pg_db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    second = monitor(pg_db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    one, two = pg_db.sessions(), pg_db.sessions()
    try:
        one.begin()
        two.begin()
        assert len(first.scan(one).breached) == 1  # holds the clock's row lock
        assert second.scan(two) == ScanReport()  # skips the locked row
        one.commit()
        two.commit()
    finally:
        one.close()
        two.close()
    assert pg_db.run_sync(second.scan) == ScanReport()
    assert len(sla_items(pg_db)) == 1


def test_notices_redraw_the_card(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    ticket_id = open_ticket(db, workflow, clock)
    sla = monitor(db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    db.run_sync(lambda s: s.execute(update(OutboxItem).values(status=OutboxStatus.SENT)))
    clock.advance(minutes=4)
    db.run_sync(sla.scan)

    def pending_cards(session: Session) -> list[OutboxItem]:
        return list(
            session.scalars(
                select(OutboxItem).where(
                    OutboxItem.kind == "card", OutboxItem.status == OutboxStatus.PENDING
                )
            )
        )

    (card,) = db.run_sync(pending_cards)
    assert card.ticket_id == ticket_id and card.importance == Importance.CARD_EDIT


def test_one_scan_sends_one_message_for_all_its_reminders_and_breaches(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    """Overnight mail reaches its deadline at once: one message, breaches first, not a wall."""
    early = [open_ticket(db, workflow, clock, subject=f"Awal {i}") for i in range(3)]
    clock.advance(minutes=2)
    late = [open_ticket(db, workflow, clock, subject=f"Akhir {i}") for i in range(2)]
    sla = monitor(db, clock, calendar, domain, summary_time=LATE_SUMMARY)
    clock.advance(minutes=4)  # the early ones are late, the others nearly
    report = db.run_sync(sla.scan)
    assert len(report.breached) == 3 and len(report.reminded) == 2

    def combined(session: Session) -> list[OutboxItem]:
        return list(
            session.scalars(
                select(OutboxItem).where(OutboxItem.kind == "alert").order_by(OutboxItem.id)
            )
        )

    (message,) = db.run_sync(combined)
    assert message.payload["alert"] == "sla_scan" and message.importance == Importance.SLA_ALERT
    assert [e["ticket"] for e in message.payload["breaches"]] == early
    assert [e["ticket"] for e in message.payload["reminders"]] == late
    # Each clock keeps its own once-only row, not sent by itself.
    rows = sla_items(db)
    assert len(rows) == 5 and {r.status for r in rows} == {OutboxStatus.CANCELLED}
    assert db.run_sync(sla.scan) == ScanReport()
    assert len(db.run_sync(combined)) == 1  # nothing new: no second message


def test_the_scan_message_links_every_ticket(db: Database) -> None:
    from lpse_helpdesk.bot import texts

    payload = {
        "alert": "sla_scan",
        "breaches": [
            {
                "ticket": 1,
                "step": "resolve",
                "deadline": "2026-11-24T02:05:00+00:00",
                "handler": "Ani",
            }
        ],
        "reminders": [],
    }
    text = db.run_sync(lambda s: texts.alert_text(s, payload, WIB))
    assert text.startswith("🚨 <b>Batas waktu terlewati</b> (1)")
    assert "Penyelesaian, batas Sel 24 Nov 09.05 WIB · Ani" in text
