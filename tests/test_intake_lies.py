"""Mail that lies (issue #10): reused Message-IDs, bounces of mail we never sent, the bounce
flag and its "clear" button, and a dedup the database itself enforces."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lpse_helpdesk.bot import bounce_flags
from lpse_helpdesk.bot.cards import load_card, render_text
from lpse_helpdesk.bridge.intake import Intake, Outcome
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    Direction,
    FlaggedAddress,
    Message,
    MessageKind,
    OutboxChannel,
    OutboxItem,
)
from tests.conftest import WIB
from tests.mailmaker import make_bounce, make_mail
from tests.test_intake_rules import ingest, mails


def test_a_reused_message_id_with_new_content_is_a_new_mail(db: Database, intake: Intake) -> None:
    first = make_mail(message_id="<konstan@sistem.co.id>", subject="Satu", body="Isi pertama")
    second = make_mail(message_id="<konstan@sistem.co.id>", subject="Dua", body="Isi kedua")
    assert ingest(db, intake, first).outcome is Outcome.OPENED
    assert ingest(db, intake, second).outcome is Outcome.OPENED
    assert ingest(db, intake, second).outcome is Outcome.DUPLICATE  # the same mail again


def test_the_database_refuses_a_second_copy(db: Database, intake: Intake) -> None:
    """Two processes racing on one mail: the unique dedup key, not a prior SELECT, decides."""
    ingest(db, intake, make_mail(message_id="<race@vendor.co.id>"))
    stored = db.run_sync(lambda s: s.scalars(select(Message)).one())
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(
            Message(
                direction=Direction.IN,
                kind=MessageKind.USER,
                message_id=stored.message_id,
                raw=b"",
                at=stored.at,
                dedup_key=stored.dedup_key,
            )
        )


def test_a_bounce_of_mail_we_never_sent_flags_nobody(db: Database, intake: Intake) -> None:
    result = ingest(db, intake, make_bounce("korban@contoh.co.id", "spoofed@elsewhere.net"))
    assert result.outcome is Outcome.BOUNCE
    assert db.run_sync(lambda s: s.get(FlaggedAddress, "korban@contoh.co.id")) is None


def test_a_bounce_of_our_mail_flags_and_staff_can_clear_it(db: Database, intake: Intake) -> None:
    ingest(db, intake, make_mail(sender="penuh@vendor.co.id"))
    ack = mails(db, "acknowledgement")[0]
    ingest(db, intake, make_bounce("penuh@vendor.co.id", ack.message_id))
    assert db.run_sync(lambda s: s.get(FlaggedAddress, "penuh@vendor.co.id")) is not None
    notice = db.run_sync(
        lambda s: next(
            o
            for o in s.scalars(
                select(OutboxItem).where(OutboxItem.channel == OutboxChannel.TELEGRAM)
            )
            if o.payload.get("notice") == "bounce"
        )
    )
    assert notice.payload["flagged"] == ["penuh@vendor.co.id"]
    buttons = bounce_flags.keyboard(notice.id, notice.payload)
    assert buttons is not None
    data = buttons[0][0][1]
    match = bounce_flags.PATTERN.match(data)
    assert match is not None and len(data.encode()) <= 64
    with db.transaction() as session:
        assert bounce_flags.clear_flags(session, int(match.group(1))) == ["penuh@vendor.co.id"]
    assert db.run_sync(lambda s: s.get(FlaggedAddress, "penuh@vendor.co.id")) is None
    with db.transaction() as session:
        assert bounce_flags.clear_flags(session, notice.id) == []  # pressed twice: nothing


def test_a_bounce_for_an_address_we_mailed_recently_flags_it(db: Database, intake: Intake) -> None:
    ingest(db, intake, make_mail(sender="lama@vendor.co.id"))
    ingest(db, intake, make_bounce("lama@vendor.co.id", None))  # names no mail of ours
    assert db.run_sync(lambda s: s.get(FlaggedAddress, "lama@vendor.co.id")) is not None


def test_edit_as_new_of_our_mail_opens_a_ticket(db: Database, intake: Intake) -> None:
    raw = make_mail(headers={"X-LPSE-Helpdesk-Ticket": "LPSE-2026-00001"}, subject="Baru lagi")
    assert ingest(db, intake, raw).outcome is Outcome.OPENED


def test_reply_to_at_another_domain_gets_no_acknowledgement(db: Database, intake: Intake) -> None:
    raw = make_mail(sender="asli@vendor.co.id", headers={"Reply-To": "korban@lain.net"})
    ingest(db, intake, raw)
    assert [m.recipient for m in mails(db, "acknowledgement")] == ["asli@vendor.co.id"]
    # The card shows both addresses, so staff see who else the mail named.
    card = db.run_sync(lambda s: load_card(s, 1))
    assert card is not None and card.unused_reply_to == "korban@lain.net"
    text = render_text(card, intake.domain, WIB, dt.datetime.now(dt.UTC))
    assert "asli@vendor.co.id" in text and "korban@lain.net (domain berbeda" in text
