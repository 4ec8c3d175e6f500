"""Retention under UU PDP, and one person's data exported and erased."""

from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.ops.privacy import (
    MASKED_ADDRESS,
    apply_retention,
    erase_person,
    export_person,
    mask_text,
)
from lpse_helpdesk.reports.data import iter_tickets
from lpse_helpdesk.reports.period import Period
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    Attachment,
    AuditEvent,
    Message,
    OutboxItem,
    OutboxStatus,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP, WIB
from tests.mailmaker import make_mail

BUDI = Actor.telegram(1001, "Budi")
BODY = (
    "Selamat siang, saya Siti Rahayu dari CV Maju, NIK 3201234567890123.\n"
    "Gagal unggah penawaran. Hubungi 0812-3456-7890 atau siti@vendor.co.id."
)


def ingest(db: Database, workflow: Workflow, domain: DomainConfig, sender: str, mid: str) -> int:
    intake = Intake(workflow, domain, IntakeConfig(frozenset({HELPDESK}), LKPP))
    raw = make_mail(
        sender=sender,
        message_id=mid,
        body=BODY,
        attachment=("ktp-siti.pdf", b"%PDF-1.4 personal"),
    )
    result = db.run_sync(lambda s: intake.ingest(s, raw))
    assert result.ticket_id is not None
    return result.ticket_id


def delivered(db: Database) -> None:
    """What the senders leave once everything went out: no outbox row is waiting."""

    def work(session: Session) -> None:
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.SENT)
        )

    db.run_sync(work)


def test_mask_text_hides_addresses_phones_nik_and_names() -> None:
    masked = mask_text(BODY, ["Siti Rahayu"])
    for secret in ("Siti Rahayu", "3201234567890123", "0812-3456-7890", "siti@vendor.co.id"):
        assert secret not in masked
    assert "Gagal unggah penawaran" in masked and "CV Maju" in masked


def test_retention_drops_raw_mail_and_keeps_the_recap(
    db: Database, workflow: Workflow, domain: DomainConfig, clock: FixedClock
) -> None:
    old = ingest(db, workflow, domain, "Siti Rahayu <siti@vendor.co.id>", "<old@vendor.co.id>")
    db.run_sync(lambda s: workflow.act(s, old, Action.CLOSE, BUDI))
    recent = ingest(db, workflow, domain, "Andi <andi@vendor.co.id>", "<new@vendor.co.id>")
    today = clock.now().astimezone(WIB).date()
    period = Period(today, today, WIB)

    def recap() -> list[tuple[object, ...]]:
        rows = db.run_sync(lambda s: list(iter_tickets(s, period)))
        return [(r.number, r.state, r.category, r.received_at, r.closed_at) for r in rows]

    before = recap()
    clock.advance(days=731)
    delivered(db)  # two years on, nothing of it waits in the outbox
    assert db.run_sync(lambda s: apply_retention(s, clock.now(), 730)) == 1
    assert db.run_sync(lambda s: apply_retention(s, clock.now(), 730)) == 0  # idempotent

    def read(ticket_id: int) -> tuple[Ticket, list[Message], list[Attachment]]:
        def work(s: Session) -> tuple[Ticket | None, list[Message], list[Attachment]]:
            messages = list(s.scalars(select(Message).where(Message.ticket_id == ticket_id)))
            attachments = list(
                s.scalars(
                    select(Attachment).where(Attachment.message_id.in_([m.id for m in messages]))
                )
            )
            return s.get(Ticket, ticket_id), messages, attachments

        ticket, messages, attachments = db.run_sync(work)
        assert ticket is not None
        return ticket, messages, attachments

    ticket, messages, attachments = read(old)
    assert ticket.masked_at is not None and ticket.requester_email == MASKED_ADDRESS
    assert all(m.raw == b"" for m in messages if m.direction.value == "in")
    assert attachments and all(a.filename == "" and a.part_index is None for a in attachments)
    stored = " ".join([ticket.problem_text, ticket.subject, *(m.text for m in messages)])
    for secret in ("Siti Rahayu", "3201234567890123", "0812-3456-7890", "siti@vendor.co.id"):
        assert secret not in stored
    # The open, recent ticket is untouched; the recap keeps numbers, states and dates.
    assert read(recent)[0].masked_at is None and read(recent)[1][0].raw
    assert recap() == before


