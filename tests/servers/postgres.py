"""A throwaway PostgreSQL server on 127.0.0.1 (initdb into a temp dir, ``postgres`` as a child).

As root, initdb and the server run as the ``postgres`` OS user (PostgreSQL
refuses root); otherwise as the current user. The server is our child process
rather than a pg_ctl daemon, so it cannot outlive the test run unnoticed.
Durability is off (fsync, synchronous_commit, full_page_writes): the data is
thrown away.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.servers._proc import (
    LOCALHOST,
    free_port,
    is_root,
    stop_process,
    tail,
    wait_until,
)

DEBIAN_PACKAGE = "postgresql"
SUPERUSER = "postgres"


def postgres_bindir() -> Path | None:
    """The bin dir of the newest installed PostgreSQL (15 preferred), or None."""
    candidates = [
        path
        for path in map(Path, glob.glob("/usr/lib/postgresql/*/bin"))
        if path.parent.name.isdigit() and (path / "initdb").exists()
    ]
    if not candidates:
        return None
    preferred = [p for p in candidates if p.parent.name == "15"]
    return (preferred or sorted(candidates, key=lambda p: int(p.parent.name)))[-1]


class PostgresServer:
    """PostgreSQL with trust auth for user ``postgres``; use as a context manager."""

    def __init__(self, host: str = LOCALHOST, bindir: Path | None = None) -> None:
        self.host = host
        self.port = 0
        self.bindir = bindir
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter = itertools.count(1)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        """The server's log file (valid after start())."""
        if self.root is None:
            raise RuntimeError("PostgreSQL is not started")
        return self.root / "postgres.log"

    def start(self) -> None:
        """initdb a new cluster in a temp dir and start the server on a free port."""
        if self._proc is not None:
            raise RuntimeError("PostgreSQL is already started")
        bindir = self.bindir or postgres_bindir()
        if bindir is None:
            raise FileNotFoundError(f"PostgreSQL not found (Debian package {DEBIAN_PACKAGE})")
        self.bindir = bindir
        root = Path(tempfile.mkdtemp(prefix="postgres-"))
        self.root = root
        atexit.register(self.stop)
        if is_root():
            shutil.chown(root, SUPERUSER, SUPERUSER)
        try:
            self._run(
                str(bindir / "initdb"),
                *("-D", str(root / "data"), "-A", "trust", "-U", SUPERUSER),
                *("-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            )
            for attempt in range(3):
                try:
                    self._spawn()
                    return
                except RuntimeError:
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL if needed; delete the temp dir."""
        atexit.unregister(self.stop)
        if self._proc is not None:
            stop_process(self._proc, signal.SIGINT)
            self._proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for ``dbname`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its name."""
        name = name or f"test_{next(self._counter)}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 STRATEGY file_copy").format(
                    sql.Identifier(name)
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any sessions still connected to it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- internals ---------------------------------------------------------------

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def _run(self, *cmd: str) -> None:
        assert self.root is not None
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.root,
            **_as_postgres(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed:\n{done.stdout}\n{done.stderr}")

    def _spawn(self) -> None:
        assert self.root is not None and self.bindir is not None
        self.port = free_port(self.host)
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        args = [f"-c{key}={value}" for key, value in settings.items()]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.root / "data"), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
                **_as_postgres(),
            )
        try:
            wait_until(self._ready, 30, f"PostgreSQL on port {self.port}")
        except (TimeoutError, RuntimeError) as exc:
            stop_process(self._proc, signal.SIGINT)
            self._proc = None
            raise RuntimeError(f"PostgreSQL did not start: {exc}\n{tail(self.log_path)}") from exc

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("postgres exited")
        try:
            with self._admin():
                return True
        except psycopg.OperationalError:
            return False


def _as_postgres() -> dict[str, Any]:
    """subprocess arguments that drop root to the ``postgres`` user and group."""
    if not is_root():
        return {}
    return {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []}
