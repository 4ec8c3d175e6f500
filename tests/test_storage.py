"""Migrations and the schema on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from lpse_helpdesk.bridge.inbound import live_mail_uids
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import Action, State
from lpse_helpdesk.storage.db import Database, current_revision, make_engine, normalise_url, upgrade
from lpse_helpdesk.storage.models import Base, Ticket
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.tickets import NewTicket, StaleTicket, Workflow
from tests.conftest import HELPDESK, LKPP, WIB


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


def test_mail_imported_before_0011_is_known_by_its_note(any_url: str) -> None:
    """History imported before the `imported` column existed is marked by the migration, so
    that a start does not take it for live mail left unmarked (and flag or move it)."""
    engine = make_engine(any_url)
    try:
        upgrade(engine, "0010_group")
        with engine.begin() as connection:
            for number, note in enumerate(
                [
                    "imported from the mailbox's history",
                    "a bounce; imported from the mailbox's history",
                    None,
                ],
                start=1,
            ):
                connection.execute(
                    text(
                        'INSERT INTO messages (id, direction, kind, message_id, "references",'
                        " from_address, from_name, to_addresses, subject, text, stripped_text,"
                        " raw, size, at, note) VALUES (:id, 'in', 'ticket', :mid, '[]', '', '',"
                        " '[]', '', '', '', :raw, 0, :at, :note)"
                    ),
                    {
                        "id": number,
                        "mid": f"<{number}@x>",
                        "raw": b"",
                        "at": dt.datetime(2026, 12, 1),
                        "note": note,
                    },
                )
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, imported FROM messages ORDER BY id")).all()
        assert [(row[0], bool(row[1])) for row in rows] == [(1, True), (2, True), (3, False)]
    finally:
        engine.dispose()


def test_a_start_reads_the_stored_uids_from_an_index(sqlite_url: str) -> None:
    """Years of mail in the inbox: the start's look-up must not read every row (and so every
    raw mail) of the messages table."""
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        query = live_mail_uids("INBOX", 7, 1, 100_000).compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with engine.connect() as connection:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}").all()
        assert [row[-1] for row in plan] == [
            "SEARCH messages USING COVERING INDEX ix_messages_uid"
            " (mailbox=? AND uidvalidity=? AND imported=? AND uid>? AND uid<?)"
        ]
    finally:
        engine.dispose()


@pytest.fixture
def any_db(any_url: str) -> Iterator[Database]:
    engine = make_engine(any_url)
    upgrade(engine)
    database = Database(engine)
    yield database
    database.close()


def test_migrations_match_the_models(any_url: str) -> None:
    engine = make_engine(any_url)
    try:
        upgrade(engine)
        upgrade(engine)  # idempotent
        assert current_revision(engine) == "0013_ticket_erase_requested"
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(engine).get_table_names())
        assert {
            "tickets",
            "messages",
            "attachments",
            "audit_events",
            "telegram_cards",
            "outbox",
            "sla_clocks",
            "mailbox_state",
            "failed_mails",
            "ticket_counters",
            "flagged_addresses",
            "telegram_prompts",
            "answer_templates",
            "staff_names",
            "mail_previews",
            "reply_attachments",
            "telegram_state",
        } <= tables
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(db: Database) -> None:
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_workflow_on_each_database(
    any_db: Database, domain: DomainConfig, calendar: BusinessCalendar, clock: FixedClock
) -> None:
    planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    workflow = Workflow(domain, calendar, clock, planner, timezone=WIB)
    new = NewTicket(
        requester_name="Andi",
        requester_email="andi@example.com",
        subject="Lupa password",
        problem_text="Mohon reset.",
        received_at=clock.now(),
    )
    ids = any_db.run_sync(
        lambda s: [workflow.open_ticket(s, new, Actor.system()).id for _ in range(3)]
    )
    staff = Actor.telegram(7, "Rina")
    any_db.run_sync(
        lambda s: workflow.act(s, ids[0], Action.SET_PRIORITY, staff, priority="rendah")
    )
    with pytest.raises(StaleTicket):
        any_db.run_sync(
            lambda s: workflow.act(
                s, ids[0], Action.SET_PRIORITY, staff, priority="tinggi", expected_version=1
            )
        )
    tickets = any_db.run_sync(lambda s: list(s.scalars(select(Ticket).order_by(Ticket.id))))
    assert [t.number for t in tickets] == [f"LPSE-2026-0000{i}" for i in (1, 2, 3)]
    assert tickets[0].state is State.PRIORITIZED
    assert tickets[0].received_at == dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


@pytest.mark.postgres
def test_oversized_headers_still_make_a_ticket_on_postgresql(
    postgres_url: str, domain: DomainConfig, calendar: BusinessCalendar, clock: FixedClock
) -> None:
    from lpse_helpdesk.bridge.intake import Intake, IntakeConfig, Outcome
    from tests.mailmaker import make_mail

    engine = make_engine(postgres_url)
    upgrade(engine)
    database = Database(engine)
    try:
        planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
        workflow = Workflow(domain, calendar, clock, planner, timezone=WIB)
        intake = Intake(workflow, domain, IntakeConfig(frozenset({HELPDESK}), LKPP))
        raw = make_mail(
            sender=f'"{"Nama Sangat Panjang " * 30}" <x@vendor.co.id>',
            message_id=f"<{'a' * 1200}@vendor.co.id>",
        )
        result = database.run_sync(lambda s: intake.ingest(s, raw))
        assert result.outcome is Outcome.OPENED
        again = database.run_sync(lambda s: intake.ingest(s, raw))
        assert again.outcome is Outcome.DUPLICATE
    finally:
        database.close()
