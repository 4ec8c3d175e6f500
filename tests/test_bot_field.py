"""Telegram in the field (issue #11), against the Bot API test server through PTB's real stack:
a group migrated to a supergroup mid-flow, the bot removed and re-added, a deleted card,
errors Telegram does not explain, a stranger flooding the bot, outages, 409, and bursts of new
tickets in waves under the real limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, TimedOut

from lpse_helpdesk.bot import group as group_store
from lpse_helpdesk.bot.access import StrangerGate
from lpse_helpdesk.bot.dispatcher import DigestRow, TelegramDispatcher
from lpse_helpdesk.bot.errors import Kind, classify
from lpse_helpdesk.bot.ratelimit import Budget, Limits
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    TelegramCard,
    TelegramState,
    Ticket,
)
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.bot_harness import GROUP, Harness, make_service
from tests.conftest import WIB, OffsetClock, make_intake
from tests.servers.telegram import ApiError, BotApiServer, RateLimits, SentMessage, parse_html

STAFF_ID, BOSS_ID, STRANGER_ID = 1001, 777, 4242
OLD_GROUP = -4001234567  # a basic group, before Telegram makes it a supergroup
NEW_GROUP = -1009876543210


pytestmark = pytest.mark.usefixtures("ptb_timedelta")


class Field(Harness):
    chat: int = GROUP

    def in_chat(self, chat_id: int) -> list[SentMessage]:
        return self.server.messages(chat_id)

    def texts_in(self, chat_id: int) -> list[str]:
        return [m.plain_text or m.caption or "" for m in self.server.messages(chat_id)]

    def card_row(self, ticket_id: int) -> TelegramCard | None:
        return self.db.run_sync(lambda s: s.get(TelegramCard, ticket_id))

    def items(self) -> list[OutboxItem]:
        return self.db.run_sync(
            lambda s: list(
                s.scalars(
                    select(OutboxItem)
                    .where(OutboxItem.channel == OutboxChannel.TELEGRAM)
                    .order_by(OutboxItem.id)
                )
            )
        )

    def number(self, ticket_id: int) -> str:
        return self.db.run_sync(lambda s: s.get_one(Ticket, ticket_id).number)


async def _start(
    server: BotApiServer,
    db: Database,
    workflow: Workflow,
    domain: DomainConfig,
    clock: OffsetClock,
    *,
    chat_id: int = GROUP,
    real_limits: bool = False,
) -> Field:
    if chat_id < -1_000_000_000_000:
        server.group(chat_id)
    else:
        server.basic_group(chat_id)
    if real_limits:
        server.limits = RateLimits(group_per_minute=20, global_per_second=30)
        limits = Limits()
    else:
        server.limits = RateLimits(enabled=False)
        limits = Limits(group_per_minute=10_000, global_per_second=10_000)
    staff = server.user(STAFF_ID, "Budi", "budi")
    boss = server.user(BOSS_ID, "Kepala UKPBJ")
    server.send_private(boss, "halo")  # the supervisor has a private chat with the bot
    service = make_service(
        server,
        db,
        workflow,
        domain,
        limits=limits,
        chat_id=chat_id,
        supervisor_ids=frozenset({BOSS_ID}),
    )
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    field = Field(
        server,
        service,
        db,
        workflow,
        make_intake(workflow, domain),
        clock,
        staff,
        server.user(2002, "Orang Lain"),
    )
    field.chat = chat_id
    await field.until(lambda: server.pinned(chat_id))  # the queue board is up first
    return field


@pytest.fixture
async def f(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> AsyncIterator[Field]:
    field = await _start(telegram_server, db, live_workflow, domain, live_clock)
    try:
        yield field
    finally:
        await field.service.stop()


def _button(message: SentMessage, word: str) -> str:
    for button in message.buttons:
        if word in button["text"]:
            return str(button["callback_data"])
    raise AssertionError(f"no button {word!r} in {[b['text'] for b in message.buttons]}")


async def _card_in(f: Field, chat_id: int, ticket_id: int) -> SentMessage:
    def found() -> SentMessage | None:
        row = f.card_row(ticket_id)
        if row is None or row.chat_id != chat_id:
            return None
        return f.server.message(chat_id, row.message_id)

    return await f.until(found)


async def _press_in(f: Field, chat_id: int, ticket_id: int, word: str) -> str:
    card = await _card_in(f, chat_id, ticket_id)
    if not any(word in b["text"] for b in card.buttons):  # behind "⋯ Lainnya"
        more = f.server.press(chat_id, card.message_id, f.staff, _button(card, "Lainnya"))
        await f.until(lambda: f.server.answered_callbacks.get(more))
        card = f.server.message(chat_id, card.message_id)
    query = f.server.press(chat_id, card.message_id, f.staff, _button(card, word))
    answered = await f.until(lambda: f.server.answered_callbacks.get(query))
    return answered.text or ""


def _prompts(f: Field, chat_id: int) -> list[SentMessage]:
    return [m for m in f.in_chat(chat_id) if m.reply_markup and m.reply_markup.get("force_reply")]


# --- 1. group migration ----------------------------------------------------------------------


async def test_group_migrated_mid_flow(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    from lpse_helpdesk.reports.delivery import RecapDelivery, RecapOptions

    f = await _start(telegram_server, db, live_workflow, domain, live_clock, chat_id=OLD_GROUP)
    f.service.handlers.recap = RecapDelivery(
        domain, live_clock, RecapOptions(lpse_name="LPSE Kota Contoh", timezone=WIB)
    )
    try:
        first = f.ingest()
        assert await _press_in(f, OLD_GROUP, first, "Tinggi") == "Prioritas: Tinggi"
        await f.settled()
        await _press_in(f, OLD_GROUP, first, "Catatan")  # a prompt is waiting in the old chat
        await f.until(lambda: _prompts(f, OLD_GROUP))
        old_card = (await _card_in(f, OLD_GROUP, first)).message_id

        # An admin turns on topics: Telegram migrates the group, the bot is not told yet.
        telegram_server.migrate(OLD_GROUP, NEW_GROUP, announce=False)
        started = time.monotonic()
        second = f.ingest(sender="Agus <agus@karya.co.id>", subject="Lupa password")
        card = await _card_in(f, NEW_GROUP, second)
        assert time.monotonic() - started < 10  # "within seconds"
        assert "LPSE-2026-00002" in (card.plain_text or "")
        # The open ticket's card is posted again, the prompt asked again, the group told.
        moved = await _card_in(f, NEW_GROUP, first)
        assert moved.message_id != old_card
        prompt = (await f.until(lambda: _prompts(f, NEW_GROUP)))[0]
        notice = await f.until(
            lambda: [t for t in f.texts_in(NEW_GROUP) if "supergroup" in t and ".env" in t]
        )
        assert f"HELPDESK_CHAT_ID={NEW_GROUP}" in notice[0]
        assert any("supergroup" in t for t in f.texts_in(BOSS_ID))
        stored = db.run_sync(lambda s: s.get_one(TelegramState, f"migrated:{OLD_GROUP}"))
        assert stored.value["to"] == NEW_GROUP
        assert stored.value["old_cards"] == [[first, old_card]]  # the old link, marked migrated

        # Presses, typed replies and /rekap work in the new chat with the same checks.
        reply = f.server.reply_to(NEW_GROUP, prompt.message_id, f.staff, "Sudah ditelepon.")
        answer_id = reply["message"]["message_id"]
        await f.until(lambda: f.server.reactions(NEW_GROUP, answer_id) == ["👍"])
        assert await _press_in(f, NEW_GROUP, second, "Rendah") == "Prioritas: Rendah"
        boss = telegram_server.user(BOSS_ID, "Kepala UKPBJ")
        telegram_server.send_text(NEW_GROUP, boss, "/rekap")
        await f.until(lambda: any("Rekap Helpdesk" in t for t in f.texts_in(NEW_GROUP)))
        await f.until(lambda: any(m.filename for m in f.in_chat(NEW_GROUP)))
        # A press on a card left in the old chat is no longer taken.
        stale = telegram_server.message(OLD_GROUP, old_card)
        query = telegram_server.press(OLD_GROUP, old_card, f.staff, stale.callback_data[0])
        refused = await f.until(lambda: f.server.answered_callbacks.get(query))
        assert "sudah dipindah" in (refused.text or "")
        await f.settled()
        failed = [i for i in f.items() if i.status is OutboxStatus.FAILED]
        assert not failed, [(i.kind, i.last_error) for i in failed]
    finally:
        await f.service.stop()

    # After a restart the database's chat id wins over HELPDESK_CHAT_ID (still the old one).
    again = make_service(
        telegram_server, db, live_workflow, domain, chat_id=OLD_GROUP,
        limits=Limits(group_per_minute=10_000, global_per_second=10_000),
    )  # fmt: skip
    await again.start()
    try:
        await asyncio.wait_for(again.ready.wait(), 10)
        assert again.group.current == NEW_GROUP and again.group.overridden
        assert again.interactions.chat_id == NEW_GROUP
    finally:
        await again.stop()


async def test_migration_service_messages_move_the_group(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    f = await _start(telegram_server, db, live_workflow, domain, live_clock, chat_id=OLD_GROUP)
    try:
        tid = f.ingest()
        await _card_in(f, OLD_GROUP, tid)
        telegram_server.migrate(OLD_GROUP, NEW_GROUP)  # both service messages are delivered
        await _card_in(f, NEW_GROUP, tid)
        assert f.service.group.current == NEW_GROUP
        await f.settled()
        notices = [t for t in f.texts_in(NEW_GROUP) if "supergroup" in t]
        assert len(notices) == 1  # two service messages, one migration
    finally:
        await f.service.stop()


async def test_a_command_from_the_new_chat_finds_the_migration(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    """Service messages missed and nothing sent yet: the first command in the new chat is
    not refused; the bot asks Telegram and follows the group."""
    f = await _start(telegram_server, db, live_workflow, domain, live_clock, chat_id=OLD_GROUP)
    try:
        telegram_server.migrate(OLD_GROUP, NEW_GROUP, announce=False)
        telegram_server.send_text(NEW_GROUP, f.staff, "/antrian")
        await f.until(lambda: any("Tidak ada tiket terbuka" in t for t in f.texts_in(NEW_GROUP)))
        assert f.service.group.current == NEW_GROUP
        assert not any("tidak diizinkan" in t for t in f.texts_in(NEW_GROUP))
    finally:
        await f.service.stop()


def test_check_config_says_the_database_overrides_the_chat_id(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lpse_helpdesk.config.check import check_config, summary
    from lpse_helpdesk.storage.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    database = Database(engine)
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    database.run_sync(lambda s: group_store.record_migration(s, OLD_GROUP, NEW_GROUP, now))
    database.close()
    env = tmp_path / ".env"
    env.write_text(
        f"TELEGRAM_BOT_TOKEN=123:abc\nHELPDESK_CHAT_ID={OLD_GROUP}\nIMAP_HOST=imap.x\n"
        "IMAP_USER=h@x.go.id\nIMAP_PASSWORD=p\nSMTP_HOST=smtp.x\nHELPDESK_EMAIL=h@x.go.id\n"
        f"LKPP_HELPDESK_EMAIL=lkpp@lkpp.go.id\nDATABASE_URL={url}\n"
    )
    for name in ("HELPDESK_CHAT_ID", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    report = check_config(env)
    assert report.ok, report.problems
    assert report.settings is not None and report.domain is not None
    line = next(x for x in summary(report.settings, report.domain) if x.startswith("Grup"))
    assert str(NEW_GROUP) in line and "basis data" in line
    assert f"HELPDESK_CHAT_ID={NEW_GROUP}" in line
    # Once .env names the new group, nothing overrides it.
    env.write_text(env.read_text().replace(str(OLD_GROUP), str(NEW_GROUP)))
    report = check_config(env)
    assert report.settings is not None and report.domain is not None
    line = next(x for x in summary(report.settings, report.domain) if x.startswith("Grup"))
    assert line.split(":", 1)[1].strip() == str(NEW_GROUP)


# --- 2. the bot's own membership ---------------------------------------------------------------


async def test_bot_removed_and_re_added_loses_nothing(f: Field) -> None:
    first = f.ingest()
    await _card_in(f, GROUP, first)
    f.server.set_bot_membership(GROUP, "kicked")
    await f.until(lambda: any("dikeluarkan" in t for t in f.texts_in(BOSS_ID)))
    assert "Tambahkan bot kembali" in f.texts_in(BOSS_ID)[-1]
    before = len(f.in_chat(GROUP))
    waiting = [
        f.ingest(sender=f"P{i} <p{i}@vendor{i}.co.id>", subject=f"Masalah {i}") for i in range(3)
    ]
    await asyncio.sleep(1.0)
    assert len(f.in_chat(GROUP)) == before  # nothing reaches a group the bot is not in
    pending = [i for i in f.items() if i.ticket_id in waiting]
    assert pending and all(i.status is OutboxStatus.PENDING for i in pending)
    f.server.set_bot_membership(GROUP, "member")
    for ticket_id in waiting:
        await _card_in(f, GROUP, ticket_id)
    await f.until(lambda: any("dapat menulis lagi" in t for t in f.texts_in(GROUP)))
    cards = [f.card_row(t) for t in waiting]
    ids = [c.message_id for c in cards if c is not None]
    assert ids == sorted(ids)  # in order
    assert any("dapat menulis lagi" in t for t in f.texts_in(BOSS_ID))
    await f.settled()
    assert not [i for i in f.items() if i.status is OutboxStatus.FAILED]


async def test_bot_that_cannot_send_waits_and_probes(f: Field) -> None:
    # Restricted without a my_chat_member update (e.g. while the service was down).
    f.server.set_member_status(GROUP, f.server.bot_id, "restricted")
    f.server._field.bot_rights[GROUP] = {"can_send": False}
    tid = f.ingest()
    await f.until(lambda: any("tidak lagi boleh mengirim" in t for t in f.texts_in(BOSS_ID)))
    assert f.service.group.held == "cannot_send"
    item = next(i for i in f.items() if i.ticket_id == tid)
    assert (
        item.status is OutboxStatus.PENDING
        and "not enough rights" in (item.last_error or "").lower()
    )
    f.server.set_member_status(GROUP, f.server.bot_id, "administrator")
    f.server._field.bot_rights[GROUP] = {"can_send": True}
    f.service.dispatcher._next_probe = 0.0  # do not wait for the periodic probe
    f.service.dispatcher.wake()
    await _card_in(f, GROUP, tid)
    assert f.service.group.held is None


async def test_lost_pin_rights_are_reported(f: Field) -> None:
    f.server.set_bot_membership(GROUP, "administrator")
    await f.until(lambda: f.service.group.membership.can_pin)
    f.server.set_bot_membership(GROUP, "administrator", can_pin=False, can_manage_topics=False)
    await f.until(lambda: any("menyematkan pesan" in t for t in f.texts_in(BOSS_ID)))
    assert f.service.group.held is None


# --- 3. errors by kind ---------------------------------------------------------------------


def test_errors_are_classified_by_name() -> None:
    def kind(error: Exception, **kw: bool) -> Kind:
        return classify(error, to_group=kw.get("to_group", True), is_edit=kw.get("edit", False))  # type: ignore[arg-type]

    assert kind(BadRequest("Message is not modified: specified new message")) is Kind.DONE
    assert kind(BadRequest("Message to edit not found"), edit=True) is Kind.CARD_GONE
    assert kind(BadRequest("Message to be replied not found")) is Kind.REPLY_GONE
    assert kind(BadRequest("Message thread not found")) is Kind.THREAD_GONE
    assert kind(BadRequest("Not enough rights to send text messages")) is Kind.HOLD
    assert kind(BadRequest("Chat not found")) is Kind.HOLD
    assert kind(BadRequest("Chat not found"), to_group=False) is Kind.PRIVATE_REFUSED
    assert kind(Forbidden("Forbidden: bot was kicked from the supergroup chat")) is Kind.HOLD
    assert kind(Forbidden("Forbidden: bot was blocked by the user"), to_group=False) is (
        Kind.PRIVATE_REFUSED
    )
    assert kind(ChatMigrated(-100123)) is Kind.MIGRATED
    assert kind(TimedOut()) is Kind.MAYBE_SENT
    assert kind(NetworkError("Bad Gateway")) is Kind.TRANSIENT
    assert kind(BadRequest("Can't parse entities: something new")) is Kind.UNKNOWN


async def test_a_deleted_card_is_posted_again(f: Field) -> None:
    tid = f.ingest()
    card = await _card_in(f, GROUP, tid)
    f.server.user_deletes(GROUP, card.message_id)
    f.db.run_sync(
        lambda s: f.workflow.act(s, tid, Action.SET_PRIORITY, Actor.system(), priority="tinggi")
    )
    await f.settled()
    again = await f.until(
        lambda: (
            row
            if (row := f.card_row(tid)) is not None and row.message_id != card.message_id
            else None
        )
    )
    new = f.server.message(GROUP, again.message_id)
    assert "Tinggi" in (new.plain_text or "") and new.buttons


async def test_unknown_error_is_retried_then_failed_with_an_alert(f: Field) -> None:
    odd = ApiError.bad_request("SOMETHING_NEW_THAT_TELEGRAM_INVENTED")
    f.server.fail_next("sendMessage", odd, count=4)
    tid = f.ingest()
    number = f.number(tid)
    card_item = next(i for i in f.items() if i.ticket_id == tid and i.kind == "card")
    for seconds in (11, 31, 91):

        def tried(s: int = seconds) -> bool:
            return (
                f.db.run_sync(lambda x: x.get_one(OutboxItem, card_item.id)).attempts
                >= {11: 1, 31: 2, 91: 3}[s]
            )

        await f.until(tried)
        item = f.db.run_sync(lambda x: x.get_one(OutboxItem, card_item.id))
        assert item.status is OutboxStatus.PENDING
        f.clock.advance(seconds=seconds)
        f.service.dispatcher.wake()
    alert = await f.until(lambda: [t for t in f.texts_in(GROUP) if "gagal dikirim" in t])
    assert number in alert[0] and f"/tiket {number}" in alert[0]
    item = f.db.run_sync(lambda x: x.get_one(OutboxItem, card_item.id))
    assert item.status is OutboxStatus.FAILED and "something_new" in (item.last_error or "").lower()


async def test_a_prompt_that_timed_out_is_answered_in_either_copy(f: Field) -> None:
    tid = f.ingest()
    await _press_in(f, GROUP, tid, "Tinggi")
    await f.settled()
    f.server.answer_late("sendMessage", 6.5)  # PTB gives up after 5 s; the prompt is posted
    await _press_in(f, GROUP, tid, "Catatan")
    copies = await f.until(lambda: _prompts(f, GROUP) if len(_prompts(f, GROUP)) >= 2 else None, 20)
    first = copies[0]
    reply = f.server.reply_to(GROUP, first.message_id, f.staff, "Pengguna sudah ditelepon.")
    # Saved: the answer gets a 👍 (no "saved" message), the card names the note.
    await f.until(lambda: f.server.reactions(GROUP, reply["message"]["message_id"]) == ["👍"])
    assert not any("tidak berlaku" in t for t in f.texts_in(GROUP))


# --- 4. budgets per chat, strangers ------------------------------------------------------------


def test_private_chats_are_not_charged_to_the_group() -> None:
    now = [0.0]
    budget = Budget(Limits(group_per_minute=3, global_per_second=100), now=lambda: now[0])
    for _ in range(50):
        budget.record(STRANGER_ID)
        now[0] += 0.05
    assert budget.available(GROUP) == 3 and budget.wait_time(GROUP) == 0
    for _ in range(3):
        budget.record(GROUP)
    assert budget.wait_time(GROUP) > 50 and budget.wait_time(STRANGER_ID) == 0
    assert budget.available(NEW_GROUP) == 3  # every group has its own minute


def test_stranger_gate_answers_once_per_ten_minutes(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    gate = StrangerGate(now=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="lpse_helpdesk.bot.access"):
        answers = [gate.allow(STRANGER_ID) for _ in range(300)]
    assert answers.count(True) == 1 and gate.ignored[STRANGER_ID] == 299
    assert any("299" in r.getMessage() or "ignoring" in r.getMessage() for r in caplog.records)
    now[0] += 601
    assert gate.allow(STRANGER_ID)


async def test_a_stranger_flooding_the_bot_does_not_delay_cards(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    f = await _start(telegram_server, db, live_workflow, domain, live_clock, real_limits=True)
    try:
        stranger = telegram_server.user(STRANGER_ID, "Tamu", "tamu")
        words = ["/start", "/tiket 1", "halo", "/antrian", "/rekap"]
        started = time.monotonic()
        tickets = []
        for i in range(300):
            telegram_server.send_private(stranger, words[i % len(words)])
            if i % 60 == 30:
                tickets.append(
                    f.ingest(sender=f"Penyedia {i} <p{i}@cv{i}.co.id>", subject=f"Kendala {i}")
                )
        for ticket_id in tickets:
            await _card_in(f, GROUP, ticket_id)
        assert time.monotonic() - started < 30
        await asyncio.sleep(1.0)
        answers = f.in_chat(STRANGER_ID)
        assert 1 <= len(answers) <= 3
        assert telegram_server.too_many_requests == 0
    finally:
        await f.service.stop()


# --- 5. digests that say who and what --------------------------------------------------------


def test_digest_names_every_sender_even_with_one_message_left() -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    rows = [
        DigestRow(i, f"LPSE-2026-{i:05d}", f"Nama Penyedia Yang Panjang {i}",
                  f"admin.{i}@perusahaan-konstruksi-{i}.co.id", "Subjek " * 20, now)
        for i in range(45)
    ]  # fmt: skip
    pages = TelegramDispatcher._digest_pages(rows, 45, 1)
    text = "\n".join(t for _, t in pages)
    for row in rows:
        assert row.number in text and row.email in text
    assert sum(len(ids) for ids, _ in pages) == 45
    assert all(len(parse_html(t)[0]) <= 4096 for _, t in pages)  # what Telegram counts


async def test_tickets_in_four_waves_are_all_named_within_a_minute(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    f = await _start(telegram_server, db, live_workflow, domain, live_clock, real_limits=True)
    f.service.dispatcher.poll_seconds = 0.5  # as in production
    try:
        committed: dict[str, tuple[float, str]] = {}
        for wave in range(4):
            if wave:
                await asyncio.sleep(6)
            for i in range(50):
                n = wave * 50 + i
                email = f"penyedia{n}@cv-maju-{n}.co.id"
                tid = f.ingest(sender=f"Penyedia {n} <{email}>", subject=f"Kendala paket {n}")
                committed[f.number(tid)] = (time.monotonic(), email)
        named: dict[str, float] = {}

        def all_named() -> bool:
            for message in telegram_server.messages(GROUP):
                text = message.plain_text or ""
                for number, (_, email) in committed.items():
                    if number not in named and number in text and email in text:
                        named[number] = message.sent_at
            return len(named) == len(committed)

        await f.until(all_named, timeout=90)
        late = {n: named[n] - at for n, (at, _) in committed.items() if named[n] - at > 60}
        assert not late
        assert telegram_server.too_many_requests == 0
    finally:
        await f.service.stop()


# --- 6. outages and conflicts ------------------------------------------------------------------


async def test_telegram_down_for_a_minute_everything_shown_after_once(f: Field) -> None:
    f.server.outage(60)
    tickets = []
    for i in range(20):
        tickets.append(f.ingest(sender=f"P{i} <p{i}@vendor{i}.co.id>", subject=f"Masalah {i}"))
        await asyncio.sleep(0.5)
    assert not [m for m in f.in_chat(GROUP) if "Papan antrian" not in (m.text or "")]
    for ticket_id in tickets:
        await f.until(partial(f.card_row, ticket_id), timeout=90)
    await f.settled()
    for ticket_id in tickets:
        number = f.number(ticket_id)
        shown = [m for m in f.in_chat(GROUP) if number in (m.plain_text or "") and m.buttons]
        assert len(shown) == 1, number
    assert not [i for i in f.items() if i.status is OutboxStatus.FAILED]


async def test_409_conflict_one_log_line_one_alert_and_backoff(
    f: Field, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lpse_helpdesk")
    before = len(f.server.calls_to("getUpdates"))
    f.server.conflict(12)
    await asyncio.sleep(12)
    polls = len(f.server.calls_to("getUpdates")) - before
    assert polls <= 6  # no busy loop
    lines = [r for r in caplog.records if "409" in r.getMessage()]
    assert len(lines) == 1 and "another process" in lines[0].getMessage()
    alerts = await f.until(lambda: [t for t in f.texts_in(GROUP) if "409" in t])
    assert len(alerts) == 1
    # Once the other process is gone, the bot hears commands again.
    f.server.send_text(GROUP, f.staff, "/antrian")
    await f.until(lambda: any("tiket terbuka" in t.lower() for t in f.texts_in(GROUP)), 40)
