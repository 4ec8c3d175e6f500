"""Intake on a real LPSE mailbox (issue #10), against a real Dovecot: years of history on the
first start, `import`, INTERNALDATE, hostile mails, a locked database, a refused folder, and
Dovecot going away mid-IDLE."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import sqlite3
import time
from multiprocessing.connection import Connection
from typing import Any

import pytest
from sqlalchemy import event, func, select

from lpse_helpdesk.bridge import inbound
from lpse_helpdesk.bridge.history_import import import_history
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.bridge.parse_worker import ParseWorker, Progress, serve_mails
from lpse_helpdesk.bridge.quarantine import list_quarantined, retry_quarantined
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    FailedMail,
    MailboxState,
    Message,
    OutboxChannel,
    OutboxItem,
    SlaClock,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import FixedClock
from tests.intake_support import connected, intake_service
from tests.mailmaker import make_mail
from tests.servers.dovecot import DovecotServer
from tests.servers.dovecot import ImapAccount as DovecotAccount
from tests.test_intake_imap import FlakyIntake, _count, _flags, _wait
from tests.test_parse_worker import _misbehaving

pytestmark = pytest.mark.dovecot


def _alerts(db: Database, kind: str) -> list[OutboxItem]:
    return db.run_sync(
        lambda s: [
            o
            for o in s.scalars(
                select(OutboxItem).where(OutboxItem.channel == OutboxChannel.TELEGRAM)
            )
            if o.payload.get("alert") == kind
        ]
    )


def _mail_count(db: Database) -> int:
    return db.run_sync(
        lambda s: (
            s.scalar(
                select(func.count())
                .select_from(OutboxItem)
                .where(OutboxItem.channel == OutboxChannel.MAIL)
            )
            or 0
        )
    )


async def test_first_start_on_a_mailbox_with_history_then_import_twice(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    now = clock.now()
    old_day = dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.UTC)
    for i in range(300):
        imap_account.append(
            make_mail(subject=f"Lama {i}", sender=f"lama{i}@vendor.co.id"),
            date=old_day + dt.timedelta(hours=i),
        )
    recent_at = [now - dt.timedelta(days=d, hours=1) for d in (0, 2, 6)]
    for i, when in enumerate(recent_at):
        imap_account.append(
            make_mail(subject=f"Baru {i}", sender=f"baru{i}@vendor.co.id"), date=when
        )
    async with connected(imap_account, intake, db, clock) as service:
        report = await service.sync_once()
        assert report.skipped_old == 300 and report.committed == 3
        tickets = db.run_sync(lambda s: list(s.scalars(select(Ticket).order_by(Ticket.id))))
        assert [t.subject for t in tickets] == ["Baru 0", "Baru 1", "Baru 2"]
        # The arrival time is the server's INTERNALDATE (what the recap shows as received).
        received = sorted(t.received_at for t in tickets)
        assert received == sorted(w.replace(microsecond=0).astimezone(dt.UTC) for w in recent_at)
        # Nothing went to the 300 old senders; the 3 recent got their acknowledgement.
        recipients = db.run_sync(
            lambda s: set(
                s.scalars(
                    select(OutboxItem.recipient).where(OutboxItem.channel == OutboxChannel.MAIL)
                )
            )
        )
        assert recipients == {f"baru{i}@vendor.co.id" for i in range(3)}
        notices = _alerts(db, "backfill_skipped")
        assert len(notices) == 1 and notices[0].payload["count"] == 300
        flags = _flags(imap_account)
        assert sum("\\Seen" in f for f in flags.values()) == 3  # the old ones untouched
        state = db.run_sync(lambda s: s.get_one(MailboxState, "INBOX"))
        assert state.skip_before is None and state.last_uid == max(flags)
        # A later sync does not pick the old mail up either, nor tell the group again.
        again = await service.sync_once()
        assert again.fetched == 0 and len(_alerts(db, "backfill_skipped")) == 1

        worker = ParseWorker(
            intake.config.max_bytes, intake.config.helpdesk_addresses, intake.domain
        )
        try:
            steps: list[tuple[int, int]] = []

            def run(dry: bool = False) -> Any:
                return import_history(
                    service.session,
                    intake,
                    db,
                    worker,
                    since=dt.date(2024, 1, 1),
                    until=dt.date(2024, 12, 31),
                    dry_run=dry,
                    progress=lambda d, t: steps.append((d, t)),
                )

            dry = await service._imap(lambda: run(True))
            assert dry.found == 300 and dry.would_import == 300
            assert _count(db, Ticket) == 3
            first = await service._imap(run)
            assert first.tickets == 300 and first.failed == 0
            assert steps[-1] == (300, 300)
            second = await service._imap(run)
            assert second.tickets == 0 and second.already == 300
        finally:
            worker.close()
        assert _count(db, Ticket) == 303
        imported = db.run_sync(
            lambda s: list(s.scalars(select(Ticket).where(Ticket.subject.like("Lama %"))))
        )
        assert min(t.received_at for t in imported) == old_day
        # The recap lists the imported history in the month the server received it.
        from zoneinfo import ZoneInfo

        from lpse_helpdesk.reports.data import iter_tickets
        from lpse_helpdesk.reports.period import month_period

        march = month_period(2024, 3, ZoneInfo("Asia/Jakarta"))
        rows = db.run_sync(lambda s: list(iter_tickets(s, march)))
        assert rows and rows[0].received_at == old_day
        ids = [t.id for t in imported]
        clocks = db.run_sync(
            lambda s: s.scalar(
                select(func.count()).select_from(SlaClock).where(SlaClock.ticket_id.in_(ids))
            )
        )
        assert clocks == 0
        assert _mail_count(db) == 3  # still only the three acknowledgements
        assert len(_alerts(db, "import_done")) == 1  # one summary, not 300 cards
        cards = db.run_sync(
            lambda s: s.scalar(
                select(func.count())
                .select_from(OutboxItem)
                .where(OutboxItem.ticket_id.in_(ids), OutboxItem.channel == OutboxChannel.TELEGRAM)
            )
        )
        assert cards == 0
        assert sum("\\Seen" in f for f in _flags(imap_account).values()) == 3
        # A restart's look for stored but unmarked mail leaves the imported history alone.
        await service._remark_committed()
        assert sum("\\Seen" in f for f in _flags(imap_account).values()) == 3


def _import(service: Any, intake: Intake, db: Database, **options: Any) -> Any:
    worker = ParseWorker(intake.config.max_bytes, intake.config.helpdesk_addresses, intake.domain)
    try:
        return import_history(
            service.session, intake, db, worker, since=dt.date(2024, 1, 1), **options
        )
    finally:
        worker.close()


async def test_an_import_leaves_the_services_mail_to_it(
    imap_account: DovecotAccount, intake: Intake, database: Database, clock: FixedClock
) -> None:
    """`import --since 2024-01-01` reaches today: a mail the service has not read yet (it
    arrived while the import ran) must still get its acknowledgement and SLA clocks."""
    db = database  # on SQLite and on PostgreSQL
    now = clock.now()
    old_day = dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.UTC)
    imap_account.append(make_mail(subject="Lama", sender="lama@vendor.co.id"), date=old_day)
    imap_account.append(make_mail(subject="Kemarin", sender="k@vendor.co.id"), date=now)
    async with connected(imap_account, intake, db, clock) as service:
        # Before the first sync: only what that sync will leave alone (older than 7 days).
        early = await service._imap(lambda: _import(service, intake, db, live_folder=True))
        assert (early.tickets, early.left_to_service) == (1, 1)
        assert (await service.sync_once()).committed == 1  # "Kemarin", live
        imap_account.append(make_mail(subject="Baru masuk", sender="baru@vendor.co.id"))
        await service._imap(lambda: service.session.box.client.noop())
        again = await service._imap(lambda: _import(service, intake, db, live_folder=True))
        assert (again.tickets, again.already, again.left_to_service) == (0, 2, 1)
        assert (await service.sync_once()).committed == 1  # "Baru masuk", live too
        live = db.run_sync(
            lambda s: set(
                s.scalars(
                    select(OutboxItem.recipient).where(OutboxItem.channel == OutboxChannel.MAIL)
                )
            )
        )
        assert live == {"k@vendor.co.id", "baru@vendor.co.id"}  # acknowledged, not "Lama"
        clocks = db.run_sync(
            lambda s: set(
                s.scalars(select(Ticket.subject).join(SlaClock, SlaClock.ticket_id == Ticket.id))
            )
        )
        assert clocks == {"Kemarin", "Baru masuk"}
        # Another folder is not the service's: everything in the range is imported there.
        other = await service._imap(lambda: _import(service, intake, db, live_folder=False))
        assert other.left_to_service == 0


async def test_an_import_leaves_a_mail_the_service_will_retry_to_the_service(
    imap_account: DovecotAccount, intake: Intake, database: Database, clock: FixedClock
) -> None:
    """Not every UID up to last_uid was ticketed or left alone: a mail whose parsing failed
    (here its parsing process died) waits in failed_mails for the service's retry. The
    import leaves it, so that the retry tickets and acknowledges it."""
    db = database  # on SQLite and on PostgreSQL
    sender = "gagal@vendor.co.id"
    imap_account.append(make_mail(subject="MATI prosesnya", sender=sender))
    first = intake_service(imap_account, intake, db, clock)
    first.worker = ParseWorker(
        intake.config.max_bytes,
        intake.config.helpdesk_addresses,
        intake.domain,
        budget=10.0,
        serve=_misbehaving,  # the parsing process dies on this mail (as by the OOM killer)
    )
    try:
        await first._imap(first.session.connect)
        await first.sync_once()
    finally:
        await first.stop()
    pending = db.run_sync(lambda s: [f.quarantined for f in s.scalars(select(FailedMail))])
    assert pending == [False]  # to be retried by the service

    service = intake_service(imap_account, intake, db, clock)
    worker = ParseWorker(intake.config.max_bytes, intake.config.helpdesk_addresses, intake.domain)
    try:
        await service._imap(service.session.connect)
        report = await service._imap(
            lambda: import_history(
                service.session,
                intake,
                db,
                worker,
                since=dt.date(2024, 1, 1),
                live_folder=True,
            )
        )
        await service.sync_once()  # the retry
        acknowledged = db.run_sync(
            lambda s: list(
                s.scalars(
                    select(OutboxItem.recipient).where(
                        OutboxItem.channel == OutboxChannel.MAIL, OutboxItem.recipient == sender
                    )
                )
            )
        )
    finally:
        worker.close()
        await service.stop()
    assert acknowledged == [sender], report  # the import took it: ImportReport(tickets=1)
    assert report.left_to_service == 1, report


_HOSTILE_SPACES = " " * 200_000


def _hostile_mails() -> list[bytes]:
    blank_bounce = (
        "From: MAILER-DAEMON@vendor.co.id\r\nTo: helpdesk@lpse.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@vendor.co.id>\r\n"
        "Return-Path: <>\r\n\r\nThe mail could not be delivered.\r\n"
        + "\r\n" * 50_000
        + " \r\n" * 20_000
        + "> Message-ID:"
        + " " * 50_000
        + "\r\n"
    ).encode()
    return [
        make_mail(subject="Re" + _HOSTILE_SPACES + "x", sender="a1@vendor.co.id"),
        make_mail(body="kode tender" + " - " * 30_000 + "\n" + _HOSTILE_SPACES, sender="a2@x.id"),
        make_mail(
            body="Mohon bantuan.\n\n--"
            + " \n" * 40_000
            + "Salam"
            + _HOSTILE_SPACES
            + "\nFrom:"
            + _HOSTILE_SPACES,
            sender="a3@vendor.co.id",
        ),
        make_mail(
            sender="a4@vendor.co.id",
            message_id="<" + " " * 100_000 + "x",
            in_reply_to="<" + " \t" * 50_000,
            references="<a@b> " + "<" * 50_000,
        ),
        blank_bounce,
    ]


async def test_hostile_mails_do_not_stall_the_mail_after_them(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    for raw in _hostile_mails():
        imap_account.append(raw)
    imap_account.append(make_mail(subject="Normal sesudahnya", sender="normal@vendor.co.id"))
    # Each mail parses well inside 10 s (a regex that backtracks would take minutes).
    async with connected(imap_account, intake, db, clock, parse_seconds=10) as service:
        report = await service.sync_once()
        assert report.failed == 0 and report.quarantined == 0 and service.worker.kills == 0
        subjects = db.run_sync(lambda s: list(s.scalars(select(Ticket.subject))))
        assert "Normal sesudahnya" in subjects


def slow_serve(conn: Connection, progress: Progress) -> None:
    """The real parsing loop, except that a mail containing LAMBAT hangs (as a pathological
    mail in a library would)."""
    import lpse_helpdesk.bridge.parse_worker as worker_module

    real = worker_module.prepare_light  # type: ignore[attr-defined]  # its import, patched below

    def prepare_light(raw: bytes, *args: Any) -> Any:
        if b"LAMBAT" in raw:
            time.sleep(3600)
        return real(raw, *args)

    worker_module.prepare_light = prepare_light  # type: ignore[attr-defined,assignment]  # stand-in
    serve_mails(conn, progress)


async def test_a_mail_over_its_parse_budget_is_quarantined_and_the_next_flows_on(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    imap_account.append(make_mail(subject="LAMBAT sekali", sender="slow@vendor.co.id"))
    imap_account.append(make_mail(subject="Sesudahnya", sender="next@vendor.co.id"))
    service = intake_service(imap_account, intake, db, clock, quarantine_folder="Karantina")
    service.worker = ParseWorker(
        intake.config.max_bytes,
        intake.config.helpdesk_addresses,
        intake.domain,
        budget=1.5,
        serve=slow_serve,
    )
    try:
        await service._imap(service.session.connect)
        report = await service.sync_once()
        assert report.quarantined == 1 and report.committed == 1
        assert db.run_sync(lambda s: list(s.scalars(select(Ticket.subject)))) == ["Sesudahnya"]
        failed = db.run_sync(lambda s: s.scalars(select(FailedMail)).one())
        assert failed.quarantined and "MAIL_PARSE_SECONDS" in failed.last_error
        assert len(_alerts(db, "mail_quarantined")) == 1
        # The operator lists it and, after the fix (here: the normal parser), retries it.
        assert [q.subject for q in list_quarantined(db)] == ["LAMBAT sekali"]
        fixed = ParseWorker(
            intake.config.max_bytes, intake.config.helpdesk_addresses, intake.domain
        )
        try:
            results = await asyncio.to_thread(retry_quarantined, db, intake, fixed, None)
        finally:
            fixed.close()
        assert [r.ok for r in results] == [True]
        assert _count(db, FailedMail) == 0 and _count(db, Ticket) == 2
    finally:
        await service.stop()


async def test_a_locked_database_is_retried_and_never_quarantines(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock, sqlite_url: str
) -> None:
    @event.listens_for(db.engine, "connect")
    def _short_wait(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA busy_timeout=100")

    db.engine.dispose()  # new connections get the short wait
    imap_account.append(make_mail(subject="Saat terkunci"))
    service = intake_service(imap_account, intake, db, clock)
    path = sqlite_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        await service._imap(service.session.connect)
        blocker.execute("BEGIN EXCLUSIVE")
        from lpse_helpdesk.bridge.failures import DatabaseUnavailable

        for _ in range(MAX_TRIES):
            with pytest.raises(DatabaseUnavailable):
                await service.sync_once()
        blocker.execute("ROLLBACK")
        report = await service.sync_once()
        assert report.committed == 1 and report.failed == 0
        assert _count(db, FailedMail) == 0 and _count(db, Ticket) == 1
    finally:
        blocker.close()
        await service.stop()


MAX_TRIES = 4  # more than MAX_FAILURES: a mail would have been quarantined by now


async def test_a_refused_folder_is_reported_once_and_does_not_stall(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> None:
    async with connected(imap_account, intake, db, clock, processed_folder="~Diproses") as service:
        for i in range(3):
            imap_account.append(make_mail(subject=f"Satu {i}", sender=f"f{i}@vendor.co.id"))
            await service._imap(lambda: service.session.box.client.noop())
            report = await service.sync_once()
            assert report.committed == 1, (i, report)
        assert _count(db, Ticket) == 3
        alerts = _alerts(db, "folder_refused")
        assert len(alerts) == 1 and "~Diproses" in alerts[0].payload["folder"]
        assert "Invalid mailbox name" in alerts[0].payload["cause"]
        assert all("\\Seen" in f for f in _flags(imap_account).values())


async def test_a_refused_move_is_done_on_the_next_start_and_history_stays(
    imap_account: DovecotAccount,
    intake: Intake,
    database: Database,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator fixes IMAP_PROCESSED_FOLDER and restarts: the mails the refused folder
    left behind are moved then. Old mail the first start left alone, mail brought in by
    `import` and mail not yet stored stay in the inbox as they are."""
    db = database  # on SQLite and on PostgreSQL
    old_day = dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.UTC)
    for i in range(4):
        imap_account.append(make_mail(subject=f"Lama {i}"), date=old_day + dt.timedelta(hours=i))
    async with connected(imap_account, intake, db, clock, processed_folder="~Diproses") as refused:
        assert (await refused.sync_once()).skipped_old == 4
        worker = ParseWorker(
            intake.config.max_bytes, intake.config.helpdesk_addresses, intake.domain
        )
        try:
            report = await refused._imap(
                lambda: import_history(
                    refused.session, intake, db, worker, since=dt.date(2024, 3, 5)
                )
            )
        finally:
            worker.close()
        assert report.tickets == 4
        old_uids = set(_flags(imap_account))
        for i in range(5):
            imap_account.append(make_mail(subject=f"Baru {i}", sender=f"b{i}@vendor.co.id"))
        await refused._imap(lambda: refused.session.box.client.noop())
        assert (await refused.sync_once()).committed == 5
        assert len(_flags(imap_account)) == 9  # the move was refused: all still in INBOX
    late = imap_account.append(make_mail(subject="Belum dibaca"))  # arrived while it was down

    monkeypatch.setattr(inbound, "REMARK_CHUNK", 2)  # several rounds of STORE and MOVE
    async with connected(imap_account, intake, db, clock, processed_folder="Diproses") as fixed:
        await fixed._remark_committed()  # what a start does first
        left = _flags(imap_account)
        assert set(left) == old_uids | {late}
        assert all("\\Seen" not in left[uid] for uid in old_uids | {late})
        assert len(_flags(imap_account, "Diproses")) == 5
        await fixed.sync_once()
        assert set(_flags(imap_account)) == old_uids


