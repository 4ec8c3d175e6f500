"""Replies worth signing, end to end through the real PTB stack, Bot API test server and
aiosmtpd: preview then send, canned answers, official names, officer files, thanks after the
solution, the LKPP relay."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select

from lpse_helpdesk.bot.ratelimit import Limits
from lpse_helpdesk.bridge.letters import Letterhead
from lpse_helpdesk.bridge.outbound import MailSenderService
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import Action, State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    AnswerTemplate,
    AuditEvent,
    MailPreview,
    OutboxChannel,
    OutboxItem,
    PreviewStatus,
    SlaClock,
    StaffName,
    Ticket,
)
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.bot_harness import (
    GROUP,
    Harness,
    last_message_id,
    latest_with_button,
    make_service,
    open_prompt,
    press_latest,
)
from tests.conftest import HELPDESK, LKPP, WIB, OffsetClock, make_intake
from tests.outbound_support import mail_sender
from tests.servers.smtp import SmtpServer
from tests.servers.telegram import BotApiServer, RateLimits

STAFF_ID, SUPERVISOR_ID = 1001, 777
NO_TENDER = "Selamat siang, kami gagal unggah penawaran sejak pagi."


pytestmark = pytest.mark.usefixtures("ptb_timedelta")


LETTERHEAD = Letterhead(
    helpdesk_address=HELPDESK,
    helpdesk_name="Helpdesk LPSE Kota Contoh",
    lpse_name="LPSE Kota Contoh",
    timezone=WIB,
    helpdesk_phone="(0411) 123456",
    helpdesk_hours="Senin–Kamis 07.30–16.00, Jumat 07.30–16.30 WITA",
)


@pytest.fixture
async def h(
    telegram_server: BotApiServer,
    db: Database,
    live_workflow: Workflow,
    domain: DomainConfig,
    live_clock: OffsetClock,
) -> AsyncIterator[Harness]:
    telegram_server.group(GROUP)
    telegram_server.limits = RateLimits(enabled=False)
    service = make_service(
        telegram_server,
        db,
        live_workflow,
        domain,
        limits=Limits(group_per_minute=10_000, global_per_second=10_000),
        letterhead=LETTERHEAD,
    )
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    staff = telegram_server.user(STAFF_ID, "Budi 🔥", "budi")
    other = telegram_server.user(SUPERVISOR_ID, "Bu Kepala")
    harness = Harness(
        telegram_server,
        service,
        db,
        live_workflow,
        make_intake(live_workflow, domain),
        live_clock,
        staff,
        other,
    )
    try:
        yield harness
    finally:
        await service.stop()


def _ticket(h: Harness, tid: int) -> Ticket:
    return h.db.run_sync(lambda s: s.get_one(Ticket, tid))


def _mails(h: Harness, kind: str) -> list[OutboxItem]:
    query = select(OutboxItem).where(
        OutboxItem.channel == OutboxChannel.MAIL, OutboxItem.kind == kind
    )
    return h.db.run_sync(lambda s: list(s.scalars(query.order_by(OutboxItem.id))))


async def _press_card(h: Harness, tid: int, word: str, user: dict[str, Any] | None = None) -> str:
    card = await h.card(tid)
    data = next(b["callback_data"] for b in card.buttons if word in b["text"])
    query = h.server.press(GROUP, card.message_id, user or h.staff, data)
    answered = await h.until(lambda: h.server.answered_callbacks.get(query))
    return answered.text or ""


async def _prioritised(h: Harness, **mail: Any) -> int:
    tid = h.ingest(**mail)
    await _press_card(h, tid, "Tinggi")
    await h.settled()
    return tid


async def _write(h: Harness, tid: int, button: str, text: str) -> Any:
    """Press the card's button, choose to write, answer the prompt; returns the preview."""
    mark = last_message_id(h)
    await _press_card(h, tid, button)
    await press_latest(h, "Tulis sendiri", after=mark)
    prompt = await open_prompt(h, after=mark)
    h.server.reply_to(GROUP, prompt.message_id, h.staff, text)
    return await latest_with_button(h, "Kirim", after=prompt.message_id)


def _sender(smtp: SmtpServer, h: Harness) -> MailSenderService:
    return mail_sender(
        smtp.port,
        h.db,
        h.workflow.clock,
        h.workflow,
        helpdesk_name=LETTERHEAD.helpdesk_name,
        lpse_name=LETTERHEAD.lpse_name,
        helpdesk_phone=LETTERHEAD.helpdesk_phone,
        helpdesk_hours=LETTERHEAD.helpdesk_hours,
    )


