"""The outbound mail path in the field: long titled names and typographic subjects as they
arrive, a server that greets with 554, a send that outlasts its lease (from a bug hunt)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot import bounce_flags
from lpse_helpdesk.bridge.compose import MailContext, compose
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.bridge.outbound import MailSenderService
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.sop.machine import MailKind
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import FlaggedAddress, OutboxChannel, OutboxItem, OutboxStatus
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow import outbox
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK
from tests.mailmaker import make_mail
from tests.outbound_support import mail_sender
from tests.servers._proc import LOCALHOST, free_port
from tests.servers.smtp import RecordingHandler, SmtpServer


def _sender(
    port: int, db: Database, clock: FixedClock, workflow: Workflow, renew_seconds: float = 30.0
) -> MailSenderService:
    return mail_sender(port, db, clock, workflow, renew_seconds=renew_seconds)


def _items(db: Database) -> list[OutboxItem]:
    query = select(OutboxItem).where(OutboxItem.channel == OutboxChannel.MAIL)
    return db.run_sync(lambda s: list(s.scalars(query.order_by(OutboxItem.id))))


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --- 1. A long display name with academic titles breaks the To header -----------------------

TITLED_NAME = "Muhammad Ridwan Saputra, S.Kom. (Pokja Pemilihan Bagian Pengadaan Barang dan Jasa)"
TITLED_ADDRESS = "ridwan.saputra@cv-majujaya.co.id"


def _titled_mail() -> bytes:
    """Built by hand: the stdlib would mangle this very From header when generating it."""
    return (
        f'From: "{TITLED_NAME}" <{TITLED_ADDRESS}>\r\n'
        "To: Helpdesk LPSE <helpdesk@lpse.test>\r\n"
        "Subject: Gagal upload penawaran\r\n"
        "Date: Tue, 24 Nov 2026 08:55:00 +0700\r\n"
        "Message-ID: <hunt.titled.1@cv-majujaya.co.id>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Selamat pagi, kami gagal unggah penawaran. Kode tender: 12345678.\r\n"
    ).encode()


async def test_a_titled_requester_name_keeps_the_to_header_one_valid_address(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    result = db.run_sync(lambda s: intake.ingest(s, _titled_mail()))
    assert result.ticket_id is not None
    await _sender(smtp_server.port, db, clock, workflow).deliver_due()
    (received,) = smtp_server.messages
    to = _parse(received.content)["To"]
    # A quoted display name longer than one line is folded without its quotes:
    # "To: Muhammad Ridwan Saputra, S.Kom. (Pokja ...\r\n dan Jasa) <ridwan...>" reads as
    # two addresses, "Muhammad Ridwan Saputra" (no domain) and the real one with no name.
    assert [a.addr_spec for a in to.addresses] == [TITLED_ADDRESS]
    assert to.addresses[0].display_name == TITLED_NAME


# --- 2. Folding changes the spaces of a subject with typographic quotes ---------------------


def test_a_subject_with_typographic_quotes_arrives_unchanged() -> None:
    subject = (
        "Permohonan reset akun SPSE untuk penyedia “CV Maju Jaya Abadi Sentosa” — "
        "paket pekerjaan pembangunan jalan"
    )
    ctx = MailContext(
        ticket_number="LPSE-2026-00042",
        requester_name="Siti",
        requester_address="siti@vendor.co.id",
        subject=subject,
        problem_text="Akun terkunci.",
        lpse_name="LPSE Kota Contoh",
        helpdesk_name="Helpdesk LPSE Kota Contoh",
        helpdesk_address=HELPDESK,
        received_at_local="Selasa, 24 November 2026 pukul 09.00 WIB",
    )
    message = compose(
        MailKind.ACKNOWLEDGEMENT,
        ctx,
        to="siti@vendor.co.id",
        message_id="<lpse.1@lpse.test>",
        in_reply_to=None,
        references=(),
        date=datetime(2026, 11, 24, 2, 0, tzinfo=UTC),
        renderer=Renderer(),
    )
    wire = message.as_bytes(policy=email.policy.SMTP)  # what aiosmtplib puts on the wire
    assert str(_parse(wire)["Subject"]) == f"Re: [LPSE-2026-00042] {subject}"


# --- 3. A 554 greeting (IP blocked, server in maintenance) fails every queued mail ----------


@pytest.fixture
async def greets_554() -> AsyncIterator[int]:
    """An SMTP server that greets with 554 (RFC 5321 3.1) and waits for QUIT."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554 5.7.1 Service unavailable; client host blocked, try later\r\n")
        await writer.drain()
        while line := await reader.readline():
            quit_ = line.upper().startswith(b"QUIT")
            writer.write(b"221 2.0.0 Bye\r\n" if quit_ else b"503 5.5.1 Bad sequence\r\n")
            await writer.drain()
            if quit_:
                break
        writer.close()

    server = await asyncio.start_server(session, LOCALHOST, 0)
    port: int = server.sockets[0].getsockname()[1]
    async with server:
        yield port


