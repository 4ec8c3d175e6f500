"""pytest fixtures that start real servers on 127.0.0.1.

Load with ``pytest_plugins = ["tests.servers.fixtures"]``. A missing server
skips the test, except under CI=true, where it fails it: CI must run everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

from tests.servers import dovecot, postgres
from tests.servers._proc import free_port
from tests.servers.dovecot import DovecotServer, ImapAccount
from tests.servers.postgres import PostgresServer
from tests.servers.telegram import BotApiServer

if TYPE_CHECKING:
    from tests.servers.smtp import SmtpServer


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when the environment variable CI is "true"."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: no test may be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """One Dovecot for the whole session; get mailboxes from ``imap_account``."""
    if dovecot.dovecot_binary() is None:
        unavailable(f"Dovecot is not installed (Debian package {dovecot.DEBIAN_PACKAGE})")
    with DovecotServer() as server:
        yield server


@pytest.fixture
def imap_account(dovecot_server: DovecotServer) -> ImapAccount:
    """A new user with an empty mailbox: host, port, user, password (and helpers)."""
    return dovecot_server.add_user()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session; use ``postgres_url`` per test."""
    if postgres.postgres_bindir() is None:
        unavailable(f"PostgreSQL is not installed (Debian package {postgres.DEBIAN_PACKAGE})")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database, dropped (WITH FORCE) after the test."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A recording SMTP server on a free port, started and stopped around each test."""
    try:
        from tests.servers.smtp import SmtpServer
    except ImportError:
        unavailable("aiosmtpd is not installed (pip install aiosmtpd, in the dev extra)")
    with SmtpServer() as server:
        yield server


@pytest.fixture
def telegram_server() -> Iterator[BotApiServer]:
    """A Telegram Bot API server on a free port, started and stopped around each test.

    Point PTB at it with ``base_url=telegram_server.bot_base_url`` and
    ``base_file_url=telegram_server.bot_base_file_url`` (or TELEGRAM_API_URL=base_url).
    """
    with BotApiServer() as server:
        yield server


@pytest.fixture
def refused_port() -> int:
    """A 127.0.0.1 TCP port that nothing listens on: connecting is refused."""
    return free_port()
