"""Wake, don't poll: a commit that queues outbox work wakes its sender, here and elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from sqlalchemy.orm import Session

from lpse_helpdesk.bot.dispatcher import TelegramDispatcher
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sla.scheduler import NEXT_JOB_ID, SlaScheduler
from lpse_helpdesk.storage.db import Database, upgrade
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock, SystemClock
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.tickets import Workflow
from lpse_helpdesk.workflow.waker import NotifyListener, waker_for
from lpse_helpdesk.workflow.worker import PollingWorker
from tests.conftest import WIB
from tests.sla_support import monitor, open_ticket

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def _alert(session: Session) -> None:
    enqueue_telegram(
        session,
        TelegramOp.ALERT,
        ticket_id=None,
        payload={"alert": "imap_down", "error": "x", "host": "h"},
        importance=Importance.SLA_ALERT,
        now=NOW,
    )


async def _woken(event: asyncio.Event, seconds: float = 10.0) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def test_a_commit_with_outbox_rows_wakes_the_subscribers_of_its_channel(
    db: Database,
) -> None:
    telegram, mail = asyncio.Event(), asyncio.Event()
    waker = waker_for(db)
    assert waker_for(db) is waker  # one per database
    stop_telegram = waker.subscribe("telegram", telegram.set)
    stop_mail = waker.subscribe("mail", mail.set)
    try:
        await db.run(_alert)  # committed on a database thread
        assert await _woken(telegram)
        assert not mail.is_set()
    finally:
        stop_telegram()
        stop_mail()


async def test_a_rollback_or_a_commit_without_outbox_rows_wakes_nobody(db: Database) -> None:
    woken = asyncio.Event()
    unsubscribe = waker_for(db).subscribe("telegram", woken.set)

    def rolled_back(session: Session) -> None:
        _alert(session)
        session.flush()
        raise RuntimeError("bad input")

    try:
        with contextlib.suppress(RuntimeError):
            await db.run(rolled_back)
        await db.run(lambda s: None)
        await asyncio.sleep(0.2)
        assert not woken.is_set()
    finally:
        unsubscribe()


async def test_a_savepoint_rolled_back_keeps_the_wake_up_of_the_transaction(
    db: Database,
) -> None:
    woken = asyncio.Event()
    unsubscribe = waker_for(db).subscribe("telegram", woken.set)

    def batch(session: Session) -> None:
        _alert(session)  # a good mail
        with contextlib.suppress(RuntimeError), session.begin_nested():
            _alert(session)  # a bad one, rolled back alone
            session.flush()
            raise RuntimeError("bad mail")
        with session.begin_nested():
            session.flush()  # a savepoint committed: not yet the transaction
        assert not woken.is_set()

    try:
        await db.run(batch)
        assert await _woken(woken)
    finally:
        unsubscribe()


class _Counter(PollingWorker):
    name = "counter"
    poll_seconds = 3600.0  # never polls within a test: only a wake-up makes it look

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.rounds = 0
        self.looked = asyncio.Event()

    def wake_source(self) -> tuple[Database, str]:
        return self.db, "telegram"

    async def work_once(self) -> bool:
        self.rounds += 1
        if self.rounds > 1:
            self.looked.set()
        return False


async def test_a_worker_sleeps_until_a_commit_wakes_it(db: Database) -> None:
    worker = _Counter(db)
    await worker.start()
    try:
        await asyncio.sleep(0.1)
        assert worker.rounds == 1  # the first round, then asleep
        await db.run(_alert)
        assert await _woken(worker.looked)
    finally:
        await worker.stop()
    await db.run(_alert)  # after stop: unsubscribed, nothing to call
    await asyncio.sleep(0.1)
    assert worker.rounds == 2


async def test_the_dispatcher_sleeps_until_the_next_due_row(db: Database) -> None:
    clock = SystemClock()

    def later(session: Session) -> None:
        enqueue_telegram(
            session,
            TelegramOp.ALERT,
            ticket_id=None,
            payload={"alert": "imap_down"},
            importance=Importance.SLA_ALERT,
            now=clock.now() + dt.timedelta(seconds=42),
        )

    await db.run(later)
    dispatcher = TelegramDispatcher(None, db, clock, None, WIB, -100)  # type: ignore[arg-type]
    assert await dispatcher.dispatch_once() is False
    due = dispatcher.seconds_until_due()
    assert due is not None and 30 < due <= 42


async def test_the_sla_scheduler_plans_a_scan_at_the_next_deadline(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    calendar: BusinessCalendar,
    domain: DomainConfig,
) -> None:
    sla = monitor(db, clock, calendar, domain)
    open_ticket(db, workflow, clock)  # the 5-minute priority clock starts now
    due = db.run_sync(sla.next_due_in)
    assert due is not None and clock.now() < due <= clock.now() + dt.timedelta(minutes=5)
    # With a safety-net interval longer than the wait, a one-off scan is planned for it.
    scheduler = SlaScheduler(sla, scan_seconds=24 * 3600)
    await scheduler.start()
    try:
        for _ in range(500):
            if NEXT_JOB_ID in scheduler.job_ids():
                break
            await asyncio.sleep(0.01)
        assert NEXT_JOB_ID in scheduler.job_ids()
        assert scheduler.next_scan_at is not None
    finally:
        await scheduler.stop()


async def test_postgresql_commits_wake_the_other_instance(postgres_url: str) -> None:
    """Two Database objects stand for two instances: one commits, the other is woken."""
    first, second = Database.from_url(postgres_url), Database.from_url(postgres_url)
    upgrade(first.engine)
    listener = NotifyListener(second)
    woken = asyncio.Event()
    unsubscribe = waker_for(second).subscribe("telegram", woken.set)
    await listener.start()
    try:
        assert await _woken(listener.connected)
        await asyncio.sleep(0.1)
        woken.clear()  # the look it takes once connected
        await first.run(_alert)
        assert await _woken(woken)
        assert listener.received >= 1
    finally:
        unsubscribe()
        await listener.stop()
        first.close()
        second.close()
