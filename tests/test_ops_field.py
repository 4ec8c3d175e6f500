"""The operator's commands in the field (from a bug hunt): an erase while a mail still
waits in the outbox, a colleague in CC, quarantined mail in export and erase, an older
PostgreSQL backup restored onto a newer schema, `status` on a mistyped SQLite path."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.ops.backup import backup, restore
from lpse_helpdesk.ops.privacy import apply_retention, erase_person, export_person
from lpse_helpdesk.ops.status import Level, collect
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database, make_engine, upgrade
from lpse_helpdesk.storage.models import FailedMail, Message, OutboxItem
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP
from tests.mailmaker import make_mail
from tests.outbound_support import mail_sender
from tests.servers.postgres import PostgresServer
from tests.servers.smtp import SmtpServer

BUDI = Actor.telegram(1001, "Budi")
SITI = "siti@vendor.co.id"


def _ticket(
    db: Database, workflow: Workflow, domain: DomainConfig, headers: dict[str, str] | None = None
) -> int:
    intake = Intake(workflow, domain, IntakeConfig(frozenset({HELPDESK}), LKPP))
    raw = make_mail(sender=f"Siti Rahayu <{SITI}>", headers=headers)
    result = db.run_sync(lambda s: intake.ingest(s, raw))
    assert result.ticket_id is not None
    return result.ticket_id


def _everything(session: Session) -> str:
    """Every stored text that can hold an address, as one string."""
    parts: list[str] = []
    for m in session.scalars(select(Message)):
        parts += [m.from_address, " ".join(m.to_addresses), m.text, m.subject]
        parts.append(m.raw.decode("utf-8", "replace"))
    for o in session.scalars(select(OutboxItem)):
        parts += [o.recipient or "", json.dumps(o.payload)]
    for f in session.scalars(select(FailedMail)):
        parts.append(f.raw.decode("utf-8", "replace"))
    return "\n".join(parts).lower()


async def test_an_erase_while_a_mail_waits_is_finished_once_it_went_out(
    smtp_server: SmtpServer,
    db: Database,
    workflow: Workflow,
    domain: DomainConfig,
    clock: FixedClock,
) -> None:
    tid = _ticket(db, workflow, domain)
    db.run_sync(lambda s: workflow.act(s, tid, Action.CLOSE, BUDI))
    erased = db.run_sync(lambda s: erase_person(s, SITI, clock.now(), "operator"))
    # Masked now but for the mail still waiting, which must still go out.
    assert (erased.masked, erased.still_open, len(erased.finishing)) == (0, [], 1)
    # The acknowledgement was still in the outbox (SMTP slow or down); it goes out now.
    sender = mail_sender(
        smtp_server.port, db, clock, workflow, helpdesk_name="Helpdesk LPSE", lpse_name="LPSE"
    )
    assert await sender.deliver_due() >= 1
    assert SITI in db.run_sync(_everything)  # the copy as sent, until the next round
    # The retention job's next round (hours later, not RETENTION_DAYS) finishes the erasure.
    clock.advance(hours=6)
    assert db.run_sync(lambda s: apply_retention(s, clock.now(), 730)) == 1
    assert SITI not in db.run_sync(_everything)


def test_an_erase_masks_a_colleague_in_cc_too(
    db: Database, workflow: Workflow, domain: DomainConfig, clock: FixedClock
) -> None:
    tid = _ticket(db, workflow, domain, {"Cc": "Rudi Hartono <rudi@vendor.co.id>"})
    db.run_sync(lambda s: workflow.act(s, tid, Action.CLOSE, BUDI))
    db.run_sync(lambda s: erase_person(s, SITI, clock.now(), "operator"))

    def addresses(s: Session) -> list[str]:
        return [a for m in s.scalars(select(Message)) for a in m.to_addresses]

    # README: names, addresses, phones are masked: the colleague's address too.
    assert "rudi@vendor.co.id" not in db.run_sync(addresses)


def _quarantine(db: Database, clock: FixedClock) -> None:
    raw = make_mail(sender=f"Siti Rahayu <{SITI}>", body="NIK 3201234567890123")

    def work(s: Session) -> None:
        s.add(
            FailedMail(
                folder="INBOX",
                uidvalidity=1,
                uid=7,
                message_id="<q@vendor.co.id>",
                raw=raw,
                failures=3,
                last_error="ValueError: boom",
                quarantined=True,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )

    db.run_sync(work)


def test_an_erase_removes_the_quarantined_mail_of_that_address(
    db: Database, clock: FixedClock
) -> None:
    _quarantine(db, clock)
    db.run_sync(lambda s: erase_person(s, SITI, clock.now(), "operator"))
    assert SITI not in db.run_sync(_everything)


def test_an_export_holds_the_quarantined_mail_of_that_address(
    db: Database, clock: FixedClock
) -> None:
    _quarantine(db, clock)
    archive = zipfile.ZipFile(io.BytesIO(db.run_sync(lambda s: export_person(s, SITI))))
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"3201234567890123" in everything  # the stored mail is hers and is held


def test_an_older_postgresql_backup_restores_and_upgrades(
    tmp_path: Path, postgres_url: str, postgres_server: PostgresServer
) -> None:
    old = make_engine(postgres_url)
    upgrade(old, "0011_message_imported")  # last month's backup, one migration older
    old.dispose()
    backup(postgres_url, tmp_path / "old.bak")
    name = postgres_server.create_database()
    target = postgres_server.url(name)
    current = make_engine(target)
    try:
        upgrade(current)  # the running service's database, at head
        restore(target, tmp_path / "old.bak", force=True)
        upgrade(current)  # README: restore, then `lpse-helpdesk db upgrade`
    finally:
        current.dispose()
        postgres_server.drop_database(name)


def test_status_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "salah-ketik.sqlite3"
    db = Database.from_url(f"sqlite:///{path}", existing=True)  # as `status` opens it
    try:
        status = collect(
            db,
            dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            folders=["INBOX"],
            group_id=-100,
            database_label="x",
        )
    finally:
        db.close()
    assert status.level is Level.DOWN
    assert not path.exists()  # check-config: "never create a database file just to look"
