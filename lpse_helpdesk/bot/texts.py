"""Short Indonesian messages for the group: notices on a card, alerts, help. All HTML-safe."""

from __future__ import annotations

from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lpse_helpdesk.bot.intake_alerts import INTAKE_ALERTS, intake_alert_text
from lpse_helpdesk.sla import queries as sla_queries
from lpse_helpdesk.sla import texts as sla_texts
from lpse_helpdesk.storage.models import FailedMail, Message

EXCERPT_CHARS = 300

HELP = """<b>Helpdesk LPSE — bantuan</b>
Setiap e-mail pengguna SPSE menjadi kartu tiket di grup ini. Tekan tombol pada kartu:
• <b>Tinggi / Menengah / Rendah</b>: tetapkan prioritas (SOP langkah 2, 5 menit)
• <b>Minta Data</b>: kirim permintaan data ke pengguna,
  lalu <b>Telepon</b> setelah menelepon pengguna (langkah 4)
• <b>Mulai Analisis</b>, <b>Catatan</b>: catatan internal, tidak dikirim ke pengguna
• <b>Selesai</b>: kirim solusi ke pengguna (langkah 9)
• <b>Eskalasi LKPP</b>: teruskan ke Helpdesk LKPP dan beri tahu pengguna (langkah 10)
Bila diminta mengetik, <b>balas</b> pesan bot itu; /batal untuk membatalkan.

Perintah:
/tiket &lt;nomor&gt; — tampilkan kartu tiket
/antrian — tiket terbuka, paling mendesak dulu
/cari &lt;kata atau e-mail&gt; — cari tiket
/saya — tiket yang pernah saya tangani
/nama &lt;nama resmi — jabatan&gt; — tanda tangan surat Anda
/templat — templat jawaban (supervisor: tambah, ubah, hapus)
/rekap [periode] — rekap untuk supervisor"""

SUPERVISOR_WELCOME = (
    "Selamat datang. Anda terdaftar sebagai <b>supervisor</b> helpdesk.\n"
    "Rekap bulan lalu akan dikirim ke chat ini setiap tanggal 1. Kapan saja, ketik "
    "/rekap (bulan ini), /rekap 2026-11, /rekap minggu, atau /rekap pdf 2026-11."
)

PROMPTS = {
    "request_data": (
        "📨 Ketik <b>permintaan data</b> untuk pengguna. Salam pembuka, penutup dan tanda "
        "tangan ditambahkan otomatis; pratinjau e-mail ditampilkan sebelum dikirim. Foto atau "
        "berkas yang dikirim sebagai balasan ikut dilampirkan."
    ),
    "resolve": (
        "✅ Ketik <b>solusi</b> untuk pengguna. Salam pembuka, penutup dan tanda tangan "
        "ditambahkan otomatis; pratinjau e-mail ditampilkan sebelum dikirim. Foto atau berkas "
        "yang dikirim sebagai balasan ikut dilampirkan."
    ),
    "escalate": (
        "⬆️ Ketik <b>catatan analisis</b> untuk Helpdesk LKPP (ikut diteruskan). Pratinjau "
        "e-mail ditampilkan sebelum dikirim."
    ),
    "add_note": "📝 Ketik <b>catatan internal</b> (tidak dikirim ke pengguna).",
}
DONE = {
    "request_data": (
        "📨 Permintaan data dikirim ke pengguna. Konfirmasikan lewat telepon, "
        "lalu tekan <b>Telepon</b>."
    ),
    "resolve": "✅ Solusi dikirim ke pengguna.",
    "escalate": "⬆️ Dieskalasi ke Helpdesk LKPP; pengguna diberi tahu.",
    "add_note": "📝 Catatan disimpan.",
}


def mention(user_id: int, name: str) -> str:
    return f'<a href="tg://user?id={user_id}">{escape(name or "Petugas")}</a>'


def prompt_text(action: str, number: str, user_id: int, user_name: str) -> str:
    return (
        f"{mention(user_id, user_name)}, tiket <b>{escape(number)}</b>:\n{PROMPTS[action]}\n"
        "<i>Balas pesan ini dengan teksnya (15 menit), atau /batal.</i>"
    )


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return escape(text if len(text) <= limit else text[:limit].rstrip() + " …")


