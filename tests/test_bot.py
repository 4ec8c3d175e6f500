"""The Telegram front end against the test Bot API server, through PTB's real stack."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot.ratelimit import Limits
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import Action, State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    AuditEvent,
    OutboxChannel,
    OutboxItem,
    PromptStatus,
    TelegramPrompt,
    Ticket,
)
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import ActionResult, Workflow
from tests.bot_harness import (
    GROUP,
    Harness,
    make_service,
    press_latest,
)
from tests.conftest import WIB, OffsetClock, make_intake
from tests.servers.telegram import BotApiServer, RateLimits

STAFF_ID, OTHER_ID = 1001, 2002


pytestmark = pytest.mark.usefixtures("ptb_timedelta")


async def _harness(
    server: BotApiServer,
    db: Database,
    workflow: Workflow,
    domain: DomainConfig,
    clock: OffsetClock,
    **kw: Any,
) -> Harness:
    server.group(GROUP)
    if "limits" not in kw:
        # Functional tests: no rate limits on either side (the burst test sets its own).
        server.limits = RateLimits(enabled=False)
        kw["limits"] = Limits(group_per_minute=10_000, global_per_second=10_000)
    service = make_service(server, db, workflow, domain, **kw)
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    staff = server.user(STAFF_ID, "Budi", "budi")
    other = server.user(OTHER_ID, "Orang Lain")
    return Harness(
        server, service, db, workflow, make_intake(workflow, domain), clock, staff, other
    )


@pytest.fixture
async def h(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> AsyncIterator[Harness]:
    harness = await _harness(telegram_server, db, live_workflow, domain, live_clock)
    try:
        yield harness
    finally:
        await harness.service.stop()


def _ticket(h: Harness, ticket_id: int) -> Ticket:
    return h.db.run_sync(lambda s: s.get_one(Ticket, ticket_id))


def _step(
    h: Harness, ticket_id: int, action: Action, kw: dict[str, Any]
) -> Callable[[Session], ActionResult]:
    """One step of a path in `PATHS` as work for `run_sync`, its arguments bound now."""
    return lambda s: h.workflow.act(s, ticket_id, action, Actor.system(), **kw)


def _labels(message: Any) -> list[str]:
    return [b["text"] for b in message.buttons]


def _data(message: Any, word: str) -> str:
    for button in message.buttons:
        if word in button["text"]:
            return str(button["callback_data"])
    raise AssertionError(f"no button with {word!r}: {_labels(message)}")


async def _tap(h: Harness, message_id: int, data: str, user: dict[str, Any] | None = None) -> str:
    query = h.server.press(GROUP, message_id, user or h.staff, data)
    answered = await h.until(lambda: h.server.answered_callbacks.get(query))
    return answered.text or ""


async def _press(h: Harness, ticket_id: int, word: str, user: dict[str, Any] | None = None) -> str:
    """Press the card's button with `word`, opening "⋯ Lainnya" first when it is behind it."""
    card = await h.card(ticket_id)
    if not any(word in label for label in _labels(card)) and any(
        "Lainnya" in label for label in _labels(card)
    ):
        await _tap(h, card.message_id, _data(card, "Lainnya"), user)
        card = h.server.message(GROUP, card.message_id)
    return await _tap(h, card.message_id, _data(card, word), user)


async def _all_labels(h: Harness, ticket_id: int) -> list[str]:
    """The card's buttons and those behind "⋯ Lainnya" (the card is shown again after)."""
    card = await h.card(ticket_id)
    labels = _labels(card)
    await _tap(h, card.message_id, _data(card, "Lainnya"))
    more = _labels(h.server.message(GROUP, card.message_id))
    await _tap(h, card.message_id, _data(h.server.message(GROUP, card.message_id), "Kembali"))
    return labels + more


async def test_new_ticket_card(h: Harness) -> None:
    tid = h.ingest()
    card = await h.card(tid)
    assert card.parse_mode == "HTML"
    assert "LPSE-2026-00001" in (card.text or "") and "Baru" in (card.text or "")
    assert "siti@vendor.co.id" in (card.text or "") and "12345678" in (card.text or "")
    assert "Gagal unggah dokumen penawaran (saran)" in (card.plain_text or "")
    lines = (card.plain_text or "").splitlines()
    assert lines[0].startswith("🆕 LPSE-2026-00001 · Baru")
    assert "Penetapan prioritas" in lines[1]  # the step's deadline, second line
    labels = _labels(card)
    assert labels == ["⭐ Tinggi", "Menengah", "Rendah", "🙋 Saya tangani", "⋯ Lainnya"]
    every = await _all_labels(h, tid)
    assert "🔒 Tutup tiket" in every and "📄 Teks lengkap" in every
    assert not any("Solusi" in label for label in every)  # priority first (SOP step 2)
    assert any(e["type"] == "expandable_blockquote" for e in card.entities)
    assert all(len(d.encode()) <= 64 for d in card.callback_data)


