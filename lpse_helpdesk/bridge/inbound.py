"""The mail intake service: IMAP IDLE (or polling) -> intake -> commit -> mark on the server.

Every IMAP call runs on one dedicated worker thread, every database call on the database's
threads; the event loop never blocks. A mail is flagged \\Seen (and moved) only after its
transaction committed; a crash before that means it is fetched again and deduplicated by
Message-ID. A mail that keeps failing is kept raw in the database, retried, and after
MAX_FAILURES quarantined with staff told.

Mails are parsed in a child process under a time budget (parse_worker.py): a mail over it is
quarantined at once and the mails after it flow on. A failure of the database or of the
connection (locked, lost, disk full) is not the mail's fault: the sync stops, is retried with
backoff, and never counts toward a mail's quarantine. On the first sync of a folder (and after
a UIDVALIDITY change) only mail that arrived within IMAP_BACKFILL_DAYS becomes tickets; the
older mail stays on the server, untouched, for ``lpse-helpdesk import``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import imaplib
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from imap_tools.errors import MailboxLoginError, UnexpectedCommandStatusError
from sqlalchemy import Select, false, select, update
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.copies import copy_uids, remember_copy
from lpse_helpdesk.bridge.failures import DatabaseUnavailable, is_duplicate_race, is_transient
from lpse_helpdesk.bridge.imap_client import (
    FetchedMail,
    FolderRefused,
    ImapAccount,
    ImapSession,
    MailMeta,
)
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.bridge.oauth2 import OAuth2Error
from lpse_helpdesk.bridge.parse_worker import OverBudget, ParseWorker, WorkerOutcome
from lpse_helpdesk.bridge.prepare import Prepared, with_raw
from lpse_helpdesk.ops import metrics
from lpse_helpdesk.storage import tables
from lpse_helpdesk.storage.bulk import write_in_bulk
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.ids import take_ids_ahead
from lpse_helpdesk.storage.models import (
    Attachment,
    AuditEvent,
    FailedMail,
    MailboxState,
    Message,
    OutboxItem,
    SlaClock,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.batch import detach
from lpse_helpdesk.workflow.numbering import count_numbers_here
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What a batch stored together only ever inserts (storage/bulk.py): a later mail of the
#: batch that changes a ticket loads it again.
_WRITTEN_IN_BULK = (Ticket, Message, Attachment, AuditEvent, SlaClock, OutboxItem)

MAX_FAILURES = 3
PIPELINE_BATCH = 50  # mails per FETCH and per database round while working off a backlog
FIRST_BATCH = 10  # mails in the first batch of a sync, so that the storing begins soon
PARSED_AHEAD = 2  # batches fetched and given to the parsing process ahead of the storing
PARALLEL_FROM = 40  # kept for callers; every mail is now parsed in the parsing process
BATCH_BYTES = 32 * 1024 * 1024  # a FETCH batch holds at most this many bytes of mail
REMARK_CHUNK = 500  # UIDs per STORE and MOVE when marks left undone are done again
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
    #: First sync / new UIDVALIDITY: only mail that arrived within this many days.
    backfill_days: float = 7.0
    #: Budget for parsing one mail (MAIL_PARSE_SECONDS); over it the mail is quarantined.
    parse_seconds: float = 20.0
    #: A mail over this size (MAIL_MAX_BYTES) is fetched alone.
    max_bytes: int = 25 * 1024 * 1024
    batch_bytes: int = BATCH_BYTES


@dataclass
class SyncReport:
    fetched: int = 0
    committed: int = 0
    failed: int = 0
    quarantined: int = 0
    skipped_old: int = 0  # left on the server by the first sync (older than the backfill)
    outcomes: dict[str, int] = field(default_factory=dict)

    def stored(self, outcome: str) -> None:
        """One mail committed (or to be, with its batch), with what became of it."""
        self.committed += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def add(self, other: SyncReport) -> None:
        """Count in what a batch did, once its transaction committed."""
        self.fetched += other.fetched
        self.committed += other.committed
        self.failed += other.failed
        self.quarantined += other.quarantined
        self.skipped_old += other.skipped_old
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count


@dataclass(frozen=True)
class _Position:
    last_uid: int
    skip_before: dt.datetime | None


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
        self._parse_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-parse")
        config = intake.config
        self.worker = ParseWorker(
            config.max_bytes,
            config.helpdesk_addresses,
            intake.domain,
            budget=self.options.parse_seconds,
        )
        #: Mails committed and flagged but not yet moved (the server refused the folder).
        self._unmoved: dict[str, set[int]] = {}
        self._refused_reported: set[str] = set()
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
        await asyncio.get_running_loop().run_in_executor(self._parse_thread, self.worker.start)
        self._task = asyncio.create_task(self._run(), name="imap-intake")

    async def stop(self) -> None:
        self._stopping.set()
        self.session.interrupt()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._imap(self.session.close)
        await asyncio.to_thread(self._thread.shutdown, wait=True)
        await asyncio.to_thread(self.worker.close)
        await asyncio.to_thread(self._parse_thread.shutdown, wait=True)

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
                    try:
                        await self.sync_once()
                    except DatabaseUnavailable as error:
                        await self._database_unavailable(error)
                        continue
                    self._db_failures = 0
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
            # Back on the server's word, at the timeout (the next sync looks anyway), or
            # with a lost connection raised.
            await self._imap(lambda: self.session.idle(self.options.idle_seconds))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.options.poll_seconds)

    _db_failures = 0

    async def _database_unavailable(self, error: DatabaseUnavailable) -> None:
        """The database failed, not the mail: wait and sync again; nothing is quarantined."""
        self._db_failures += 1
        log.warning(
            "database unavailable during the mail intake (%s), attempt %d; retrying",
            error,
            self._db_failures,
        )
        delay = min(
            self.options.backoff_cap, self.options.backoff_first * 2 ** (self._db_failures - 1)
        ) * random.uniform(0.8, 1.2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

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

    async def _alert(
        self, alert: str, detail: dict[str, object], dedup_key: str | None = None
    ) -> None:
        now = self.clock.now()

        def work(session: Session) -> None:
            if dedup_key is not None and _alerted(session, dedup_key):
                return
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={"alert": alert, **detail},
                importance=Importance.SLA_ALERT,
                now=now,
                dedup_key=dedup_key,
            )

        await self.db.run(work)

    # --- one sync --------------------------------------------------------------------------

    async def sync_once(self) -> SyncReport:
        """Fetch everything above the stored UID, ingest, commit, then mark on the server.

        Raises DatabaseUnavailable when the database failed (locked, lost, disk full)."""
        try:
            return await self._sync()
        except DatabaseUnavailable:
            raise
        except CONNECTION_ERRORS:
            raise
        except Exception as error:
            if is_transient(error):
                raise DatabaseUnavailable(str(error)) from error
            raise

    async def _sync(self) -> SyncReport:
        report = SyncReport()
        began = self.clock.now()
        folder = self.account.folder
        await self._move_unmoved()
        uidvalidity = await self._imap(self.session.uidvalidity)
        position = await self.db.run(lambda s: self._position(s, folder, uidvalidity))
        listed = await self._imap(lambda: self.session.uids_after(position.last_uid))
        metas = await self._imap(partial(self.session.meta, listed)) if listed else {}
        uids = listed
        if position.skip_before is not None:
            uids = await self._skip_old(listed, metas, position.skip_before, uidvalidity, report)
        # A pipeline: while the database thread stores one batch, the IMAP thread marks
        # the one before and fetches ahead, and the parsing process prepares the next two
        # (two ahead: the storing never waits for a parse that takes a little longer than
        # usual). Batches are stored one after the other, in order, and each is marked
        # after its commit and after the batches before it.
        loop = asyncio.get_running_loop()
        ahead: deque[tuple[list[FetchedMail], asyncio.Future[list[WorkerOutcome]]]] = deque()
        storing: asyncio.Task[asyncio.Task[None]] | None = None
        marking: asyncio.Task[None] | None = None

        async def store_next() -> None:
            nonlocal storing, marking
            if storing is not None:
                marking = await storing
            batch, future = ahead.popleft()
            storing = asyncio.ensure_future(
                self._store(batch, future, folder, uidvalidity, report, marking)
            )

        try:
            for chunk in self._batches(uids, metas):
                fetched = await self._imap(partial(self.session.fetch, chunk))
                batch = [
                    FetchedMail(m.uid, m.raw, metas[m.uid].internaldate if m.uid in metas else None)
                    for m in fetched
                ]
                report.fetched += len(batch)
                future = loop.run_in_executor(
                    self._parse_thread, self.worker.prepare, [m.raw for m in batch]
                )
                ahead.append((batch, future))
                if len(ahead) > PARSED_AHEAD:
                    await store_next()
            while ahead:
                await store_next()
            if storing is not None:
                marking = await storing
            if marking is not None:
                await marking
        finally:
            await _let_finish(storing, marking)
        await self._retry_failed(folder, uidvalidity, report)
        if position.skip_before is not None:
            top = max(listed, default=0)
            await self.db.run(lambda s: self._first_sync_done(s, folder, top))
        self.last_report = report
        self.last_sync_at = self.clock.now()
        metrics.record_sync(report.outcomes, report.quarantined, self.last_sync_at - began)
        if report.fetched or report.skipped_old:
            log.info(
                "IMAP sync: %d fetched, %d committed, %d failed, %d quarantined, "
                "%d older mails left on the server %s",
                report.fetched,
                report.committed,
                report.failed,
                report.quarantined,
                report.skipped_old,
                report.outcomes,
            )
        self.synced.set()
        return report

    def _batches(self, uids: Sequence[int], metas: dict[int, MailMeta]) -> list[list[int]]:
        """At most PIPELINE_BATCH mails and batch_bytes bytes per FETCH; a mail over
        max_bytes alone."""
        batches: list[list[int]] = []
        current: list[int] = []
        size = 0
        limit = FIRST_BATCH  # a small first batch: the storing starts sooner
        for uid in uids:
            mail_size = metas[uid].size if uid in metas else 0
            if mail_size > self.options.max_bytes:
                if current:
                    batches.append(current)
                batches.append([uid])
                current, size = [], 0
                continue
            if current and (len(current) >= limit or size + mail_size > self.options.batch_bytes):
                batches.append(current)
                current, size, limit = [], 0, PIPELINE_BATCH
            current.append(uid)
            size += mail_size
        if current:
            batches.append(current)
        return batches

    async def _skip_old(
        self,
        uids: list[int],
        metas: dict[int, MailMeta],
        skip_before: dt.datetime,
        uidvalidity: int,
        report: SyncReport,
    ) -> list[int]:
        """First sync: keep the mail that arrived since `skip_before`; tell the group once
        how many older mails were left on the server and how to import them."""
        old = old_uids(uids, metas, skip_before)
        left = set(old)
        recent = [uid for uid in uids if uid not in left]
        report.skipped_old = len(old)
        if old:
            folder = self.account.folder
            oldest = min(d for u in old if (d := metas[u].internaldate) is not None)
            await self._alert(
                "backfill_skipped",
                {
                    "folder": folder,
                    "count": len(old),
                    "since": skip_before.isoformat(),
                    "oldest": oldest.isoformat(),
                },
                dedup_key=f"backfill:{folder}:{uidvalidity}",
            )
            log.info(
                "first sync of %s: %d mails older than %s left on the server (import them "
                "with 'lpse-helpdesk import')",
                folder,
                len(old),
                skip_before.isoformat(),
            )
        return recent

    def _position(self, session: Session, folder: str, uidvalidity: int) -> _Position:
        state = session.get(MailboxState, folder)
        now = self.clock.now()
        cutoff = backfill_cutoff(now, self.options.backfill_days)
        if state is None:
            session.add(
                MailboxState(
                    folder=folder,
                    uidvalidity=uidvalidity,
                    last_uid=0,
                    updated_at=now,
                    skip_before=cutoff,
                )
            )
            return _Position(0, cutoff)
        if state.uidvalidity != uidvalidity:
            # The server renumbered the folder: rescan it; the dedup key drops what is
            # stored already, and mail older than the backfill is left alone again.
            log.warning(
                "UIDVALIDITY of %s changed (%s -> %s): rescanning",
                folder,
                state.uidvalidity,
                uidvalidity,
            )
            state.uidvalidity, state.last_uid, state.updated_at = uidvalidity, 0, now
            state.skip_before = cutoff
        return _Position(state.last_uid, state.skip_before)

    def _first_sync_done(self, session: Session, folder: str, top_uid: int) -> None:
        """Every listed mail is handled or left for import: from now on all new mail counts."""
        state = session.get(MailboxState, folder)
        if state is None:
            return
        state.skip_before = None
        state.last_uid = max(state.last_uid, top_uid)
        state.updated_at = self.clock.now()

    async def _store(
        self,
        batch: list[FetchedMail],
        future: asyncio.Future[list[WorkerOutcome]],
        folder: str,
        uidvalidity: int,
        report: SyncReport,
        after: asyncio.Task[None] | None = None,
    ) -> asyncio.Task[None]:
        """Store a batch; then its marking on the server begins, once the marking of the
        batches before it (`after`) is done. Returns that marking's task."""
        outcomes = await future
        handled, quarantined, error = await self.db.run_plain(
            partial(self._ingest_batch, batch, outcomes, folder, uidvalidity, report)
        )
        marking = asyncio.ensure_future(self._mark_stored(after, handled, quarantined))
        if error is not None:
            await marking  # what was committed is marked before the sync stops
            raise DatabaseUnavailable(str(error)) from error
        return marking

    async def _mark_stored(
        self, after: asyncio.Task[None] | None, handled: list[int], quarantined: list[int]
    ) -> None:
        if after is not None:
            await after
        await self._mark(handled, self.options.processed_folder)
        if quarantined:
            await self._mark(quarantined, self.options.quarantine_folder)

    async def _mark(self, uids: list[int], folder: str | None, *, seen: bool = True) -> None:
        """\\Seen, then move. A refused folder is reported once; the mails are committed
        already and are moved on a later sync."""
        if not uids:
            return
        if seen:
            await self._imap(partial(self.session.mark_handled, uids, None))
        if not folder:
            return
        try:
            await self._imap(partial(self.session.move, uids, folder))
        except FolderRefused as refused:
            self._unmoved.setdefault(folder, set()).update(uids)
            log.warning("the server refused folder %s: %s", folder, refused.cause)
            if folder not in self._refused_reported:
                self._refused_reported.add(folder)
                await self._alert("folder_refused", {"folder": folder, "cause": refused.cause})
        else:
            self._refused_reported.discard(folder)

    async def _move_unmoved(self) -> None:
        for folder, uids in list(self._unmoved.items()):
            pending = sorted(uids)
            self._unmoved.pop(folder, None)
            for start in range(0, len(pending), REMARK_CHUNK):  # a command line has a limit
                await self._mark(pending[start : start + REMARK_CHUNK], folder, seen=False)

    def _ingest_batch(
        self,
        batch: list[FetchedMail],
        outcomes: list[WorkerOutcome],
        folder: str,
        uidvalidity: int,
        report: SyncReport,
    ) -> tuple[list[int], list[int], BaseException | None]:
        """(handled UIDs, UIDs quarantined now, the database error that stopped the batch).

        One transaction for the whole batch. First all its mails together: ids taken ahead,
        the per-mail questions answered once (workflow/batch.py), and every row written in
        one flush at the end. Should anything fail (a mail the intake cannot process, a
        duplicate stored by another instance a moment ago), that transaction is rolled back
        and the batch is stored again with a savepoint per mail: the mail that fails rolls
        back alone (and is recorded as failed), the others commit together. When the
        database itself fails, nothing of the batch is committed and nothing is marked: the
        mails are fetched again on the next sync.
        """
        if batch and all(isinstance(o, Prepared) for o in outcomes):
            together = self._ingest_together(batch, outcomes, folder, uidvalidity, report)
            if together is not None:
                return together
        return self._ingest_apart(batch, outcomes, folder, uidvalidity, report)

    def _ingest_together(
        self,
        batch: list[FetchedMail],
        outcomes: list[WorkerOutcome],
        folder: str,
        uidvalidity: int,
        report: SyncReport,
    ) -> tuple[list[int], list[int], BaseException | None] | None:
        """The whole batch without savepoints; None when a mail failed (nothing is kept)."""
        done = SyncReport()  # counted into `report` once committed
        try:
            with self.db.batch_transaction() as session:
                take_ids_ahead(session)
                count_numbers_here(session)
                write_in_bulk(session, _WRITTEN_IN_BULK)
                prepared = [o for o in outcomes if isinstance(o, Prepared)]
                self.intake.expect_batch(
                    session,
                    [(p, mail.internaldate) for mail, p in zip(batch, prepared, strict=True)],
                )
                for mail, one in zip(batch, prepared, strict=True):
                    done.stored(self._store_mail(session, mail, one, folder, uidvalidity))
                self._advance(session, folder, max(mail.uid for mail in batch))
        except Exception as error:
            if is_transient(error):
                log.warning("database unavailable while storing a batch: %s", error)
                return [], [], error
            log.info(
                "a batch of %d mails is stored again one mail at a time (%s)",
                len(batch),
                type(error).__name__,
            )
            return None
        report.add(done)
        return [mail.uid for mail in batch], [], None

    def _ingest_apart(
        self,
        batch: list[FetchedMail],
        outcomes: list[WorkerOutcome],
        folder: str,
        uidvalidity: int,
        report: SyncReport,
    ) -> tuple[list[int], list[int], BaseException | None]:
        """The batch with a savepoint per mail (see `_ingest_batch`)."""
        handled: list[int] = []
        quarantined: list[int] = []
        done = SyncReport()  # counted into `report` once committed
        try:
            with self.db.batch_transaction() as session:
                self.intake.expect_batch(
                    session,
                    [
                        (o, mail.internaldate)
                        for mail, o in zip(batch, outcomes, strict=True)
                        if isinstance(o, Prepared)
                    ],
                )
                # A savepoint rolled back would leave its rows counted in the batch's
                # answers: here every mail asks the database itself.
                detach(session)
                for mail, outcome in zip(batch, outcomes, strict=True):
                    ok: bool | None
                    if isinstance(outcome, Prepared):
                        ok = self._ingest_one(session, mail, folder, uidvalidity, done, outcome)
                    else:
                        ok = self._parse_failed(session, mail, folder, uidvalidity, done, outcome)
                    if ok is True:
                        handled.append(mail.uid)
                    elif ok is None:
                        quarantined.append(mail.uid)
                if batch:
                    self._advance(session, folder, max(mail.uid for mail in batch))
        except DatabaseUnavailable as error:
            return [], [], error.__cause__ or error
        except Exception as error:
            if is_transient(error):  # e.g. at COMMIT
                log.warning("database unavailable while committing a batch: %s", error)
                return [], [], error
            raise
        report.add(done)
        return handled, quarantined, None

    def _parse_failed(
        self,
        session: Session,
        mail: FetchedMail,
        folder: str,
        uidvalidity: int,
        report: SyncReport,
        outcome: WorkerOutcome,
    ) -> bool | None:
        """A mail the parser could not finish: over budget is quarantined at once (it would
        only stall again); a parser crash counts as one failure."""
        report.failed += 1
        reason = outcome.reason if not isinstance(outcome, Prepared) else ""
        at_once = isinstance(outcome, OverBudget)
        before = report.quarantined
        try:
            with session.begin_nested():
                self._record_failure(
                    session, folder, uidvalidity, mail, RuntimeError(reason), report, at_once
                )
        except Exception as error:
            if is_transient(error):
                raise DatabaseUnavailable(str(error)) from error
            raise
        return None if report.quarantined > before else False

    def _store_mail(
        self, session: Session, mail: FetchedMail, prepared: Prepared, folder: str, uidvalidity: int
    ) -> str:
        """Ingest one prepared mail in the caller's transaction; the outcome's name."""
        result = self.intake.ingest_prepared(
            session,
            with_raw(prepared, mail.raw),
            mailbox=folder,
            uid=mail.uid,
            uidvalidity=uidvalidity,
            internaldate=mail.internaldate,
        )
        return result.outcome.value

    def _ingest_one(
        self,
        session: Session,
        mail: FetchedMail,
        folder: str,
        uidvalidity: int,
        report: SyncReport,
        prepared: Prepared,
    ) -> bool:
        """One mail in its own savepoint of the batch's transaction; True when it may be
        marked handled (once the batch committed).

        Raises DatabaseUnavailable when the database (not the mail) failed.
        """
        try:
            with session.begin_nested():
                outcome = self._store_mail(session, mail, prepared, folder, uidvalidity)
            report.stored(outcome)
            return True
        except Exception as error:
            if is_duplicate_race(error):
                # Another process stored this very mail a moment ago.
                with session.begin_nested():
                    remember_copy(session, folder, uidvalidity, mail.uid, self.clock.now())
                report.stored("duplicate")
                return True
            if is_transient(error):
                log.warning("database unavailable on mail UID %s: %s", mail.uid, error)
                raise DatabaseUnavailable(str(error)) from error
            log.exception("mail UID %s in %s could not be processed", mail.uid, folder)
            report.failed += 1
            try:
                with session.begin_nested():
                    self._record_failure(session, folder, uidvalidity, mail, error, report)
            except Exception as second:
                if is_transient(second):
                    raise DatabaseUnavailable(str(second)) from second
                raise
            return False

    def _advance(self, session: Session, folder: str, uid: int) -> None:
        """Record the UID as handled, in the transaction that handled it (one statement).

        On the connection: no row of the table is loaded in a batch's session, and the ORM
        would evaluate the statement against every object the batch has loaded."""
        state = tables.mailbox_state
        session.connection().execute(
            update(state)
            .where(state.c.folder == folder, state.c.last_uid < uid)
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
        at_once: bool = False,
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
        failed.last_error = (str(error) if at_once else f"{type(error).__name__}: {error}")[:2000]
        failed.updated_at = now
        if (at_once or failed.failures >= MAX_FAILURES) and not failed.quarantined:
            failed.quarantined = True
            report.quarantined += 1
            session.flush()
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={
                    "alert": "mail_quarantined" if at_once else "quarantined",
                    "failed_mail": failed.id,
                    "uid": mail.uid,
                },
                importance=Importance.SLA_ALERT,
                now=now,
                dedup_key=f"quarantine:{failed.id}",
            )
        return failed

    async def _retry_failed(self, folder: str, uidvalidity: int, report: SyncReport) -> None:
        """Mails that failed before: parsed again and retried from their stored raw bytes."""
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
        if not pending:
            return
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(
            self._parse_thread, self.worker.prepare, [raw for _, _, raw in pending]
        )
        done: list[int] = []
        quarantine: list[int] = []
        for (failed_id, uid, raw), outcome in zip(pending, outcomes, strict=True):
            ok = await self.db.run_plain(
                partial(self._retry_one, failed_id, uid, raw, folder, report, outcome)
            )
            if ok is True:
                done.append(uid)
            elif ok is None:
                quarantine.append(uid)
        await self._mark(done, self.options.processed_folder)
        await self._mark(quarantine, self.options.quarantine_folder)

    def _retry_one(
        self,
        failed_id: int,
        uid: int,
        raw: bytes,
        folder: str,
        report: SyncReport,
        outcome: WorkerOutcome,
    ) -> bool | None:
        """True: ingested now; False: failed again; None: failed for the last time."""
        try:
            with self.db.transaction() as session:
                failed = session.get(FailedMail, failed_id)
                if failed is None:
                    return False
                if not isinstance(outcome, Prepared):
                    raise _ParseError(outcome.reason)
                self.intake.ingest_prepared(
                    session,
                    with_raw(outcome, raw),
                    mailbox=folder,
                    uid=uid,
                    uidvalidity=failed.uidvalidity,
                    internaldate=failed.created_at,
                )
                session.delete(failed)
            report.committed += 1
            return True
        except Exception as error:
            if is_duplicate_race(error):
                with self.db.transaction() as session:
                    failed = session.get(FailedMail, failed_id)
                    if failed is not None:
                        remember_copy(session, folder, failed.uidvalidity, uid, self.clock.now())
                        session.delete(failed)
                return True
            if is_transient(error):
                raise DatabaseUnavailable(str(error)) from error
            log.warning("retry of mail UID %s failed: %s", uid, type(error).__name__)
            with self.db.transaction() as session:
                failed = session.get(FailedMail, failed_id)
                if failed is None:
                    return False
                before = report.quarantined
                self._record_failure(
                    session,
                    folder,
                    failed.uidvalidity,
                    FetchedMail(uid, raw),
                    error,
                    report,
                    isinstance(outcome, OverBudget),
                )
                return None if report.quarantined > before else False

    async def _remark_committed(self) -> None:
        """What a start does first: mark on the server what is stored but not yet marked.

        That is a mail committed just before a crash (still unseen), and, when a processed
        or quarantine folder is set, a mail still in the folder because the server refused
        the move (it is moved now, e.g. after the operator fixed the folder's name). Mail
        brought in by `lpse-helpdesk import` stays as it is. Only mails stored under the
        server's current UIDVALIDITY count: after a renumbering, an old UID may name a
        different, new mail.
        """
        folder = self.account.folder
        uidvalidity = await self._imap(self.session.uidvalidity)
        state = await self.db.run(lambda s: s.get(MailboxState, folder))
        if state is None or state.uidvalidity != uidvalidity:
            return  # sync_once rescans; Message-IDs drop what was stored before
        last_uid = state.last_uid
        unseen = set(await self._imap(lambda: self.session.uids_up_to(last_uid, unseen=True)))
        present = unseen
        if self.options.processed_folder or self.options.quarantine_folder:
            present = set(await self._imap(lambda: self.session.uids_up_to(last_uid)))
        if not present:
            return
        handled, quarantined = await self.db.run(
            lambda s: _stored_up_to(s, folder, uidvalidity, min(present), max(present))
        )
        for uids, target in (
            (handled, self.options.processed_folder),
            (quarantined - handled, self.options.quarantine_folder),
        ):
            pending = sorted(uids & (present if target else unseen))
            if pending:
                log.info(
                    "marking %d mails the intake handled but the server does not show so yet%s",
                    len(pending),
                    f" (into {target})" if target else "",
                )
            for start in range(0, len(pending), REMARK_CHUNK):
                await self._mark(pending[start : start + REMARK_CHUNK], target)


