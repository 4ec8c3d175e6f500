"""Short Indonesian messages for the group: notices on a card, alerts, help. All HTML-safe."""

from __future__ import annotations

from dataclasses import replace
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lpse_helpdesk.bot import links
from lpse_helpdesk.bot.intake_alerts import INTAKE_ALERTS, intake_alert_text
from lpse_helpdesk.sla import queries as sla_queries
from lpse_helpdesk.sla import texts as sla_texts
from lpse_helpdesk.storage.models import Message

EXCERPT_CHARS = 300
FULL_TEXT_CHARS = 3800  # one message (Telegram allows 4,096); longer goes as a file

HELP = """<b>Helpdesk LPSE — panduan singkat</b>
Setiap e-mail pengguna SPSE menjadi <b>kartu tiket</b>. Baris pertama kartu: nomor dan status;
baris kedua: prioritas dan batas waktu langkah SOP yang berjalan (🔔 hampir habis, 🚨 terlewati).

<b>Tombol pada kartu</b>
• <b>Tinggi / Menengah / Rendah</b>: tetapkan prioritas (langkah 2 SOP, 5 menit; ⭐ = saran)
• <b>📨 Minta Data</b>: kirim permintaan data ke pengguna lewat e-mail,
  lalu telepon pengguna dan tekan <b>📞 Sudah ditelepon</b> (atau <b>📵 Tidak terhubung</b>)
• <b>🔎 Mulai Analisis</b>: ubah status menjadi Dianalisis (langkah 7 SOP)
• <b>✅ Kirim Solusi</b>: kirim solusi ke pengguna lewat e-mail (langkah 9 SOP)
• <b>⬆️ Eskalasi LKPP</b>: teruskan ke Helpdesk LKPP bersama e-mail asli pengguna,
  dan beri tahu pengguna (langkah 10 SOP)
• <b>🙋 Saya tangani</b>: nama Anda tampil sebagai penanggung jawab tiket
• <b>⋯ Lainnya</b>: ubah prioritas, kategori, catatan internal, tutup tiket, teks lengkap,
  lampiran

<b>Mengetik teks</b>
Bila bot meminta isian, <b>balas</b> pesan bot itu dengan teksnya dalam 15 menit
(geser pesan ke kiri, atau tekan lama lalu Balas). Setelah terkirim, pesan bot hilang
dan balasan Anda diberi 👍. /batal membatalkan isian.

<b>Topik</b>
Bila grup memakai Topik, setiap tiket punya topiknya sendiri; topik ditutup saat tiket
selesai. Papan antrian tersemat di topik General.

<b>Perintah</b>
/antrian — tiket terbuka, yang perlu tindakan lebih dulu
/tiket &lt;nomor&gt; — tampilkan kartu tiket, mis. /tiket 42
/cari &lt;kata atau e-mail&gt; — cari tiket
/saya — tiket yang pernah saya tangani
/nama &lt;nama resmi — jabatan&gt; — nama resmi untuk tanda tangan surat Anda
/templat — templat jawaban (supervisor: tambah, ubah, hapus)
/batal — batalkan isian yang sedang diminta
/rekap — rekap penanganan (khusus supervisor)"""

PRIVATE_HELP = (
    "Bot ini melayani grup Helpdesk LPSE. Kartu tiket dan tombolnya hanya ada di grup. "
    "Supervisor dapat meminta rekap di percakapan ini: /rekap."
)

SUPERVISOR_WELCOME = (
    "Selamat datang. Anda terdaftar sebagai <b>supervisor</b> helpdesk.\n"
    "Rekap bulan lalu akan dikirim ke percakapan ini setiap tanggal 1. Kapan saja, ketik "
    "/rekap (bulan ini), /rekap 2026-11, /rekap minggu, atau /rekap pdf 2026-11."
)

BOT_DESCRIPTION = (
    "Bot Helpdesk LPSE: setiap e-mail pengguna SPSE menjadi kartu tiket di grup helpdesk, "
    "ditangani sesuai SOP. Bot ini hanya untuk petugas; untuk bantuan, kirim e-mail ke "
    "helpdesk LPSE."
)
BOT_SHORT_DESCRIPTION = "Kartu tiket Helpdesk LPSE untuk petugas di grup helpdesk."


