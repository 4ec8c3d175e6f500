"""The helpdesk group on a phone: topics per ticket, few and silent messages, the board,
/antrian pages, who handles a ticket, the bot explaining itself. Against the Bot API test
server, through PTB's real stack."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from lpse_helpdesk.bot.ratelimit import Limits
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import TelegramBoard, TelegramPrompt, TelegramTopic, Ticket
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.tickets import Workflow
from tests.bot_harness import (
    GROUP,
    Harness,
    latest_with_button,
    make_service,
    press_latest,
)
from tests.conftest import HELPDESK, LKPP, WIB, OffsetClock, make_intake
from tests.servers.telegram import BotApiServer, RateLimits, SentMessage

STAFF_ID, OTHER_ID = 1001, 2002
DAY = dt.datetime(2026, 11, 24, 9, 0, tzinfo=WIB)  # a Tuesday, working hours
NIGHT = dt.datetime(2026, 11, 24, 22, 0, tzinfo=WIB)


pytestmark = pytest.mark.usefixtures("ptb_timedelta")


async def _start(
    server: BotApiServer,
    db: Database,
    domain: DomainConfig,
    calendar: BusinessCalendar,
    start: dt.datetime,
    *,
    forum: bool = False,
) -> Harness:
    clock = OffsetClock(start)
    planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    workflow = Workflow(domain, calendar, clock, planner, timezone=WIB)
    if forum:
        server.forum(GROUP)
    else:
        server.group(GROUP)
    server.limits = RateLimits(enabled=False)
    service = make_service(
        server,
        db,
        workflow,
        domain,
        limits=Limits(group_per_minute=10_000, global_per_second=10_000),
    )
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    staff = server.user(STAFF_ID, "Budi", "budi")
    other = server.user(OTHER_ID, "Ani")
    h = Harness(server, service, db, workflow, make_intake(workflow, domain), clock, staff, other)
    await h.until(lambda: server.pinned(GROUP))  # the queue board
    return h


@pytest.fixture
async def plain(
    telegram_server: BotApiServer, db: Database, domain: DomainConfig, calendar: BusinessCalendar
) -> AsyncIterator[Harness]:
    h = await _start(telegram_server, db, domain, calendar, DAY)
    try:
        yield h
    finally:
        await h.service.stop()


@pytest.fixture
async def forum(
    telegram_server: BotApiServer, db: Database, domain: DomainConfig, calendar: BusinessCalendar
) -> AsyncIterator[Harness]:
    h = await _start(telegram_server, db, domain, calendar, DAY, forum=True)
    try:
        yield h
    finally:
        await h.service.stop()


def _labels(message: SentMessage) -> list[str]:
    return [b["text"] for b in message.buttons]


def _data(message: SentMessage, word: str) -> str:
    for button in message.buttons:
        if word in button["text"]:
            return str(button["callback_data"])
    raise AssertionError(f"no button with {word!r}: {_labels(message)}")


async def _press(h: Harness, tid: int, word: str, user: dict[str, Any] | None = None) -> str:
    card = await h.card(tid)
    if not any(word in label for label in _labels(card)):
        if any("Kembali" in label for label in _labels(card)):
            await _tap(h, card.message_id, _data(card, "Kembali"), user)
            card = h.server.message(GROUP, card.message_id)
        if not any(word in label for label in _labels(card)):
            await _tap(h, card.message_id, _data(card, "Lainnya"), user)
            card = h.server.message(GROUP, card.message_id)
    return await _tap(h, card.message_id, _data(card, word), user)


async def _tap(h: Harness, message_id: int, data: str, user: dict[str, Any] | None = None) -> str:
    query = h.server.press(GROUP, message_id, user or h.staff, data)
    answered = await h.until(lambda: h.server.answered_callbacks.get(query))
    return answered.text or ""


async def _prompt(h: Harness, seen: set[int]) -> SentMessage:
    def find() -> SentMessage | None:
        for m in h.server.messages(GROUP, include_deleted=False):
            if m.reply_markup and m.reply_markup.get("force_reply") and m.message_id not in seen:
                return m
        return None

    prompt = await h.until(find)
    seen.add(prompt.message_id)
    # The bot has recorded which message the question is (a reply is matched by it).
    await h.until(
        lambda: h.db.run_sync(
            lambda s: s.scalar(
                select(TelegramPrompt.id).where(TelegramPrompt.message_id == prompt.message_id)
            )
        )
    )
    return prompt


async def _answer(h: Harness, tid: int, button: str, text: str, seen: set[int]) -> None:
    """A mail from the card: the canned answers, "Tulis sendiri", the text, the preview."""
    await _press(h, tid, button)
    offer = await latest_with_button(h, "Tulis sendiri")
    await press_latest(h, "Tulis sendiri")
    prompt = await _prompt(h, seen)
    h.server.reply_to(GROUP, prompt.message_id, h.staff, text)
    preview = await latest_with_button(h, "Kirim", after=prompt.message_id)
    assert "dikirim" in await press_latest(h, "Kirim", after=prompt.message_id)
    for used in (offer, prompt, preview):  # each served its purpose

        def deleted(m: SentMessage = used) -> bool:
            return h.server.message(GROUP, m.message_id).deleted

        await h.until(deleted)


def _ticket(h: Harness, tid: int) -> Ticket:
    return h.db.run_sync(lambda s: s.get_one(Ticket, tid))


async def _standard_life(h: Harness) -> int:
    """Card, priority, data request, the user's data, solution."""
    seen: set[int] = set()
    tid = h.ingest(message_id="<life@vendor.co.id>")
    await h.card(tid)
    await _press(h, tid, "Tinggi")
    await h.settled()
    await _answer(h, tid, "Minta Data", "Mohon kirim tangkapan layar.", seen)
    await h.until(lambda: _ticket(h, tid).state is State.WAITING_FOR_DATA)
    h.ingest(in_reply_to="<life@vendor.co.id>", body="Ini tangkapan layarnya.")
    await h.until(lambda: _ticket(h, tid).state is State.DATA_RECEIVED)
    await h.settled()
    await _answer(h, tid, "Kirim Solusi", "Silakan unggah ulang.", seen)
    await h.until(lambda: _ticket(h, tid).state is State.RESOLVED)
    await h.settled()
    return tid


