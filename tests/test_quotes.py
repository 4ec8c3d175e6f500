from __future__ import annotations

import pytest

from lpse_helpdesk.bridge.quotes import strip_quoted

NEW = "Berikut data yang diminta: NPWP 01.234.567.8-901.000."


def _check(text: str, *gone: str) -> str:
    result = strip_quoted(text)
    assert NEW in result
    for part in gone:
        assert part not in result
    return result


@pytest.mark.parametrize(
    "attribution",
    [
        "Pada tanggal Sen, 4 Mei 2026 pukul 10.15 Helpdesk LPSE <helpdesk@lpse.go.id> menulis:",
        "Pada Sen, 4 Mei 2026 10:15, Helpdesk LPSE <helpdesk@lpse.go.id> menulis:",
        "Pada Senin, 04 Mei 2026 10.15.30 WIB, Helpdesk LPSE <helpdesk@lpse.go.id> menulis:",
        "pada tanggal 4 Mei 2026 10.15 Helpdesk menulis :",
        "On Mon, May 4, 2026 at 10:15 AM Helpdesk LPSE <helpdesk@lpse.go.id> wrote:",
        "On 4 May 2026, at 10:15, Helpdesk LPSE <helpdesk@lpse.go.id> wrote:",
    ],
)
@pytest.mark.parametrize("quoted", [True, False])
def test_reply_attribution_cuts_history(attribution: str, quoted: bool) -> None:
    old = "Mohon kirim NPWP perusahaan Anda."
    body = f"> {old}\n> Salam" if quoted else f"{old}\nSalam"
    _check(f"{NEW}\n\n{attribution}\n\n{body}\n", old, "menulis", "wrote")


@pytest.mark.parametrize(
    "attribution",
    [
        "Pada tanggal Sen, 4 Mei 2026 pukul 10.15 Helpdesk LPSE <\nhelpdesk@lpse.go.id> menulis:",
        "Pada tanggal Sen, 4 Mei 2026 pukul 10.15\nHelpdesk LPSE <helpdesk@lpse.go.id>\nmenulis:",
        "On Mon, May 4, 2026 at 10:15 AM Helpdesk LPSE <\nhelpdesk@lpse.go.id> wrote:",
    ],
)
def test_wrapped_attribution(attribution: str) -> None:
    _check(f"{NEW}\n\n{attribution}\n\nKirim NPWP.\n", "Kirim NPWP", "menulis", "wrote")


def test_inline_answers_between_quotes_survive() -> None:
    text = (
        "On Mon, May 4, 2026 at 10:15 AM Helpdesk <h@x.go.id> wrote:\n"
        "> Apa kode tendernya?\n"
        "10012345000\n"
        "> Kapan batas waktunya?\n"
        "Hari ini jam 14.00\n"
    )
    result = strip_quoted(text)
    assert result == "10012345000\nHari ini jam 14.00"


def test_quoted_lines_are_dropped() -> None:
    assert strip_quoted(f"{NEW}\n> lama\n>> lebih lama\n") == NEW


@pytest.mark.parametrize(
    "block",
    [
        "Dari: Helpdesk LPSE <h@x.go.id>\nDikirim: Senin, 04 Mei 2026 10.30\n"
        "Kepada: Budi <b@y.co.id>\nSubjek: Re: Gagal upload",
        "From: Helpdesk LPSE <h@x.go.id>\nSent: Monday, May 4, 2026 10:30 AM\n"
        "To: Budi <b@y.co.id>\nSubject: RE: Gagal upload",
        "*From:* Helpdesk LPSE <h@x.go.id>\n*Sent:* Monday, May 4, 2026 10:30 AM\n"
        "*To:* Budi\n*Subject:* RE: Gagal upload",
        "Dari: Helpdesk LPSE <h@x.go.id>\nTanggal: Senin, 4 Mei 2026\nPerihal: Gagal upload",
        "________________________________\nFrom: Helpdesk <h@x.go.id>\n"
        "Sent: Monday\nTo: Budi\nSubject: RE: x",
    ],
)
def test_outlook_header_block_cuts_history(block: str) -> None:
    result = _check(f"{NEW}\n\n{block}\n\nMohon kirim NPWP.\n", "Mohon kirim", "_____")
    assert result == NEW


def test_single_from_line_in_user_text_is_kept() -> None:
    text = f"{NEW}\nDari: bagian keuangan kami sudah dikirim.\nTerima kasih."
    assert strip_quoted(text) == text