def _received(smtp: SmtpServer) -> list[EmailMessage]:
    return [email.message_from_bytes(m.content, policy=email.policy.default) for m in smtp.messages]


def _plain(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


# --- 1. Preview, then send ---------------------------------------------------------------


async def test_preview_then_kirim_sends_once_and_batal_sends_nothing(
    h: Harness, smtp_server: SmtpServer
) -> None:
    tid = await _prioritised(h)
    preview = await _write(h, tid, "Kirim Solusi", "Silakan unggah ulang & periksa <hasilnya>.")
    text = preview.plain_text or ""
    assert "Pratinjau e-mail" in text and "siti@vendor.co.id" in text
    assert "Subjek: Re: [LPSE-2026-00001] Gagal upload penawaran" in text
    assert "Yth. Bapak/Ibu Siti Vendor," in text  # the letter itself, greeting included
    assert "Silakan unggah ulang & periksa <hasilnya>." in text
    assert "ditambahkan otomatis" in text
    assert any(e["type"] == "expandable_blockquote" for e in preview.entities)
    assert _mails(h, "solution") == []  # nothing is mailed before Kirim
    assert "tidak ada e-mail yang dikirim" in await press_latest(h, "Batal")
    # The cancelled preview is gone from the group (few messages stay); nothing was mailed.
    await h.until(lambda: h.server.message(GROUP, preview.message_id).deleted)
    assert _mails(h, "solution") == [] and _ticket(h, tid).state is State.PRIORITIZED

    preview = await _write(h, tid, "Kirim Solusi", "Silakan unggah ulang penawaran.")
    data = next(b["callback_data"] for b in preview.buttons if "Kirim" in b["text"])
    first = h.server.press(GROUP, preview.message_id, h.staff, data)
    second = h.server.press(GROUP, preview.message_id, h.staff, data, check_button=False)
    answers = [await h.answer(q) for q in (first, second)]
    assert any("dikirim" in (a.text or "") for a in answers)
    assert any("tidak berlaku" in (a.text or "") or "diproses" in (a.text or "") for a in answers)
    await h.until(lambda: _ticket(h, tid).state is State.RESOLVED)
    assert len(_mails(h, "solution")) == 1  # a double tap sends once
    await _sender(smtp_server, h).deliver_due()
    solutions = [m for m in _received(smtp_server) if "penyelesaian atas" in _plain(m)]
    assert len(solutions) == 1
    body = _plain(solutions[0])
    assert "Silakan unggah ulang penawaran." in body
    assert "tidak perlu membalas e-mail ini" in body  # no reply needed when solved
    assert "Budi" not in body  # no official name set: no personal name at all


async def test_ubah_asks_again_and_sends_the_new_text(h: Harness) -> None:
    tid = await _prioritised(h)
    preview = await _write(h, tid, "Minta Data", "Mohon kirim teks lama.")
    h.server.reply_to(GROUP, preview.message_id, h.staff, "teks baru di sini?")
    await h.until(lambda: any("Pratinjau tidak dapat dibalas" in t for t in h.texts()))
    mark = last_message_id(h)
    assert "Ketik" in await press_latest(h, "Ubah")
    prompt = await open_prompt(h, after=mark)
    await h.until(lambda: any("Mohon kirim teks lama." in t for t in h.texts()[-3:]))
    h.server.reply_to(GROUP, prompt.message_id, h.staff, "Mohon kirim tangkapan layar terbaru.")
    await latest_with_button(h, "Kirim", after=prompt.message_id)
    await press_latest(h, "Kirim", after=prompt.message_id)
    await h.until(lambda: _ticket(h, tid).state is State.WAITING_FOR_DATA)
    (request,) = _mails(h, "data_request")
    assert request.payload["staff_text"] == "Mohon kirim tangkapan layar terbaru."
    statuses = h.db.run_sync(lambda s: [p.status for p in s.scalars(select(MailPreview))])
    assert statuses == [PreviewStatus.EDITED, PreviewStatus.SENT]


# --- 2. Canned answers ---------------------------------------------------------------------


async def test_a_template_fills_its_fields_and_blocks_on_a_missing_one(h: Harness) -> None:
    tid = await _prioritised(h)  # the mail names tender 12345678
    mark = last_message_id(h)
    assert "templat" in (await _press_card(h, tid, "Kirim Solusi")).lower()
    picker = await latest_with_button(h, "langkah pemeriksaan", after=mark)
    labels = [b["text"] for b in picker.buttons]
    assert labels[-1] == "✍️ Tulis sendiri" and any("Lainnya" in label for label in labels)
    await press_latest(h, "Lainnya", after=mark)
    everything = await latest_with_button(h, "Gangguan akses", after=picker.message_id)
    assert len(everything.buttons) >= 6  # every solution template, whatever its category
    await press_latest(h, "langkah pemeriksaan", after=mark)
    preview = await latest_with_button(h, "Kirim", after=mark)
    assert "Untuk tender 12345678, mohon lakukan langkah berikut:" in (preview.plain_text or "")
    await press_latest(h, "Kirim", after=mark)
    await h.until(lambda: _ticket(h, tid).state is State.RESOLVED)
    (solution,) = _mails(h, "solution")
    assert "Untuk tender 12345678" in solution.payload["staff_text"]
    uses = h.db.run_sync(
        lambda s: s.scalars(
            select(AnswerTemplate.uses).where(AnswerTemplate.code == "SOLUSI_UNGGAH_PENAWARAN")
        ).one()
    )
    assert uses == 1  # counted for the ranking and the recap

    other = await _prioritised(h, body=NO_TENDER, sender="Andi <andi@vendor.co.id>")
    mark = last_message_id(h)
    await _press_card(h, other, "Kirim Solusi")
    answer = await press_latest(h, "langkah pemeriksaan", after=mark)
    assert "{kode_tender}" in answer and "tidak dikirim" in answer
    await h.until(lambda: any("⚠️" in t and "kode tender" in t for t in h.texts()))
    assert h.db.run_sync(lambda s: s.scalar(select(func.count()).select_from(MailPreview))) == 1
    assert _ticket(h, other).state is State.PRIORITIZED


async def test_templat_crud_is_for_supervisors_only(h: Harness) -> None:
    boss = h.other
    h.server.send_text(GROUP, h.staff, "/templat tambah solusi | Milik petugas\nIsi.")
    await h.until(lambda: any("hanya untuk supervisor" in t for t in h.texts()))
    h.server.send_text(
        GROUP,
        boss,
        "/templat tambah solusi | Jadwal sudah diubah | JADWAL_TAHAPAN\n"
        "Jadwal tender {kode_tender} telah diubah oleh Pokja.",
    )
    await h.until(lambda: any("ditambahkan" in t for t in h.texts()))
    added = h.db.run_sync(
        lambda s: s.scalars(select(AnswerTemplate).where(AnswerTemplate.code.is_(None))).one()
    )
    assert added.categories == ["JADWAL_TAHAPAN"] and added.step.value == "solution"
    h.server.send_text(GROUP, boss, f"/templat ubah {added.id} | Jadwal tender diubah")
    await h.until(lambda: any("diubah." in t for t in h.texts()))
    h.server.send_text(GROUP, boss, "/templat tambah solusi | Rusak\nHalo {namaku}.")
    await h.until(lambda: any("Kolom tidak dikenal" in t for t in h.texts()))
    h.server.send_text(GROUP, h.staff, "/templat")
    await h.until(
        lambda: any("Jadwal tender diubah" in t and "Templat jawaban" in t for t in h.texts())
    )
    h.server.send_text(GROUP, h.staff, f"/templat hapus {added.id}")
    await h.until(lambda: sum("hanya untuk supervisor" in t for t in h.texts()) == 2)
    h.server.send_text(GROUP, boss, f"/templat hapus {added.id}")
    await h.until(lambda: any("dihapus" in t for t in h.texts()))
    row = h.db.run_sync(lambda s: s.get_one(AnswerTemplate, added.id))
    assert row.deleted and row.title == "Jadwal tender diubah"
    audit = h.db.run_sync(
        lambda s: [
            (e.action, e.actor_id, e.actor_name)
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("template_%")))
        ]
    )
    assert audit == [
        ("template_added", str(SUPERVISOR_ID), "Bu Kepala"),
        ("template_edited", str(SUPERVISOR_ID), "Bu Kepala"),
        ("template_deleted", str(SUPERVISOR_ID), "Bu Kepala"),
    ]


