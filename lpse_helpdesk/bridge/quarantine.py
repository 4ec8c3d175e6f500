"""Quarantined mail for the operator: list it, and ingest it again after a fix.

A mail is quarantined when it failed MAX_FAILURES times or went over its parsing budget; its
raw bytes stay in ``failed_mails``. ``retry`` parses it again (under the budget, in the
parsing process) and ingests it like the live intake; a mail that fails again stays
quarantined with the new reason.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.intake import Intake, IntakeResult
from lpse_helpdesk.bridge.parse_worker import ParseWorker
from lpse_helpdesk.bridge.prepare import Prepared, with_raw
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import FailedMail

__all__ = ["QuarantinedMail", "RetryResult", "list_quarantined", "retry_quarantined"]


@dataclass(frozen=True)
class QuarantinedMail:
    id: int
    folder: str
    uid: int
    failures: int
    last_error: str
    since: dt.datetime
    subject: str
    sender: str


@dataclass(frozen=True)
class RetryResult:
    id: int
    ok: bool
    detail: str  # the outcome ("opened", "joined"...) or why it failed again


def _headline(raw: bytes) -> tuple[str, str]:
    """Subject and From for the list, read from the headers only (cheap, never raises)."""
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    try:
        parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
        return str(parsed.get("Subject", ""))[:80], str(parsed.get("From", ""))[:80]
    except Exception:
        return "", ""


def list_quarantined(db: Database) -> list[QuarantinedMail]:
    def work(session: Session) -> list[QuarantinedMail]:
        rows = session.scalars(
            select(FailedMail).where(FailedMail.quarantined.is_(True)).order_by(FailedMail.id)
        )
        result = []
        for row in rows:
            subject, sender = _headline(row.raw)
            result.append(
                QuarantinedMail(
                    row.id,
                    row.folder,
                    row.uid,
                    row.failures,
                    row.last_error,
                    row.created_at,
                    subject,
                    sender,
                )
            )
        return result

    return db.run_sync(work)


def retry_quarantined(
    db: Database, intake: Intake, worker: ParseWorker, ids: Sequence[int] | None
) -> list[RetryResult]:
    """Ingest the given quarantined mails again (all of them when `ids` is None)."""

    def load(session: Session) -> list[tuple[int, bytes]]:
        query = select(FailedMail.id, FailedMail.raw).where(FailedMail.quarantined.is_(True))
        if ids is not None:
            query = query.where(FailedMail.id.in_(list(ids)))
        return [(i, r) for i, r in session.execute(query.order_by(FailedMail.id))]

    pending = db.run_sync(load)
    outcomes = worker.prepare([raw for _, raw in pending])
    results: list[RetryResult] = []
    for (failed_id, raw), outcome in zip(pending, outcomes, strict=True):
        if not isinstance(outcome, Prepared):
            _failed_again(db, intake, failed_id, outcome.reason)
            results.append(RetryResult(failed_id, False, outcome.reason))
            continue
        try:
            result = _ingest(db, intake, failed_id, with_raw(outcome, raw))
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            _failed_again(db, intake, failed_id, reason)
            results.append(RetryResult(failed_id, False, reason))
            continue
        results.append(RetryResult(failed_id, True, result.outcome.value))
    return results


def _ingest(db: Database, intake: Intake, failed_id: int, prepared: Prepared) -> IntakeResult:
    with db.transaction() as session:
        failed = session.get_one(FailedMail, failed_id)
        result = intake.ingest_prepared(
            session,
            prepared,
            mailbox=failed.folder,
            uid=failed.uid,
            uidvalidity=failed.uidvalidity,
            internaldate=failed.created_at,
        )
        session.delete(failed)
    return result


def _failed_again(db: Database, intake: Intake, failed_id: int, reason: str) -> None:
    with db.transaction() as session:
        failed = session.get(FailedMail, failed_id)
        if failed is not None:
            failed.failures += 1
            failed.last_error = reason[:2000]
            failed.updated_at = intake.workflow.clock.now()