async def test_priority_press_edits_the_card(h: Harness) -> None:
    tid = h.ingest()
    answer = await _press(h, tid, "Tinggi")
    assert answer == "Prioritas: Tinggi"
    assert _ticket(h, tid).state is State.PRIORITIZED
    await h.settled()
    card = await h.card(tid)
    assert card.edit_count >= 1
    labels = _labels(card)
    assert "📨 Minta Data" in labels and "✅ Kirim Solusi" in labels
    assert card.reply_markup is not None
    assert "⬆️ Eskalasi LKPP" in labels and len(card.reply_markup["inline_keyboard"]) <= 3
    assert "🔴 Tinggi" in (card.plain_text or "").splitlines()[1]
    # Changing it again restarts the resolution clock: it asks first.
    assert "Ubah ke Rendah?" in await _press(h, tid, "Ubah prioritas") + await _press(
        h, tid, "Rendah"
    )
    assert _ticket(h, tid).priority == "tinggi"
    assert await _press(h, tid, "Ya, ubah") == "Prioritas: Rendah"
    assert _ticket(h, tid).priority == "rendah"
    audit = h.db.run_sync(
        lambda s: s.scalars(select(AuditEvent).where(AuditEvent.action == "set_priority")).first()
    )
    assert audit is not None
    assert (audit.actor_id, audit.actor_name, audit.channel.value) == ("1001", "Budi", "telegram")


ALLOWED_LABELS = {
    State.NEW: {"Tinggi", "Menengah", "Rendah", "Catatan", "Kategori", "Tutup"},
    State.PRIORITIZED: {"Minta Data", "Mulai Analisis", "Kirim Solusi", "Eskalasi LKPP"},
    State.WAITING_FOR_DATA: {
        "Sudah ditelepon",
        "Tidak terhubung",
        "Minta Data",
        "Kirim Solusi",
        "Eskalasi LKPP",
    },
    State.DATA_RECEIVED: {"Mulai Analisis", "Minta Data", "Kirim Solusi", "Eskalasi LKPP"},
    State.IN_ANALYSIS: {"Minta Data", "Kirim Solusi", "Eskalasi LKPP"},
    State.ESCALATED: {"Kirim Solusi", "Catatan", "Tutup"},
    State.LKPP_ANSWERED: {"Kirim Solusi", "Eskalasi LKPP", "Minta Data"},
    State.RESOLVED: {"Catatan", "Kategori", "Tutup"},
    State.CLOSED: {"Catatan"},
}
NOT_SHOWN = {
    State.NEW: {"Solusi", "Minta Data", "Eskalasi LKPP", "ditelepon"},
    State.ESCALATED: {"Eskalasi LKPP", "Minta Data", "Tinggi"},
    State.RESOLVED: {"Solusi", "Tinggi", "Saya tangani"},
    State.CLOSED: {"Solusi", "Tutup", "Kategori", "Tinggi", "Saya tangani"},
}
PATHS: dict[State, list[tuple[Action, dict[str, str]]]] = {
    State.NEW: [],
    State.PRIORITIZED: [(Action.SET_PRIORITY, {"priority": "rendah"})],
    State.WAITING_FOR_DATA: [
        (Action.SET_PRIORITY, {"priority": "rendah"}),
        (Action.REQUEST_DATA, {"text": "Data?"}),
    ],
    State.DATA_RECEIVED: [
        (Action.SET_PRIORITY, {"priority": "rendah"}),
        (Action.REQUEST_DATA, {"text": "Data?"}),
        (Action.RECEIVE_USER_DATA, {}),
    ],
    State.IN_ANALYSIS: [
        (Action.SET_PRIORITY, {"priority": "rendah"}),
        (Action.START_ANALYSIS, {}),
    ],
    State.ESCALATED: [
        (Action.SET_PRIORITY, {"priority": "rendah"}),
        (Action.ESCALATE, {"text": "LKPP"}),
    ],
    State.LKPP_ANSWERED: [
        (Action.SET_PRIORITY, {"priority": "rendah"}),
        (Action.ESCALATE, {"text": "LKPP"}),
        (Action.RECEIVE_LKPP_REPLY, {}),
    ],
    State.RESOLVED: [
        (Action.SET_PRIORITY, {"priority": "rendah"}),
        (Action.RESOLVE, {"text": "x"}),
    ],
    State.CLOSED: [(Action.CLOSE, {})],
}


