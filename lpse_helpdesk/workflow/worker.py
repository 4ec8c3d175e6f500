"""A background loop that works while there is work and sleeps, wakeable, when there is none.

A worker that names a waker topic is woken by every commit that queued work for it (see
`workflow.waker`); it then sleeps until its next due row, and its poll is only a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from lpse_helpdesk.storage.db import Database

log = logging.getLogger(__name__)


class PollingWorker(ABC):
    """Subclasses implement `work_once()`; `start`/`stop`/`wake` make them a service piece."""

    name = "worker"
    #: The longest nap: with a waker topic only a safety net (a missed wake-up, rows made
    #: due by another instance's lease running out).
    poll_seconds = 1.0

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @abstractmethod
    async def work_once(self) -> bool:
        """Do what is due; True when something was done (then look again at once)."""

    def wake_source(self) -> tuple[Database, str] | None:
        """(database, waker topic) whose commits wake this worker; None: poll only."""
        return None

    def seconds_until_due(self) -> float | None:
        """After a round that did nothing: how soon work falls due (None: not known)."""
        return None

    async def start(self) -> None:
        self._stopping.clear()
        source = self.wake_source()
        if source is not None and self._unsubscribe is None:
            from lpse_helpdesk.workflow.waker import waker_for

            db, topic = source
            self._unsubscribe = waker_for(db).subscribe(topic, self.wake)
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the round: a wake-up that comes while it runs is not lost.
            self._wake.clear()
            try:
                progressed = await self.work_once()
            except Exception:
                log.exception("%s failed; retrying", self.name)
                progressed = False
            if progressed:
                continue
            nap = self.poll_seconds
            due = self.seconds_until_due()
            if due is not None:
                nap = min(nap, max(due, 0.005))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), nap)