def test_export_then_erase_one_address(
    db: Database, workflow: Workflow, domain: DomainConfig, clock: FixedClock
) -> None:
    mine = ingest(db, workflow, domain, "Siti Rahayu <siti@vendor.co.id>", "<a@vendor.co.id>")
    other = ingest(db, workflow, domain, "Andi <andi@vendor.co.id>", "<b@vendor.co.id>")
    db.run_sync(lambda s: workflow.act(s, mine, Action.CLOSE, BUDI))

    archive = zipfile.ZipFile(
        io.BytesIO(db.run_sync(lambda s: export_person(s, "SITI@vendor.co.id")))
    )
    data = json.loads(archive.read("data.json"))
    assert [t["requester_email"] for t in data["tickets"]] == ["siti@vendor.co.id"]
    raw_name = data["tickets"][0]["messages"][0]["raw_file"]
    assert b"ktp-siti.pdf" in archive.read(raw_name)
    assert "andi" not in archive.read("data.json").decode()

    delivered(db)  # the acknowledgement and the closing mail went out
    masked, still_open, finishing = db.run_sync(
        lambda s: erase_person(s, "siti@vendor.co.id", clock.now(), "operator")
    )
    assert (masked, still_open, finishing) == (1, [], [])
    after = json.loads(
        zipfile.ZipFile(
            io.BytesIO(db.run_sync(lambda s: export_person(s, "siti@vendor.co.id")))
        ).read("data.json")
    )
    assert after["tickets"] == []  # nothing is held under that address any more
    audit = db.run_sync(
        lambda s: s.scalars(
            select(AuditEvent).where(AuditEvent.action == "personal_data_erased")
        ).one()
    )
    assert audit.actor_id == "operator" and audit.detail["tickets"] == 1
    untouched = db.run_sync(lambda s: s.get(Ticket, other))
    assert untouched is not None and untouched.masked_at is None


def test_erase_leaves_open_tickets_and_names_them(
    db: Database, workflow: Workflow, domain: DomainConfig, clock: FixedClock
) -> None:
    ingest(db, workflow, domain, "Siti <siti@vendor.co.id>", "<c@vendor.co.id>")
    masked, still_open, _ = db.run_sync(
        lambda s: erase_person(s, "siti@vendor.co.id", clock.now(), "operator")
    )
    assert masked == 0 and len(still_open) == 1


def test_the_export_names_the_attachments_and_holds_the_remarks_and_history_details(
    db: Database, workflow: Workflow, domain: DomainConfig, clock: FixedClock
) -> None:
    mine = ingest(db, workflow, domain, "Siti Rahayu <siti@vendor.co.id>", "<e@vendor.co.id>")
    db.run_sync(lambda s: workflow.act(s, mine, Action.CLOSE, BUDI))
    archive = zipfile.ZipFile(
        io.BytesIO(db.run_sync(lambda s: export_person(s, "siti@vendor.co.id")))
    )
    (ticket,) = json.loads(archive.read("data.json"))["tickets"]
    assert ticket["messages"][0]["attachments"] == ["ktp-siti.pdf"]
    assert "remarks" in ticket
    assert all("detail" in event for event in ticket["history"])


def test_retention_masks_the_subject_and_attachment_names_of_mail_without_a_ticket(
    db: Database, workflow: Workflow, domain: DomainConfig, clock: FixedClock
) -> None:
    """An auto-reply (no ticket) with a name in its subject and an attachment."""
    intake = Intake(workflow, domain, IntakeConfig(frozenset({HELPDESK}), LKPP))
    raw = make_mail(
        sender="Siti Rahayu <siti@vendor.co.id>",
        subject="Balasan otomatis: Siti Rahayu sedang cuti",
        headers={"Auto-Submitted": "auto-replied"},
        attachment=("ktp-siti.pdf", b"%PDF-1.4 personal"),
    )
    result = db.run_sync(lambda s: intake.ingest(s, raw))
    assert result.ticket_id is None
    clock.advance(days=731)
    db.run_sync(lambda s: apply_retention(s, clock.now(), 730))
    message = db.run_sync(lambda s: s.get_one(Message, result.message_pk))
    names = db.run_sync(
        lambda s: list(
            s.scalars(select(Attachment.filename).where(Attachment.message_id == message.id))
        )
    )
    assert "Siti Rahayu" not in message.subject and names == [""]
