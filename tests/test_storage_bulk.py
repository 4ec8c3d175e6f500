"""Rows written in bulk (storage/bulk.py): what a flush would do, nothing lost, wake-ups kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.storage.bulk import ChangedAfterBulkWrite, write_in_bulk
from lpse_helpdesk.storage.db import Database, upgrade
from lpse_helpdesk.storage.ids import take_ids_ahead
from lpse_helpdesk.storage.models import AuditEvent, OutboxItem, SlaClock, Ticket
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow
from lpse_helpdesk.workflow.waker import SLA_TOPIC, waker_for

BULK = (Ticket, AuditEvent, SlaClock, OutboxItem)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Database]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database.from_url(url)
    upgrade(db.engine)
    yield db
    db.close()


def _open(session: Session, workflow: Workflow, clock: FixedClock, subject: str) -> Ticket:
    new = NewTicket(
        requester_name="Siti",
        requester_email="siti@vendor.co.id",
        subject=subject,
        problem_text="Tidak bisa unggah.",
        received_at=clock.now(),
    )
    return workflow.open_ticket(session, new, Actor.email("siti@vendor.co.id"))


def _in_bulk(db: Database) -> Session:
    session = db.batch_sessions()
    session.begin()
    take_ids_ahead(session)
    write_in_bulk(session, BULK)
    return session


def test_a_row_changed_after_its_write_and_dropped_is_still_refused(
    database: Database, workflow: Workflow, clock: FixedClock
) -> None:
    """The owner changes a written row and lets go of it before the commit: the change
    would be lost, so the commit refuses (the intake then stores its batch the usual way)."""
    with _in_bulk(database) as session:
        ticket = _open(session, workflow, clock, "Satu")
        session.flush()
        ticket.subject = "Diubah setelah ditulis"
        del ticket
        with pytest.raises(ChangedAfterBulkWrite):
            session.commit()
    assert database.run_sync(lambda s: list(s.scalars(select(Ticket)))) == []


async def test_clocks_written_only_by_the_commit_wake_the_sla_scheduler(
    database: Database, workflow: Workflow, clock: FixedClock
) -> None:
    """Nothing flushed the new ticket before the commit: the commit's flush writes its clock
    in bulk, and the SLA scheduler is still woken (here, and through NOTIFY on PostgreSQL)."""
    woken = asyncio.Event()
    stop = waker_for(database).subscribe(SLA_TOPIC, woken.set)
    try:

        def work() -> None:
            with _in_bulk(database) as session:
                _open(session, workflow, clock, "Dua")
                session.commit()

        await asyncio.get_running_loop().run_in_executor(None, work)
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        stop()
    stored = database.run_sync(
        lambda s: [(t.subject, t.version) for t in s.scalars(select(Ticket))]
    )
    assert stored == [("Dua", 1)]
    assert database.run_sync(lambda s: len(list(s.scalars(select(SlaClock))))) == 1


def test_the_transaction_lets_go_of_its_rows_when_it_ends(
    database: Database, workflow: Workflow, clock: FixedClock
) -> None:
    """A closed session may wait for the cyclic collector; the rows of a batch must not."""
    from lpse_helpdesk.storage.bulk import in_bulk

    committed = _in_bulk(database)
    _open(committed, workflow, clock, "Tiga")
    committed.commit()
    assert not in_bulk(committed)
    committed.close()
    rolled_back = _in_bulk(database)
    _open(rolled_back, workflow, clock, "Empat")
    rolled_back.flush()
    rolled_back.rollback()
    assert not in_bulk(rolled_back)
    rolled_back.close()
    assert database.run_sync(lambda s: list(s.scalars(select(Ticket.subject)))) == ["Tiga"]