def _stored_up_to(
    session: Session, folder: str, uidvalidity: int, low: int, high: int
) -> tuple[set[int], set[int]]:
    """The UIDs from `low` to `high` that the live intake handled (stored, or found to be a
    copy of a stored mail), and those it quarantined.

    One look-up each, whatever the number of UIDs: the folder may hold years of history."""
    failed = tables.failed_mails.c
    stored = set(session.scalars(live_mail_uids(folder, uidvalidity, low, high)))
    copies = set(session.scalars(copy_uids(folder, uidvalidity, low, high)))
    quarantined = set(
        session.scalars(
            select(failed.uid).where(
                failed.folder == folder,
                failed.uidvalidity == uidvalidity,
                failed.uid.between(low, high),
                failed.quarantined.is_(True),
            )
        )
    )
    return (stored | copies) - {None}, quarantined


def live_mail_uids(folder: str, uidvalidity: int, low: int, high: int) -> Select[int]:
    """The UIDs of the mails from `folder` the live intake stored (not imported ones): read
    from the index ix_messages_uid alone, not from the rows, which hold the raw mails."""
    messages = tables.messages.c
    return select(messages.uid).where(
        messages.mailbox == folder,
        messages.uidvalidity == uidvalidity,
        messages.uid.between(low, high),
        messages.imported == false(),  # "= 0" on SQLite, which the index answers
    )