def _board_id(h: Harness) -> int:
    return h.db.run_sync(lambda s: s.get_one(TelegramBoard, GROUP).message_id)


async def test_standard_flow_leaves_few_and_quiet_messages(plain: Harness) -> None:
    h = plain
    board = _board_id(h)
    tid = await _standard_life(h)
    mine = [m for m in h.server.messages(GROUP) if m.message_id != board]
    visible = [m for m in mine if not m.deleted]
    audible = [m for m in mine if not m.silent]
    assert len(visible) <= 3, [m.plain_text for m in visible]
    assert len(visible) == 2  # the card and the user's data (was 6 before)
    assert len(audible) <= 3, [m.plain_text for m in audible]
    card = await h.card(tid)
    assert card in visible and not card.silent  # a new ticket rings, in working hours
    assert "✅ solusi dikirim" in (card.plain_text or "")


async def test_a_ticket_at_22_makes_no_sound(
    telegram_server: BotApiServer, db: Database, domain: DomainConfig, calendar: BusinessCalendar
) -> None:
    h = await _start(telegram_server, db, domain, calendar, NIGHT)
    try:
        tid = h.ingest()
        card = await h.card(tid)
        await _press(h, tid, "Tinggi")
        await h.settled()
        assert card.silent
        assert all(m.silent for m in h.server.messages(GROUP))
    finally:
        await h.service.stop()


async def test_a_ticket_lives_in_its_topic_and_closes_it(forum: Harness) -> None:
    h = forum
    tid = await _standard_life(h)
    topic = h.db.run_sync(lambda s: s.get_one(TelegramTopic, tid))
    await h.until(lambda: h.server.topics(GROUP)[0].closed)
    topics = h.server.topics(GROUP)
    assert [t.message_thread_id for t in topics] == [topic.thread_id]
    assert topics[0].name.startswith("✅ 00001 · Siti Vendor · Gagal upload penawaran")
    assert topics[0].closed and len(topics[0].name) <= 128
    board = _board_id(h)
    for message in h.server.messages(GROUP):
        if message.message_id == board:
            assert message.message_thread_id is None  # the General topic
        else:
            assert message.message_thread_id == topic.thread_id, message.plain_text
    # The user writes again after the solution: the ticket and its topic reopen.
    h.ingest(in_reply_to="<life@vendor.co.id>", body="Masih gagal, Pak.")
    await h.until(lambda: _ticket(h, tid).state is State.IN_ANALYSIS)
    await h.settled()
    await h.until(lambda: not h.server.topics(GROUP)[0].closed)
    assert not h.server.topics(GROUP)[0].name.startswith("✅")