# --- 1. An officer's photo is attached; an unusable reply is answered -------------------------


async def test_a_photo_reply_is_attached_to_the_mail(h: Harness, smtp_server: SmtpServer) -> None:
    tid = await _prioritised(h)
    mark = last_message_id(h)
    await _press_card(h, tid, "Minta Data")
    await press_latest(h, "Tulis sendiri", after=mark)
    prompt = await open_prompt(h, after=mark)
    h.server.send_user_sticker_reply(GROUP, h.staff, prompt.message_id)
    await h.until(lambda: any("tidak dapat dipakai" in t for t in h.texts()))
    photo = b"\xff\xd8\xff\xe0" + b"JFIF-test-photo" * 50
    h.server.send_user_photo(GROUP, h.staff, photo, reply_to_message_id=prompt.message_id)
    await h.until(lambda: any("disimpan sebagai lampiran" in t for t in h.texts()))
    h.server.reply_to(
        GROUP, prompt.message_id, h.staff, "Mohon bandingkan dengan contoh terlampir."
    )
    preview = await latest_with_button(h, "Kirim", after=prompt.message_id)
    assert "📎 foto-" in (preview.plain_text or "")
    await press_latest(h, "Kirim", after=prompt.message_id)
    await h.until(lambda: _ticket(h, tid).state is State.WAITING_FOR_DATA)
    await _sender(smtp_server, h).deliver_due()
    request = next(m for m in _received(smtp_server) if "data atau informasi" in _plain(m))
    (attached,) = list(request.iter_attachments())
    assert attached.get_content_type() == "image/jpeg"
    assert attached.get_content() == photo
    assert (attached.get_filename() or "").startswith("foto-")
    assert "Terlampir: foto-" in _plain(request)


