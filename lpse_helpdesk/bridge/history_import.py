"""``lpse-helpdesk import``: bring a mailbox's older mail in as tickets, as history.

The first sync leaves mail older than IMAP_BACKFILL_DAYS on the server (see inbound.py). An
operator who wants it as tickets imports a date range: each mail becomes a ticket (or joins
its thread) with its real arrival time (INTERNALDATE), but without an acknowledgement, without
SLA clocks and without a card of its own; the group gets one summary at the end. The dedup
key makes it exactly once: importing the same range again changes nothing. The mail on the
server is left as it is (not flagged, not moved).

In the folder the service reads, only mail the service will not ticket itself is imported:
up to the last UID it has read, or, before its first sync of the folder is done, mail older
than that sync leaves alone (IMAP_BACKFILL_DAYS); never a mail that failed there, which the
service retries (or the operator, from quarantine). A mail that arrives while an import runs
is the service's: it gets its acknowledgement, its SLA clocks and its card.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.dedup import dedup_key
from lpse_helpdesk.bridge.failures import is_duplicate_race
from lpse_helpdesk.bridge.imap_client import ImapSession, MailMeta
from lpse_helpdesk.bridge.inbound import backfill_cutoff, old_uids
from lpse_helpdesk.bridge.intake import Intake, Outcome
from lpse_helpdesk.bridge.parse_worker import ParseWorker
from lpse_helpdesk.bridge.prepare import Prepared, with_raw
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import FailedMail, MailboxState, Message
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

__all__ = ["ImportReport", "import_history"]

log = logging.getLogger(__name__)
BATCH = 50

Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    found: int = 0  # mails in the range on the server
    tickets: int = 0  # new tickets
    joined: int = 0  # added to a ticket of their thread
    already: int = 0  # stored before (a previous import or the live intake)
    other: int = 0  # bounces, auto-replies, our own mail: stored, no ticket
    failed: int = 0  # could not be parsed or stored (listed in the log)
    would_import: int = 0  # --dry-run: mails not stored yet
    left_to_service: int = 0  # not read by the service yet: it tickets them itself
    outcomes: dict[str, int] = field(default_factory=dict)


def import_history(
    session: ImapSession,
    intake: Intake,
    db: Database,
    worker: ParseWorker,
    *,
    since: dt.date,
    until: dt.date | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    live_folder: bool = False,
    backfill_days: float = 7.0,
) -> ImportReport:
    """Blocking: run it from the command line, not inside the service's event loop.

    `live_folder`: the folder is the one the service reads (IMAP_FOLDER), whose first sync
    leaves mail older than `backfill_days` alone."""
    report = ImportReport()
    folder = session.account.folder
    before = until + dt.timedelta(days=1) if until is not None else None
    uids = session.uids_between(since, before)
    report.found = len(uids)
    uidvalidity = session.uidvalidity()
    metas = session.meta(uids) if uids else {}
    if live_folder:
        now = intake.workflow.clock.now()
        state = db.run_sync(lambda s: s.get(MailboxState, folder))
        retried = set(  # failed or quarantined: the service retries them, or the operator
            db.run_sync(
                lambda s: s.scalars(
                    select(FailedMail.uid).where(
                        FailedMail.folder == folder, FailedMail.uidvalidity == uidvalidity
                    )
                ).all()
            )
        )
        ours = _not_the_services(uids, metas, state, uidvalidity, now, backfill_days)
        ours = [uid for uid in ours if uid not in retried]
        report.left_to_service = len(uids) - len(ours)
        uids = ours
    done = 0
    if progress is not None:
        progress(0, len(uids))
    for start in range(0, len(uids), BATCH):
        chunk = uids[start : start + BATCH]
        fetched = session.fetch(chunk)
        outcomes = worker.prepare([m.raw for m in fetched])
        for mail, outcome in zip(fetched, outcomes, strict=True):
            if not isinstance(outcome, Prepared):
                report.failed += 1
                log.warning("mail UID %s not imported: %s", mail.uid, outcome.reason)
                continue
            prepared = with_raw(outcome, mail.raw)
            if dry_run:
                if _stored(db, dedup_key(prepared.mail)) is None:
                    report.would_import += 1
                else:
                    report.already += 1
                continue
            meta = metas.get(mail.uid)
            _import_one(db, intake, prepared, folder, mail.uid, uidvalidity, meta, report)
        done += len(chunk)
        if progress is not None:
            progress(done, len(uids))
    if not dry_run and (report.tickets or report.joined):
        now = intake.workflow.clock.now()
        start_at = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
        end_at = dt.datetime.combine(until or now.date(), dt.time(), tzinfo=dt.UTC)

        def notify(s: Session) -> None:
            enqueue_telegram(
                s,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={
                    "alert": "import_done",
                    "tickets": report.tickets,
                    "mails": report.tickets + report.joined + report.other,
                    "since": start_at.isoformat(),
                    "until": end_at.isoformat(),
                },
                importance=Importance.NOTICE,
                now=now,
            )

        db.run_sync(notify)
    return report


def _not_the_services(
    uids: list[int],
    metas: dict[int, MailMeta],
    state: MailboxState | None,
    uidvalidity: int,
    now: dt.datetime,
    backfill_days: float,
) -> list[int]:
    """The UIDs the service will not ticket itself (it reads the same folder)."""
    if state is not None and state.uidvalidity == uidvalidity and state.skip_before is None:
        return [uid for uid in uids if uid <= state.last_uid]  # read: tickets or left alone
    # The first sync (or the rescan after a renumbering) is to come or under way: it leaves
    # alone what arrived before its cutoff and tickets the rest, an unknown date included.
    cutoff = backfill_cutoff(now, backfill_days)
    if state is not None and state.uidvalidity == uidvalidity and state.skip_before is not None:
        cutoff = state.skip_before
    return old_uids(uids, metas, cutoff)


def _stored(db: Database, key: str) -> int | None:
    def look(s: Session) -> int | None:
        return s.scalar(select(Message.id).where(Message.dedup_key == key))

    return db.run_sync(look)


def _import_one(
    db: Database,
    intake: Intake,
    prepared: Prepared,
    folder: str,
    uid: int,
    uidvalidity: int,
    meta: MailMeta | None,
    report: ImportReport,
) -> None:
    internaldate = meta.internaldate if meta is not None else None
    try:
        with db.transaction() as s:
            result = intake.ingest_prepared(
                s,
                prepared,
                mailbox=folder,
                uid=uid,
                uidvalidity=uidvalidity,
                internaldate=internaldate,
                imported=True,
            )
    except Exception as error:
        if is_duplicate_race(error):
            report.already += 1
            return
        report.failed += 1
        log.warning("mail UID %s not imported: %s", uid, type(error).__name__)
        return
    report.outcomes[result.outcome.value] = report.outcomes.get(result.outcome.value, 0) + 1
    if result.outcome in (Outcome.OPENED, Outcome.OPENED_LINKED):
        report.tickets += 1
    elif result.outcome is Outcome.JOINED:
        report.joined += 1
    elif result.outcome is Outcome.DUPLICATE:
        report.already += 1
    else:
        report.other += 1
