"""The recap reads with SQLAlchemy Core (reports/data.py on storage/tables.py), so that
`lpse-helpdesk rekap` never imports the ORM. Here the Core reading is held against a plain
ORM reading of the same tickets (the way the recap read them before), on SQLite and on a
real PostgreSQL server, with tickets in every state, clocks met, missed, paused and
running, linked tickets and tickets just outside the period."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.reports.data import ClockRow, TicketRow, count_tickets, iter_tickets
from lpse_helpdesk.reports.export import write_report
from lpse_helpdesk.reports.period import Period, ReportFormat
from lpse_helpdesk.reports.summary import compute_summary
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database, make_engine, upgrade
from lpse_helpdesk.storage.models import SlaClock, Ticket
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.reports_support import act, context, delivered, november, open_ticket, resolve, wib

NOW = wib(2026, 12, 1, 8, 0)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    engine = make_engine(str(request.getfixturevalue(fixture)))
    upgrade(engine)
    database = Database(engine)
    yield database
    database.close()


def _orm_rows(session: Session, period: Period) -> list[TicketRow]:
    """The tickets of `period` read with the ORM, object by object (the reference)."""
    tickets = session.scalars(
        select(Ticket)
        .where(Ticket.received_at >= period.start_utc, Ticket.received_at < period.end_utc)
        .order_by(Ticket.received_at, Ticket.id)
    ).all()
    rows = []
    for ticket in tickets:
        linked = session.get(Ticket, ticket.linked_ticket_id) if ticket.linked_ticket_id else None
        clocks = session.scalars(
            select(SlaClock).where(SlaClock.ticket_id == ticket.id).order_by(SlaClock.id)
        )
        rows.append(
            TicketRow(
                ticket.id,
                ticket.number,
                ticket.requester_name,
                ticket.requester_email,
                ticket.subject,
                ticket.problem_text,
                ticket.solution,
                ticket.category,
                ticket.priority,
                ticket.state,
                ticket.received_at,
                ticket.resolved_at,
                ticket.escalated_at,
                ticket.lkpp_answered_at,
                ticket.closed_at,
                ticket.reopen_count,
                linked.number if linked is not None else None,
                tuple(
                    ClockRow(
                        c.step,
                        c.started_at,
                        c.deadline_at,
                        c.stopped_at,
                        c.budget_minutes,
                        c.business_minutes,
                        c.used_minutes,
                        c.resumed_at,
                        c.paused_at,
                        c.met,
                    )
                    for c in clocks
                ),
            )
        )
    return rows


def _varied_tickets(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    user = Actor.email("siti@vendor.co.id")
    open_ticket(db, workflow, clock, wib(2026, 10, 31, 23, 59), name="Oktober")  # outside
    first = open_ticket(db, workflow, clock, wib(2026, 11, 1, 0, 0), name="Awal bulan")
    clock.advance(minutes=3)
    act(db, workflow, first, Action.SET_PRIORITY, priority="tinggi")
    clock.advance(minutes=40)
    resolve(db, workflow, clock, first, "Silakan gunakan Apendo versi terbaru.")

    # Solved, then reopened by the user: not solved any more.
    reopened = open_ticket(db, workflow, clock, wib(2026, 11, 3, 9, 0), email="budi@cv.id")
    clock.advance(minutes=8)  # step 2 missed
    act(db, workflow, reopened, Action.SET_PRIORITY, priority="rendah")
    resolve(db, workflow, clock, reopened)
    db.run_sync(lambda s: workflow.act(s, reopened, Action.REOPEN, user))

    # Escalated to LKPP, LKPP answered, solved.
    escalated = open_ticket(db, workflow, clock, wib(2026, 11, 5, 10, 0), category=None)
    act(db, workflow, escalated, Action.SET_PRIORITY, priority="menengah")
    clock.advance(minutes=30)
    act(db, workflow, escalated, Action.ESCALATE, text="Galat di server pusat.")
    delivered(db, workflow, clock, escalated, SopStep.ESCALATE_AND_NOTIFY)
    clock.set(wib(2026, 11, 9, 13, 0))
    act(db, workflow, escalated, Action.RECEIVE_LKPP_REPLY)
    resolve(db, workflow, clock, escalated, "Sudah diperbaiki LKPP.")

    # Waiting for the user's data: the clocks are paused.
    waiting = open_ticket(db, workflow, clock, wib(2026, 11, 10, 14, 0), subject="Lupa sandi")
    act(db, workflow, waiting, Action.SET_PRIORITY, priority="tinggi")
    act(db, workflow, waiting, Action.REQUEST_DATA, text="Mohon kirim tangkapan layar.")

    # Two tickets in the same second (ordered by id), one linked to the reopened one, closed
    # without a solution.
    same = wib(2026, 11, 20, 8, 0)
    linked = open_ticket(db, workflow, clock, same, name="Tertaut", linked_ticket_id=reopened)
    open_ticket(db, workflow, clock, same, name="Bersamaan", problem='Baris\nkedua, "kutip"')
    clock.advance(minutes=20)
    act(db, workflow, linked, Action.CLOSE)

    # Still new at the end of the month: step 2 running, long overdue.
    open_ticket(db, workflow, clock, wib(2026, 11, 30, 23, 59), name="Akhir bulan")
    open_ticket(db, workflow, clock, wib(2026, 12, 1, 0, 0), name="Desember")  # outside


def test_core_reading_gives_the_orm_rows(
    any_db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    _varied_tickets(any_db, workflow, clock)
    period = november()
    with Session(any_db.engine) as session:
        expected = _orm_rows(session, period)
    assert len(expected) == 7
    assert {c.met for row in expected for c in row.clocks} == {True, False, None}
    assert any(c.paused_at is not None for row in expected for c in row.clocks)
    assert [row.linked_number for row in expected].count(None) == 6

    with any_db.engine.connect() as connection:
        assert list(iter_tickets(connection, period)) == expected
        # Across batches, too (the clocks are read a batch of tickets at a time).
        assert list(iter_tickets(connection, period, batch_size=3)) == expected
        assert count_tickets(connection, period) == 7
        core_summary = compute_summary(connection, period, domain, now=NOW)
        core_csv = io.BytesIO()
        write_report(connection, ReportFormat.CSV, context(domain, period, NOW), core_csv)
    # A Session (the bot, the monthly job) reads the same through its own connection.
    with Session(any_db.engine) as session:
        assert list(iter_tickets(session, period)) == expected
        assert compute_summary(session, period, domain, now=NOW) == core_summary
        orm_csv = io.BytesIO()
        write_report(session, ReportFormat.CSV, context(domain, period, NOW), orm_csv)
    assert core_csv.getvalue() == orm_csv.getvalue()
    assert core_summary.received == 7 and core_summary.resolved == 2
    assert core_summary.escalated == 1 and core_summary.closed_unresolved == 1
    assert all(row.received_at.tzinfo is dt.UTC for row in expected)


def test_a_session_s_pending_changes_are_read_as_its_own_queries_would(
    any_db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    ticket_id = open_ticket(any_db, workflow, clock, wib(2026, 11, 2, 10, 0))
    with Session(any_db.engine) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.category = "AKUN_LUPA_SANDI"  # not flushed yet
        assert [row.category for row in iter_tickets(session, november())] == ["AKUN_LUPA_SANDI"]
        summary = compute_summary(session, november(), domain, now=NOW)
        assert summary.top_categories == (("AKUN_LUPA_SANDI", 1),)
        session.rollback()