async def test_a_deleted_topic_is_recreated(forum: Harness) -> None:
    h = forum
    tid = h.ingest(message_id="<gone@vendor.co.id>")
    first = await h.card(tid)
    thread = first.message_thread_id
    assert thread is not None
    h.server.delete_topic(GROUP, thread)
    h.ingest(in_reply_to="<gone@vendor.co.id>", body="Ada kabar, Pak?")
    await h.until(lambda: len(h.server.topics(GROUP)) == 2)
    new_thread = h.server.topics(GROUP)[1].message_thread_id
    card = await h.until(lambda: (c := h.card_message_id(tid)) and c != first.message_id and c)
    assert h.server.message(GROUP, card).message_thread_id == new_thread
    notice = await h.until(
        lambda: next((m for m in h.server.messages(GROUP) if "pengguna —" in (m.text or "")), None)
    )
    assert notice.message_thread_id == new_thread and not notice.deleted


async def test_without_topic_rights_cards_go_to_the_group_and_supervisors_are_told(
    telegram_server: BotApiServer, db: Database, domain: DomainConfig, calendar: BusinessCalendar
) -> None:
    telegram_server.bot_can_manage_topics = False
    telegram_server.send_private(telegram_server.user(777, "Kepala UKPBJ"), "/start")
    h = await _start(telegram_server, db, domain, calendar, DAY, forum=True)
    try:
        tid = h.ingest()
        card = await h.card(tid)
        assert card.message_thread_id is None and h.server.topics(GROUP) == []
        await h.until(lambda: any("Kelola Topik" in t for t in h.texts()))
        await h.until(lambda: any("Kelola Topik" in (m.text or "") for m in h.server.messages(777)))
    finally:
        await h.service.stop()


async def test_the_board_is_pinned_edited_in_place_and_links_to_cards(plain: Harness) -> None:
    h = plain
    board = _board_id(h)
    first = h.ingest(subject="Akun terkunci")
    second = h.ingest(subject="Jadwal berubah", sender="Andi <andi@vendor.co.id>")
    cards = [(await h.card(first)).message_id, (await h.card(second)).message_id]
    h.clock.advance(seconds=61)  # at most one edit a minute
    await h.settled()
    message = await h.until(
        lambda: (
            m
            if (m := h.server.message(GROUP, board)) and "Akun terkunci" in (m.text or "")
            else None
        )
    )
    for card in cards:
        assert f'href="https://t.me/c/1234567890/{card}"' in (message.text or "")
    assert "Baru: 2" in (message.plain_text or "")
    assert h.server.pinned(GROUP) == [board]
    await _press(h, first, "Tinggi")
    await h.settled()
    await _press(h, first, "Saya tangani")
    h.clock.advance(seconds=61)
    await h.settled()
    message = await h.until(
        lambda: (
            m
            if (m := h.server.message(GROUP, board)) and "🙋 Budi" in (m.plain_text or "")
            else None
        )
    )
    assert message.edit_count >= 2 and _board_id(h) == board  # never re-posted
    assert len([m for m in h.server.messages(GROUP) if "Papan antrian" in (m.text or "")]) == 1


async def test_antrian_pages_through_60_tickets(plain: Harness) -> None:
    h = plain
    ids = [h.ingest(sender=f"u{i}@x.co.id", subject=f"Masalah nomor {i}") for i in range(60)]

    def number(ticket_id: int) -> str:
        return h.db.run_sync(lambda s: s.get_one(Ticket, ticket_id).number[-5:])

    numbers = {number(i) for i in ids}
    await h.settled()
    h.server.send_text(GROUP, h.staff, "/antrian")
    page = await h.until(
        lambda: next(
            (m for m in h.server.messages(GROUP) if "Antrian tiket terbuka" in (m.text or "")),
            None,
        )
    )
    assert "halaman 1 dari 4" in (page.plain_text or "")
    assert "Perlu tindakan" in (page.plain_text or "")
    seen: set[str] = set()
    for n in range(1, 5):
        current = h.server.message(GROUP, page.message_id)
        assert f"halaman {n} dari 4" in (current.plain_text or "")
        seen |= {number for number in numbers if number in (current.plain_text or "")}
        assert len(current.text or "") < 4096
        if n < 4:
            await _tap(h, page.message_id, _data(current, "Berikutnya"))
    assert seen == numbers
    await _tap(h, page.message_id, _data(h.server.message(GROUP, page.message_id), "Sebelumnya"))
    assert "halaman 3 dari 4" in (h.server.message(GROUP, page.message_id).plain_text or "")


