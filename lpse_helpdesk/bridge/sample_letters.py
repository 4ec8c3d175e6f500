"""Every letter rendered for one sample ticket, as docs/letters.md (kept true by a test).

Run `python -m lpse_helpdesk.bridge.sample_letters > docs/letters.md` after changing a
template; the test fails while the committed file differs from what this prints.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from lpse_helpdesk.bridge.compose import MailContext, compose
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.sop.machine import MailKind

__all__ = ["render_all", "sample_context"]

_WIB = ZoneInfo("Asia/Jakarta")
_WHEN = dt.datetime(2026, 11, 24, 9, 15, tzinfo=_WIB)
_ABOUT = {
    MailKind.ACKNOWLEDGEMENT: "Tanda terima otomatis, segera setelah e-mail pengguna masuk.",
    MailKind.DATA_REQUEST: "Permintaan data (SOP langkah 4); teks tengah ditulis petugas.",
    MailKind.SOLUTION: "Solusi (SOP langkah 9); teks tengah ditulis petugas.",
    MailKind.ESCALATION_NOTICE: "Pemberitahuan eskalasi kepada pengguna (SOP langkah 10).",
    MailKind.LKPP_FORWARD: "Penerusan ke Helpdesk LKPP (SOP langkah 10), dengan e-mail asli.",
    MailKind.LKPP_ANSWER_RELAY: "Jawaban Helpdesk LKPP diteruskan kepada pengguna.",
    MailKind.ATTACHMENT_TOO_LARGE: "Lampiran pengguna melebihi batas ukuran.",
    MailKind.UNREADABLE_MAIL: "Isi e-mail pengguna tidak dapat dibaca.",
}
_STAFF_TEXT = {
    MailKind.DATA_REQUEST: (
        "1. User ID (nama pengguna) akun SPSE yang bermasalah;\n"
        "2. Tangkapan layar (screenshot) pesan kesalahan yang muncul."
    ),
    MailKind.SOLUTION: (
        "Untuk tender 10012345000, mohon gunakan SPAMKODOK versi terbaru, hapus cache "
        "peramban, lalu unggah ulang berkas penawaran."
    ),
    MailKind.LKPP_FORWARD: (
        "Akun dan jadwal sudah kami periksa; galat terjadi di server SPSE pusat."
    ),
    MailKind.LKPP_ANSWER_RELAY: "Apabila masih gagal, silakan menghubungi kami kembali.",
}


def sample_context(kind: MailKind) -> MailContext:
    return MailContext(
        ticket_number="LPSE-2026-00042",
        requester_name="PT. MAJU JAYA" if kind is MailKind.SOLUTION else "BUDI SANTOSO",
        requester_address="budi@majujaya.co.id",
        subject="Gagal upload penawaran",
        problem_text="Selamat siang, kami gagal unggah penawaran tender 10012345000.",
        lpse_name="LPSE Kabupaten Contoh",
        helpdesk_name="Helpdesk LPSE Kabupaten Contoh",
        helpdesk_address="helpdesk@lpse.contoh.go.id",
        received_at_local="Selasa, 24 November 2026 pukul 09.15 WIB",
        category_label="Gagal unggah dokumen penawaran",
        priority_label="Tinggi",
        tender_codes=("10012345000",),
        staff_text=_STAFF_TEXT.get(kind),
        staff_name="Rina Lestari, S.Kom.",
        staff_position="Petugas Helpdesk LPSE",
        requester_organization="PT Maju Jaya",
        requester_phone="0812-3456-7890" if kind is MailKind.DATA_REQUEST else None,
        helpdesk_phone="(0321) 123456",
        helpdesk_hours="Senin–Kamis 07.30–16.00, Jumat 07.30–16.30 WIB",
        application="SPSE 4.5",
        attachment_names=("bukti-galat.png",),
        lkpp_answer_text="Silakan gunakan SPAMKODOK versi 4.3 lalu unggah ulang.",
        attachment_limit="25 MB",
        oversized_attachments=("dokumen-penawaran.zip",),
        escalated_at_local="Selasa, 24 November 2026 pukul 10.05 WIB",
        service_times=(
            ("tinggi 4 jam kerja", "menengah 1 hari kerja", "rendah 3 hari kerja")
            if kind is MailKind.ACKNOWLEDGEMENT
            else ()
        ),
    )


def render_all(renderer: Renderer | None = None) -> str:
    renderer = renderer or Renderer()
    parts = [
        "# Surat yang dikirim helpdesk / The letters the helpdesk sends",
        "",
        "Dibuat oleh `python -m lpse_helpdesk.bridge.sample_letters` dari templat di",
        "`lpse_helpdesk/bridge/templates/` untuk satu tiket contoh (uji `test_letters.py`",
        "menjaga berkas ini tetap sama dengan templatnya). Teks petugas di tengah surat",
        "berasal dari Telegram; salam pembuka, penutup, dan tanda tangan ditambahkan templat.",
        "",
    ]
    for kind in MailKind:
        message = compose(
            kind,
            sample_context(kind),
            to="helpdesk@lkpp.go.id" if kind is MailKind.LKPP_FORWARD else "budi@majujaya.co.id",
            message_id="<contoh@lpse.contoh.go.id>",
            in_reply_to=None,
            references=[],
            date=_WHEN,
            renderer=renderer,
        )
        body = message.get_body(preferencelist=("plain",))
        text = str(body.get_content() if body is not None else "").replace("\r\n", "\n")
        parts += [
            f"## `{kind.value}`",
            "",
            _ABOUT[kind],
            "",
            f"**Subjek:** {message['Subject']}",
            "",
            "```text",
            text.rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(parts)


def main() -> None:
    print(render_all(), end="")


if __name__ == "__main__":
    main()