@pytest.mark.parametrize(
    "separator",
    [
        "-----Pesan Asli-----",
        "-----Original Message-----",
        "----- Original Message -----",
        "-------- Pesan Asli --------",
    ],
)
def test_original_message_separator(separator: str) -> None:
    _check(f"{NEW}\n\n{separator}\nFrom: x\nlama\n", "lama", separator)


@pytest.mark.parametrize(
    "footer",
    [
        "Dikirim dari iPhone saya",
        "Sent from my iPhone",
        "Sent from my iPad",
        "Dikirim dari Yahoo Mail di Android",
        "Sent from Yahoo Mail on Android",
        "Sent from Outlook for Android",
        "Get Outlook for Android",
        "Get Outlook for Android<https://aka.ms/AAb9ysg>",
        "Get Outlook for iOS",
        "Dapatkan Outlook untuk Android",
        "Sent from Mail for Windows",
        "Dikirim dari ponsel cerdas Samsung Galaxy saya.",
        "Sent from my Samsung Galaxy smartphone.",
    ],
)
def test_client_footers_are_dropped(footer: str) -> None:
    assert strip_quoted(f"{NEW}\n\n{footer}\n") == NEW


def test_user_sentence_starting_like_a_footer_is_kept() -> None:
    text = f"{NEW}\nDikirim dari kantor cabang kami kemarin sore."
    assert strip_quoted(text) == text


def test_gmail_forward_keeps_the_forwarded_content() -> None:
    text = (
        "Mohon bantuan.\n\n"
        "---------- Pesan terusan ---------\n"
        "Dari: SPSE <noreply@spse.go.id>\n"
        "Date: Sen, 4 Mei 2026\n"
        "Subject: Gagal kirim\n"
        "To: <b@y.co.id>\n\n"
        "Dokumen penawaran gagal dikirim.\n\n"
        "On Sun, May 3, 2026 Someone <s@x.id> wrote:\n"
        "history\n"
    )
    result = strip_quoted(text)
    assert "Mohon bantuan." in result
    assert "Dokumen penawaran gagal dikirim." in result
    assert "Dari: SPSE" in result
    assert "history" not in result


@pytest.mark.parametrize(
    "marker",
    [
        "---------- Forwarded message ---------",
        "Begin forwarded message:",
        "Mulai pesan yang diteruskan:",
    ],
)
def test_other_forward_markers(marker: str) -> None:
    text = f"Lihat.\n\n{marker}\nFrom: A <a@x.id>\nDate: today\nSubject: s\nTo: b\n\nIsi terusan."
    assert "Isi terusan." in strip_quoted(text)


def test_outlook_forward_is_kept_only_when_flagged() -> None:
    text = (
        "Mohon ditindaklanjuti.\n\n"
        "________________________________\n"
        "From: Eka <eka@x.id>\nSent: Monday\nTo: Kabag\nSubject: Akun terkunci\n\n"
        "Akun kami terkunci.\n\n"
        "-----Original Message-----\n"
        "From: Sistem\nlama\n"
    )
    assert strip_quoted(text) == "Mohon ditindaklanjuti."
    forwarded = strip_quoted(text, forwarded=True)
    assert "Akun kami terkunci." in forwarded
    assert "lama" not in forwarded


def test_forward_without_own_text() -> None:
    text = "-----Original Message-----\nFrom: A\nSent: x\nTo: y\nSubject: z\n\nIsi."
    assert "Isi." in strip_quoted(text, forwarded=True)


@pytest.mark.parametrize(
    "text",
    [
        "> semua dikutip\n> saja",
        "Pada tanggal Sen, 4 Mei 2026 Helpdesk menulis:\nisi lama",
        "Dikirim dari iPhone saya",
        "-----Original Message-----\nlama",
    ],
)
def test_never_empty(text: str) -> None:
    assert strip_quoted(text) == text


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_blank_input_is_returned(text: str) -> None:
    assert strip_quoted(text) == text


def test_line_ends_and_blank_lines_are_tidied() -> None:
    assert strip_quoted("Satu\r\n\r\n\r\n\r\nDua  \r\n") == "Satu\n\nDua"


def test_signature_is_kept() -> None:
    text = f"{NEW}\n\n-- \nBudi\nHP 0812-3456-7890"
    assert "0812-3456-7890" in strip_quoted(text)