@pytest.mark.parametrize("state", list(State))
async def test_buttons_in_every_state(h: Harness, state: State) -> None:
    tid = h.ingest()
    for action, kw in PATHS[state]:
        h.db.run_sync(_step(h, tid, action, kw))
    assert _ticket(h, tid).state is state
    await h.settled()
    card = await h.card(tid)
    assert card.reply_markup is not None
    assert len(card.reply_markup["inline_keyboard"]) <= 3  # primary rows
    labels = " | ".join(await _all_labels(h, tid))
    for word in ALLOWED_LABELS[state]:
        assert word in labels, (state, word, labels)
    for word in NOT_SHOWN.get(state, set()):
        assert word not in labels, (state, word, labels)
    assert "Teks lengkap" in labels


async def test_direct_buttons(h: Harness) -> None:
    tid = h.ingest()
    await _press(h, tid, "Rendah")
    await h.settled()
    assert await _press(h, tid, "Mulai Analisis") == "🔎 Analisis dimulai."
    assert _ticket(h, tid).state is State.IN_ANALYSIS
    await h.settled()
    assert await _press(h, tid, "Tutup") == "Tutup tiket tanpa mengirim e-mail ke pengguna?"
    card = await h.card(tid)
    assert _labels(card) == ["🔒 Ya, tutup", "↩️ Batal"]
    assert await _press(h, tid, "Batal") == ""
    assert "✅ Kirim Solusi" in _labels(await h.card(tid))
    await _press(h, tid, "Tutup")
    assert await _press(h, tid, "Ya, tutup") == "🔒 Tiket ditutup."
    assert _ticket(h, tid).state is State.CLOSED


async def test_category_menu(h: Harness) -> None:
    tid = h.ingest()
    assert await _press(h, tid, "Kategori") == "Pilih kategori."
    card = await h.card(tid)
    assert "● Unggah penawaran" in _labels(card)
    assert all(len(label) <= 18 for label in _labels(card))  # "● " + 16
    assert await _press(h, tid, "Sanggah") == "Kategori: Sanggah"
    assert _ticket(h, tid).category == "SANGGAH"


async def test_force_reply_flow(h: Harness) -> None:
    tid = h.ingest()
    await _press(h, tid, "Tinggi")
    await h.settled()
    assert "templat" in (await _press(h, tid, "Minta Data")).lower()  # canned answers first
    assert "ketik" in (await press_latest(h, "Tulis sendiri")).lower()
    prompt = await h.until(
        lambda: next(
            (
                m
                for m in h.server.messages(GROUP)
                if m.reply_markup and m.reply_markup.get("force_reply")
            ),
            None,
        )
    )
    assert prompt.reply_markup is not None and prompt.reply_markup["selective"] is True
    assert "Budi" in (prompt.text or "") and "permintaan data" in (prompt.text or "")
    assert prompt.reply_to_message_id == h.card_message_id(tid)
    # Someone else answers: refused, nothing done.
    h.server.reply_to(GROUP, prompt.message_id, h.staff | {"id": 3003, "first_name": "Ani"}, "x")
    await h.until(lambda: any("Isian ini untuk Budi" in t for t in h.texts()))
    assert _ticket(h, tid).state is State.PRIORITIZED
    assert prompt.reply_markup["input_field_placeholder"] == "Data yang diperlukan dari pengguna…"
    # The presser answers: the request goes out by e-mail.
    answer = h.server.reply_to(
        GROUP, prompt.message_id, h.staff, "Mohon kirim tangkapan layar & <galat>."
    )
    assert "dikirim" in await press_latest(h, "Kirim", after=prompt.message_id)  # the preview
    await h.until(lambda: _ticket(h, tid).state is State.WAITING_FOR_DATA)
    mail = h.db.run_sync(
        lambda s: s.scalars(select(OutboxItem).where(OutboxItem.kind == "data_request")).one()
    )
    assert mail.payload["staff_text"] == "Mohon kirim tangkapan layar & <galat>."
    # No "sent" message: the prompt and the preview are gone, the card says what was done.
    assert answer["message"]["message_id"] > prompt.message_id
    await h.until(lambda: h.server.message(GROUP, prompt.message_id).deleted)
    await h.settled()
    card = await h.card(tid)
    assert "📨 minta data" in (card.plain_text or "") and "· Budi" in (card.plain_text or "")
    assert "📞 Sudah ditelepon" in _labels(card) and "📵 Tidak terhubung" in _labels(card)
    assert "tidak terhubung" in await _press(h, tid, "Tidak terhubung")
    await h.settled()
    assert "📵 telepon tidak terhubung" in ((await h.card(tid)).plain_text or "")
    assert _ticket(h, tid).phone_confirmed_at is None
    assert await _press(h, tid, "Sudah ditelepon") == "📞 Dicatat: pengguna sudah ditelepon."


