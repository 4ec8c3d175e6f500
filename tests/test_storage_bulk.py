"""Rows written in bulk (storage/bulk.py): what a flush would do, nothing lost, wake-ups kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.storage.bulk import ChangedAfterBulkWrite, write_in_bulk
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.ids import take_ids_ahead
from lpse_helpdesk.storage.models import AuditEvent, OutboxItem, SlaClock, Ticket
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow
from lpse_helpdesk.workflow.waker import SLA_TOPIC, waker_for

BULK = (Ticket, AuditEvent, SlaClock, OutboxItem)


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


def test_utc_datetimes_reach_sqlite_as_the_general_path_writes_them() -> None:
    """UTCDateTime's one-step SQLite conversion gives the text of the general two steps."""
    import datetime as dt
    import random

    from sqlalchemy.dialects import sqlite
    from sqlalchemy.types import TypeDecorator

    from lpse_helpdesk.storage.types import UTCDateTime

    dialect = sqlite.dialect()
    column_type = UTCDateTime().dialect_impl(dialect)
    assert isinstance(column_type, UTCDateTime)  # dialect_impl copies the decorator itself
    fast = column_type.bind_processor(dialect)
    general = TypeDecorator.bind_processor(column_type, dialect)
    assert fast is not None and general is not None and fast is not general

    def outcome(convert: Any, value: object) -> object:
        try:
            return convert(value)
        except Exception as error:  # the same refusal, e.g. of a naive datetime
            return type(error)

    rng = random.Random(14)
    values: list[object] = [None, dt.datetime(2026, 1, 1), "2026-01-01"]
    for _ in range(5000):
        zone = dt.timezone(dt.timedelta(minutes=rng.randint(-720, 720)))
        micro = rng.choice([0, rng.randint(0, 999_999)])
        values.append(
            dt.datetime(
                rng.randint(1, 9999),
                rng.randint(1, 12),
                rng.randint(1, 28),
                rng.randint(0, 23),
                rng.randint(0, 59),
                rng.randint(0, 59),
                micro,
                tzinfo=zone,
            )
        )
    for value in values:
        assert outcome(fast, value) == outcome(general, value), value