async def test_who_handles_a_ticket(plain: Harness) -> None:
    h = plain
    tid = h.ingest()
    await _press(h, tid, "Tinggi")
    await h.settled()
    assert await _press(h, tid, "Saya tangani") == "🙋 Tiket Anda tangani."
    await h.settled()
    card = await h.card(tid)
    assert "🙋 Ditangani: Budi" in (card.plain_text or "")
    assert not any("Saya tangani" in label for label in _labels(card))
    answer = await _press(h, tid, "Ambil alih", h.other)
    assert answer == "Tiket ini ditangani Budi. Ambil alih?"
    assert _ticket(h, tid).handler_name == "Budi"
    assert await _press(h, tid, "Ya, ambil alih", h.other) == "🙋 Anda mengambil alih dari Budi."
    assert _ticket(h, tid).handler_name == "Ani"
    await h.settled()
    assert "🙋 Ditangani: Ani" in ((await h.card(tid)).plain_text or "")


async def test_a_new_member_is_welcomed_and_a_file_for_a_prompt_is_kept(
    plain: Harness,
) -> None:
    h = plain
    h.server.member_joins(GROUP, h.server.user(5005, "Rina"))
    await h.until(lambda: any("Selamat bergabung, Rina" in t for t in h.texts()))
    tid = h.ingest()
    await _press(h, tid, "Tinggi")
    await h.settled()
    await _press(h, tid, "Kirim Solusi")
    await press_latest(h, "Tulis sendiri")
    prompt = await _prompt(h, set())
    h.server.send_user_document(
        GROUP, h.staff, b"%PDF", "solusi.pdf", reply_to_message_id=prompt.message_id
    )
    await h.until(lambda: any("disimpan sebagai lampiran" in t for t in h.texts()))
    assert _ticket(h, tid).state is State.PRIORITIZED  # nothing was sent yet


async def test_one_scan_is_one_linked_message_that_rings_for_a_breach(
    plain: Harness, calendar: BusinessCalendar, domain: DomainConfig
) -> None:
    from lpse_helpdesk.sla.monitor import SlaMonitor

    h = plain
    ids = [h.ingest(sender=f"v{i}@x.co.id", subject=f"Perlu cepat {i}") for i in range(3)]
    cards = [(await h.card(tid)).message_id for tid in ids]
    sla = SlaMonitor(
        h.db,
        h.clock,
        calendar,
        domain,
        remind_ratio=0.8,
        summary_time=dt.time(23, 59),
        timezone=WIB,
    )
    h.clock.advance(minutes=6)
    await sla.run_once()
    h.service.dispatcher.wake()
    alert = await h.until(
        lambda: next(
            (m for m in h.server.messages(GROUP) if "Batas waktu terlewati" in (m.text or "")),
            None,
        )
    )
    assert "(3)" in (alert.plain_text or "") and not alert.silent
    for card in cards:
        assert f"https://t.me/c/1234567890/{card}" in (alert.text or "")
    assert len([m for m in h.server.messages(GROUP) if "Batas waktu" in (m.text or "")]) == 1


async def test_tiket_in_a_forum_links_to_the_card_in_its_topic(forum: Harness) -> None:
    h = forum
    tid = h.ingest()
    card = await h.card(tid)
    h.server.send_text(GROUP, h.staff, "/tiket 1")
    reply = await h.until(
        lambda: next((m for m in h.server.messages(GROUP) if "topiknya" in (m.text or "")), None)
    )
    assert f"https://t.me/c/1234567890/{card.message_id}" in (reply.text or "")
    assert h.card_message_id(tid) == card.message_id  # no second card


async def test_topics_off_keeps_a_forum_group_plain(
    telegram_server: BotApiServer, db: Database, domain: DomainConfig, calendar: BusinessCalendar
) -> None:
    telegram_server.forum(GROUP)
    clock = OffsetClock(DAY)
    planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    workflow = Workflow(domain, calendar, clock, planner, timezone=WIB)
    telegram_server.limits = RateLimits(enabled=False)
    service = make_service(telegram_server, db, workflow, domain)
    service.topics.mode = "off"
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    h = Harness(
        telegram_server, service, db, workflow, make_intake(workflow, domain), clock, {}, {}
    )
    try:
        card = await h.card(h.ingest())
        assert card.message_thread_id is None and telegram_server.topics(GROUP) == []
    finally:
        await service.stop()