def welcome_member(name: str) -> str:
    return (
        f"Selamat bergabung, {escape(name or 'Bapak/Ibu')}. Setiap e-mail pengguna menjadi "
        "kartu tiket di grup ini; tekan /bantuan untuk panduan singkat."
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
        "⬆️ Ketik <b>catatan analisis</b> untuk Helpdesk LKPP (dikirim ke Helpdesk LKPP "
        "bersama e-mail asli pengguna). Pratinjau e-mail ditampilkan sebelum dikirim."
    ),
    "add_note": "📝 Ketik <b>catatan internal</b> (tidak dikirim ke pengguna).",
}
PLACEHOLDERS = {
    "request_data": "Data yang diperlukan dari pengguna…",
    "resolve": "Solusi untuk pengguna…",
    "escalate": "Catatan analisis untuk LKPP…",
    "add_note": "Catatan internal…",
}
DONE_ANSWERS = {
    "confirm_phone": "📞 Dicatat: pengguna sudah ditelepon.",
    "start_analysis": "🔎 Analisis dimulai.",
    "close": "🔒 Tiket ditutup.",
}
DONE_REACTION = "👍"
PHONE_UNANSWERED = "📵 Dicatat: telepon tidak terhubung. Coba lagi nanti."
ASK_ANSWER = "Silakan balas pesan bot dengan teksnya."
PRIORITY_MENU = "Pilih prioritas baru."
PRIORITY_CONFIRM = "Ubah ke {label}? Waktu penyelesaian dihitung ulang."
CATEGORY_MENU = "Pilih kategori."
CLOSE_QUESTION = "Tutup tiket tanpa mengirim e-mail ke pengguna?"
PROMPT_GONE = "Isian ini sudah tidak berlaku."
CANCELLED = "Dibatalkan."
NOTHING_TO_CANCEL = "Tidak ada isian yang menunggu jawaban Anda."
FULL_TEXT_SENT = "Teks lengkap ditampilkan di bawah kartu."
FULL_TEXT_FILE = "Teks lengkap dikirim sebagai berkas (terlalu panjang untuk satu pesan)."
STALE_BUTTON = "Tombol ini sudah tidak berlaku; gunakan kartu terbaru."
FAILED = "Terjadi kesalahan; silakan coba lagi."


def priority_already(label: str) -> str:
    return f"Prioritas sudah {label}."


def take_over_question(name: str) -> str:
    return f"Tiket ini ditangani {name}. Ambil alih?"


def taken(previous: str | None) -> str:
    return f"🙋 Anda mengambil alih dari {previous}." if previous else "🙋 Tiket Anda tangani."


def prompt_for_other(name: str) -> str:
    return (
        f"Isian ini untuk {escape(name)}. Tekan tombol pada kartu untuk mengetik teks Anda sendiri."
    )


def prompt_expired(minutes: int, text: str) -> str:
    return (
        f"⌛ Waktu {minutes} menit sudah habis; tekan tombolnya lagi. "
        f"Teks Anda:\n<code>{escape(text[:3000])}</code>"
    )


def refused_with_text(reason: str, text: str) -> str:
    return f"{escape(reason)}\nTeks Anda (tidak dikirim):\n<code>{escape(text[:3000])}</code>"


def full_text_message(number: str, content: str) -> str:
    return (
        f"📄 <b>Teks lengkap {escape(number)}</b>\n"
        f"<blockquote expandable>{escape(content)}</blockquote>"
    )


def mention(user_id: int, name: str) -> str:
    return f'<a href="tg://user?id={user_id}">{escape(name or "Petugas")}</a>'


def prompt_text(action: str, number: str, user_id: int, user_name: str) -> str:
    return (
        f"{mention(user_id, user_name)}, tiket <b>{escape(number)}</b>:\n{PROMPTS[action]}\n"
        "<i>Balas pesan ini dengan teksnya (15 menit), atau /batal.</i>"
    )


#: What an outgoing mail is, in the words of the officer who caused it.
MAIL_KINDS = {
    "acknowledgement": "tanda terima",
    "data_request": "permintaan data",
    "solution": "solusi",
    "escalation_notice": "pemberitahuan eskalasi",
    "lkpp_forward": "penerusan ke Helpdesk LKPP",
    "lkpp_answer_relay": "jawaban LKPP untuk pengguna",
    "attachment_too_large": "pemberitahuan lampiran terlalu besar",
    "unreadable_mail": "pemberitahuan e-mail tidak terbaca",
}


