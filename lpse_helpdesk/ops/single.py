"""On SQLite one instance only: a second `run` on the same database file refuses to start."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url


class AnotherInstance(RuntimeError):
    """A second instance on one SQLite database; the message is the one line to show."""


def sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


class SqliteInstanceLock:
    """An exclusive lock on `<database>.lock`, held while the instance runs."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise AnotherInstance(
                f"DATABASE_URL: another lpse-helpdesk (process {holder}) already runs on this"
                " SQLite file; several instances need PostgreSQL (see README, 'Two instances')"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def holder(self) -> int | None:
        """The process id of the running instance, or None when none runs."""
        try:
            with self.path.open("r", encoding="utf-8") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError:
                    content = handle.read().strip()
                    return int(content) if content.isdigit() else -1
                fcntl.flock(handle, fcntl.LOCK_UN)
                return None
        except FileNotFoundError:
            return None
