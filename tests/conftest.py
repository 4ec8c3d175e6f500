"""Shared fixtures: domain data, an injected clock, a migrated database, the workflow."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database, make_engine, upgrade
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.tickets import Workflow

pytest_plugins = ["tests.servers.fixtures"]

WIB = ZoneInfo("Asia/Jakarta")
HELPDESK = "helpdesk@lpse.test"
LKPP = "helpdesk@lkpp.test"


class OffsetClock:
    """Real time plus an offset that tests move forward (services keep running)."""

    def __init__(self, start: dt.datetime) -> None:
        self._offset = start - dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset

    def advance(self, **delta: float) -> None:
        self._offset += dt.timedelta(**delta)


@pytest.fixture(scope="session")
def domain() -> DomainConfig:
    return load_domain()


@pytest.fixture
def clock() -> FixedClock:
    # Tuesday 24 November 2026, 09:00 WIB: a working day.
    return FixedClock(dt.datetime(2026, 11, 24, 9, 0, tzinfo=WIB))


@pytest.fixture
def calendar(domain: DomainConfig) -> BusinessCalendar:
    return BusinessCalendar(domain.working_hours, WIB)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    database = Database(engine)
    yield database
    database.close()


@pytest.fixture
def workflow(domain: DomainConfig, calendar: BusinessCalendar, clock: FixedClock) -> Workflow:
    planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    return Workflow(domain, calendar, clock, planner, ticket_prefix="LPSE", timezone=WIB)


@pytest.fixture
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-telegram-bot 22 returns timedeltas for durations only when asked; the bot tests
    ask, as the service does."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def live_clock() -> OffsetClock:
    """A clock that runs (for tests with real servers), starting on a working Tuesday."""
    return OffsetClock(dt.datetime(2026, 11, 24, 9, 0, tzinfo=WIB))


@pytest.fixture
def live_workflow(
    domain: DomainConfig, calendar: BusinessCalendar, live_clock: OffsetClock
) -> Workflow:
    planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    return Workflow(domain, calendar, live_clock, planner, timezone=WIB)


def make_intake(workflow: Workflow, domain: DomainConfig) -> Intake:
    """The intake with the test addresses (HELPDESK, LKPP) and the default rules."""
    config = IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    return Intake(workflow, domain, config)


@pytest.fixture
def intake(workflow: Workflow, domain: DomainConfig) -> Intake:
    return make_intake(workflow, domain)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Database]:
    """A migrated database, once on SQLite and once on PostgreSQL."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database.from_url(url)
    upgrade(db.engine)
    yield db
    db.close()