# --- 3. Official names -------------------------------------------------------------------


async def test_nama_changes_the_signature(h: Harness, smtp_server: SmtpServer) -> None:
    h.server.send_text(GROUP, h.staff, "/nama Budi Santoso, S.Kom. — Petugas Helpdesk")
    await h.until(lambda: any("kini ditandatangani" in t for t in h.texts()))
    stored = h.db.run_sync(lambda s: s.get_one(StaffName, STAFF_ID))
    assert (stored.official_name, stored.position) == ("Budi Santoso, S.Kom.", "Petugas Helpdesk")
    tid = await _prioritised(h)
    preview = await _write(h, tid, "Kirim Solusi", "Sudah kami perbaiki.")
    assert "Budi Santoso, S.Kom.\nPetugas Helpdesk" in (preview.plain_text or "")
    await press_latest(h, "Kirim")
    await h.until(lambda: _ticket(h, tid).state is State.RESOLVED)
    await _sender(smtp_server, h).deliver_due()
    solution = next(m for m in _received(smtp_server) if "penyelesaian atas" in _plain(m))
    body = _plain(solution)
    assert "Hormat kami,\nBudi Santoso, S.Kom.\nPetugas Helpdesk\nHelpdesk LPSE Kota Contoh" in body
    assert "🔥" not in body
    assert "Jam layanan: Senin–Kamis 07.30–16.00" in body and "Telp.: (0411) 123456" in body
    assert "tidak pernah meminta kata sandi" in body
    resolve = h.db.run_sync(
        lambda s: s.scalars(select(AuditEvent).where(AuditEvent.action == "resolve")).one()
    )
    assert resolve.actor_id == str(STAFF_ID) and resolve.actor_name == "Budi 🔥"
    assert resolve.detail["signed_as"] == "Budi Santoso, S.Kom. — Petugas Helpdesk"


# --- 4. Thanks is not a reopen ----------------------------------------------------------------


def _resolved(h: Harness, message_id: str, sender: str) -> int:
    tid = h.ingest(message_id=message_id, sender=sender)
    system = Actor.telegram(STAFF_ID, "Budi")
    h.db.run_sync(lambda s: h.workflow.act(s, tid, Action.SET_PRIORITY, system, priority="rendah"))
    h.db.run_sync(lambda s: h.workflow.act(s, tid, Action.RESOLVE, system, text="Sudah beres."))
    return tid


def _clocks(h: Harness, tid: int) -> list[tuple[str, Any, Any]]:
    return h.db.run_sync(
        lambda s: [
            (c.step.value, c.stopped_at, c.met)
            for c in s.scalars(select(SlaClock).where(SlaClock.ticket_id == tid))
        ]
    )


