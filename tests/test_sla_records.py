"""Met or missed, per step and per ticket, with the business minutes each step took."""

from __future__ import annotations

import datetime as dt

import pytest

from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.tickets import Workflow
from tests.sla_support import USER, act, clocks, open_ticket, wib


def _deliver(
    db: Database, workflow: Workflow, ticket_id: int, step: SopStep, now: dt.datetime
) -> None:
    """The outbound bridge delivered the mail that ends step 9 or 10."""
    db.run_sync(lambda s: workflow.sla.complete(s, ticket_id, step, now))


def _records(db: Database, ticket_id: int) -> dict[SopStep, tuple[object, object]]:
    return {step: (c.met, c.business_minutes) for step, c in clocks(db, ticket_id).items()}


def test_every_step_met(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    ticket_id = open_ticket(db, workflow, clock)  # Tuesday 09:00
    clock.set(wib(2026, 11, 24, 9, 3))
    act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="tinggi")
    clock.set(wib(2026, 11, 24, 9, 4))
    act(db, workflow, ticket_id, Action.REQUEST_DATA, text="Mohon kirim tangkapan layar.")
    clock.set(wib(2026, 11, 24, 9, 6))
    act(db, workflow, ticket_id, Action.CONFIRM_PHONE)
    clock.set(wib(2026, 11, 24, 10, 0))
    act(db, workflow, ticket_id, Action.RECEIVE_USER_DATA, USER)
    clock.set(wib(2026, 11, 24, 10, 30))
    act(db, workflow, ticket_id, Action.RESOLVE, text="Silakan ulangi dengan Apendo terbaru.")
    _deliver(db, workflow, ticket_id, SopStep.REPLY_AFTER_SOLVED, wib(2026, 11, 24, 10, 38))

    assert _records(db, ticket_id) == {
        SopStep.SET_PRIORITY: (True, pytest.approx(3)),
        SopStep.REQUEST_DATA: (True, pytest.approx(2)),
        SopStep.ANALYSE: (True, pytest.approx(31)),  # 1 + 30: the wait does not count
        SopStep.RESOLVE: (True, pytest.approx(31)),
        SopStep.REPLY_AFTER_SOLVED: (True, pytest.approx(8)),
    }


def test_every_step_missed(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    ticket_id = open_ticket(db, workflow, clock)  # Tuesday 09:00
    clock.set(wib(2026, 11, 24, 9, 20))
    act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="tinggi")
    clock.set(wib(2026, 11, 24, 9, 21))
    act(db, workflow, ticket_id, Action.REQUEST_DATA, text="Mohon kirim tangkapan layar.")
    clock.set(wib(2026, 11, 24, 9, 40))
    act(db, workflow, ticket_id, Action.CONFIRM_PHONE)
    clock.set(wib(2026, 11, 24, 10, 0))
    act(db, workflow, ticket_id, Action.RECEIVE_USER_DATA, USER)
    clock.set(wib(2026, 11, 25, 11, 0))  # Wednesday
    act(db, workflow, ticket_id, Action.RESOLVE, text="Sudah diperbaiki.")
    _deliver(db, workflow, ticket_id, SopStep.REPLY_AFTER_SOLVED, wib(2026, 11, 25, 11, 30))

    worked = 1 + 360 + 210  # 09:20-09:21, 10:00-16:00 Tuesday, 07:30-11:00 Wednesday
    assert _records(db, ticket_id) == {
        SopStep.SET_PRIORITY: (False, pytest.approx(20)),
        SopStep.REQUEST_DATA: (False, pytest.approx(19)),
        SopStep.ANALYSE: (False, pytest.approx(worked)),  # over 1 working day (510)
        SopStep.RESOLVE: (False, pytest.approx(worked)),  # over 4 working hours
        SopStep.REPLY_AFTER_SOLVED: (False, pytest.approx(30)),
    }


@pytest.mark.parametrize(("delivered_after", "met"), [(4, True), (7, False)])
def test_escalation_met_or_missed(
    db: Database, workflow: Workflow, clock: FixedClock, delivered_after: int, met: bool
) -> None:
    ticket_id = open_ticket(db, workflow, clock)
    clock.advance(minutes=1)
    act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="menengah")
    clock.advance(minutes=10)
    act(db, workflow, ticket_id, Action.ESCALATE, text="Galat di server SPSE pusat.")
    delivered = clock.now() + dt.timedelta(minutes=delivered_after)
    _deliver(db, workflow, ticket_id, SopStep.ESCALATE_AND_NOTIFY, delivered)
    records = _records(db, ticket_id)
    assert records[SopStep.ESCALATE_AND_NOTIFY] == (met, pytest.approx(delivered_after))
    # Waiting for LKPP pauses the resolution clock (10 minutes used so far); LKPP's answer
    # resumes it and the solution stops it.
    resolve = clocks(db, ticket_id)[SopStep.RESOLVE]
    assert resolve.paused_at is not None and resolve.used_minutes == pytest.approx(10)
    clock.advance(days=2)
    act(db, workflow, ticket_id, Action.RECEIVE_LKPP_REPLY, USER)
    clock.advance(minutes=5)
    act(db, workflow, ticket_id, Action.RESOLVE, text="Jawaban LKPP: sudah diperbaiki.")
    assert _records(db, ticket_id)[SopStep.RESOLVE] == (True, pytest.approx(15))


def test_business_minutes_over_a_weekend(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    clock.set(wib(2026, 11, 27, 16, 25))  # Friday, five minutes before closing
    ticket_id = open_ticket(db, workflow, clock)
    clock.set(wib(2026, 11, 30, 7, 33))  # Monday
    act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="rendah")
    assert _records(db, ticket_id)[SopStep.SET_PRIORITY] == (False, pytest.approx(8))
