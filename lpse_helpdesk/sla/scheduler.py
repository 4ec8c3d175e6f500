"""The SLA scan as one APScheduler job with a fixed id, run as a piece of the service."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

JOB_ID = "sla-scan"


class Scanner(Protocol):
    async def run_once(self) -> object: ...


class SlaScheduler:
    """Runs `monitor.run_once()` every `scan_seconds`; a late or overlapping run is merged.

    The job keeps no state of its own: deadlines and sent notices live in the database,
    so a restart simply scans again (the first scan runs right after `start`).
    """

    name = "SLA scheduler"

    def __init__(
        self,
        monitor: Scanner,
        *,
        scan_seconds: float = 30,
        misfire_grace_seconds: int | None = None,
    ) -> None:
        if scan_seconds <= 0:
            raise ValueError("scan_seconds must be positive")
        self.monitor = monitor
        self.scan_seconds = scan_seconds
        self.misfire_grace_seconds = misfire_grace_seconds or max(1, round(scan_seconds))
        self._scheduler: AsyncIOScheduler | None = None
        self._inflight: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and bool(self._scheduler.running)

    def job_ids(self) -> list[str]:
        if self._scheduler is None:
            return []
        return [str(job.id) for job in self._scheduler.get_jobs()]

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(timezone=dt.UTC)
        scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=self.scan_seconds, timezone=dt.UTC),
            id=JOB_ID,
            name="SLA reminders, breach alerts and morning summary",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.misfire_grace_seconds,
            next_run_time=dt.datetime.now(dt.UTC),  # scan once right away
            replace_existing=True,
        )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            # Let a scan under way finish first: cancelling it would only log an error.
            scheduler.pause()
            for _ in range(3):
                await asyncio.sleep(0)
            inflight = self._inflight
            if inflight is not None and not inflight.done():
                await inflight
            scheduler.shutdown(wait=False)
            for _ in range(100):  # the shutdown runs as a callback on this loop
                if not scheduler.running:
                    break
                await asyncio.sleep(0)
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            await inflight  # let a scan that is under way commit

    async def _tick(self) -> None:
        # Shielded: stopping the scheduler cancels the job's task, not the scan itself.
        self._inflight = asyncio.ensure_future(self._scan())
        try:
            await asyncio.shield(self._inflight)
        except asyncio.CancelledError:
            # APScheduler cancels the job when it shuts down; stop() awaits the scan itself.
            return

    async def _scan(self) -> None:
        try:
            await self.monitor.run_once()
        except Exception:
            log.exception("SLA scan failed; the next one runs in %s s", self.scan_seconds)