async def test_a_quarantined_mail_goes_to_its_folder_on_the_next_start(
    imap_account: DovecotAccount, intake: Intake, database: Database, clock: FixedClock
) -> None:
    """Quarantined with a refused quarantine folder: the next start, with the folder fixed,
    moves it; the mail stays stored in the database all along."""
    db = database  # on SQLite and on PostgreSQL
    imap_account.append(make_mail(subject="Baik", sender="ok@vendor.co.id"))
    bad = imap_account.append(make_mail(subject="RUSAK", sender="bad@vendor.co.id"))
    flaky = FlakyIntake(intake.workflow, intake.domain, intake.config)
    async with connected(imap_account, flaky, db, clock, quarantine_folder="~Karantina") as refused:
        for _ in range(MAX_TRIES):
            await refused.sync_once()
        assert db.run_sync(lambda s: s.scalars(select(FailedMail.quarantined)).all()) == [True]
        assert set(_flags(imap_account)) >= {bad}
    async with connected(imap_account, intake, db, clock, quarantine_folder="Karantina") as fixed:
        await fixed._remark_committed()
        assert bad not in _flags(imap_account)
        assert len(_flags(imap_account, "Karantina")) == 1


async def test_dovecot_stopped_and_started_mid_idle(
    dovecot_server: DovecotServer,
    imap_account: DovecotAccount,
    intake: Intake,
    db: Database,
    clock: FixedClock,
) -> None:
    service = intake_service(imap_account, intake, db, clock, report_after_failures=2)
    await service.start()
    try:
        await asyncio.wait_for(service.synced.wait(), 30)
        # A connection that dies silently (no FIN, no RST) is noticed by TCP keepalive
        # within about IMAP_TIMEOUT (10 s here): probes after 3 s, every 1 s, 3 of them.
        sock = service.session.box.client.sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 3
        await asyncio.sleep(0.5)  # in IDLE now
        dovecot_server._terminate()
        await asyncio.sleep(1.5)  # retries fail meanwhile
        dovecot_server._spawn()
        imap_account.append(make_mail(subject="Selama gangguan", sender="o@vendor.co.id"))
        await _wait(lambda: _count(db, Ticket) == 1, 30)
        await _wait(lambda: len(_alerts(db, "imap_restored")) == 1, 30)
        assert len(_alerts(db, "imap_down")) == 1
        imap_account.append(make_mail(subject="Sesudah pulih", sender="p@vendor.co.id"))
        await _wait(lambda: _count(db, Ticket) == 2, 30)
        assert db.run_sync(lambda s: s.scalar(select(func.count()).select_from(Message))) == 2
    finally:
        await service.stop()