def _message_excerpt(session: Session, payload: dict[str, Any]) -> tuple[str, str]:
    pk = payload.get("message")
    message = session.get(Message, pk) if isinstance(pk, int) else None
    if message is None:
        return "", ""
    sender = escape(message.from_name or message.from_address)
    return sender, excerpt(message.stripped_text or message.text)


def notice_text(
    session: Session, number: str, subject: str, payload: dict[str, Any], timezone: ZoneInfo
) -> str:
    """The short message posted in reply to a ticket's card."""
    kind = payload.get("notice")
    tag = f"<b>{escape(number)}</b>"
    if kind in ("user_mail", "user_data", "lkpp_reply", "reopened", "thanks"):
        sender, text = _message_excerpt(session, payload)
        heading = {
            "user_mail": "✉️ E-mail baru dari pengguna",
            "user_data": "📥 Data tambahan dari pengguna",
            "lkpp_reply": "📨 Jawaban Helpdesk LKPP",
            "reopened": "🔁 Pengguna membalas setelah selesai; tiket dibuka kembali",
            "thanks": "🙏 Pengguna berterima kasih / mengonfirmasi; tiket tetap selesai",
        }[kind]
        if kind == "reopened" and payload.get("message") is None:
            heading = "🔁 Tiket dibuka kembali oleh petugas"  # from a recorded thanks
        line = f"{heading} — {tag}"
        if sender:
            line += f"\n<i>{sender}</i>: {text}"
        return line
    if kind == "bounce":
        addresses = ", ".join(escape(a) for a in payload.get("addresses") or []) or "?"
        if payload.get("transient"):
            return f"⏳ E-mail ke {addresses} tertunda (server penerima belum menerima) — {tag}"
        return (
            f"⚠️ E-mail ke {addresses} <b>tidak terkirim</b> (bounce) — {tag}\n"
            "Alamat ditandai; hubungi pengguna lewat telepon bila perlu."
        )
    if kind == "mail_failed":
        return (
            f"❌ E-mail ({escape(str(payload.get('kind')))}) ke "
            f"{escape(str(payload.get('recipient')))} <b>gagal dikirim</b> — {tag}\n"
            f"<code>{escape(str(payload.get('error'))[:300])}</code>"
        )
    if kind == "sla_reminder":
        return sla_texts.reminder_text(payload, number, subject, timezone)
    if kind == "sla_breach":
        return sla_texts.breach_text(payload, number, subject, timezone)
    return f"ℹ️ {tag}: {escape(str(kind))}"


def alert_text(session: Session, payload: dict[str, Any], timezone: ZoneInfo) -> str:
    kind = payload.get("alert")
    if kind in INTAKE_ALERTS:
        return intake_alert_text(session, payload, timezone)
    if kind == "imap_down":
        return (
            "🚨 <b>Kotak surat helpdesk tidak dapat dibaca</b> "
            f"({escape(str(payload.get('error')))} di {escape(str(payload.get('host')))}). "
            "E-mail baru belum masuk; layanan terus mencoba. Periksa server atau kata sandi IMAP."
        )
    if kind == "imap_restored":
        return "✅ Kotak surat helpdesk dapat dibaca kembali; e-mail yang tertunda sedang diproses."
    if kind == "smtp_login":
        return (
            "🚨 <b>Server SMTP menolak login</b>; e-mail balasan belum terkirim "
            "dan akan dicoba lagi. Periksa SMTP_USER / SMTP_PASSWORD."
        )
    if kind == "quarantined":
        failed = session.get(FailedMail, payload.get("failed_mail"))
        detail = f" (UID {payload.get('uid')})"
        if failed is not None:
            detail += f": <code>{escape(failed.last_error[:200])}</code>"
        return (
            "⚠️ Satu e-mail masuk <b>gagal diproses 3 kali</b> dan dikarantina" + detail + ".\n"
            "Isinya tetap tersimpan; mohon diperiksa administrator."
        )
    if kind == "flood":
        return (
            f"⚠️ Terlalu banyak e-mail dari {escape(str(payload.get('address')))} dalam satu jam; "
            "e-mail berikutnya disimpan tanpa membuat tiket baru."
        )
    if kind == "sla_summary":
        ids = [*payload.get("overdue", []), *payload.get("due_today", [])]
        return sla_texts.summary_text(payload, sla_queries.summary_lines(session, ids), timezone)
    return f"ℹ️ {escape(str(kind))}"