async def test_a_554_greeting_keeps_the_mail_for_a_retry(
    greets_554: int, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    db.run_sync(lambda s: intake.ingest(s, make_mail()))
    await _sender(greets_554, db, clock, workflow).deliver_due()
    (item,) = _items(db)
    # The refusal is about our host (or the server's state), not this mail; it is
    # classified like a 5xx to RCPT, so the mail is FAILED for good and never resent.
    assert item.status is OutboxStatus.PENDING, item.last_error


# --- 4. A send longer than the lease lets a second instance send the mail again -------------


class _SlowFirstData(RecordingHandler):
    """Holds the first DATA (a big attachment on a slow uplink) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self._first:
            self._first = False
            self.entered.set()
            while not self.release.is_set():  # yield: other sessions go on meanwhile
                await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[tuple[int, _SlowFirstData]]:
    handler = _SlowFirstData()
    port = free_port()
    controller = Controller(handler, hostname=LOCALHOST, port=port, ready_timeout=5.0)
    controller.start()
    try:
        yield port, handler
    finally:
        handler.release.set()
        controller.stop()


async def test_a_send_outlasting_the_lease_is_not_sent_again_by_another_instance(
    slow_smtp: tuple[int, _SlowFirstData],
    db: Database,
    clock: FixedClock,
    workflow: Workflow,
    intake: Intake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, handler = slow_smtp
    db.run_sync(lambda s: intake.ingest(s, make_mail()))
    monkeypatch.setattr(outbox, "this_instance", lambda: "host-a:1")
    first = asyncio.create_task(_sender(port, db, clock, workflow, 0.05).deliver_due())
    assert await asyncio.to_thread(handler.entered.wait, 5)
    # Instance A is inside DATA; its transfer takes longer than LEASE (120 s)...
    clock.advance(seconds=outbox.LEASE.total_seconds() + 60)

    def renewed() -> bool:
        (item,) = _items(db)
        return item.lease_until is not None and item.lease_until > clock.now()

    # ... and while it lasts, A renews its claim (here every 50 ms instead of 30 s).
    for _ in range(200):
        if renewed():
            break
        await asyncio.sleep(0.02)
    assert renewed()
    monkeypatch.setattr(outbox, "this_instance", lambda: "host-b:1")
    taken_over = await _sender(port, db, clock, workflow).deliver_due()
    handler.release.set()
    await first
    assert (taken_over, len(handler.messages)) == (0, 1)


def test_a_late_failure_leaves_a_row_another_instance_sent(
    db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    """After a takeover, the first instance's SMTP answer may come in last: a row the other
    instance sent (or still holds) is not turned FAILED, nor staff told of a failure."""
    db.run_sync(lambda s: intake.ingest(s, make_mail()))
    (item,) = _items(db)

    def sent_elsewhere(session: Session) -> None:
        row = session.get_one(OutboxItem, item.id)
        row.status, row.claimed_by = OutboxStatus.SENT, "host-b:1"

    db.run_sync(sent_elsewhere)
    sender = _sender(9, db, clock, workflow)
    db.run_sync(lambda s: sender._permanent(s, item.id, "550 late refusal"))
    db.run_sync(lambda s: sender._temporary(s, item.id, "421 late trouble", False))
    (after,) = _items(db)
    assert (after.status, after.attempts) == (OutboxStatus.SENT, item.attempts)


async def test_a_550_at_rcpt_flags_the_address_as_a_bounce_would(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    """The server says at once that the mailbox does not exist: the address is flagged (the
    card shows it, automatic mail to it stops), as the bounce of the same refusal would."""
    result = db.run_sync(lambda s: intake.ingest(s, make_mail(sender="salah@vendor.co.id")))
    smtp_server.fail_next("550 5.1.1 No such user", stage="RCPT")
    await _sender(smtp_server.port, db, clock, workflow).deliver_due()
    flagged = db.run_sync(lambda s: s.get(FlaggedAddress, "salah@vendor.co.id"))
    assert flagged is not None and flagged.ticket_id == result.ticket_id
    assert "550" in flagged.reason
    # Staff are told, and can lift the flag from the notice as from a bounce notice.
    (notice,) = db.run_sync(
        lambda s: list(s.scalars(select(OutboxItem).where(OutboxItem.kind == "notice")))
    )
    assert notice.payload["flagged"] == ["salah@vendor.co.id"]
    assert bounce_flags.keyboard(notice.id, notice.payload) is not None
    assert db.run_sync(lambda s: bounce_flags.clear_flags(s, notice.id)) == ["salah@vendor.co.id"]


async def test_a_450_at_rcpt_flags_nothing(
    smtp_server: SmtpServer, db: Database, clock: FixedClock, workflow: Workflow, intake: Intake
) -> None:
    db.run_sync(lambda s: intake.ingest(s, make_mail(sender="penuh@vendor.co.id")))
    smtp_server.fail_next("450 4.2.2 Mailbox full", stage="RCPT")
    await _sender(smtp_server.port, db, clock, workflow).deliver_due()
    assert db.run_sync(lambda s: s.get(FlaggedAddress, "penuh@vendor.co.id")) is None
