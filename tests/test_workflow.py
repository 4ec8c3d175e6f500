"""Applying SOP actions to stored tickets: state, stamps, outbox, SLA clocks, audit, locking."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.sop.machine import Action, ActionNotAllowed, State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    AuditEvent,
    Channel,
    Direction,
    Message,
    MessageKind,
    OutboxChannel,
    OutboxItem,
    SlaClock,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import NewTicket, Refused, StaleTicket, Workflow
from tests.conftest import LKPP, WIB

STAFF = Actor.telegram(1001, "Budi")


def _new(received: dt.datetime, email: str = "Vendor@Example.co.id") -> NewTicket:
    return NewTicket(
        requester_name="Siti Vendor",
        requester_email=email,
        subject="Gagal upload penawaran",
        problem_text="Tidak bisa unggah dokumen penawaran.",
        received_at=received,
        suggested_category="TENDER_UNGGAH_PENAWARAN",
        suggested_priority="tinggi",
        tender_codes=("12345678",),
    )


def _open(db: Database, workflow: Workflow, clock: FixedClock) -> int:
    def work(session: Session) -> int:
        ticket = workflow.open_ticket(session, _new(clock.now()), Actor.email("vendor@x"))
        session.add(
            Message(
                ticket_id=ticket.id,
                direction=Direction.IN,
                kind=MessageKind.USER,
                message_id="first@example.co.id",
                references=["older@example.co.id"],
                raw=b"raw",
                at=clock.now(),
            )
        )
        return ticket.id

    return db.run_sync(work)


def _act(db: Database, workflow: Workflow, ticket_id: int, action: Action, **kw: object) -> None:
    db.run_sync(lambda s: workflow.act(s, ticket_id, action, STAFF, **kw))  # type: ignore[arg-type]


def _outbox(db: Database) -> list[OutboxItem]:
    return db.run_sync(lambda s: list(s.scalars(select(OutboxItem).order_by(OutboxItem.id))))


def _ticket(db: Database, ticket_id: int) -> Ticket:
    return db.run_sync(lambda s: s.get_one(Ticket, ticket_id))


def test_open_ticket(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    first = _open(db, workflow, clock)
    second = _open(db, workflow, clock)
    ticket = _ticket(db, first)
    assert ticket.number == "LPSE-2026-00001"
    assert _ticket(db, second).number == "LPSE-2026-00002"
    assert ticket.state is State.NEW and ticket.version == 1
    assert ticket.requester_email == "vendor@example.co.id"
    assert ticket.received_at == clock.now() and ticket.received_at.tzinfo == dt.UTC
    clocks = db.run_sync(lambda s: list(s.scalars(select(SlaClock))))
    assert clocks[0].step is SopStep.SET_PRIORITY
    assert clocks[0].deadline_at == clock.now() + dt.timedelta(minutes=5)
    cards = [i for i in _outbox(db) if i.channel is OutboxChannel.TELEGRAM]
    assert [c.kind for c in cards] == ["card", "card"]


def test_numbers_restart_each_local_year(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    # 31 Dec 2026 23:30 WIB is still 2026 locally although 2026-12-31 16:30 UTC.
    late = dt.datetime(2026, 12, 31, 23, 30, tzinfo=WIB)
    early = dt.datetime(2027, 1, 1, 0, 30, tzinfo=WIB)  # 2026-12-31 17:30 UTC
    numbers = db.run_sync(
        lambda s: [
            workflow.open_ticket(s, _new(late), Actor.system()).number,
            workflow.open_ticket(s, _new(early), Actor.system()).number,
            workflow.open_ticket(s, _new(early), Actor.system()).number,
        ]
    )
    assert numbers == ["LPSE-2026-00001", "LPSE-2027-00001", "LPSE-2027-00002"]


def test_the_sop_path_with_data_request(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    ticket_id = _open(db, workflow, clock)
    clock.advance(minutes=3)
    _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="tinggi", expected_version=1)
    ticket = _ticket(db, ticket_id)
    assert ticket.state is State.PRIORITIZED and ticket.version == 2
    assert ticket.priority_set_at == clock.now()
    assert ticket.category == "TENDER_UNGGAH_PENAWARAN"  # suggestion confirmed

    clock.advance(minutes=1)
    _act(db, workflow, ticket_id, Action.REQUEST_DATA, text="Mohon kirim tangkapan layar.")
    mails = [i for i in _outbox(db) if i.channel is OutboxChannel.MAIL]
    assert len(mails) == 1
    request = mails[0]
    assert request.kind == "data_request" and request.recipient == "vendor@example.co.id"
    assert request.message_id and request.message_id.endswith("@lpse.test")
    assert not request.message_id.startswith("<")
    assert request.payload["staff_text"] == "Mohon kirim tangkapan layar."
    assert request.payload["in_reply_to"] == "first@example.co.id"
    assert request.payload["references"] == ["older@example.co.id", "first@example.co.id"]
    assert request.payload["staff_name"] is None  # no official name set: no personal name

    clock.advance(minutes=2)
    _act(db, workflow, ticket_id, Action.CONFIRM_PHONE)
    with pytest.raises(ActionNotAllowed, match="confirm_phone"):
        _act(db, workflow, ticket_id, Action.CONFIRM_PHONE)

    clock.advance(hours=2)
    _act(db, workflow, ticket_id, Action.RECEIVE_USER_DATA)
    clock.advance(minutes=30)
    _act(db, workflow, ticket_id, Action.START_ANALYSIS)
    _act(db, workflow, ticket_id, Action.RESOLVE, text="Silakan ulangi dengan Apendo terbaru.")
    ticket = _ticket(db, ticket_id)
    assert ticket.state is State.RESOLVED
    assert ticket.solution == "Silakan ulangi dengan Apendo terbaru."
    for stamp in ("priority_set_at", "data_requested_at", "phone_confirmed_at"):
        assert getattr(ticket, stamp) is not None
    assert ticket.resolved_at == clock.now()

    clocks = db.run_sync(lambda s: {c.step: c for c in s.scalars(select(SlaClock))})
    assert clocks[SopStep.SET_PRIORITY].met is True
    assert clocks[SopStep.SET_PRIORITY].business_minutes == pytest.approx(3)
    assert clocks[SopStep.REQUEST_DATA].met is True
    assert clocks[SopStep.REQUEST_DATA].business_minutes == pytest.approx(2)
    # The resolution clock ran 1 + 30 minutes: the wait for the user does not count.
    assert clocks[SopStep.RESOLVE].business_minutes == pytest.approx(31)
    assert clocks[SopStep.RESOLVE].met is True
    assert clocks[SopStep.REPLY_AFTER_SOLVED].stopped_at is None  # until the mail is sent

    audit = db.run_sync(lambda s: list(s.scalars(select(AuditEvent).order_by(AuditEvent.id))))
    assert [e.action for e in audit] == [
        "open",
        "set_priority",
        "request_data",
        "confirm_phone",
        "receive_user_data",
        "start_analysis",
        "resolve",
    ]
    assert audit[1].channel is Channel.TELEGRAM and audit[1].actor_id == "1001"
    assert audit[1].actor_name == "Budi" and audit[1].detail == {"priority": "tinggi"}


def test_escalation_mails_lkpp_and_the_user(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    ticket_id = _open(db, workflow, clock)
    _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="menengah")
    _act(db, workflow, ticket_id, Action.ESCALATE, text="Error di server SPSE pusat.")
    mails = {i.kind: i for i in _outbox(db) if i.channel is OutboxChannel.MAIL}
    assert mails["lkpp_forward"].recipient == LKPP
    assert mails["lkpp_forward"].payload["original_message_pk"] is not None
    assert mails["lkpp_forward"].payload["in_reply_to"] is None  # a new thread at LKPP
    assert mails["escalation_notice"].recipient == "vendor@example.co.id"
    assert mails["escalation_notice"].payload["completes"] == "escalate_and_notify"
    assert mails["lkpp_forward"].message_id != mails["escalation_notice"].message_id
    _act(db, workflow, ticket_id, Action.RECEIVE_LKPP_REPLY)
    assert _ticket(db, ticket_id).state is State.LKPP_ANSWERED


def test_refused_actions_change_nothing(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    ticket_id = _open(db, workflow, clock)
    before = len(_outbox(db))
    with pytest.raises(ActionNotAllowed) as caught:
        _act(db, workflow, ticket_id, Action.RESOLVE, text="x")
    assert caught.value.message == "Tetapkan prioritas terlebih dahulu."
    with pytest.raises(Refused, match="Prioritas tidak dikenal"):
        _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="kritis")
    with pytest.raises(Refused, match="Kategori tidak dikenal"):
        _act(db, workflow, ticket_id, Action.SET_CATEGORY, category="NOPE")
    _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="rendah")
    with pytest.raises(Refused, match="Teks tidak boleh kosong"):
        _act(db, workflow, ticket_id, Action.REQUEST_DATA, text="   ")
    ticket = _ticket(db, ticket_id)
    assert ticket.state is State.PRIORITIZED and ticket.version == 2
    audit = db.run_sync(lambda s: s.scalar(select(func.count()).select_from(AuditEvent)))
    assert audit == 2  # open + set_priority
    # Only the card edit of the accepted action was queued (coalesced with the pending card).
    assert len(_outbox(db)) == before


def test_stale_version_is_refused(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    ticket_id = _open(db, workflow, clock)
    _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="tinggi", expected_version=1)
    with pytest.raises(StaleTicket) as caught:
        _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="rendah", expected_version=1)
    assert "petugas lain" in caught.value.message
    assert _ticket(db, ticket_id).priority == "tinggi"


def test_concurrent_sessions_apply_once(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    """Two staff load the same version; the second commit is refused by the version check."""
    ticket_id = _open(db, workflow, clock)
    _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="tinggi")
    first, second = db.sessions(), db.sessions()
    try:
        first.begin()
        second.begin()
        first_ticket = first.get_one(Ticket, ticket_id)
        second_ticket = second.get_one(Ticket, ticket_id)
        assert first_ticket.version == second_ticket.version == 2
        workflow.act(first, ticket_id, Action.ESCALATE, STAFF, text="a", expected_version=2)
        first.commit()
        with pytest.raises(StaleTicket):
            workflow.act(second, ticket_id, Action.RESOLVE, STAFF, text="b", expected_version=2)
        second.rollback()
    finally:
        first.close()
        second.close()
    ticket = _ticket(db, ticket_id)
    assert ticket.state is State.ESCALATED and ticket.solution is None


def test_reopen_and_close(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    ticket_id = _open(db, workflow, clock)
    _act(db, workflow, ticket_id, Action.SET_PRIORITY, priority="rendah")
    _act(db, workflow, ticket_id, Action.RESOLVE, text="Sudah direset.")
    db.run_sync(lambda s: workflow.act(s, ticket_id, Action.REOPEN, Actor.email("v@x")))
    ticket = _ticket(db, ticket_id)
    assert ticket.state is State.IN_ANALYSIS and ticket.reopen_count == 1
    assert ticket.reopened_at is not None
    _act(db, workflow, ticket_id, Action.CLOSE)
    assert _ticket(db, ticket_id).closed_at is not None


async def test_database_work_runs_off_the_event_loop(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    import threading

    main = threading.get_ident()
    ticket_id = _open(db, workflow, clock)
    thread = await db.run(lambda s: threading.get_ident())
    number = await db.run(lambda s: s.get_one(Ticket, ticket_id).number)
    assert thread != main and number == "LPSE-2026-00001"
