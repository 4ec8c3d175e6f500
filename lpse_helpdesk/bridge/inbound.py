"""The mail intake service: IMAP IDLE (or polling) -> intake -> commit -> mark on the server.

Every IMAP call runs on one dedicated worker thread, every database call on the database's
threads; the event loop never blocks. A mail is flagged \\Seen (and moved) only after its
transaction committed; a crash before that means it is fetched again and deduplicated by
Message-ID. A mail that keeps failing is kept raw in the database, retried, and after
MAX_FAILURES quarantined with staff told.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import imaplib
import logging
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from typing import TypeVar

from imap_tools.errors import MailboxLoginError, UnexpectedCommandStatusError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.imap_client import FetchedMail, ImapAccount, ImapSession
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.bridge.oauth2 import OAuth2Error
from lpse_helpdesk.bridge.prepare import Prepared, prepare_many, with_raw
from lpse_helpdesk.ops import metrics
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import FailedMail, MailboxState, Message
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_FAILURES = 3
PIPELINE_BATCH = 50  # mails per FETCH and per database round while working off a backlog
PARALLEL_FROM = 40  # from this many new mails on, parse them in a second process
CONNECTION_ERRORS = (
    OSError,
    imaplib.IMAP4.error,
    MailboxLoginError,
    UnexpectedCommandStatusError,
    ConnectionError,
    EOFError,
)


@dataclass
class IntakeOptions:
    poll_seconds: float = 60.0
    idle_seconds: float = 29 * 60
    processed_folder: str | None = None
    quarantine_folder: str | None = None
    #: Reconnect backoff: first wait, cap, and failures before staff are told (once).
    backoff_first: float = 2.0
    backoff_cap: float = 300.0
    report_after_failures: int = 3


@dataclass
class SyncReport:
    fetched: int = 0
    committed: int = 0
    failed: int = 0
    quarantined: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class MailIntakeService:
    name = "mail intake (IMAP)"

    def __init__(
        self,
        account: ImapAccount,
        intake: Intake,
        db: Database,
        clock: Clock,
        options: IntakeOptions | None = None,
    ) -> None:
        self.account = account
        self.intake = intake
        self.db = db
        self.clock = clock
        self.options = options or IntakeOptions()
        self.session = ImapSession(account)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")
        self._pool: ProcessPoolExecutor | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._reported = False
        #: Set after each completed sync; tests and benchmarks wait on it.
        self.synced = asyncio.Event()
        self.last_report = SyncReport()
        # For `status` and /readyz: the connection, and when it was lost or last synced.
        self.connected = False
        self.lost_since: dt.datetime | None = None
        self.last_sync_at: dt.datetime | None = None

    # --- Piece -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="imap-intake")

    async def stop(self) -> None:
        self._stopping.set()
        self.session.interrupt()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._imap(self.session.close)
        await asyncio.to_thread(self._thread.shutdown, wait=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    # --- the loop --------------------------------------------------------------------------

    async def _imap(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._imap(self.session.connect)
                log.info(
                    "IMAP connected to %s:%s as %s (%s)",
                    self.account.host,
                    self.account.port,
                    self.account.user,
                    "IDLE"
                    if self.session.supports_idle
                    else f"polling {self.options.poll_seconds}s",
                )
                await self._connected()
                await self._remark_committed()
                while not self._stopping.is_set():
                    await self.sync_once()
                    await self._wait_for_mail()
            except CONNECTION_ERRORS as error:
                if self._stopping.is_set():
                    break
                await self._imap(self.session.close)
                await self._disconnected(error)
            except Exception:
                # A bug, not the network: log it with the traceback, keep the service alive.
                log.exception("mail intake failed; retrying")
                await self._imap(self.session.close)
                await self._disconnected(RuntimeError("internal error"))

    async def _wait_for_mail(self) -> None:
        if self.session.supports_idle:
            responses = await self._imap(lambda: self.session.idle(self.options.idle_seconds))
            if not responses:
                # A timeout, or a connection closed under IDLE (imap-tools hides it): the
                # next sync tells which.
                return
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.options.poll_seconds)

    async def _connected(self) -> None:
        self.connected, self.lost_since = True, None
        if self._reported:
            await self._alert("imap_restored", {})
            log.info("IMAP connection restored")
        self._failures = 0
        self._reported = False

    async def _disconnected(self, error: BaseException) -> None:
        self._failures += 1
        self.connected = False
        self.lost_since = self.lost_since or self.clock.now()
        if isinstance(error, MailboxLoginError):
            kind = "login rejected"
        elif isinstance(error, OAuth2Error):
            kind = str(error)  # a short reason without secrets, e.g. "... (invalid_grant)"
        else:
            kind = type(error).__name__
        log.warning(
            "IMAP %s:%s unavailable (%s), attempt %d",
            self.account.host,
            self.account.port,
            kind,
            self._failures,
        )
        if self._failures >= self.options.report_after_failures and not self._reported:
            self._reported = True
            await self._alert("imap_down", {"error": kind, "host": self.account.host})
        delay = min(
            self.options.backoff_cap,
            self.options.backoff_first * 2 ** (self._failures - 1),
        ) * random.uniform(0.8, 1.2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _alert(self, alert: str, detail: dict[str, object]) -> None:
        now = self.clock.now()

        def work(session: Session) -> None:
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={"alert": alert, **detail},
                importance=Importance.SLA_ALERT,
                now=now,
            )

        await self.db.run(work)

    # --- one sync --------------------------------------------------------------------------

    async def sync_once(self) -> SyncReport:
        """Fetch everything above the stored UID, ingest, commit, then mark on the server."""
        report = SyncReport()
        began = self.clock.now()
        folder = self.account.folder
        uidvalidity = await self._imap(self.session.uidvalidity)
        last_uid = await self.db.run(lambda s: self._position(s, folder, uidvalidity))
        uids = await self._imap(lambda: self.session.uids_after(last_uid))
        # A backlog is pipelined: while the database thread stores one batch, the next is
        # parsed and classified in another process (the second core). A few new mails,
        # the usual case after an IDLE wake-up, are simply handled in line.
        starting = self._pool is None
        pool = self._prepare_pool() if len(uids) >= PARALLEL_FROM else None
        if pool is not None and starting:
            # The helper takes about a second to start: let it start now, and prepare the
            # first batch here meanwhile instead of waiting for it.
            asyncio.get_running_loop().run_in_executor(pool, int)
        waiting: tuple[list[FetchedMail], asyncio.Future[list[Prepared]] | None] | None = None
        for start in range(0, len(uids), PIPELINE_BATCH):
            chunk = uids[start : start + PIPELINE_BATCH]
            batch = await self._imap(partial(self.session.fetch, chunk))
            report.fetched += len(batch)
            first_while_starting = starting and start == 0
            future = None if first_while_starting else self._prepare_in(pool, batch)
            if waiting is not None:
                await self._store(*waiting, folder, uidvalidity, report)
            waiting = (batch, future)
        if waiting is not None:
            await self._store(*waiting, folder, uidvalidity, report)
        await self._retry_failed(folder, uidvalidity, report)
        self.last_report = report
        self.last_sync_at = self.clock.now()
        metrics.record_sync(report.outcomes, report.quarantined, self.last_sync_at - began)
        if report.fetched:
            log.info(
                "IMAP sync: %d fetched, %d committed, %d failed, %d quarantined %s",
                report.fetched,
                report.committed,
                report.failed,
                report.quarantined,
                report.outcomes,
            )
        self.synced.set()
        return report

    def _position(self, session: Session, folder: str, uidvalidity: int) -> int:
        state = session.get(MailboxState, folder)
        now = self.clock.now()
        if state is None:
            session.add(
                MailboxState(folder=folder, uidvalidity=uidvalidity, last_uid=0, updated_at=now)
            )
            return 0
        if state.uidvalidity != uidvalidity:
            # The server renumbered the folder: rescan it all; Message-IDs drop duplicates.
            log.warning(
                "UIDVALIDITY of %s changed (%s -> %s): rescanning",
                folder,
                state.uidvalidity,
                uidvalidity,
            )
            state.uidvalidity, state.last_uid, state.updated_at = uidvalidity, 0, now
        return state.last_uid

    def _prepare_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: this process has threads (database, IMAP).
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        return self._pool

    def _prepare_in(
        self, pool: ProcessPoolExecutor | None, batch: list[FetchedMail]
    ) -> asyncio.Future[list[Prepared]] | None:
        if pool is None or not batch or pool is not self._pool:
            return None
        config = self.intake.config
        work = partial(
            prepare_many,
            [m.raw for m in batch],
            config.max_bytes,
            config.helpdesk_addresses,
            self.intake.domain,
        )
        try:
            return asyncio.get_running_loop().run_in_executor(pool, work)
        except (BrokenProcessPool, RuntimeError):
            # The helper process died (e.g. out of memory): carry on in line; a new helper
            # is started for the next backlog.
            log.warning("the mail preparing process died; preparing in line")
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return None

    async def _store(
        self,
        batch: list[FetchedMail],
        future: asyncio.Future[list[Prepared]] | None,
        folder: str,
        uidvalidity: int,
        report: SyncReport,
    ) -> None:
        prepared: list[Prepared] | None = None
        if future is not None:
            try:
                prepared = await future
            except Exception:
                log.exception("preparing mails in the helper process failed; doing it here")
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
        handled = await self.db.run_plain(
            partial(self._ingest_batch, batch, prepared, folder, uidvalidity, report)
        )
        await self._imap(partial(self.session.mark_handled, handled, self.options.processed_folder))

    def _ingest_batch(
        self,
        batch: list[FetchedMail],
        prepared: list[Prepared] | None,
        folder: str,
        uidvalidity: int,
        report: SyncReport,
    ) -> list[int]:
        ready: list[Prepared | None] = (
            [with_raw(p, m.raw) for p, m in zip(prepared, batch, strict=True)]
            if prepared
            else [None] * len(batch)
        )
        return [
            mail.uid
            for mail, ready_mail in zip(batch, ready, strict=True)
            if self._ingest_one(mail, folder, uidvalidity, report, ready_mail)
        ]

    def _ingest_one(
        self,
        mail: FetchedMail,
        folder: str,
        uidvalidity: int,
        report: SyncReport,
        prepared: Prepared | None = None,
    ) -> bool:
        """One mail in its own transaction; True when it may be marked handled."""
        try:
            with self.db.transaction() as session:
                if prepared is None:
                    result = self.intake.ingest(
                        session, mail.raw, mailbox=folder, uid=mail.uid, uidvalidity=uidvalidity
                    )
                else:
                    result = self.intake.ingest_prepared(
                        session, prepared, mailbox=folder, uid=mail.uid, uidvalidity=uidvalidity
                    )
                self._advance(session, folder, mail.uid)
            report.committed += 1
            report.outcomes[result.outcome.value] = report.outcomes.get(result.outcome.value, 0) + 1
            return True
        except Exception as error:
            log.exception("mail UID %s in %s could not be processed", mail.uid, folder)
            report.failed += 1
            with self.db.transaction() as session:
                self._record_failure(session, folder, uidvalidity, mail, error, report)
                self._advance(session, folder, mail.uid)
            return False

    def _advance(self, session: Session, folder: str, uid: int) -> None:
        """Record the UID as handled, in the mail's own transaction (one statement)."""
        session.execute(
            update(MailboxState)
            .where(MailboxState.folder == folder, MailboxState.last_uid < uid)
            .values(last_uid=uid, updated_at=self.clock.now())
        )

    def _record_failure(
        self,
        session: Session,
        folder: str,
        uidvalidity: int,
        mail: FetchedMail,
        error: BaseException,
        report: SyncReport,
    ) -> FailedMail:
        now = self.clock.now()
        failed = session.scalars(
            select(FailedMail).where(
                FailedMail.folder == folder,
                FailedMail.uidvalidity == uidvalidity,
                FailedMail.uid == mail.uid,
            )
        ).first()
        if failed is None:
            failed = FailedMail(
                folder=folder,
                uidvalidity=uidvalidity,
                uid=mail.uid,
                raw=mail.raw,
                failures=0,
                quarantined=False,
                created_at=now,
            )
            session.add(failed)
        failed.failures += 1
        failed.last_error = f"{type(error).__name__}: {error}"[:2000]
        failed.updated_at = now
        if failed.failures >= MAX_FAILURES and not failed.quarantined:
            failed.quarantined = True
            report.quarantined += 1
            session.flush()
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={"alert": "quarantined", "failed_mail": failed.id, "uid": mail.uid},
                importance=Importance.SLA_ALERT,
                now=now,
                dedup_key=f"quarantine:{failed.id}",
            )
        return failed

    async def _retry_failed(self, folder: str, uidvalidity: int, report: SyncReport) -> None:
        """Mails that failed before: retried from their stored raw bytes."""
        pending = await self.db.run(
            lambda s: [
                (f.id, f.uid, f.raw)
                for f in s.scalars(
                    select(FailedMail).where(
                        FailedMail.folder == folder,
                        FailedMail.uidvalidity == uidvalidity,
                        FailedMail.quarantined.is_(False),
                    )
                )
            ]
        )
        done: list[int] = []
        quarantine: list[int] = []
        for failed_id, uid, raw in pending:
            ok = await self.db.run_plain(
                partial(self._retry_one, failed_id, uid, raw, folder, report)
            )
            if ok is True:
                done.append(uid)
            elif ok is None:
                quarantine.append(uid)
        if done:
            await self._imap(lambda: self.session.mark_handled(done, self.options.processed_folder))
        if quarantine and self.options.quarantine_folder:
            await self._imap(
                lambda: self.session.mark_handled(quarantine, self.options.quarantine_folder)
            )

    def _retry_one(
        self, failed_id: int, uid: int, raw: bytes, folder: str, report: SyncReport
    ) -> bool | None:
        """True: ingested now; False: failed again; None: failed for the last time."""
        try:
            with self.db.transaction() as session:
                failed = session.get(FailedMail, failed_id)
                numbering = failed.uidvalidity if failed is not None else None
                self.intake.ingest(session, raw, mailbox=folder, uid=uid, uidvalidity=numbering)
                if failed is not None:
                    session.delete(failed)
            report.committed += 1
            return True
        except Exception as error:
            log.exception("retry of mail UID %s failed", uid)
            with self.db.transaction() as session:
                failed = session.get(FailedMail, failed_id)
                if failed is None:
                    return False
                before = report.quarantined
                self._record_failure(
                    session, folder, failed.uidvalidity, FetchedMail(uid, raw), error, report
                )
                return None if report.quarantined > before else False

    async def _remark_committed(self) -> None:
        """After a crash between commit and marking: mark what is stored but still unseen.

        Only mails stored under the server's current UIDVALIDITY count: after a renumbering,
        an old UID may name a different, new mail.
        """
        folder = self.account.folder
        uidvalidity = await self._imap(self.session.uidvalidity)
        state = await self.db.run(lambda s: s.get(MailboxState, folder))
        if state is None or state.uidvalidity != uidvalidity:
            return  # sync_once rescans; Message-IDs drop what was stored before
        last_uid = state.last_uid
        unseen = await self._imap(lambda: self.session.unseen_uids_up_to(last_uid))
        if not unseen:
            return
        stored = await self.db.run(
            lambda s: list(
                s.scalars(
                    select(Message.uid).where(
                        Message.mailbox == folder,
                        Message.uidvalidity == uidvalidity,
                        Message.uid.in_(unseen),
                    )
                )
            )
        )
        uids = sorted({uid for uid in stored if uid is not None})
        if uids:
            log.info("marking %d stored but unmarked mails as handled", len(uids))
            await self._imap(lambda: self.session.mark_handled(uids, self.options.processed_folder))
