"""The SLA scan as APScheduler jobs with fixed ids, run as a piece of the service.

The scan runs when its next notice falls due (a one-off job at that moment, moved whenever a
commit changes SLA clocks) and every `scan_seconds` as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from lpse_helpdesk.storage.db import Database

log = logging.getLogger(__name__)

JOB_ID = "sla-scan"
NEXT_JOB_ID = "sla-next"  # the scan at the next due moment
#: Scans on time follow each other at least this far apart (a notice another instance holds
#: locked stays "due" until it is sent).
MIN_GAP = dt.timedelta(seconds=1)


class Scanner(Protocol):
    async def run_once(self) -> object: ...


@runtime_checkable
class Timed(Protocol):
    """A scanner that knows when its next notice falls due (SlaMonitor)."""

    db: Database

    async def next_due(self) -> dt.datetime | None: ...


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
        self._planning: asyncio.Task[None] | None = None
        self._replan = False
        self._unsubscribe: Callable[[], None] | None = None
        #: When the one-off scan is set to run (None: only the safety-net interval).
        self.next_scan_at: dt.datetime | None = None

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
        if isinstance(self.monitor, Timed):
            from lpse_helpdesk.workflow.waker import SLA_TOPIC, waker_for

            self._unsubscribe = waker_for(self.monitor.db).subscribe(SLA_TOPIC, self.replan)

    def replan(self) -> None:
        """SLA clocks changed: work out again when the next scan is due (merged if busy)."""
        if self._scheduler is None or not isinstance(self.monitor, Timed):
            return
        if self._planning is not None and not self._planning.done():
            self._replan = True
            return
        self._planning = asyncio.ensure_future(self._plan())

    async def _plan(self) -> None:
        monitor = self.monitor
        assert isinstance(monitor, Timed)
        while True:
            self._replan = False
            try:
                due = await monitor.next_due()
            except Exception:
                log.exception(
                    "could not work out the next SLA deadline; scanning every %s s",
                    self.scan_seconds,
                )
                return
            scheduler = self._scheduler
            if scheduler is None:
                return
            if due is not None:
                due = max(due, dt.datetime.now(dt.UTC) + MIN_GAP)
                if due - dt.datetime.now(dt.UTC) >= dt.timedelta(seconds=self.scan_seconds):
                    due = None  # the safety-net scan comes first anyway
            if due != self.next_scan_at:
                self.next_scan_at = due
                if due is None:
                    if scheduler.get_job(NEXT_JOB_ID) is not None:
                        scheduler.remove_job(NEXT_JOB_ID)
                else:
                    scheduler.add_job(
                        self._tick,
                        DateTrigger(run_date=due, timezone=dt.UTC),
                        id=NEXT_JOB_ID,
                        name="SLA scan at the next deadline",
                        misfire_grace_time=None,
                        replace_existing=True,
                    )
            if not self._replan:
                return

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        planning = self._planning
        if planning is not None and not planning.done():
            planning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await planning
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
        self.next_scan_at = None  # the one-off job, if it ran this scan, is gone
        self.replan()
