"""A step's deadline in business time, and when its reminder and breach alert go out:
at night, over a weekend, on a Friday afternoon, over a public holiday and cuti bersama."""

from __future__ import annotations

import datetime as dt

import pytest

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.sla.monitor import ScanReport
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock, as_utc
from lpse_helpdesk.workflow.tickets import Workflow
from tests.sla_support import clocks, monitor, open_ticket, sla_items, wib

# (mail received, moments with nothing to send, reminder due (4 of 5 minutes), deadline)
CASES = {
    "mail at night": (
        wib(2026, 11, 24, 22, 0),
        [wib(2026, 11, 24, 23, 0), wib(2026, 11, 25, 7, 33)],
        wib(2026, 11, 25, 7, 34),
        wib(2026, 11, 25, 7, 35),
    ),
    "Friday 22:00 -> Monday's opening": (
        wib(2026, 11, 27, 22, 0),
        [wib(2026, 11, 28, 10, 0), wib(2026, 11, 30, 7, 33, 59)],
        wib(2026, 11, 30, 7, 34),
        wib(2026, 11, 30, 7, 35),
    ),
    "weekend": (
        wib(2026, 11, 28, 11, 0),
        [wib(2026, 11, 29, 15, 0), wib(2026, 11, 30, 7, 30)],
        wib(2026, 11, 30, 7, 34),
        wib(2026, 11, 30, 7, 35),
    ),
    "Friday afternoon (closes 16:30)": (
        wib(2026, 11, 27, 16, 28),
        [wib(2026, 11, 27, 16, 30), wib(2026, 11, 28, 9, 0), wib(2026, 11, 30, 7, 31)],
        wib(2026, 11, 30, 7, 32),
        wib(2026, 11, 30, 7, 33),
    ),
    "public holiday (17 Agustus, a Monday)": (
        wib(2026, 8, 14, 16, 28),
        [wib(2026, 8, 17, 10, 0), wib(2026, 8, 18, 7, 31)],
        wib(2026, 8, 18, 7, 32),
        wib(2026, 8, 18, 7, 33),
    ),
    "cuti bersama (24 Dec) and Christmas": (
        wib(2026, 12, 23, 15, 58),
        [wib(2026, 12, 24, 9, 0), wib(2026, 12, 25, 9, 0), wib(2026, 12, 28, 7, 31)],
        wib(2026, 12, 28, 7, 32),
        wib(2026, 12, 28, 7, 33),
    ),
}


@pytest.mark.parametrize(("received", "quiet", "remind", "deadline"), CASES.values(), ids=CASES)
def test_priority_deadline_reminder_and_alert_in_business_time(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
    received: dt.datetime,
    quiet: list[dt.datetime],
    remind: dt.datetime,
    deadline: dt.datetime,
) -> None:
    clock.set(received)
    ticket_id = open_ticket(db, workflow, clock)
    stored = clocks(db, ticket_id)[SopStep.SET_PRIORITY]
    assert stored.deadline_at == as_utc(deadline)
    assert stored.budget_minutes == pytest.approx(5)
    sla = monitor(db, clock, calendar, domain, summary_time=dt.time(23, 59))

    for moment in quiet:
        clock.set(moment)
        assert db.run_sync(sla.scan) == ScanReport(), moment

    clock.set(remind)
    assert db.run_sync(sla.scan).reminded == (stored.id,)
    clock.set(remind + dt.timedelta(seconds=30))
    assert db.run_sync(sla.scan) == ScanReport()
    clock.set(deadline)
    assert db.run_sync(sla.scan).breached == (stored.id,)
    clock.set(deadline + dt.timedelta(days=3))
    assert db.run_sync(sla.scan) == ScanReport()

    items = sla_items(db)
    assert [i.payload["notice"] for i in items] == ["sla_reminder", "sla_breach"]
    assert {i.payload["deadline"] for i in items} == {as_utc(deadline).isoformat()}
    assert items[0].created_at == as_utc(remind)