async def test_thanks_is_recorded_while_masih_gagal_reopens(h: Harness) -> None:
    thanked = _resolved(h, "<awal-1@vendor.co.id>", "Siti <siti@vendor.co.id>")
    before = _clocks(h, thanked)
    h.ingest(
        sender="Siti <siti@vendor.co.id>",
        subject="Re: [LPSE-2026-00001] Gagal upload penawaran",
        in_reply_to="<awal-1@vendor.co.id>",
        body="Terima kasih, sudah bisa.\n\nSalam,\nSiti",
    )
    notice = await latest_with_button(h, "Buka kembali")
    assert "berterima kasih" in (notice.plain_text or "")
    ticket = _ticket(h, thanked)
    assert ticket.state is State.RESOLVED and ticket.reopen_count == 0
    assert _clocks(h, thanked) == before  # the SLA figures are untouched
    assert "dibuka kembali" in await press_latest(h, "Buka kembali")
    await h.until(lambda: _ticket(h, thanked).state is State.IN_ANALYSIS)
    await h.until(lambda: any("dibuka kembali oleh petugas" in t for t in h.texts()))

    failing = _resolved(h, "<awal-2@vendor.co.id>", "Andi <andi@vendor.co.id>")
    h.ingest(
        sender="Andi <andi@vendor.co.id>",
        subject="Re: [LPSE-2026-00002] Gagal upload penawaran",
        in_reply_to="<awal-2@vendor.co.id>",
        body="Terima kasih, tapi masih gagal.",
    )
    await h.until(lambda: _ticket(h, failing).state is State.IN_ANALYSIS)
    assert _ticket(h, failing).reopen_count == 1


# --- 5. Relaying LKPP's answer -----------------------------------------------------------


async def test_the_solution_after_lkpp_relays_its_answer(
    h: Harness, smtp_server: SmtpServer
) -> None:
    tid = await _prioritised(h)
    staff = Actor.telegram(STAFF_ID, "Budi")
    h.db.run_sync(lambda s: h.workflow.act(s, tid, Action.ESCALATE, staff, text="Mohon dicek."))
    (forward,) = _mails(h, "lkpp_forward")
    h.ingest(
        sender=f"Helpdesk LKPP <{LKPP}>",
        subject="RE: Eskalasi LPSE: [LPSE-2026-00001] Gagal upload penawaran",
        in_reply_to=f"<{forward.message_id}>",
        body="Silakan gunakan SPAMKODOK versi terbaru.",
    )
    await h.until(lambda: _ticket(h, tid).state is State.LKPP_ANSWERED)
    await h.settled()
    mark = last_message_id(h)
    assert "Jawaban LKPP" in await _press_card(h, tid, "Kirim Solusi")
    await press_latest(h, "Teruskan jawaban LKPP", after=mark)
    preview = await latest_with_button(h, "Kirim", after=mark)
    assert "Silakan gunakan SPAMKODOK versi terbaru." in (preview.plain_text or "")
    await press_latest(h, "Kirim", after=mark)
    await h.until(lambda: _ticket(h, tid).state is State.RESOLVED)
    (relay,) = _mails(h, "lkpp_answer_relay")
    assert relay.payload["staff_text"] is None
    assert _ticket(h, tid).solution
    await _sender(smtp_server, h).deliver_due()
    sent = next(m for m in _received(smtp_server) if "jawaban Helpdesk LKPP" in _plain(m))
    assert "Silakan gunakan SPAMKODOK versi terbaru." in _plain(sent)
    assert "Tambahan dari kami" not in _plain(sent)


async def test_a_file_over_the_limit_is_refused_with_a_reason(h: Harness) -> None:
    h.service.reply_handlers.max_bytes = 1024
    tid = await _prioritised(h)
    mark = last_message_id(h)
    await _press_card(h, tid, "Minta Data")
    await press_latest(h, "Tulis sendiri", after=mark)
    prompt = await open_prompt(h, after=mark)
    h.server.send_user_document(
        GROUP,
        h.staff,
        b"%PDF-1.4 " + b"x" * 4096,
        "../../panduan unggah.pdf",
        mime_type="application/pdf",
        reply_to_message_id=prompt.message_id,
    )
    await h.until(lambda: any("terlalu besar" in t for t in h.texts()))
    h.service.reply_handlers.max_bytes = 1024 * 1024
    h.server.send_user_document(
        GROUP,
        h.staff,
        b"%PDF-1.4 small",
        "../../panduan unggah.pdf",
        caption="Mohon ikuti panduan terlampir.",
        mime_type="application/pdf",
        reply_to_message_id=prompt.message_id,
    )
    preview = await latest_with_button(h, "Kirim", after=prompt.message_id)
    assert "📎 panduan unggah.pdf" in (preview.plain_text or "")  # no path, a clean name
    assert "Mohon ikuti panduan terlampir." in (preview.plain_text or "")  # the caption