async def test_prompt_expires_and_batal(h: Harness) -> None:
    tid = h.ingest()
    await _press(h, tid, "Rendah")
    await h.settled()
    await _press(h, tid, "Catatan")
    prompt = await h.until(
        lambda: next(
            (
                m
                for m in h.server.messages(GROUP)
                if m.reply_markup and m.reply_markup.get("force_reply")
            ),
            None,
        )
    )
    h.clock.advance(minutes=16)
    h.server.reply_to(GROUP, prompt.message_id, h.staff, "catatan terlambat")
    await h.until(lambda: any("sudah habis" in t for t in h.texts()))
    assert any("catatan terlambat" in t for t in h.texts())  # the text is given back
    status = h.db.run_sync(lambda s: s.scalars(select(TelegramPrompt)).one().status)
    assert status is PromptStatus.EXPIRED
    await _press(h, tid, "Catatan")
    h.server.send_text(GROUP, h.staff, "/batal")
    await h.until(lambda: any(t == "Dibatalkan." for t in h.texts()))
    statuses = h.db.run_sync(lambda s: [p.status for p in s.scalars(select(TelegramPrompt))])
    assert statuses[-1] is PromptStatus.CANCELLED


async def test_pending_prompt_survives_a_restart(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    h = await _harness(telegram_server, db, live_workflow, domain, live_clock)
    tid = h.ingest()
    await _press(h, tid, "Tinggi")
    await h.settled()
    await _press(h, tid, "Kirim Solusi")
    await press_latest(h, "Tulis sendiri")
    prompt = await h.until(
        lambda: next(
            (
                m
                for m in telegram_server.messages(GROUP)
                if m.reply_markup and m.reply_markup.get("force_reply")
            ),
            None,
        )
    )
    await h.service.stop()
    telegram_server.reply_to(GROUP, prompt.message_id, h.staff, "Sudah kami perbaiki.")
    again = await _harness(telegram_server, db, live_workflow, domain, live_clock)
    try:
        await press_latest(again, "Kirim")  # the preview was made after the restart
        await again.until(lambda: _ticket(again, tid).state is State.RESOLVED)
        assert _ticket(again, tid).solution == "Sudah kami perbaiki."
    finally:
        await again.service.stop()


async def test_permissions(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    h = await _harness(
        telegram_server, db, live_workflow, domain, live_clock, staff_ids=frozenset({STAFF_ID})
    )
    try:
        tid = h.ingest()
        card = await h.card(tid)
        answer = await _press(h, tid, "Tinggi", user=h.other)  # in the group, not on the list
        assert "tidak diizinkan" in answer
        assert h.server.answered_callbacks  # answered, with an alert
        assert _ticket(h, tid).state is State.NEW
        # A command from another chat.
        telegram_server.group(-100999, "Grup lain")
        telegram_server.send_text(-100999, h.staff, "/antrian")
        await h.until(
            lambda: any(
                "tidak diizinkan" in (m.text or "") for m in telegram_server.messages(-100999)
            )
        )
        # /rekap from staff who is not a supervisor.
        telegram_server.send_text(GROUP, h.staff, "/rekap")
        await h.until(lambda: any("hanya untuk supervisor" in t for t in h.texts()))
        # Forged callback data for another ticket id: checked against the database.
        forged = card.callback_data[0].replace(f":{tid}:", ":99999:")
        query = telegram_server.press(GROUP, card.message_id, h.staff, forged, check_button=False)
        answered = await h.until(lambda: telegram_server.answered_callbacks.get(query))
        assert answered.text == "Tiket tidak ditemukan."
        garbage = telegram_server.press(
            GROUP, card.message_id, h.staff, "x" * 10, check_button=False
        )
        answered = await h.until(lambda: telegram_server.answered_callbacks.get(garbage))
        assert "tidak berlaku" in (answered.text or "")
    finally:
        await h.service.stop()


async def test_concurrent_taps_apply_once(h: Harness) -> None:
    tid = h.ingest()
    card = await h.card(tid)
    ani = h.server.user(3003, "Ani")
    first = h.server.press(GROUP, card.message_id, h.staff, _data(card, "Tinggi"))
    second = h.server.press(GROUP, card.message_id, ani, _data(card, "Rendah"))
    answers = [(await h.answer(q)).text or "" for q in (first, second)]
    assert answers[0] == "Prioritas: Tinggi"
    assert "petugas lain" in answers[1]
    assert _ticket(h, tid).priority == "tinggi"
    events = h.db.run_sync(
        lambda s: s.scalars(select(AuditEvent).where(AuditEvent.action == "set_priority")).all()
    )
    assert len(events) == 1


async def test_retry_after_is_honoured(h: Harness) -> None:
    await h.until(lambda: h.server.pinned(GROUP))  # the queue board is up
    h.server.flood_next("sendMessage", count=1, retry_after=1)
    tid = h.ingest()
    card = await h.card(tid)
    assert card.text
    assert h.service.dispatcher.retry_after_received == 1
    item = h.db.run_sync(
        lambda s: s.scalars(select(OutboxItem).where(OutboxItem.kind == "card")).one()
    )
    assert item.attempts == 2 and item.last_error is None


async def test_hostile_mail_makes_a_valid_card(h: Harness) -> None:
    body = "<script>alert(1)</script> & <b>tebal</b> " + "x" * 30_000
    tid = h.ingest(
        sender='"<i>Evil</i> & Co" <evil@x.co.id>', subject="<b>Halo</b> & </i>", body=body
    )
    card = await h.card(tid)
    assert "<script>" not in (card.text or "")
    assert "&lt;script&gt;" in (card.text or "")
    assert len(card.plain_text or "") < 4096


async def test_full_text_and_commands(h: Harness) -> None:
    tid = h.ingest(attachment=("bukti.pdf", b"%PDF-1.4 bukti"))
    await _press(h, tid, "Teks lengkap")
    full = await h.until(
        lambda: next(
            (m for m in h.server.messages(GROUP) if "Teks lengkap" in (m.text or "")), None
        )
    )
    assert "gagal unggah penawaran" in (full.plain_text or "") and full.silent
    assert any(e["type"] == "expandable_blockquote" for e in full.entities)
    await _press(h, tid, "Lampiran")
    pdf = await h.until(
        lambda: next((m for m in h.server.messages(GROUP) if m.filename == "bukti.pdf"), None)
    )
    assert pdf.document == b"%PDF-1.4 bukti"
    old_card = h.card_message_id(tid)
    link = f"https://t.me/c/1234567890/{old_card}"
    h.server.send_text(GROUP, h.staff, "/antrian")
    await h.until(lambda: any("Antrian tiket terbuka" in t and link in t for t in h.texts()))
    h.server.send_text(GROUP, h.staff, "/cari vendor.co.id")
    await h.until(lambda: any("Hasil pencarian" in t and link in t for t in h.texts()))
    await _press(h, tid, "Rendah")
    h.server.send_text(GROUP, h.staff, "/saya")
    await h.until(lambda: any("pernah Anda tangani" in t and "00001" in t for t in h.texts()))
    before = len(h.server.messages(GROUP))
    h.server.send_text(GROUP, h.staff, "/tiket 1")
    await h.until(lambda: (m := h.card_message_id(tid)) is not None and m > before)
    assert old_card is not None
    new_link = f"https://t.me/c/1234567890/{h.card_message_id(tid)}"
    await h.until(lambda: new_link in (h.server.message(GROUP, old_card).text or ""))
    assert h.server.message(GROUP, old_card).buttons == []  # the old card is no longer live
    h.server.send_text(GROUP, h.staff, "/bantuan")
    await h.until(lambda: any("Helpdesk LPSE — panduan singkat" in t for t in h.texts()))
    group = [c["command"] for c in h.server.commands({"type": "chat", "chat_id": GROUP})]
    assert {"tiket", "antrian", "cari", "saya", "batal", "bantuan"} <= set(group)
    assert "rekap" not in group  # supervisors only
    boss = h.server.commands({"type": "chat_member", "chat_id": GROUP, "user_id": 777})
    assert "rekap" in [c["command"] for c in boss]
    assert [c["command"] for c in h.server.commands()] == ["bantuan"]  # other private chats
    assert "Helpdesk LPSE" in h.server.descriptions()["description"]


async def test_burst_is_announced_by_digest_without_429(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    telegram_server.limits = RateLimits(group_per_minute=20, global_per_second=30)
    h = await _harness(
        telegram_server,
        db,
        live_workflow,
        domain,
        live_clock,
        limits=Limits(group_per_minute=18, global_per_second=25),
    )
    try:
        ids = [h.ingest(sender=f"u{i}@x.co.id", subject=f"Masalah {i}") for i in range(40)]
        numbers = h.db.run_sync(lambda s: [s.get_one(Ticket, i).number for i in ids])
        try:
            await h.until(lambda: all(any(n in t for t in h.texts()) for n in numbers), timeout=20)
        except AssertionError:
            missing = [n for n in numbers if not any(n in t for t in h.texts())]
            raise AssertionError(f"not visible: {missing}; {h.texts()}") from None
        digests = [t for t in h.texts() if "tiket baru" in t]
        assert digests and telegram_server.too_many_requests == 0
    finally:
        await h.service.stop()


async def test_notice_replies_to_the_card(h: Harness) -> None:
    tid = h.ingest(message_id="<n1@vendor.co.id>")
    card = await h.card(tid)
    h.ingest(in_reply_to="<n1@vendor.co.id>", body="Ini tambahan informasi saya.")
    notice = await h.until(
        lambda: next(
            (
                m
                for m in h.server.messages(GROUP)
                if "E-mail baru" in (m.text or "") or "Data tambahan" in (m.text or "")
            ),
            None,
        )
    )
    assert notice.reply_to_message_id == card.message_id
    assert "tambahan informasi" in (notice.text or "")
    assert (
        h.db.run_sync(
            lambda s: s.scalars(
                select(OutboxItem).where(
                    OutboxItem.channel == OutboxChannel.TELEGRAM, OutboxItem.status == "failed"
                )
            ).all()
        )
        == []
    )


EXPECTED_ANSWER = {
    "Tinggi": "Prioritas: Tinggi",
    "Menengah": "Prioritas: Menengah",
    "Rendah": "Prioritas: Rendah",
    "Minta Data": "Pilih templat",
    "Kirim Solusi": "Pilih templat",
    "Eskalasi LKPP": "Pilih templat",
    "Catatan": "Silakan balas",
    "Sudah ditelepon": "pengguna sudah ditelepon",
    "Tidak terhubung": "tidak terhubung",
    "Mulai Analisis": "Analisis dimulai",
    "Saya tangani": "Tiket Anda tangani",
    "Ubah prioritas": "Pilih prioritas baru",
    "Kategori": "Pilih kategori",
    "Tutup": "Tutup tiket tanpa",
    "Teks lengkap": "Teks lengkap ditampilkan",
}


@pytest.mark.parametrize("state", list(State))
async def test_every_button_in_every_state(h: Harness, state: State) -> None:
    """Each visible button, pressed on a fresh ticket in that state, does what it says."""
    probe = h.ingest(subject="probe")
    for action, kw in PATHS[state]:
        h.db.run_sync(_step(h, probe, action, kw))
    await h.settled()
    labels = await _all_labels(h, probe)
    words = [word for word in EXPECTED_ANSWER if any(word in label for label in labels)]
    assert words
    for n, word in enumerate(words):
        # Another sender each time: the flood guard allows 10 new tickets per sender an hour.
        tid = h.ingest(subject=f"{state} {word}", sender=f"u{n}@vendor.co.id")
        for action, kw in PATHS[state]:
            h.db.run_sync(_step(h, tid, action, kw))
        await h.settled()
        answer = await _press(h, tid, word)
        expected = EXPECTED_ANSWER[word]
        if word == "Kirim Solusi" and state is State.LKPP_ANSWERED:
            expected = "Jawaban LKPP siap"  # the solution relays LKPP's answer
        assert expected in answer, (state, word, answer)


async def test_rekap_for_supervisors_only(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> None:
    from lpse_helpdesk.reports.delivery import RecapDelivery, RecapOptions

    telegram_server.group(GROUP)
    telegram_server.limits = RateLimits(enabled=False)
    service = make_service(
        telegram_server,
        db,
        live_workflow,
        domain,
        limits=Limits(group_per_minute=10_000, global_per_second=10_000),
    )
    service.handlers.recap = RecapDelivery(
        domain, live_clock, RecapOptions(lpse_name="LPSE Kota Contoh", timezone=WIB)
    )
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    h = Harness(
        telegram_server,
        service,
        db,
        live_workflow,
        make_intake(live_workflow, domain),
        live_clock,
        telegram_server.user(STAFF_ID, "Budi"),
        telegram_server.user(OTHER_ID, "X"),
    )
    try:
        h.ingest()
        boss = telegram_server.user(777, "Kepala UKPBJ")
        telegram_server.send_text(GROUP, h.staff, "/rekap")
        await h.until(lambda: any("hanya untuk supervisor" in t for t in h.texts()))
        assert not any(m.filename for m in telegram_server.messages(GROUP))  # no file
        telegram_server.send_text(GROUP, boss, "/rekap kemarin-lusa")
        await h.until(lambda: any("/rekap" in t and "<pre>" in t for t in h.texts()))
        telegram_server.send_text(GROUP, boss, "/rekap 2026-11")
        doc = await h.until(
            lambda: next((m for m in telegram_server.messages(GROUP) if m.filename), None)
        )
        assert doc.filename == "rekap-helpdesk-2026-11.xlsx"
        assert doc.document is not None and doc.document[:2] == b"PK"
        assert any("LPSE Kota Contoh" in t for t in h.texts())
        # A supervisor may also ask in a private chat with the bot.
        telegram_server.send_private(boss, "/rekap csv 2026-11")
        private = await h.until(
            lambda: next((m for m in telegram_server.messages(777) if m.filename), None)
        )
        assert private.filename == "rekap-helpdesk-2026-11.csv"
        assert private.document is not None and private.document.startswith(b"\xef\xbb\xbf")
    finally:
        await service.stop()


async def test_supervisor_start_in_private(h: Harness) -> None:
    boss = h.server.user(777, "Kepala UKPBJ")
    h.server.send_private(boss, "/start")
    await h.until(lambda: any("supervisor" in (m.text or "") for m in h.server.messages(777)))
    stranger = h.server.user(4242, "Tamu")
    h.server.send_private(stranger, "/start")
    await h.until(lambda: any("melayani grup" in (m.text or "") for m in h.server.messages(4242)))


async def test_a_huge_subject_and_name_still_make_a_card(h: Harness) -> None:
    tid = h.ingest(sender=f'"{"Nama " * 300}" <panjang@x.co.id>', subject="Subjek " * 700)
    card = await h.card(tid)
    assert len(card.plain_text or "") < 2000


def test_card_deadline_turns_urgent_with_the_reminder(domain: DomainConfig) -> None:
    """The card's level is the SLA reminder's: business time, SLA_REMIND_RATIO."""
    from lpse_helpdesk.bot.cards import Deadline, Urgency, deadline_line
    from lpse_helpdesk.domain.model import SopStep

    urgency = Urgency(BusinessCalendar(domain.working_hours, WIB), 0.8)
    start = dt.datetime(2026, 11, 24, 9, 0, tzinfo=WIB)
    deadline = Deadline(SopStep.SET_PRIORITY, start + dt.timedelta(minutes=5), start, 5.0)
    early = deadline_line(deadline, start + dt.timedelta(minutes=1), WIB, urgency)
    close = deadline_line(deadline, start + dt.timedelta(minutes=4, seconds=30), WIB, urgency)
    late = deadline_line(deadline, start + dt.timedelta(minutes=7), WIB, urgency)
    assert early.startswith("Penetapan prioritas: ⏰ 09.05 WIB")
    assert close.startswith("Penetapan prioritas: 🔔")
    assert late.startswith("🚨 <b>Penetapan prioritas: ⚠️ lewat 2 menit")
