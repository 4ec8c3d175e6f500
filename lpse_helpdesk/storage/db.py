"""Engine, sessions and migrations. Database work runs in worker threads, off the event loop.

The engine and the migration check need SQLAlchemy Core only; the ORM is imported when a
`Database` (its sessions) is made, so that `lpse-helpdesk rekap` never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite begins and ends transactions on its own and so breaks SAVEPOINT: turn that
    # off and let SQLAlchemy's "begin" event say BEGIN (the documented SQLAlchemy recipe).
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Any) -> None:
    # A batch writes: take the write lock at BEGIN, so that a read earlier in the
    # transaction can never turn into a "database is locked" at the first write.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, savepoints: bool = False, existing: bool = False) -> Engine:
    """The engine for `url`. `savepoints`: SQLite transactions that nest savepoints (for
    batches; see `Database.batch_transaction`); PostgreSQL always can. `existing`: a SQLite
    file is opened only if it is there (a command that looks, such as `status`, must not
    leave an empty database behind a mistyped path); connecting fails otherwise."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if existing and path and path != ":memory:" and not path.startswith("file:"):
            target = f"file:{quote(path)}?mode=rw"  # SQLite's URI: open, never create

            def connect() -> sqlite3.Connection:
                return sqlite3.connect(target, uri=True, check_same_thread=False, timeout=10)

            engine = create_engine("sqlite://", creator=connect)
        else:
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        if savepoints:
            event.listen(engine, "connect", _sqlite_no_driver_transactions)
            event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    location = resources.files("lpse_helpdesk.storage").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["connection_engine"] = engine
    return config


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def head_revisions() -> set[str]:
    """The heads of the migration scripts, read from their files without importing Alembic
    (which, with Mako and Pygments, takes a good part of a second to import)."""
    folder = resources.files("lpse_helpdesk.storage").joinpath("migrations", "versions")
    revisions: set[str] = set()
    parents: set[str] = set()
    for entry in folder.iterdir():
        if not entry.name.endswith(".py"):
            continue
        source = entry.read_text(encoding="utf-8")
        if (found := _REVISION.search(source)) is not None:
            revisions.add(found[1])
        if (down := _DOWN_REVISION.search(source)) is not None:
            parents.update(re.findall(r"[\"']([^\"']+)[\"']", down[1]))
    return revisions - parents


def schema_is_current(engine: Engine) -> bool:
    """True when the database is at the scripts' head (nothing for Alembic to do)."""
    try:
        with engine.connect() as connection:
            stamped = {
                str(row[0])
                for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            }
    except DBAPIError:
        return False  # a new database: no alembic_version table yet
    return bool(stamped) and stamped == head_revisions()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to date (idempotent; quick when it already is)."""
    if revision == "head" and schema_is_current(engine):
        return
    from alembic import command

    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class Database:
    """The engine plus a small thread pool so that async code never blocks on SQL."""

    def __init__(self, engine: Engine, *, workers: int = 4) -> None:
        from sqlalchemy.orm import sessionmaker

        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        #: The engine of `batch_transaction`: on SQLite a second one whose transactions nest
        #: savepoints (made on first use; its connections open then).
        self.batch_engine = engine
        if engine.dialect.name == "sqlite":
            workers = 1  # one writer at a time; avoids "database is locked" churn
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self.batch_engine = make_engine(
                engine.url.render_as_string(hide_password=False), savepoints=True
            )
        self.batch_sessions = sessionmaker(self.batch_engine, expire_on_commit=False)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")

    @classmethod
    def from_url(cls, url: str, *, existing: bool = False) -> Database:
        return cls(make_engine(url, existing=existing))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed at the end, or rolled back on an error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def batch_transaction(self) -> Iterator[Session]:
        """Like `transaction`, for many items at once: each item's work goes in a
        `session.begin_nested()` savepoint, so that one item that fails rolls back alone."""
        with self.batch_sessions() as session, session.begin():
            yield session

    def run_sync(self, work: Callable[[Session], T]) -> T:
        with self.transaction() as session:
            return work(session)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction on a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.run_sync, work)

    async def run_plain(self, work: Callable[[], T]) -> T:
        """Run `work()` on a worker thread; it opens its own transactions."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, work)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()
        if self.batch_engine is not self.engine:
            self.batch_engine.dispose()