def mail_kind(kind: object) -> str:
    return MAIL_KINDS.get(str(kind), "balasan")


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
    session: Session,
    number: str,
    subject: str,
    payload: dict[str, Any],
    timezone: ZoneInfo,
    tag: str | None = None,
) -> str:
    """The short message posted in reply to a ticket's card (`tag`: its linked number)."""
    kind = payload.get("notice")
    tag = tag or f"<b>{escape(number)}</b>"
    if kind in ("user_mail", "user_data", "lkpp_reply", "reopened", "thanks"):
        sender, text = _message_excerpt(session, payload)
        heading = {
            "user_mail": "✉️ E-mail baru dari pengguna",
            "user_data": "📥 Data tambahan dari pengguna",
            "lkpp_reply": "💬 Jawaban Helpdesk LKPP",
            "reopened": "🔁 Pengguna membalas setelah selesai; tiket dibuka kembali",
            "thanks": "🙏 Pengguna berterima kasih / mengonfirmasi; tiket tetap selesai",
        }[str(kind)]
        if kind == "reopened" and payload.get("message") is None:
            heading = "🔁 Tiket dibuka kembali oleh petugas"  # from a recorded thanks
        line = f"{heading} — {tag}"
        if sender:
            line += f"\n<i>{sender}</i>: {text}"
        return line
    if kind == "bounce":
        addresses = ", ".join(escape(a) for a in payload.get("addresses") or []) or "pengguna"
        if payload.get("transient"):
            return f"⏳ E-mail ke {addresses}: server tujuan menolak sementara; dicoba lagi — {tag}"
        return (
            f"⚠️ Balasan ke {addresses} <b>belum sampai</b> ke pengguna (alamat ditolak) — "
            f"{tag}\nTelepon pengguna bila mendesak."
        )
    if kind == "mail_failed":
        return (
            f"❌ E-mail {escape(mail_kind(payload.get('kind')))} ke "
            f"{escape(str(payload.get('recipient')))} <b>gagal dikirim</b> — {tag}\n"
            "Telepon pengguna bila mendesak, dan hubungi administrator."
            + (
                "\nAlamat itu ditandai: e-mail otomatis ke sana dihentikan."
                if payload.get("flagged")
                else ""
            )
        )
    if kind == "sla_reminder":
        return sla_texts.reminder_text(payload, number, subject, timezone)
    if kind == "sla_breach":
        return sla_texts.breach_text(payload, number, subject, timezone)
    return f"ℹ️ Ada perubahan pada tiket {tag}."


def alert_text(session: Session, payload: dict[str, Any], timezone: ZoneInfo) -> str:
    kind = payload.get("alert")
    if kind in INTAKE_ALERTS:
        return intake_alert_text(session, payload, timezone)
    if kind == "imap_down":
        return (
            "🚨 <b>Kotak surat helpdesk tidak dapat dibaca</b>. E-mail baru belum masuk; "
            "layanan terus mencoba. Mohon hubungi administrator."
        )
    if kind == "imap_restored":
        return "✅ Kotak surat helpdesk dapat dibaca kembali; e-mail yang tertunda sedang diproses."
    if kind == "smtp_login":
        return (
            "🚨 <b>E-mail balasan belum dapat dikirim</b> (server e-mail menolak masuk); "
            "layanan terus mencoba. Mohon hubungi administrator."
        )
    if kind == "quarantined":
        return (
            "⚠️ Satu e-mail masuk <b>tidak dapat diproses</b> setelah 3 kali mencoba. "
            "Isinya tetap tersimpan; mohon hubungi administrator untuk memeriksanya."
        )
    if kind == "flood":
        return (
            f"⚠️ Terlalu banyak e-mail dari {escape(str(payload.get('address')))} dalam satu jam; "
            "e-mail berikutnya disimpan tanpa membuat tiket baru."
        )
    if kind == "sla_summary":
        ids = [*payload.get("overdue", []), *payload.get("due_today", [])]
        numbers = links.numbers(session, ids)
        lines = {
            ticket_id: replace(line, number_html=numbers.get(ticket_id, (None, ""))[0])
            for ticket_id, line in sla_queries.summary_lines(session, ids).items()
        }
        return sla_texts.summary_text(payload, lines, timezone)
    if kind == "sla_scan":
        entries = [*payload.get("breaches", []), *payload.get("reminders", [])]
        ids = [int(e["ticket"]) for e in entries if e.get("ticket")]
        linked = {
            ticket_id: sla_texts.ScanTicket(html, subject)
            for ticket_id, (html, subject) in links.numbers(session, ids).items()
        }
        return sla_texts.scan_text(payload, linked, timezone)
    if kind == "no_topics":
        return no_topics(str(payload.get("reason") or "no_rights"))
    return "ℹ️ Pemberitahuan layanan helpdesk."


def card_moved(link: str) -> str:
    return f"↪️ Kartu tiket ini ditampilkan ulang di bawah: {link}"


def no_topics(reason: str) -> str:
    """Topics mode cannot work: why, and who can fix it."""
    if reason == "not_forum":
        return (
            "⚠️ Satu topik per tiket diminta, tetapi grup helpdesk belum memakai Topik, "
            "sehingga kartu tiket dikirim ke grup biasa. Mohon admin grup menyalakan Topik, "
            "atau hubungi administrator."
        )
    return (
        "⚠️ Grup helpdesk memakai Topik, tetapi bot belum boleh mengelola topik, sehingga "
        "kartu tiket dikirim ke General. Mohon admin grup memberi bot hak "
        "<b>Kelola Topik</b>."
    )


QUEUE_EMPTY = "Tidak ada tiket terbuka. 🎉"


def queue_heading(page: int, pages: int) -> str:
    head = "<b>Antrian tiket terbuka</b>"
    return head + (f" · halaman {page + 1} dari {pages}" if pages > 1 else "")


def card_is_here(link: str) -> str:
    return f"Kartu tiket ada di topiknya: {link}"
