"""`lpse-helpdesk backup FILE` and `restore FILE`.

SQLite goes through its online backup API (consistent while the service writes; a plain
copy of a WAL-mode file can miss the latest commits); PostgreSQL through `pg_dump` in
custom format and `pg_restore`. A restore refuses a database that already holds data
unless `force` is given.

A PostgreSQL restore replaces the whole schema in one transaction: the tables of this
version (an older backup lacks the newest ones, which `pg_restore --clean` would leave
behind, and `db upgrade` would then fail to create) are dropped first, then the dump's
script runs; any error rolls all of it back.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import Enum, inspect, text
from sqlalchemy.engine import URL, make_url

from lpse_helpdesk.ops.single import SqliteInstanceLock, sqlite_file
from lpse_helpdesk.storage.db import make_engine, normalise_url

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """One line for the operator."""


def postgres_tool(name: str) -> str:
    """The newest installed pg_dump / pg_restore (it must not be older than the server)."""
    installed = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    found = installed[-1] if installed else shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client (Debian: postgresql-client)"
        )
    return found


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment that carries it."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise BackupError(f"{Path(command[0]).name}: {last}")


def backup(database_url: str, target: Path) -> None:
    url = make_url(normalise_url(database_url))
    target.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        source = sqlite_file(database_url)
        if source is None or not source.exists():
            raise BackupError(f"DATABASE_URL: no SQLite file at {source}")
        partial = target.with_name(target.name + ".partial")
        with sqlite3.connect(source) as src, sqlite3.connect(partial) as dst:
            src.backup(dst)
        dst.close()
        src.close()
        partial.replace(target)
        return
    address, env = _libpq(url)
    partial = target.with_name(target.name + ".partial")
    _run([postgres_tool("pg_dump"), "--format=custom", f"--file={partial}", address], env)
    partial.replace(target)


def has_data(database_url: str) -> bool:
    engine = make_engine(database_url)
    try:
        tables = inspect(engine).get_table_names()
        if not tables:
            return False
        with engine.connect() as connection:
            for table in ("tickets", "messages", "outbox"):
                if (
                    table in tables
                    and connection.execute(
                        text(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 (fixed names)
                    ).first()
                ):
                    return True
        return False
    finally:
        engine.dispose()


def restore(database_url: str, source: Path, *, force: bool = False) -> None:
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    with source.open("rb") as handle:
        head = handle.read(16)
    url = make_url(normalise_url(database_url))
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and not head.startswith(SQLITE_MAGIC):
        raise BackupError(f"{source}: not a SQLite backup (DATABASE_URL is SQLite)")
    if not sqlite and not head.startswith(PG_DUMP_MAGIC):
        raise BackupError(
            f"{source}: not a pg_dump custom-format backup (DATABASE_URL is PostgreSQL)"
        )
    if has_data(database_url) and not force:
        raise BackupError(
            "DATABASE_URL: the database already holds tickets; restore over it with --force"
        )
    if sqlite:
        target = sqlite_file(database_url)
        if target is None:
            raise BackupError("DATABASE_URL: restore needs a SQLite file, not :memory:")
        holder = SqliteInstanceLock(target).holder()
        if holder is not None:
            raise BackupError(f"stop the running lpse-helpdesk (process {holder}) before a restore")
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        dst.close()
        src.close()
        return
    address, env = _libpq(url)
    with tempfile.TemporaryDirectory(prefix="lpse-restore-") as work:
        script = Path(work) / "restore.sql"
        _run(
            [
                postgres_tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                f"--file={script}",
                str(source),
            ],
            env,
        )
        prelude = Path(work) / "drop.sql"
        prelude.write_text(_drop_schema_sql())
        _run(
            [
                postgres_tool("psql"),
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={address}",
                f"--file={prelude}",
                f"--file={script}",
            ],
            env,
        )


def _drop_schema_sql() -> str:
    """DROP statements for this version's tables, the migration stamp and enum types."""
    from lpse_helpdesk.storage import tables

    statements = [
        f'DROP TABLE IF EXISTS "{table.name}" CASCADE;'
        for table in reversed(tables.metadata.sorted_tables)
    ]
    statements.append('DROP TABLE IF EXISTS "alembic_version";')
    types = sorted(
        {
            column.type.name
            for table in tables.metadata.tables.values()
            for column in table.columns
            if isinstance(column.type, Enum) and column.type.name
        }
    )
    statements += [f'DROP TYPE IF EXISTS "{name}" CASCADE;' for name in types]
    return "\n".join(statements) + "\n"
