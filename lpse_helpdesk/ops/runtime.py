"""What one running instance knows about itself, and the heartbeat that writes it down.

`status` runs in another process (often on another machine): it reads what every instance
last wrote to `instance_status`, a row each, refreshed every `HEARTBEAT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lpse_helpdesk.ops.roles import Roles
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import InstanceStatus
from lpse_helpdesk.timekeeping.clock import Clock

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
#: An instance that has not written for this long is taken for dead.
STALE_AFTER = dt.timedelta(seconds=45)
#: Telegram is asked (getMe) this often to tell whether it is reachable.
TELEGRAM_PROBE_SECONDS = 30.0
COMPONENT = "instance"


def version() -> str:
    try:
        return metadata.version("lpse-helpdesk")
    except metadata.PackageNotFoundError:
        return "unknown"


class BotView(Protocol):
    async def probe(self) -> None: ...


@dataclass
class Runtime:
    instance: str
    started_at: dt.datetime
    roles: Roles
    #: Per IMAP folder: the reader's state (connected, mode, lost_since, last_sync_at as
    #: ISO text) while this instance holds that folder's reader role, else None.
    intakes: dict[str, Callable[[], dict[str, Any] | None]] = field(default_factory=dict)
    telegram: BotView | None = None
    telegram_ok_at: dt.datetime | None = None
    telegram_error: str | None = None
    #: Told how many instances are alive (this one included) after every heartbeat.
    instance_listeners: list[Callable[[int], None]] = field(default_factory=list)

    def imap(self) -> dict[str, dict[str, Any]]:
        views = {}
        for folder, current in self.intakes.items():
            view = current()
            if view is not None:
                views[folder] = view
        return views

    def snapshot(self) -> dict[str, Any]:
        """JSON for `instance_status.detail`."""
        imap = self.imap()
        return {
            "version": version(),
            "started_at": _iso(self.started_at),
            "roles": sorted(self.roles.held),
            "imap": imap,
            "telegram": {
                "reachable": self.telegram_error is None and self.telegram_ok_at is not None,
                "ok_at": _iso(self.telegram_ok_at),
                "error": self.telegram_error,
            },
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class Heartbeat:
    """Piece: writes this instance's row every HEARTBEAT_SECONDS; probes Telegram."""

    name = "heartbeat"

    def __init__(
        self,
        runtime: Runtime,
        db: Database,
        clock: Clock,
        *,
        every: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.db = db
        self.clock = clock
        self.every = every
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._probed_at = -1e9

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        with contextlib.suppress(Exception):
            await self.db.run(self._forget)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        beats = 0
        while not self._stopping.is_set():
            if self.runtime.telegram is not None and (
                loop.time() - self._probed_at >= TELEGRAM_PROBE_SECONDS
            ):
                self._probed_at = loop.time()
                await self._probe()
            try:
                await self.beat()
            except Exception as error:
                log.warning("heartbeat not written (%s)", type(error).__name__)
            beats += 1
            # The first beats come quickly, so that instances started together soon see
            # each other.
            pause = min(self.every, 1.0) if beats <= 3 else self.every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)

    async def _probe(self) -> None:
        assert self.runtime.telegram is not None
        try:
            await asyncio.wait_for(self.runtime.telegram.probe(), 20)
        except Exception as error:
            self.runtime.telegram_error = type(error).__name__
        else:
            self.runtime.telegram_ok_at = self.clock.now()
            self.runtime.telegram_error = None

    async def beat(self) -> None:
        detail = self.runtime.snapshot()
        live = await self.db.run(lambda session: self._write(session, detail))
        for listener in self.runtime.instance_listeners:
            listener(live)

    def _write(self, session: Session, detail: dict[str, Any]) -> int:
        """Write this instance's row; how many instances are alive."""
        row = session.get(InstanceStatus, (self.runtime.instance, COMPONENT))
        now = self.clock.now()
        if row is None:
            session.add(
                InstanceStatus(
                    instance=self.runtime.instance,
                    component=COMPONENT,
                    detail=detail,
                    updated_at=now,
                )
            )
        else:
            row.detail = detail
            row.updated_at = now
        others = session.scalar(
            select(func.count()).where(
                InstanceStatus.component == COMPONENT,
                InstanceStatus.instance != self.runtime.instance,
                InstanceStatus.updated_at >= now - STALE_AFTER,
            )
        )
        return 1 + int(others or 0)

    def _forget(self, session: Session) -> None:
        session.execute(
            delete(InstanceStatus).where(InstanceStatus.instance == self.runtime.instance)
        )
