"""The mail intake against a real Dovecot: exactly once, never lost, IDLE, reconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from imap_tools import MailBoxUnencrypted
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.inbound import (
    PARALLEL_FROM,
    PIPELINE_BATCH,
    MailIntakeService,
)
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    FailedMail,
    MailboxState,
    Message,
    OutboxChannel,
    OutboxItem,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import make_intake
from tests.intake_support import intake_service
from tests.mailmaker import make_mail
from tests.servers.dovecot import ImapAccount as DovecotAccount

pytestmark = pytest.mark.dovecot


@pytest.fixture
async def service(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> AsyncIterator[MailIntakeService]:
    svc = intake_service(imap_account, intake, db, clock)
    yield svc


def _count(db: Database, model: type[Any]) -> int:
    return db.run_sync(lambda s: s.scalar(select(func.count()).select_from(model)) or 0)


def _flags(account: DovecotAccount, folder: str = "INBOX") -> dict[int, tuple[str, ...]]:
    with MailBoxUnencrypted(account.host, account.port).login(
        account.user, account.password, initial_folder=folder
    ) as box:
        return {int(m.uid or 0): m.flags for m in box.fetch(mark_seen=False, headers_only=True)}


async def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _connect(service: MailIntakeService) -> None:
    await service._imap(service.session.connect)


async def test_new_mail_becomes_a_ticket_then_is_marked_seen(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    uid = imap_account.append(make_mail())
    await _connect(service)
    report = await service.sync_once()
    assert report.committed == 1 and report.outcomes == {"opened": 1}
    ticket = db.run_sync(lambda s: s.scalars(select(Ticket)).one())
    assert ticket.number == "LPSE-2026-00001"
    assert ticket.requester_email == "siti@vendor.co.id"
    assert ticket.suggested_category == "TENDER_UNGGAH_PENAWARAN"
    assert ticket.tender_codes == ["12345678"]
    assert "\\Seen" in _flags(imap_account)[uid]
    kinds = db.run_sync(
        lambda s: list(
            s.scalars(select(OutboxItem.kind).where(OutboxItem.channel == OutboxChannel.MAIL))
        )
    )
    assert kinds == ["acknowledgement"]
    # Nothing new: a second sync fetches nothing.
    assert (await service.sync_once()).fetched == 0
    await service._imap(service.session.close)


async def test_mail_already_read_by_a_person_is_ingested(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    imap_account.append(make_mail(), flags=("\\Seen",))
    await _connect(service)
    await service.sync_once()
    assert _count(db, Ticket) == 1
    await service._imap(service.session.close)


async def test_bulk_backlog_and_duplicates(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    """A backlog large enough to be parsed in the helper process, with a duplicate in it."""
    count = PARALLEL_FROM + PIPELINE_BATCH  # two batches through the pipeline
    for i in range(count):
        imap_account.append(make_mail(subject=f"Masalah {i}", sender=f"u{i}@x.co.id"))
    same = make_mail(message_id="<same@vendor.co.id>")
    imap_account.append(same)
    imap_account.append(same)  # the same mail twice (e.g. delivered to two aliases)
    await _connect(service)
    try:
        report = await service.sync_once()
        assert report.fetched == count + 2 and report.committed == count + 2
        assert report.outcomes == {"opened": count + 1, "duplicate": 1}
        assert _count(db, Ticket) == count + 1
        assert all("\\Seen" in flags for flags in _flags(imap_account).values())
        assert service.worker._process is not None  # parsed in the parsing process
    finally:
        await service.stop()


async def test_processed_folder(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    service = intake_service(imap_account, intake, db, clock, processed_folder="Diproses")
    imap_account.append(make_mail())
    await _connect(service)
    await service.sync_once()
    assert _flags(imap_account) == {}
    assert len(_flags(imap_account, "Diproses")) == 1
    await service._imap(service.session.close)


async def test_crash_between_fetch_and_commit(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    """The process dies after FETCH: nothing was committed or marked; a new run ingests once."""
    imap_account.append(make_mail())
    crashed = intake_service(imap_account, intake, db, clock)
    await _connect(crashed)
    fetched = await crashed._imap(lambda: crashed.session.fetch(crashed.session.uids_after(0)))
    assert len(fetched) == 1
    await crashed._imap(crashed.session.close)  # ...and it dies here

    restarted = intake_service(imap_account, intake, db, clock)
    await _connect(restarted)
    await restarted.sync_once()
    assert _count(db, Ticket) == 1
    assert all("\\Seen" in f for f in _flags(imap_account).values())
    await restarted._imap(restarted.session.close)


async def test_crash_between_commit_and_marking(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    """Committed but not marked: the next run marks it and does not ingest it twice."""
    raw = make_mail()
    uid = imap_account.append(raw)
    db.run_sync(lambda s: intake.ingest(s, raw, mailbox="INBOX", uid=uid))
    assert "\\Seen" not in _flags(imap_account)[uid]

    restarted = intake_service(imap_account, intake, db, clock)
    await _connect(restarted)
    report = await restarted.sync_once()
    assert report.outcomes == {"duplicate": 1}
    assert _count(db, Ticket) == 1
    assert "\\Seen" in _flags(imap_account)[uid]
    await restarted._imap(restarted.session.close)


async def test_uidvalidity_change_rescans_without_duplicates(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    imap_account.append(make_mail(subject="Satu"))
    await _connect(service)
    await service.sync_once()
    old = db.run_sync(lambda s: s.get_one(MailboxState, "INBOX").uidvalidity)
    await service._imap(service.session.close)

    new = imap_account.bump_uidvalidity()
    assert new != old
    imap_account.append(make_mail(subject="Dua"))
    await _connect(service)
    report = await service.sync_once()
    assert report.outcomes == {"duplicate": 1, "opened": 1}
    assert _count(db, Ticket) == 2
    assert db.run_sync(lambda s: s.get_one(MailboxState, "INBOX").uidvalidity) == new
    await service._imap(service.session.close)


class FlakyIntake(Intake):
    """Fails on mails whose subject contains "RUSAK", to exercise retry and quarantine."""

    def ingest_prepared(self, session: Session, prepared: Any, **kw: Any) -> Any:
        if b"RUSAK" in prepared.raw:
            raise ValueError("cannot process this mail")
        return super().ingest_prepared(session, prepared, **kw)


async def test_a_failing_mail_is_retried_then_quarantined(
    imap_account: DovecotAccount,
    workflow: Workflow,
    domain: DomainConfig,
    db: Database,
    clock: FixedClock,
) -> None:
    flaky = FlakyIntake(workflow, domain, make_intake(workflow, domain).config)
    service = intake_service(imap_account, flaky, db, clock, quarantine_folder="Karantina")
    bad = imap_account.append(make_mail(subject="RUSAK"))
    imap_account.append(make_mail(subject="Baik"))
    await _connect(service)
    first = await service.sync_once()
    assert first.committed == 1 and first.failed == 1
    assert _count(db, Ticket) == 1  # the good one was not held up
    failed = db.run_sync(lambda s: s.scalars(select(FailedMail)).one())
    assert failed.failures == 2 and not failed.quarantined  # first try + one retry
    assert "\\Seen" not in _flags(imap_account)[bad]  # not handled: kept as it is

    await service.sync_once()  # third failure: quarantined
    failed = db.run_sync(lambda s: s.scalars(select(FailedMail)).one())
    assert failed.quarantined and b"RUSAK" in failed.raw  # kept raw
    assert len(_flags(imap_account, "Karantina")) == 1
    alerts = db.run_sync(
        lambda s: [
            i.payload for i in s.scalars(select(OutboxItem).where(OutboxItem.kind == "alert"))
        ]
    )
    assert [a["alert"] for a in alerts] == ["quarantined"]
    await service.sync_once()  # nothing more happens to it
    assert db.run_sync(lambda s: s.scalars(select(FailedMail)).one()).failures == 3
    await service._imap(service.session.close)


async def test_idle_wakes_up_on_new_mail(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    await service.start()
    try:
        await _wait(lambda: service.synced.is_set())
        await asyncio.sleep(0.3)  # in IDLE now
        imap_account.append(make_mail())
        await _wait(lambda: _count(db, Ticket) == 1, timeout=5)
        assert service.session.supports_idle
    finally:
        await service.stop()


async def test_connection_dropped_mid_idle_reconnects(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    await service.start()
    try:
        await _wait(lambda: service.synced.is_set())
        await asyncio.sleep(0.3)
        imap_account.drop_connections(hard=True)
        await asyncio.sleep(0.3)
        imap_account.append(make_mail())
        await _wait(lambda: _count(db, Ticket) == 1, timeout=10)
    finally:
        await service.stop()


async def test_rejected_login_is_reported_once_and_retried(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    wrong = DovecotAccount(
        host=imap_account.host,
        port=imap_account.port,
        user=imap_account.user,
        password="wrong",
        server=imap_account.server,
    )
    service = intake_service(wrong, intake, db, clock, report_after_failures=2)
    await service.start()
    try:

        def alerts() -> list[str]:
            return db.run_sync(
                lambda s: [
                    i.payload["alert"]
                    for i in s.scalars(select(OutboxItem).where(OutboxItem.kind == "alert"))
                ]
            )

        await _wait(lambda: service._failures >= 4, timeout=15)
        assert alerts() == ["imap_down"]  # once, not at every retry
    finally:
        await service.stop()
    assert "wrong" not in str(alerts())


async def test_server_down_then_up(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock, refused_port: int
) -> None:
    down = DovecotAccount(
        host=imap_account.host,
        port=refused_port,
        user=imap_account.user,
        password=imap_account.password,
        server=imap_account.server,
    )
    service = intake_service(down, intake, db, clock, report_after_failures=1)
    await service.start()
    try:
        await _wait(lambda: service._reported, timeout=10)
    finally:
        await service.stop()
    stored = db.run_sync(
        lambda s: [
            i.payload for i in s.scalars(select(OutboxItem).where(OutboxItem.kind == "alert"))
        ]
    )
    assert stored == [
        {"alert": "imap_down", "error": "ConnectionRefusedError", "host": "127.0.0.1"}
    ]


async def test_the_corpus_through_dovecot(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    from tests.corpus import build

    corpus = [m for m in build() if m.max_bytes is None]
    for mail in corpus:
        imap_account.append(mail.raw)
    await _connect(service)
    report = await service.sync_once()
    assert report.fetched == len(corpus)
    assert report.failed == 0 and report.committed == len(corpus)
    messages = db.run_sync(lambda s: s.scalar(select(func.count()).select_from(Message)))
    assert messages == len(corpus) - report.outcomes.get("duplicate", 0)
    auto = report.outcomes.get("auto_reply", 0)
    bounces = report.outcomes.get("bounce", 0)
    assert auto >= 5 and bounces >= 3, report.outcomes
    await service._imap(service.session.close)


async def test_renumbered_mailbox_does_not_hide_new_mail(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    """After a UIDVALIDITY change, new mails with old UID numbers are read, not skipped."""
    service = intake_service(imap_account, intake, db, clock, processed_folder="Diproses")
    for i in range(3):
        imap_account.append(make_mail(subject=f"Lama {i}", sender=f"l{i}@x.co.id"))
    await _connect(service)
    await service.sync_once()
    await service._imap(service.session.close)
    imap_account.bump_uidvalidity()
    for word in ("A", "B"):
        imap_account.append(make_mail(subject=f"Baru {word}", sender=f"{word}@x.co.id"))
    await _connect(service)
    await service._remark_committed()  # what a restart does first
    await service.sync_once()
    subjects = db.run_sync(lambda s: sorted(t.subject for t in s.scalars(select(Ticket))))
    assert subjects == ["Baru A", "Baru B", "Lama 0", "Lama 1", "Lama 2"]
    await service.stop()


async def test_a_dead_helper_process_does_not_stall_the_backlog(
    imap_account: DovecotAccount, service: MailIntakeService, db: Database
) -> None:
    service.worker.start()
    process = service.worker._process
    assert process is not None
    process.kill()  # as the OOM killer would
    process.join()
    for i in range(PARALLEL_FROM + 5):
        imap_account.append(make_mail(subject=f"M {i}", sender=f"d{i}@x.co.id"))
    await _connect(service)
    try:
        report = await service.sync_once()
        assert report.committed == PARALLEL_FROM + 5 and report.failed == 0
    finally:
        await service.stop()


async def test_mail_announced_during_a_sync_does_not_wait_for_idle(
    imap_account: DovecotAccount, service: MailIntakeService
) -> None:
    import time as _time

    await _connect(service)
    try:
        session = service.session
        await service._imap(lambda: session.idle(0.1))  # clears what the login left
        imap_account.append(make_mail())
        _time.sleep(0.7)  # Dovecot announces new mail in the next command's responses
        await service._imap(lambda: session.box.client.noop())
        started = _time.monotonic()
        responses = await service._imap(lambda: session.idle(20))
        assert responses and _time.monotonic() - started < 1
    finally:
        await service.stop()