def backfill_cutoff(now: dt.datetime, days: float) -> dt.datetime:
    """A first sync (or the rescan after a renumbering) begun at `now` tickets the mail the
    server received since this moment (IMAP_BACKFILL_DAYS) and leaves the older for import."""
    return now - dt.timedelta(days=days)


def old_uids(uids: Sequence[int], metas: dict[int, MailMeta], cutoff: dt.datetime) -> list[int]:
    """The UIDs that such a sync leaves on the server: received before `cutoff`. A mail whose
    arrival is unknown counts as new (it is ticketed rather than missed)."""
    return [
        uid
        for uid in uids
        if (arrived := metas[uid].internaldate if uid in metas else None) is not None
        and arrived < cutoff
    ]


class _ParseError(Exception):
    """The parsing process could not finish this mail (its reason is the message)."""


async def _let_finish(
    storing: asyncio.Task[asyncio.Task[None]] | None, marking: asyncio.Task[None] | None
) -> None:
    """After a sync stopped (a fetch or a mark failed): what it began finishes. The batch
    being stored commits and is marked, or fails on its own; the marking under way ends.
    A failure here is logged: the error that stopped the sync is the one raised."""
    if storing is not None:
        if not storing.done():
            try:
                marking = await storing
            except Exception as error:
                log.warning("storing a batch failed as well: %s", error)
        elif not storing.cancelled() and storing.exception() is None:
            marking = storing.result()  # stored, its marking not yet awaited
    if marking is not None and not marking.done():
        try:
            await marking
        except Exception as error:
            log.warning("marking a batch failed as well: %s", error)


def _alerted(session: Session, dedup_key: str) -> bool:
    return (
        session.scalar(select(OutboxItem.id).where(OutboxItem.dedup_key == dedup_key).limit(1))
        is not None
    )
