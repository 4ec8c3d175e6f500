"""Intake decisions: threading, subject tags, reopen window, hygiene, flood, size cap."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from lpse_helpdesk.bot.cards import load_card, render_text
from lpse_helpdesk.bridge.intake import Intake, IntakeConfig, IntakeResult, Outcome
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import Action, State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    AuditEvent,
    FlaggedAddress,
    Message,
    MessageKind,
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP, WIB
from tests.mailmaker import make_mail

STAFF = Actor.telegram(5, "Dewi")


@pytest.fixture
def intake(workflow: Workflow, domain: DomainConfig) -> Intake:
    config = IntakeConfig(
        helpdesk_addresses=frozenset({HELPDESK}),
        lkpp_address=LKPP,
        new_tickets_per_sender_per_hour=3,
        max_bytes=200_000,
    )
    return Intake(workflow, domain, config)


def ingest(db: Database, intake: Intake, raw: bytes) -> IntakeResult:
    return db.run_sync(lambda s: intake.ingest(s, raw, mailbox="INBOX", uid=1))


def ticket(db: Database, ticket_id: int | None) -> Ticket:
    assert ticket_id is not None
    return db.run_sync(lambda s: s.get_one(Ticket, ticket_id))


def act(db: Database, workflow: Workflow, ticket_id: int, action: Action, **kw: Any) -> None:
    db.run_sync(lambda s: workflow.act(s, ticket_id, action, STAFF, **kw))


def mails(db: Database, kind: str | None = None) -> list[OutboxItem]:
    query = select(OutboxItem).where(OutboxItem.channel == OutboxChannel.MAIL)
    if kind:
        query = query.where(OutboxItem.kind == kind)
    return db.run_sync(lambda s: list(s.scalars(query.order_by(OutboxItem.id))))


def test_reply_to_our_data_request_is_the_data(
    db: Database, intake: Intake, workflow: Workflow
) -> None:
    opened = ingest(db, intake, make_mail(message_id="<q1@vendor.co.id>"))
    assert opened.outcome is Outcome.OPENED
    tid = opened.ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.SET_PRIORITY, priority="tinggi")
    act(db, workflow, tid, Action.REQUEST_DATA, text="Mohon kirim tangkapan layar.")
    request = mails(db, "data_request")[0]
    reply = make_mail(
        subject="Re: Gagal upload penawaran",
        message_id="<q2@vendor.co.id>",
        in_reply_to=f"<{request.message_id}>",
        references=f"<q1@vendor.co.id> <{request.message_id}>",
        body="Berikut tangkapan layarnya.",
    )
    joined = ingest(db, intake, reply)
    assert joined.outcome is Outcome.JOINED and joined.ticket_id == tid
    assert ticket(db, tid).state is State.DATA_RECEIVED


def test_references_are_read_right_to_left(db: Database, intake: Intake) -> None:
    first = ingest(db, intake, make_mail(message_id="<a@x.co.id>"))
    second = ingest(db, intake, make_mail(message_id="<b@y.co.id>", sender="b@y.co.id"))
    # In-Reply-To unknown; References name both: the rightmost known one wins.
    raw = make_mail(
        in_reply_to="<unknown@z>", references="<a@x.co.id> <b@y.co.id>", sender="b@y.co.id"
    )
    assert ingest(db, intake, raw).ticket_id == second.ticket_id != first.ticket_id


def test_subject_tag_from_the_requester_joins(db: Database, intake: Intake) -> None:
    opened = ingest(db, intake, make_mail())
    number = ticket(db, opened.ticket_id).number
    for prefix in ("Re:", "RE: Fwd:", "Bls:", "Balas:", "AW:", "Re[2]:", "Tr:"):
        raw = make_mail(subject=f"{prefix} [{number}] Gagal upload penawaran")
        result = ingest(db, intake, raw)
        assert result.outcome is Outcome.JOINED and result.ticket_id == opened.ticket_id, prefix


def test_subject_tag_from_a_stranger_opens_a_linked_ticket(db: Database, intake: Intake) -> None:
    opened = ingest(db, intake, make_mail())
    number = ticket(db, opened.ticket_id).number
    raw = make_mail(sender="orang.lain@contoh.co.id", subject=f"Re: [{number}] saya juga")
    result = ingest(db, intake, raw)
    assert result.outcome is Outcome.OPENED_LINKED
    assert ticket(db, result.ticket_id).linked_ticket_id == opened.ticket_id


def test_subject_tag_and_lkpp_from_alone_is_an_unverified_follow_up(
    db: Database, intake: Intake, workflow: Workflow
) -> None:
    """A From header and a subject tag are easy to forge: a normal follow-up, marked."""
    opened = ingest(db, intake, make_mail())
    tid = opened.ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.SET_PRIORITY, priority="menengah")
    act(db, workflow, tid, Action.ESCALATE, text="Mohon bantuan.")
    number = ticket(db, tid).number
    answer = make_mail(sender=f"Helpdesk LKPP <{LKPP}>", subject=f"RE: [{number}] eskalasi")
    result = ingest(db, intake, answer)
    assert result.outcome is Outcome.JOINED and result.ticket_id == tid
    assert ticket(db, tid).state is State.ESCALATED
    message = db.run_sync(lambda s: s.get_one(Message, result.message_pk))
    assert message.kind is MessageKind.USER
    assert message.note is not None and "unverified" in message.note
    card = db.run_sync(lambda s: load_card(s, tid))
    assert card is not None and card.unverified_lkpp
    text = render_text(card, intake.domain, WIB, dt.datetime.now(dt.UTC))
    assert "atas nama LKPP yang belum terverifikasi" in text


def test_subject_tag_from_lkpp_with_an_authentication_pass_answers_the_escalation(
    db: Database, intake: Intake, workflow: Workflow
) -> None:
    opened = ingest(db, intake, make_mail())
    tid = opened.ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.SET_PRIORITY, priority="menengah")
    act(db, workflow, tid, Action.ESCALATE, text="Mohon bantuan.")
    number = ticket(db, tid).number
    domain = LKPP.rpartition("@")[2]
    results = f"mx.lpse.test; spf=pass smtp.mailfrom={domain}; dkim=pass header.d={domain}"
    answer = make_mail(
        sender=f"Helpdesk LKPP <{LKPP}>",
        subject=f"RE: [{number}] eskalasi",
        headers={"Authentication-Results": results},
    )
    result = ingest(db, intake, answer)
    assert result.outcome is Outcome.JOINED
    assert ticket(db, tid).state is State.LKPP_ANSWERED
    kinds = db.run_sync(lambda s: s.get_one(Message, result.message_pk).kind)
    assert kinds is MessageKind.LKPP


def test_lkpp_reply_threads_by_headers(db: Database, intake: Intake, workflow: Workflow) -> None:
    tid = ingest(db, intake, make_mail()).ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.SET_PRIORITY, priority="menengah")
    act(db, workflow, tid, Action.ESCALATE, text="Mohon bantuan.")
    forward = mails(db, "lkpp_forward")[0]
    answer = make_mail(sender=LKPP, subject="RE: eskalasi", in_reply_to=f"<{forward.message_id}>")
    assert ingest(db, intake, answer).ticket_id == tid
    assert ticket(db, tid).state is State.LKPP_ANSWERED


def test_reopen_within_the_window_and_a_new_ticket_after(
    db: Database, intake: Intake, workflow: Workflow, clock: FixedClock
) -> None:
    tid = ingest(db, intake, make_mail(message_id="<r1@vendor.co.id>")).ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.SET_PRIORITY, priority="rendah")
    act(db, workflow, tid, Action.RESOLVE, text="Sudah kami reset.")
    clock.advance(days=2)
    again = ingest(db, intake, make_mail(in_reply_to="<r1@vendor.co.id>", body="Masih gagal."))
    assert again.outcome is Outcome.JOINED
    assert ticket(db, tid).state is State.IN_ANALYSIS and ticket(db, tid).reopen_count == 1
    act(db, workflow, tid, Action.RESOLVE, text="Sudah kami perbaiki.")
    clock.advance(days=8)
    late = ingest(db, intake, make_mail(in_reply_to="<r1@vendor.co.id>", body="Terima kasih"))
    assert late.outcome is Outcome.OPENED_LINKED
    assert ticket(db, late.ticket_id).linked_ticket_id == tid
    assert ticket(db, tid).state is State.RESOLVED


def test_closed_ticket_gets_a_new_linked_one(
    db: Database, intake: Intake, workflow: Workflow
) -> None:
    tid = ingest(db, intake, make_mail(message_id="<c1@vendor.co.id>")).ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.CLOSE)
    result = ingest(db, intake, make_mail(in_reply_to="<c1@vendor.co.id>"))
    assert result.outcome is Outcome.OPENED_LINKED


def test_user_mail_while_in_analysis_is_a_notice(
    db: Database, intake: Intake, workflow: Workflow
) -> None:
    tid = ingest(db, intake, make_mail(message_id="<n1@vendor.co.id>")).ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.SET_PRIORITY, priority="rendah")
    act(db, workflow, tid, Action.START_ANALYSIS)
    ingest(db, intake, make_mail(in_reply_to="<n1@vendor.co.id>", body="Tambahan info."))
    notices = db.run_sync(
        lambda s: [
            i.payload["notice"]
            for i in s.scalars(select(OutboxItem).where(OutboxItem.kind == "notice"))
        ]
    )
    assert notices == ["user_data"]
    assert ticket(db, tid).state is State.IN_ANALYSIS


def test_auto_reply_is_recorded_never_a_ticket_never_answered(db: Database, intake: Intake) -> None:
    tid = ingest(db, intake, make_mail(message_id="<o1@vendor.co.id>")).ticket_id
    ack = mails(db, "acknowledgement")[0]
    before = len(mails(db))
    ooo = make_mail(
        subject="Balasan otomatis: Gagal upload penawaran",
        headers={"Auto-Submitted": "auto-replied"},
        in_reply_to=f"<{ack.message_id}>",
    )
    result = ingest(db, intake, ooo)
    assert result.outcome is Outcome.AUTO_REPLY and result.ticket_id == tid
    assert len(mails(db)) == before  # never answered
    stray = ingest(db, intake, make_mail(headers={"Precedence": "bulk"}, sender="news@x.co.id"))
    assert stray.outcome is Outcome.AUTO_REPLY and stray.ticket_id is None
    count = db.run_sync(lambda s: len(list(s.scalars(select(Ticket)))))
    assert count == 1


def test_bounce_attaches_to_its_ticket_and_flags_the_address(db: Database, intake: Intake) -> None:
    tid = ingest(db, intake, make_mail(sender="salah@vendor.co.id")).ticket_id
    ack = mails(db, "acknowledgement")[0]
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@lpse.test>\r\n"
        "To: helpdesk@lpse.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce1@lpse.test>\r\n"
        "Return-Path: <>\r\n"
        "X-Failed-Recipients: salah@vendor.co.id\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; lpse.test\r\n\r\n"
        "Final-Recipient: rfc822; salah@vendor.co.id\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{ack.message_id}>\r\nSubject: x\r\n\r\n"
        "--B--\r\n"
    ).encode()
    result = ingest(db, intake, bounce)
    assert result.outcome is Outcome.BOUNCE and result.ticket_id == tid
    flagged = db.run_sync(lambda s: s.get(FlaggedAddress, "salah@vendor.co.id"))
    assert flagged is not None and flagged.ticket_id == tid
    # An address that mails us again is reachable again: its flag clears itself.
    ingest(db, intake, make_mail(sender="salah@vendor.co.id", subject="Lagi"))
    assert db.run_sync(lambda s: s.get(FlaggedAddress, "salah@vendor.co.id")) is None
    assert mails(db, "acknowledgement")[-1].status is OutboxStatus.PENDING


def test_own_mail_is_ignored(db: Database, intake: Intake) -> None:
    result = ingest(db, intake, make_mail(sender=f"Helpdesk <{HELPDESK}>"))
    assert result.outcome is Outcome.OWN and result.ticket_id is None


def test_flood_keeps_the_mails_and_tells_staff_once(db: Database, intake: Intake) -> None:
    outcomes = [
        ingest(db, intake, make_mail(subject=f"Spam {i}", sender="flood@x.co.id")).outcome
        for i in range(6)
    ]
    assert outcomes == [Outcome.OPENED] * 3 + [Outcome.FLOOD] * 3
    kept = db.run_sync(lambda s: len(list(s.scalars(select(Message)))))
    assert kept == 6
    alerts = db.run_sync(
        lambda s: list(s.scalars(select(OutboxItem).where(OutboxItem.kind == "alert")))
    )
    assert len(alerts) == 1 and alerts[0].payload["address"] == "flood@x.co.id"


def test_acknowledgements_are_capped_per_hour(
    db: Database, workflow: Workflow, domain: DomainConfig
) -> None:
    config = IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    intake = Intake(workflow, domain, config)
    for i in range(7):
        ingest(db, intake, make_mail(subject=f"Masalah {i}"))
    statuses = [m.status for m in mails(db, "acknowledgement")]
    assert statuses.count(OutboxStatus.PENDING) == 5
    assert statuses.count(OutboxStatus.CANCELLED) == 2


def test_no_reply_sender_gets_no_acknowledgement(db: Database, intake: Intake) -> None:
    ingest(db, intake, make_mail(sender="noreply@sistem.co.id", subject="Notifikasi"))
    assert mails(db, "acknowledgement")[0].status is OutboxStatus.CANCELLED


def test_oversize_mail_still_makes_a_ticket(db: Database, intake: Intake) -> None:
    raw = make_mail(attachment=("penawaran.pdf", b"%PDF" + b"x" * 300_000))
    result = ingest(db, intake, raw)
    assert result.outcome is Outcome.OPENED
    message = db.run_sync(lambda s: s.get_one(Message, result.message_pk))
    assert len(message.raw) < len(raw) and "kept on the server" in (message.note or "")
    assert "gagal unggah" in message.text
    assert [m.kind for m in mails(db)] == ["acknowledgement", "attachment_too_large"]


def test_audit_of_mail_actions(db: Database, intake: Intake, workflow: Workflow) -> None:
    tid = ingest(db, intake, make_mail(message_id="<au@vendor.co.id>")).ticket_id
    assert tid is not None
    act(db, workflow, tid, Action.SET_PRIORITY, priority="rendah")
    act(db, workflow, tid, Action.REQUEST_DATA, text="Data?")
    ingest(db, intake, make_mail(in_reply_to="<au@vendor.co.id>"))
    events = db.run_sync(
        lambda s: [(e.action, e.channel.value, e.actor_id) for e in s.scalars(select(AuditEvent))]
    )
    assert events[0] == ("open", "email", "siti@vendor.co.id")
    assert events[-1] == ("receive_user_data", "email", "siti@vendor.co.id")


def test_received_time_is_utc(db: Database, intake: Intake, clock: FixedClock) -> None:
    tid = ingest(db, intake, make_mail()).ticket_id
    assert ticket(db, tid).received_at == clock.now()
    assert ticket(db, tid).received_at.tzinfo == dt.UTC


def test_unreadable_mail_still_makes_a_ticket_and_asks_again(db: Database, intake: Intake) -> None:
    raw = (
        b"From: Budi <budi@vendor.co.id>\r\nTo: helpdesk@lpse.test\r\nSubject: tolong\r\n"
        b"Message-ID: <rusak@vendor.co.id>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="X"\r\n\r\n--X\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!!\r\n--X"
    )
    result = ingest(db, intake, raw)
    assert result.outcome is Outcome.OPENED
    assert [m.kind for m in mails(db)] == ["acknowledgement", "unreadable_mail"]
