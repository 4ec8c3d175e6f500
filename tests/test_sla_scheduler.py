"""The SLA scheduler: one job "sla-scan" that scans on an interval, stopped cleanly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sla.monitor import ScanReport
from lpse_helpdesk.sla.scheduler import JOB_ID, SlaScheduler
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.tickets import Workflow
from tests.sla_support import monitor, open_ticket, sla_items


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_the_job_scans_and_alerts_once(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    open_ticket(db, workflow, clock)
    clock.advance(minutes=6)  # past the 5-minute priority deadline
    scans: list[ScanReport] = []
    sla = monitor(db, clock, calendar, domain)
    real = sla.run_once

    async def counted() -> ScanReport:
        scans.append(await real())
        return scans[-1]

    sla.run_once = counted  # type: ignore[method-assign]
    scheduler = SlaScheduler(sla, scan_seconds=0.05)
    await scheduler.start()
    try:
        assert scheduler.running and scheduler.job_ids() == [JOB_ID]
        await _until(lambda: len(scans) >= 4)
    finally:
        await scheduler.stop()
    assert not scheduler.running and scheduler.job_ids() == []
    assert scans[0].breached  # the first scan runs right after start
    keys = [str(i.dedup_key).split(":")[0] for i in sla_items(db)]
    assert keys == ["sla-breach", "sla-summary"]  # once each, however many scans ran


class _Slow:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = False

    async def run_once(self) -> None:
        self.started.set()
        await asyncio.sleep(0.2)
        self.finished = True


async def test_stop_lets_a_running_scan_finish() -> None:
    slow = _Slow()
    scheduler = SlaScheduler(slow, scan_seconds=60)
    await scheduler.start()
    await asyncio.wait_for(slow.started.wait(), 5)
    await scheduler.stop()
    assert slow.finished and not scheduler.running


async def test_a_failing_scan_is_logged_and_the_job_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    class Broken:
        async def run_once(self) -> None:
            calls.append(1)
            raise RuntimeError("database is gone")

    scheduler = SlaScheduler(Broken(), scan_seconds=0.05)
    with caplog.at_level(logging.ERROR, logger="lpse_helpdesk.sla.scheduler"):
        await scheduler.start()
        try:
            await _until(lambda: len(calls) >= 3)
        finally:
            await scheduler.stop()
    assert "SLA scan failed" in caplog.text and "database is gone" in caplog.text


async def test_stop_without_start_and_bad_interval() -> None:
    scheduler = SlaScheduler(_Slow())
    await scheduler.stop()
    assert scheduler.name == "SLA scheduler" and scheduler.scan_seconds == 30
    with pytest.raises(ValueError, match="scan_seconds"):
        SlaScheduler(_Slow(), scan_seconds=0)
