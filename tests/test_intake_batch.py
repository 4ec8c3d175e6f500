"""A batch of mails is one transaction: stored together, or (when a mail fails) with a
savepoint per mail, so that a bad mail rolls back alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from imap_tools import MailBoxUnencrypted
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.failures import DatabaseUnavailable
from lpse_helpdesk.bridge.inbound import MailIntakeService
from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database, upgrade
from lpse_helpdesk.storage.models import (
    Attachment,
    AuditEvent,
    FailedMail,
    FlaggedAddress,
    MailboxState,
    Message,
    OutboxItem,
    SlaClock,
    Ticket,
)
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP
from tests.intake_support import intake_service
from tests.mailmaker import make_bounce, make_mail
from tests.servers.dovecot import ImapAccount as DovecotAccount

pytestmark = pytest.mark.dovecot


class BreaksAfterWriting(Intake):
    """Stores a mail marked "RUSAK" completely (message, ticket, outbox), then fails: what it
    wrote must vanish with its savepoint, and nothing else of the batch."""

    def ingest_prepared(self, session: Session, prepared: Any, **kw: Any) -> Any:
        result = super().ingest_prepared(session, prepared, **kw)
        if b"RUSAK" in prepared.raw:
            session.flush()
            raise ValueError("cannot process this mail")
        return result


def _flags(account: DovecotAccount, uids: list[int]) -> dict[int, tuple[str, ...]]:
    with MailBoxUnencrypted(account.host, account.port).login(
        account.user, account.password
    ) as box:
        flags = {int(m.uid or 0): m.flags for m in box.fetch(mark_seen=False, headers_only=True)}
    return {uid: flags[uid] for uid in uids}


def _vendor_mails(
    account: DovecotAccount, count: int, tag: str, *, marked: int = -1, mark: str = ""
) -> list[int]:
    """`count` new mails of different vendors (Message-IDs <tag-i@...>); the one at index
    `marked` has the subject `mark`. Their UIDs."""
    return [
        account.append(
            make_mail(
                sender=f"Penyedia {i} <p{i}@vendor{i}.co.id>",
                subject=mark if i == marked else f"Kendala {i}",
                message_id=f"<{tag}-{i}@vendor{i}.co.id>",
            )
        )
        for i in range(count)
    ]


def _count(db: Database, model: type[Any]) -> int:
    return db.run_sync(lambda s: s.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_bad_mail_in_a_batch_rolls_back_alone(
    imap_account: DovecotAccount,
    workflow: Workflow,
    domain: DomainConfig,
    database: Database,
    clock: FixedClock,
) -> None:
    config = IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    service = intake_service(
        imap_account, BreaksAfterWriting(workflow, domain, config), database, clock
    )
    uids = _vendor_mails(imap_account, 5, "batch", marked=2, mark="RUSAK")
    bad = uids[2]
    report = await _sync(service)

    assert report.committed == 4 and report.failed == 1
    # The four good mails are stored with their tickets and outbox rows ...
    assert _count(database, Ticket) == 4
    stored = database.run_sync(lambda s: sorted(s.scalars(select(Message.message_id))))
    assert stored == [f"batch-{i}@vendor{i}.co.id" for i in (0, 1, 3, 4)]
    assert all(
        item.ticket_id is not None
        for item in database.run_sync(lambda s: list(s.scalars(select(OutboxItem))))
    )
    # ... the bad one left nothing but its failure record, and the position moved past all.
    failed = database.run_sync(lambda s: s.scalars(select(FailedMail)).one())
    assert failed.uid == bad and b"RUSAK" in failed.raw
    assert database.run_sync(lambda s: s.get_one(MailboxState, "INBOX").last_uid) == uids[-1]
    flags = _flags(imap_account, uids)
    assert all("\\Seen" in flags[uid] for uid in uids if uid != bad)
    assert "\\Seen" not in flags[bad]  # not handled: retried later, kept as it is


class DatabaseDiesAt(Intake):
    """The database gives way (a transient error) while storing the mail marked "MATI"."""

    def ingest_prepared(self, session: Session, prepared: Any, **kw: Any) -> Any:
        result = super().ingest_prepared(session, prepared, **kw)
        if b"MATI" in prepared.raw:
            raise DatabaseUnavailable("the database went away")
        return result


async def test_a_database_failure_in_a_batch_commits_none_of_it(
    imap_account: DovecotAccount,
    workflow: Workflow,
    domain: DomainConfig,
    database: Database,
    clock: FixedClock,
) -> None:
    """All or nothing: the mails stored before the failure are not committed on their own
    (on SQLite this needs savepoints nested in a real transaction), none is marked."""
    config = IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    service = intake_service(
        imap_account, DatabaseDiesAt(workflow, domain, config), database, clock
    )
    uids = _vendor_mails(imap_account, 4, "dies", marked=3, mark="MATI")
    with pytest.raises(DatabaseUnavailable):
        await _sync(service)
    assert _count(database, Ticket) == 0 and _count(database, Message) == 0
    assert _count(database, OutboxItem) == 0
    state = database.run_sync(lambda s: s.get(MailboxState, "INBOX"))
    assert state is None or state.last_uid == 0
    assert not any("\\Seen" in f for f in _flags(imap_account, uids).values())


async def test_a_batch_finds_copies_and_unflags_senders_like_single_mails(
    imap_account: DovecotAccount,
    intake: Intake,
    database: Database,
    clock: FixedClock,
) -> None:
    """The batch's look-ups done once (mails stored before, flagged senders) decide as the
    per-mail ones did: a copy inside the batch and one stored earlier are duplicates, a
    flagged sender who writes again is unflagged, the others stay flagged."""
    database.run_sync(
        lambda s: s.add_all(
            FlaggedAddress(address=a, reason="bounced", flagged_at=clock.now())
            for a in ("p1@vendor1.co.id", "stays@vendor9.co.id")
        )
    )
    earlier = make_mail(sender="Lama <p0@vendor0.co.id>", message_id="<copy-0@vendor0.co.id>")
    imap_account.append(earlier)
    service = intake_service(imap_account, intake, database, clock)
    await service._imap(service.session.connect)
    try:
        first = await service.sync_once()
        await service._imap(service.session.close)
        twice = make_mail(sender="P1 <P1@vendor1.co.id>", message_id="<copy-1@vendor1.co.id>")
        for raw in (earlier, twice, twice):
            imap_account.append(raw)
        await service._imap(service.session.connect)
        second = await service.sync_once()
    finally:
        await service._imap(service.session.close)
    assert first.outcomes == {"opened": 1}
    assert second.outcomes == {"duplicate": 2, "opened": 1}
    assert _count(database, Ticket) == 2
    flagged = database.run_sync(lambda s: sorted(s.scalars(select(FlaggedAddress.address))))
    assert flagged == ["stays@vendor9.co.id"]


class StoredApart(MailIntakeService):
    """The same service, but every batch takes the savepoint-per-mail way."""

    def _ingest_together(self, *args: Any) -> None:
        return None


async def _sync(service: MailIntakeService) -> Any:
    await service._imap(service.session.connect)
    try:
        return await service.sync_once()
    finally:
        await service._imap(service.session.close)


@pytest.mark.parametrize("together", [True, False], ids=["together", "apart"])
async def test_the_caps_inside_one_batch_decide_as_mail_by_mail(
    imap_account: DovecotAccount,
    intake: Intake,
    database: Database,
    clock: FixedClock,
    together: bool,
) -> None:
    """Twelve new mails of one sender in one batch: the batch's answers, counted on as the
    batch adds its own tickets and acknowledgements, give what the per-mail queries give:
    ten tickets (the hourly flood cap), acknowledgements up to the hourly cap of automatic
    mails (five) and the rest kept but not sent."""
    for i in range(12):
        imap_account.append(
            make_mail(
                sender="Penyedia Rajin <rajin@vendor.co.id>",
                subject=f"Kendala nomor {i}",
                message_id=f"<cap-{i}@vendor.co.id>",
            )
        )
    kind = MailIntakeService if together else StoredApart
    report = await _sync(intake_service(imap_account, intake, database, clock, kind=kind))

    assert report.outcomes == {"opened": 10, "flood": 2} and report.failed == 0
    mails = database.run_sync(
        lambda s: [
            (i.status.value, i.last_error or "")
            for i in s.scalars(
                select(OutboxItem)
                .where(OutboxItem.kind == "acknowledgement")
                .order_by(OutboxItem.id)
            )
        ]
    )
    assert [status for status, _ in mails] == ["pending"] * 5 + ["cancelled"] * 5
    assert all("automatic mails" in error for _, error in mails[5:])
    numbers = database.run_sync(
        lambda s: list(s.scalars(select(Ticket.number).order_by(Ticket.id)))
    )
    assert numbers == [f"LPSE-2026-{n:05d}" for n in range(1, 11)]  # gap-free, in order


class ChangesItsAcknowledgement(Intake):
    """Changes the acknowledgement of the mail marked "UBAH" after it was flushed: a row the
    batch writes in bulk must not lose a change made after it was written."""

    def _mail(self, session: Session, ticket: Ticket, kind: Any, answering: Message) -> None:
        from lpse_helpdesk.sop.machine import Recipient, SendMail
        from lpse_helpdesk.workflow.actors import Actor

        item = self.workflow.mail.plan(
            session,
            ticket,
            SendMail(kind, Recipient.USER),
            text=None,
            actor=Actor.system(),
            now=self.workflow.clock.now(),
            reply_to=answering,
        )
        if "UBAH" in ticket.subject:
            session.flush()
            item.last_error = "changed after the flush"


async def test_a_row_changed_after_the_bulk_write_is_kept(
    imap_account: DovecotAccount,
    workflow: Workflow,
    domain: DomainConfig,
    database: Database,
    clock: FixedClock,
) -> None:
    config = IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    intake = ChangesItsAcknowledgement(workflow, domain, config)
    service = intake_service(imap_account, intake, database, clock)
    _vendor_mails(imap_account, 3, "change", marked=1, mark="UBAH")
    report = await _sync(service)
    assert report.outcomes == {"opened": 3} and report.failed == 0
    errors = database.run_sync(
        lambda s: [i.last_error for i in s.scalars(select(OutboxItem).order_by(OutboxItem.id))]
    )
    assert errors.count("changed after the flush") == 1
    assert _count(database, Ticket) == 3


async def test_tickets_stored_together_wake_the_sla_clocks_and_the_senders(
    imap_account: DovecotAccount, intake: Intake, database: Database, clock: FixedClock
) -> None:
    """The clocks and outbox rows a batch writes in bulk wake their workers like rows the
    ORM flushes: the SLA scheduler replans at once, the senders send at once."""
    from lpse_helpdesk.workflow.waker import SLA_TOPIC, waker_for

    woken = {topic: asyncio.Event() for topic in (SLA_TOPIC, "mail", "telegram")}
    stops = [waker_for(database).subscribe(t, e.set) for t, e in woken.items()]
    try:
        _vendor_mails(imap_account, 3, "wake")
        report = await _sync(intake_service(imap_account, intake, database, clock))
        assert report.outcomes == {"opened": 3}
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in woken.values())), 5)
    finally:
        for stop in stops:
            stop()


def _contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """What a sync stored, without the ids and Message-IDs that differ between two runs."""

    def read(session: Session) -> dict[str, list[tuple[Any, ...]]]:
        tickets = {t.id: t.number for t in session.scalars(select(Ticket))}
        # A bounce's own Message-ID names our (random) acknowledgement's.
        messages = {
            m.id: "bounce" if m.message_id.startswith("bounce.") else m.message_id
            for m in session.scalars(select(Message))
        }
        return {
            "tickets": sorted(
                (t.number, t.state.value, t.requester_email, t.subject, t.version)
                for t in session.scalars(select(Ticket))
            ),
            "messages": sorted(
                (messages[m.id], tickets.get(m.ticket_id or 0), m.kind.value, m.note or "")
                for m in session.scalars(select(Message))
            ),
            "attachments": sorted(
                (messages[a.message_id], a.filename, a.size)
                for a in session.scalars(select(Attachment))
            ),
            "outbox": sorted(
                (tickets.get(o.ticket_id or 0), o.channel.value, o.kind, o.status.value)
                for o in session.scalars(select(OutboxItem))
            ),
            "audit": sorted(
                (tickets.get(a.ticket_id or 0), a.action, a.to_state or "")
                for a in session.scalars(select(AuditEvent))
            ),
            "clocks": sorted(
                (tickets[c.ticket_id], c.step.value, c.stopped_at is None)
                for c in session.scalars(select(SlaClock))
            ),
            "flagged": sorted((f.address,) for f in session.scalars(select(FlaggedAddress))),
        }

    return db.run_sync(read)


async def test_a_batch_stored_together_stores_what_mail_by_mail_stores(
    dovecot_server: Any,
    intake: Intake,
    database: Database,
    clock: FixedClock,
    tmp_path: Any,
) -> None:
    """The same mailbox, stored together and stored a mail at a time (savepoints), gives the
    same tickets, messages, attachments, outbox rows, audit events, clocks and flags: new
    mails, a copy, a reply to a mail of the same batch, an auto-reply, a bounce of our
    acknowledgement, and last a reply to an older ticket (whose rows are the last flushed)."""
    results = []
    for name, kind in (("together", MailIntakeService), ("apart", StoredApart)):
        account = dovecot_server.add_user()
        if name == "together":
            db = database
        else:
            db = Database.from_url(f"sqlite:///{tmp_path / 'apart.sqlite3'}")
            upgrade(db.engine)
        service = intake_service(account, intake, db, clock, kind=kind)
        account.append(make_mail(sender="Lama <lama@vendor.co.id>", message_id="<old@v.co.id>"))
        await _sync(service)
        ack = db.run_sync(
            lambda s: s.scalars(
                select(OutboxItem.message_id).where(OutboxItem.kind == "acknowledgement")
            ).one()
        )
        first = make_mail(sender="A <a@vendor.co.id>", message_id="<a1@v.co.id>")
        for raw in (
            first,
            make_mail(
                sender="B <b@vendor.co.id>",
                message_id="<b1@v.co.id>",
                attachment=("bukti.pdf", b"%PDF-1.4 bukti"),
            ),
            first,  # a copy
            make_mail(
                sender="A <a@vendor.co.id>",
                subject="Re: Gagal upload penawaran",
                message_id="<a2@v.co.id>",
                in_reply_to="<a1@v.co.id>",
                references="<a1@v.co.id>",
            ),
            make_mail(
                sender="C <c@vendor.co.id>",
                subject="Auto: Sedang cuti",
                message_id="<c1@v.co.id>",
                headers={"Auto-Submitted": "auto-replied"},
            ),
            make_bounce("lama@vendor.co.id", ack or ""),
            make_mail(
                sender="Lama <lama@vendor.co.id>",
                subject="Re: Gagal upload penawaran",
                message_id="<old3@v.co.id>",
                in_reply_to=ack,  # answers our acknowledgement (found in the outbox)
            ),
            make_mail(
                sender="Lama <lama@vendor.co.id>",
                subject="Re: Gagal upload penawaran",
                message_id="<old2@v.co.id>",
                in_reply_to="<old@v.co.id>",
            ),
        ):
            account.append(raw)
        report = await _sync(service)
        assert report.failed == 0
        results.append((report.outcomes, _contents(db)))
        if db is not database:
            db.close()
    (together, stored_together), (apart, stored_apart) = results
    assert together == apart
    assert together == {"opened": 2, "duplicate": 1, "joined": 3, "auto_reply": 1, "bounce": 1}
    for table in stored_apart:
        assert stored_together[table] == stored_apart[table], table


async def test_ticket_numbers_counted_in_a_batch_go_on_without_a_gap(
    dovecot_server: Any, intake: Intake, database: Database, clock: FixedClock
) -> None:
    """A batch stored together counts its numbers after the first itself and writes the
    counter once: the next batch, and a batch stored mail by mail, go on from there."""
    account = dovecot_server.add_user()
    _vendor_mails(account, 3, "first")
    await _sync(intake_service(account, intake, database, clock))
    _vendor_mails(account, 2, "second")
    await _sync(intake_service(account, intake, database, clock, kind=StoredApart))
    _vendor_mails(account, 2, "third")
    await _sync(intake_service(account, intake, database, clock))
    numbers = database.run_sync(
        lambda s: list(s.scalars(select(Ticket.number).order_by(Ticket.id)))
    )
    assert [n.rsplit("-", 1)[1] for n in numbers] == [f"{n:05d}" for n in range(1, 8)]
    counter = database.run_sync(
        lambda s: s.execute(text("SELECT last FROM ticket_counters")).scalar_one()
    )
    assert counter == 7
