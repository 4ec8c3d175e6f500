"""The mail sender against a real SMTP server (aiosmtpd): delivery, threading, retries."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from lpse_helpdesk.bridge.intake import Intake, Outcome
from lpse_helpdesk.bridge.outbound import MailSenderService
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.sop.machine import Action, State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    AuditEvent,
    Direction,
    Message,
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    SlaClock,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP
from tests.mailmaker import make_mail
from tests.outbound_support import mail_sender
from tests.servers.smtp import SmtpServer

STAFF = Actor.telegram(9, "Rudi")


def _sender(
    smtp: SmtpServer | None,
    db: Database,
    clock: FixedClock,
    workflow: Workflow,
    *,
    port: int | None = None,
) -> MailSenderService:
    port = port if port is not None else (smtp.port if smtp else 0)
    return mail_sender(port, db, clock, workflow, helpdesk_phone="(0411) 123456")


def _open(db: Database, intake: Intake, **kw: Any) -> int:
    result = db.run_sync(lambda s: intake.ingest(s, make_mail(**kw)))
    assert result.ticket_id is not None
    return result.ticket_id


def _act(db: Database, workflow: Workflow, tid: int, action: Action, **kw: Any) -> None:
    db.run_sync(lambda s: workflow.act(s, tid, action, STAFF, **kw))


def _received(smtp: SmtpServer) -> list[EmailMessage]:
    return [email.message_from_bytes(m.content, policy=email.policy.default) for m in smtp.messages]


def _items(db: Database) -> list[OutboxItem]:
    query = select(OutboxItem).where(OutboxItem.channel == OutboxChannel.MAIL)
    return db.run_sync(lambda s: list(s.scalars(query.order_by(OutboxItem.id))))


async def test_data_request_is_delivered_threaded_and_recorded(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    tid = _open(db, intake, message_id="<u1@vendor.co.id>")
    _act(db, workflow, tid, Action.SET_PRIORITY, priority="tinggi")
    _act(db, workflow, tid, Action.REQUEST_DATA, text="Mohon kirim tangkapan layar <galat>.")
    sender = _sender(smtp_server, db, clock, workflow)
    assert await sender.deliver_due() == 2  # acknowledgement + data request
    ack, request = _received(smtp_server)
    number = db.run_sync(lambda s: s.get_one(Ticket, tid).number)
    assert request["Subject"] == f"Re: [{number}] Gagal upload penawaran"
    assert request["In-Reply-To"] == "<u1@vendor.co.id>"
    assert "<u1@vendor.co.id>" in request["References"]
    assert request["From"] == f"Helpdesk LPSE Kota Contoh <{HELPDESK}>"
    assert request["To"].addresses[0].addr_spec == "siti@vendor.co.id"
    assert request["Auto-Submitted"] is None
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    text = request.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = request.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Mohon kirim tangkapan layar <galat>." in text and number in text
    assert "&lt;galat&gt;" in html and "<galat>" not in html
    items = _items(db)
    assert [i.status for i in items] == [OutboxStatus.SENT, OutboxStatus.SENT]
    assert request["Message-ID"] == f"<{items[1].message_id}>"
    stored = db.run_sync(
        lambda s: list(s.scalars(select(Message).where(Message.direction == Direction.OUT)))
    )
    assert [m.message_id for m in stored] == [i.message_id for i in items]
    # The user's reply to our mail threads back to the same ticket and is the data.
    reply = make_mail(
        subject=str(request["Subject"]),
        in_reply_to=str(request["Message-ID"]),
        body="Terlampir tangkapan layar.",
    )
    result = db.run_sync(lambda s: intake.ingest(s, reply))
    assert result.outcome is Outcome.JOINED and result.ticket_id == tid
    assert db.run_sync(lambda s: s.get_one(Ticket, tid).state) is State.DATA_RECEIVED


async def test_temporary_failure_then_success_sends_once(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    _open(db, intake)
    smtp_server.fail_next("451 4.3.0 Coba lagi nanti")
    sender = _sender(smtp_server, db, clock, workflow)
    await sender.deliver_due()
    item = _items(db)[0]
    assert item.status is OutboxStatus.PENDING and item.attempts == 1
    assert item.last_error is not None and "451" in item.last_error
    assert item.next_attempt_at > clock.now()
    assert await sender.deliver_due() == 0  # not due yet
    clock.advance(minutes=2)
    await sender.deliver_due()
    assert _items(db)[0].status is OutboxStatus.SENT
    assert len(smtp_server.messages) == 1


async def test_permanent_failure_is_recorded_and_told(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    tid = _open(db, intake)
    smtp_server.fail_next("550 5.1.1 No such user", stage="RCPT")
    await _sender(smtp_server, db, clock, workflow).deliver_due()
    item = _items(db)[0]
    assert item.status is OutboxStatus.FAILED and "550" in (item.last_error or "")
    notices = db.run_sync(
        lambda s: [
            i.payload for i in s.scalars(select(OutboxItem).where(OutboxItem.kind == "notice"))
        ]
    )
    assert notices[-1]["notice"] == "mail_failed" and notices[-1]["kind"] == "acknowledgement"
    audit = db.run_sync(
        lambda s: [
            e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.ticket_id == tid))
        ]
    )
    assert "mail_failed" in audit


async def test_connection_refused_retries_then_gives_up(
    refused_port: int, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    _open(db, intake)
    sender = _sender(None, db, clock, workflow, port=refused_port)
    await sender.deliver_due()
    item = _items(db)[0]
    assert item.status is OutboxStatus.PENDING and item.attempts == 1
    clock.advance(hours=25)
    await sender.deliver_due()
    item = _items(db)[0]
    assert item.status is OutboxStatus.FAILED and "gave up" in (item.last_error or "")


async def test_restart_with_pending_items_sends_the_same_message_id(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    _open(db, intake)
    message_id = _items(db)[0].message_id
    # A sender that crashed after the SMTP server accepted the mail, before marking it sent:
    crashed = _sender(smtp_server, db, clock, workflow)
    prepared = await db.run(crashed._prepare_due)
    from lpse_helpdesk.bridge.smtp_send import send

    await send(
        prepared[0].message,
        host="127.0.0.1",
        port=smtp_server.port,
        security="plain",
        username=None,
        password=None,
        timeout=5,
        sender=HELPDESK,
        recipients=[prepared[0].recipient],
    )
    restarted = _sender(smtp_server, db, clock, workflow)
    await restarted.deliver_due()
    first, second = _received(smtp_server)
    assert first["Message-ID"] == second["Message-ID"] == f"<{message_id}>"
    assert first["Subject"] == second["Subject"] and first["Date"] == second["Date"]
    assert await restarted.deliver_due() == 0  # and never again
    assert len(smtp_server.messages) == 2


async def test_solution_delivery_completes_the_reply_step(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    tid = _open(db, intake)
    _act(db, workflow, tid, Action.SET_PRIORITY, priority="rendah")
    _act(db, workflow, tid, Action.RESOLVE, text="Silakan coba lagi.")
    clock.advance(minutes=3)
    await _sender(smtp_server, db, clock, workflow).deliver_due()
    reply_clock = db.run_sync(
        lambda s: s.scalars(
            select(SlaClock).where(SlaClock.step == SopStep.REPLY_AFTER_SOLVED)
        ).one()
    )
    assert reply_clock.met is True and reply_clock.business_minutes == pytest.approx(3)


async def test_escalation_forwards_the_original_with_its_attachment(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    pdf = b"%PDF-1.4 bukti"
    tid = _open(db, intake, attachment=("bukti.pdf", pdf))
    _act(db, workflow, tid, Action.SET_PRIORITY, priority="tinggi")
    _act(db, workflow, tid, Action.ESCALATE, text="Dokumen terenkripsi tidak dapat dibuka.")
    await _sender(smtp_server, db, clock, workflow).deliver_due()
    received = _received(smtp_server)
    forward = next(m for m in received if LKPP in str(m["To"]))
    to_user = [m for m in received if "siti@vendor.co.id" in str(m["To"])]
    assert len(to_user) == 2  # the acknowledgement and the step 10 notice
    assert all(m["Auto-Submitted"] == "auto-replied" for m in to_user)
    assert forward["Auto-Submitted"] is None  # a person wrote the analysis note
    attached = [p for p in forward.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    original = attached[0].get_content()
    pdf_parts = [p for p in original.iter_attachments() if p.get_filename() == "bukti.pdf"]
    assert pdf_parts[0].get_content() == pdf
    body = forward.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Dokumen terenkripsi tidak dapat dibuka." in body and "12345678" in body
    steps = db.run_sync(
        lambda s: {
            c.step: c.met for c in s.scalars(select(SlaClock).where(SlaClock.ticket_id == tid))
        }
    )
    assert steps[SopStep.ESCALATE_AND_NOTIFY] is True


async def test_service_loop_delivers_and_stops(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    import asyncio

    sender = _sender(smtp_server, db, clock, workflow)
    await sender.start()
    try:
        _open(db, intake)
        sender.wake()
        for _ in range(100):
            if smtp_server.messages:
                break
            await asyncio.sleep(0.05)
        assert len(smtp_server.messages) == 1
    finally:
        await sender.stop()
    assert sender._task is not None and sender._task.done()


async def test_a_broken_custom_template_fails_its_mail_not_the_outbox(
    tmp_path: Any,
    smtp_server: SmtpServer,
    db: Database,
    clock: FixedClock,
    workflow: Workflow,
    intake: Intake,
) -> None:
    (tmp_path / "acknowledgement.txt").write_text("Halo {{ tidak_ada.sama_sekali }}", "utf-8")
    tid = _open(db, intake)
    _act(db, workflow, tid, Action.SET_PRIORITY, priority="rendah")
    _act(db, workflow, tid, Action.RESOLVE, text="Sudah beres.")
    sender = _sender(smtp_server, db, clock, workflow)
    sender.renderer = Renderer(tmp_path)
    await sender.deliver_due()
    statuses = {i.kind: i.status for i in _items(db)}
    assert statuses == {"acknowledgement": OutboxStatus.FAILED, "solution": OutboxStatus.SENT}
    assert len(smtp_server.messages) == 1


async def test_a_solution_that_cannot_be_delivered_misses_its_step(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    tid = _open(db, intake)
    _act(db, workflow, tid, Action.SET_PRIORITY, priority="rendah")
    _act(db, workflow, tid, Action.RESOLVE, text="Sudah beres.")
    smtp_server.fail_next("550 5.1.1 No such user", count=2, stage="RCPT")
    await _sender(smtp_server, db, clock, workflow).deliver_due()
    reply = db.run_sync(
        lambda s: s.scalars(
            select(SlaClock).where(SlaClock.step == SopStep.REPLY_AFTER_SOLVED)
        ).one()
    )
    assert reply.stopped_at is not None and reply.met is False


def test_a_refused_recipient_misses_the_step_and_closing_stops_every_clock(
    db: Database, workflow: Workflow, intake: Intake
) -> None:
    tid = _open(db, intake, sender="noreply@sistem.co.id")
    _act(db, workflow, tid, Action.SET_PRIORITY, priority="rendah")
    _act(db, workflow, tid, Action.RESOLVE, text="Sudah beres.")
    running = db.run_sync(
        lambda s: {
            c.step: c.met for c in s.scalars(select(SlaClock).where(SlaClock.ticket_id == tid))
        }
    )
    assert running[SopStep.REPLY_AFTER_SOLVED] is False  # the mail was refused (no-reply)
    _act(db, workflow, tid, Action.CLOSE)
    left = db.run_sync(
        lambda s: list(s.scalars(select(SlaClock).where(SlaClock.stopped_at.is_(None))))
    )
    assert left == []
