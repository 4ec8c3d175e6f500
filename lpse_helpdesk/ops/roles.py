"""Singleton roles: one instance at a time holds each, through a PostgreSQL advisory lock.

Roles (the IMAP reader of a folder, the Telegram update receiver, the SLA scanner, the
monthly recap, the retention job) are pieces that must run once even when several
instances share one database. Each role's lock is a session-level advisory lock taken on a
connection of its own: when the holder dies its connection closes, PostgreSQL releases the
lock and a waiting instance takes the role over within `CHECK_SECONDS + SETTLE_SECONDS`
(about 10 s); when the holder loses that connection it stops the role at once, and a new
holder waits `SETTLE_SECONDS` before starting, so that the two never run together.
On SQLite there is one instance (a second one refuses to start), which holds every role.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from lpse_helpdesk.storage.db import normalise_url

log = logging.getLogger(__name__)

#: A holder checks its lock connection, and a waiter tries the lock, this often.
CHECK_SECONDS = 2.0
#: A lock statement that takes longer than this counts as a lost connection.
STATEMENT_SECONDS = 5.0
#: A new holder waits this long before starting the role: by then a previous holder that
#: lost its lock connection has noticed (CHECK_SECONDS, or a check timing out) and stopped.
SETTLE_SECONDS = CHECK_SECONDS + STATEMENT_SECONDS + 1.0
APPLICATION_NAME = "lpse-helpdesk"

IMAP_READER = "imap-reader"
TELEGRAM_UPDATES = "telegram-updates"
SLA_SCANNER = "sla-scanner"
MONTHLY_RECAP = "monthly-recap"
RETENTION = "retention"


def imap_role(folder: str) -> str:
    return f"{IMAP_READER}:{folder}"


def role_key(role: str) -> int:
    """The advisory lock key of a role: a stable signed 64-bit number."""
    digest = hashlib.blake2b(f"lpse-helpdesk:{role}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Piece(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class RoleLock(Protocol):
    """Blocking calls, run in a worker thread by `RoleGate`."""

    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class LocalLock:
    """SQLite: the only instance holds every role."""

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        return None


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection opened for it alone."""

    def __init__(self, url: str, role: str, instance: str) -> None:
        self.role = role
        self.key = role_key(role)
        self._engine: Engine = create_engine(
            normalise_url(url),
            poolclass=NullPool,
            connect_args={
                "application_name": f"{APPLICATION_NAME} {instance}"[:63],
                "connect_timeout": int(STATEMENT_SECONDS),
                # A holder whose machine vanished is noticed by the server within ~30 s.
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "options": f"-c statement_timeout={int(STATEMENT_SECONDS * 1000)}",
            },
        )
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self._connection is None:
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        try:
            got = self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
        except Exception:
            self._drop()
            raise
        return bool(got)

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            held = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid = :high AND objid = :low"
                    " AND objsubid = 1"
                ),
                lock_parts(self.key),
            ).scalar()
        except Exception:
            self._drop()
            return False
        return bool(held)

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self._drop()

    def close(self) -> None:
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.invalidate()
                connection.close()


def lock_parts(key: int) -> dict[str, int]:
    """How pg_locks shows a bigint advisory key: two unsigned 32-bit halves."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}


def is_postgresql(url: str) -> bool:
    return make_url(normalise_url(url)).get_backend_name() == "postgresql"


class RoleGate:
    """Piece: runs a fresh piece from `factory` while this instance holds `role`."""

    def __init__(
        self,
        role: str,
        factory: Callable[[], Piece],
        lock: RoleLock,
        *,
        check_seconds: float = CHECK_SECONDS,
        settle_seconds: float = 0.0,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.role = role
        self.name = f"role {role}"
        self.factory = factory
        self.lock = lock
        self.check_seconds = check_seconds
        self.settle_seconds = settle_seconds
        self.on_change = on_change
        self.held = asyncio.Event()
        self.piece: Piece | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        closer = getattr(self.lock, "close", None)
        if closer is not None:
            await asyncio.to_thread(closer)

    async def _lock_call(self, call: Callable[[], bool]) -> bool:
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), STATEMENT_SECONDS)
        except Exception as error:
            log.warning("role %s: lock connection failed (%s)", self.role, type(error).__name__)
            return False

    async def _pause(self, seconds: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds or self.check_seconds)

    async def _settled(self) -> bool:
        """After acquiring: wait out a previous holder's reaction time, then check again."""
        if self.settle_seconds <= 0:
            return True
        await self._pause(self.settle_seconds)
        return not self._stopping.is_set() and await self._lock_call(self.lock.still_held)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if not await self._lock_call(self.lock.try_acquire):
                await self._pause()
                continue
            try:
                if await self._settled():
                    await self._hold()
            except Exception:
                log.exception("role %s failed; giving it up", self.role)
            finally:
                await asyncio.to_thread(self.lock.release)

    async def _hold(self) -> None:
        log.info("holding role %s", self.role)
        piece = self.factory()
        self.piece = piece
        self.held.set()
        self._changed(True)
        try:
            await piece.start()
            while not self._stopping.is_set():
                await self._pause()
                if self._stopping.is_set():
                    break
                if not await self._lock_call(self.lock.still_held):
                    log.error("role %s: lock lost; stopping %s at once", self.role, piece.name)
                    break
        finally:
            self.held.clear()
            self._changed(False)
            try:
                await piece.stop()
            finally:
                self.piece = None
                log.info("gave up role %s", self.role)

    def _changed(self, held: bool) -> None:
        if self.on_change is not None:
            self.on_change(self.role, held)


class Together:
    """Piece: several pieces started in order and stopped in reverse order."""

    def __init__(self, name: str, *pieces: Piece) -> None:
        self.name = name
        self.pieces = pieces

    async def start(self) -> None:
        for piece in self.pieces:
            await piece.start()

    async def stop(self) -> None:
        for piece in reversed(self.pieces):
            await piece.stop()


class Roles:
    """Makes the role gates of one instance and knows which roles it holds."""

    def __init__(self, database_url: str, instance: str) -> None:
        self.database_url = database_url
        self.instance = instance
        self.distributed = is_postgresql(database_url)
        self.held: set[str] = set()

    def lock(self, role: str) -> RoleLock:
        if self.distributed:
            return AdvisoryLock(self.database_url, role, self.instance)
        return LocalLock()

    def gate(self, role: str, factory: Callable[[], Piece]) -> RoleGate:
        settle = SETTLE_SECONDS if self.distributed else 0.0
        return RoleGate(
            role, factory, self.lock(role), settle_seconds=settle, on_change=self._changed
        )

    def _changed(self, role: str, held: bool) -> None:
        if held:
            self.held.add(role)
        else:
            self.held.discard(role)
