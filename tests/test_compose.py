"""Composing the SOP's mails: render each MailKind, serialise, parse back with `email`."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from lpse_helpdesk.bridge.compose import (
    AUTOMATIC_KINDS,
    MAX_REFERENCES,
    TICKET_HEADER,
    MailContext,
    compose,
    make_message_id,
    normalize_message_id,
    thread_references,
)
from lpse_helpdesk.bridge.templating import Renderer, text_to_html
from lpse_helpdesk.sop.machine import MailKind

NUMBER = "LPSE-2026-00042"
TAG = f"[{NUMBER}]"
HELPDESK = "helpdesk@lpse.contoh.go.id"
OUTLOOK_ID = (
    "<SG2PR06MB1234567890ABCDEF1234567890ABCDEF1234@SG2PR06MB1234.apcprd06.prod.outlook.com>"
)
WIB = timezone(timedelta(hours=7))
DATE = datetime(2026, 5, 4, 9, 20, tzinfo=WIB)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4


def _context(**changes: object) -> MailContext:
    ctx = MailContext(
        ticket_number=NUMBER,
        requester_name="Siti Nurhaliza Ñoño",
        requester_address="siti@cv-maju.co.id",
        subject="Gagal unggah dokumen penawaran — mendesak",
        problem_text="Saat unggah penawaran muncul error 500.",
        lpse_name="LPSE Kabupaten Contoh",
        helpdesk_name="Helpdesk LPSE Kabupaten Contoh",
        helpdesk_address=HELPDESK,
        received_at_local="Senin, 4 Mei 2026 pukul 09.15 WIB",
        category_label="Gagal unggah dokumen penawaran",
        priority_label="Tinggi",
        tender_codes=("10012345000", "10012346000"),
        staff_text="Mohon kirim tangkapan layar pesan error.\nSertakan juga jam kejadian.",
        staff_name="Sari",
        requester_organization="CV Maju Jaya",
        application="SPSE 4.5",
        attachment_names=("bukti.pdf",),
        lkpp_answer_text="Silakan bersihkan cache peramban lalu unggah ulang.",
        attachment_limit="10 MB",
        oversized_attachments=("scan-dokumen.zip",),
    )
    return dataclasses.replace(ctx, **changes)  # type: ignore[arg-type]


def _original() -> bytes:
    mail = EmailMessage()
    mail["From"] = "Siti Nurhaliza <siti@cv-maju.co.id>"
    mail["To"] = HELPDESK
    mail["Subject"] = "Gagal unggah dokumen penawaran — mendesak"
    mail["Message-ID"] = OUTLOOK_ID
    mail.set_content("Selamat pagi,\nsaya gagal mengunggah penawaran.\n")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="bukti.pdf")
    return mail.as_bytes(policy=email.policy.SMTP)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _compose(
    kind: MailKind,
    renderer: Renderer,
    ctx: MailContext | None = None,
    *,
    references: tuple[str, ...] = ("<root@example.com>", OUTLOOK_ID),
    in_reply_to: str | None = OUTLOOK_ID,
    message_id: str = "<lpse.abc123@lpse.contoh.go.id>",
    original: bytes | None = None,
) -> tuple[bytes, EmailMessage]:
    """The mail as bytes on the wire and as parsed back by a receiver."""
    if original is None and kind is MailKind.LKPP_FORWARD:
        original = _original()
    message = compose(
        kind,
        ctx or _context(),
        to="siti@cv-maju.co.id",
        to_name="Siti Nurhaliza Ñoño",
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        date=DATE,
        renderer=renderer,
        original=original,
    )
    raw = message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def _bodies(parsed: EmailMessage) -> tuple[str, str]:
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    return _lf(plain.get_content()), _lf(html.get_content())


def _parts(message: EmailMessage) -> list[EmailMessage]:
    parts = message.get_payload()
    assert isinstance(parts, list)
    assert all(isinstance(part, EmailMessage) for part in parts)
    return [part for part in parts if isinstance(part, EmailMessage)]


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


# --- every kind -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MailKind))
def test_headers_of_every_kind(kind: MailKind, renderer: Renderer) -> None:
    _, parsed = _compose(kind, renderer)
    sender = parsed["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Helpdesk LPSE Kabupaten Contoh", HELPDESK)
    recipient = parsed["To"].addresses[0]
    assert (recipient.display_name, recipient.addr_spec) == (
        "Siti Nurhaliza Ñoño",
        "siti@cv-maju.co.id",
    )
    assert parsed["Message-ID"] == "<lpse.abc123@lpse.contoh.go.id>"
    assert email.utils.parsedate_to_datetime(parsed["Date"]) == DATE
    assert parsed[TICKET_HEADER] == NUMBER
    assert parsed["In-Reply-To"] == OUTLOOK_ID
    assert str(parsed["References"]).split() == ["<root@example.com>", OUTLOOK_ID]
    assert parsed["Subject"].count(TAG) == 1
    assert parsed["Content-Language"] == "id"


@pytest.mark.parametrize("kind", list(MailKind))
def test_both_parts_in_utf8(kind: MailKind, renderer: Renderer) -> None:
    _, parsed = _compose(kind, renderer)
    alternative = parsed if kind is not MailKind.LKPP_FORWARD else _parts(parsed)[0]
    assert alternative.get_content_type() == "multipart/alternative"
    parts = _parts(alternative)
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    text, html = _bodies(parsed)
    assert NUMBER in text and NUMBER in html
    assert "Hormat kami,\n" in text
    assert "Helpdesk LPSE Kabupaten Contoh" in text
    assert text.startswith("Yth. ")
    assert html.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("kind", list(MailKind))
def test_auto_submitted_only_on_automatic_mail(kind: MailKind, renderer: Renderer) -> None:
    _, parsed = _compose(kind, renderer)
    if kind in AUTOMATIC_KINDS:
        assert parsed["Auto-Submitted"] == "auto-replied"
        assert parsed["X-Auto-Response-Suppress"] == "All"
    else:
        assert parsed["Auto-Submitted"] is None
        assert parsed["X-Auto-Response-Suppress"] is None


def test_automatic_kinds_are_the_ones_nobody_writes() -> None:
    assert {
        MailKind.ACKNOWLEDGEMENT,
        MailKind.ESCALATION_NOTICE,
        MailKind.ATTACHMENT_TOO_LARGE,
        MailKind.UNREADABLE_MAIL,
    } == AUTOMATIC_KINDS


@pytest.mark.parametrize("kind", [k for k in MailKind if k is not MailKind.LKPP_FORWARD])
def test_headers_and_body_are_7bit_ascii_on_the_wire(kind: MailKind, renderer: Renderer) -> None:
    raw, parsed = _compose(kind, renderer)
    raw.decode("ascii")  # non-ASCII names and subjects are encoded (RFC 2047, QP)
    assert "Ñoño" in str(parsed["To"])
    assert "— mendesak" in parsed["Subject"]
    text, _ = _bodies(parsed)
    assert "Yth. Bapak/Ibu Siti Nurhaliza Ñoño," in text


# --- subjects -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original_subject", "expected"),
    [
        ("Lupa password", f"Re: {TAG} Lupa password"),
        ("RE: Lupa password", f"Re: {TAG} Lupa password"),
        (f"Re: {TAG} Lupa password", f"Re: {TAG} Lupa password"),
        (f"Re: Lupa password {TAG}", f"Re: Lupa password {TAG}"),
        ("Bls: [ lpse-2026-00042 ] Lupa password", "Re: [ lpse-2026-00042 ] Lupa password"),
        ("", f"Re: {TAG} (tanpa subjek)"),
        ("  Lupa\n   password ", f"Re: {TAG} Lupa password"),
    ],
)
def test_user_subject_has_the_tag_once(
    original_subject: str, expected: str, renderer: Renderer
) -> None:
    _, parsed = _compose(MailKind.SOLUTION, renderer, _context(subject=original_subject))
    assert parsed["Subject"] == expected


def test_several_reply_prefixes_are_stripped(renderer: Renderer) -> None:
    _, parsed = _compose(
        MailKind.SOLUTION, renderer, _context(subject="Re: Fwd: Bls: Lupa password")
    )
    assert parsed["Subject"] == f"Re: {TAG} Lupa password"


def test_lkpp_forward_subject(renderer: Renderer) -> None:
    _, parsed = _compose(MailKind.LKPP_FORWARD, renderer, _context(subject="Fwd: Error 500"))
    assert parsed["Subject"] == f"Eskalasi LPSE Kabupaten Contoh: {TAG} Error 500"


def test_body_quotes_the_subject_without_prefixes_or_tag(renderer: Renderer) -> None:
    ctx = _context(subject=f"Re: {TAG} Lupa password")
    text, _ = _bodies(_compose(MailKind.ACKNOWLEDGEMENT, renderer, ctx)[1])
    assert 'dengan subjek "Lupa password"' in text


# --- threading headers ----------------------------------------------------------------------


def test_long_message_ids_are_folded_between_ids_never_encoded(renderer: Renderer) -> None:
    refs = tuple(f"<{'x' * 60}.{i}@mail.example.com>" for i in range(8))
    raw, parsed = _compose(MailKind.SOLUTION, renderer, references=refs)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    threading = head[head.index("In-Reply-To:") : head.index(f"{TICKET_HEADER}:")]
    assert "=?" not in threading
    lines = threading.split("\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert len(lines) > 3  # folded, one id or more per line
    assert OUTLOOK_ID in head
    assert str(parsed["References"]).split() == [*refs, OUTLOOK_ID]
    assert parsed["In-Reply-To"] == OUTLOOK_ID


def test_references_deduplicated_parent_last_and_capped() -> None:
    ids = [f"<m{i}@example.com>" for i in range(40)]
    chain = thread_references([*ids[:5], ids[2], "m7@example.com", "not an id", ""], ids[1])
    assert chain == [ids[0], ids[2], ids[3], ids[4], ids[7], ids[1]]
    capped = thread_references(ids, "<parent@example.com>")
    assert len(capped) == MAX_REFERENCES
    assert capped[0] == ids[0]
    assert capped[-1] == "<parent@example.com>"
    assert capped[1:-1] == ids[-(MAX_REFERENCES - 2) :]


def test_first_mail_of_a_thread_has_no_threading_headers(renderer: Renderer) -> None:
    _, parsed = _compose(MailKind.ACKNOWLEDGEMENT, renderer, references=(), in_reply_to=None)
    assert parsed["In-Reply-To"] is None
    assert parsed["References"] is None


def test_normalize_message_id() -> None:
    assert normalize_message_id("  abc@example.com ") == "<abc@example.com>"
    assert normalize_message_id("<abc@example.com>") == "<abc@example.com>"
    assert normalize_message_id("<a b@example.com>") is None
    assert normalize_message_id("<abc>") is None
    assert normalize_message_id("<abć@example.com>") is None


def test_make_message_id() -> None:
    first, second = make_message_id("LPSE.Contoh.go.id"), make_message_id("lpse.contoh.go.id")
    assert first != second
    assert first.startswith("<") and first.endswith("@lpse.contoh.go.id>")
    assert normalize_message_id(first) == first
    assert make_message_id("lpse.bandaaceh.go.id").endswith("@lpse.bandaaceh.go.id>")
    assert make_message_id("bücher.example").endswith("@xn--bcher-kva.example>")
    for bad in ("", "helpdesk@lpse.go.id", "lpse go.id", "-lpse.go.id"):
        with pytest.raises(ValueError):
            make_message_id(bad)


# --- the LKPP forward -----------------------------------------------------------------------


def test_lkpp_forward_attaches_the_original_with_its_attachment(renderer: Renderer) -> None:
    _, parsed = _compose(MailKind.LKPP_FORWARD, renderer)
    assert parsed.get_content_type() == "multipart/mixed"
    parts = _parts(parsed)
    assert [part.get_content_type() for part in parts] == [
        "multipart/alternative",
        "message/rfc822",
    ]
    attached = parts[1]
    assert attached.get_content_disposition() == "attachment"
    assert attached.get_filename() == f"email-asli-{NUMBER}.eml"
    inner = attached.get_content()
    assert isinstance(inner, EmailMessage)
    assert inner["Subject"] == "Gagal unggah dokumen penawaran — mendesak"
    assert inner["Message-ID"] == OUTLOOK_ID
    [pdf] = list(inner.iter_attachments())
    assert pdf.get_filename() == "bukti.pdf"
    assert pdf.get_content() == PDF


def test_lkpp_forward_summary(renderer: Renderer) -> None:
    text, html = _bodies(_compose(MailKind.LKPP_FORWARD, renderer)[1])
    assert text.startswith("Yth. Helpdesk LKPP,")
    width = len("Lampiran pengguna")
    for label, value in (
        ("LPSE", "LPSE Kabupaten Contoh"),
        ("Nomor tiket", NUMBER),
        ("Aplikasi", "SPSE 4.5"),
        ("Kategori", "Gagal unggah dokumen penawaran"),
        ("Prioritas", "Tinggi"),
        ("Kode tender", "10012345000, 10012346000"),
        ("Nama pengguna", "Siti Nurhaliza Ñoño"),
        ("Instansi", "CV Maju Jaya"),
        ("E-mail pengguna", "siti@cv-maju.co.id"),
        ("Lampiran pengguna", "bukti.pdf"),
    ):
        assert f"{label.ljust(width)} : {value}" in text  # aligned in the plain text
        assert f">{label}</td><td>: {value}</td>" in html  # a table in the HTML part
    assert "Saat unggah penawaran muncul error 500." in text
    assert "Mohon kirim tangkapan layar pesan error." in text
    assert "Telepon pengguna" not in text  # not shared unless given
    assert "Siti Nurhaliza Ñoño" in html
    assert "Demikian kami sampaikan." in text
    assert "kata sandi" not in text  # the password line is for users, not for LKPP


def test_lkpp_forward_without_optional_facts(renderer: Renderer) -> None:
    ctx = _context(category_label=None, priority_label=None, tender_codes=(), application=None)
    text, _ = _bodies(_compose(MailKind.LKPP_FORWARD, renderer, ctx)[1])
    for label in ("Kode tender", "Prioritas", "Kategori", "Aplikasi"):
        assert f"{label} " not in text  # left out, never "-"
    assert " : -" not in text


def test_lkpp_forward_without_original_is_single_part(renderer: Renderer) -> None:
    message = compose(
        MailKind.LKPP_FORWARD,
        _context(),
        to="helpdesk@lkpp.go.id",
        message_id="<x@lpse.contoh.go.id>",
        in_reply_to=None,
        references=(),
        date=DATE,
        renderer=renderer,
    )
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == "helpdesk@lkpp.go.id"


# --- texts ----------------------------------------------------------------------------------


def test_staff_text_is_escaped_in_html(renderer: Renderer) -> None:
    ctx = _context(staff_text='Coba ini: <script>alert("x")</script> & <b>tebal</b>')
    text, html = _bodies(_compose(MailKind.SOLUTION, renderer, ctx)[1])
    assert '<script>alert("x")</script>' in text
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in html


def test_text_to_html_paragraphs_and_line_breaks() -> None:
    html = text_to_html("Satu\r\nDua\n\n\nTiga <i>\n", title="A & B")
    assert "<title>A &amp; B</title>" in html
    assert "<p>Satu<br>\nDua</p>\n<p>Tiga &lt;i&gt;</p>" in html


def test_data_request_asks_for_a_reply_and_mentions_the_phone(renderer: Renderer) -> None:
    text, _ = _bodies(_compose(MailKind.DATA_REQUEST, renderer)[1])
    assert "Mohon kirim tangkapan layar pesan error.\nSertakan juga jam kejadian." in text
    assert "balas e-mail ini" in text.lower()
    assert "telepon" in text
    assert "Hormat kami,\nSari\nHelpdesk LPSE Kabupaten Contoh" in text


def test_acknowledgement_explains_the_next_steps(renderer: Renderer) -> None:
    text, _ = _bodies(_compose(MailKind.ACKNOWLEDGEMENT, renderer)[1])
    assert "prioritas" in text
    assert "data tambahan" in text
    assert "Helpdesk LKPP" in text
    assert f"nomor tiket {TAG} pada subjek" in text
    assert "Sari" not in text  # automatic mails are not signed by a person
    assert "dikirim secara otomatis" in text


def test_escalation_notice_says_lkpp_handles_it(renderer: Renderer) -> None:
    text, _ = _bodies(_compose(MailKind.ESCALATION_NOTICE, renderer)[1])
    assert "telah kami teruskan ke Helpdesk LKPP" in text
    assert "sedang ditangani" not in text  # forwarded, not (yet) being handled
    assert "Langkah selanjutnya:" in text and "segera meneruskannya" in text
    assert "Mohon kirim tangkapan layar" not in text  # the note for LKPP stays internal


def test_relay_with_and_without_staff_text(renderer: Renderer) -> None:
    text, _ = _bodies(_compose(MailKind.LKPP_ANSWER_RELAY, renderer)[1])
    assert "Silakan bersihkan cache peramban lalu unggah ulang." in text
    assert "Tambahan dari kami:\n\nMohon kirim tangkapan layar" in text
    bare, _ = _bodies(_compose(MailKind.LKPP_ANSWER_RELAY, renderer, _context(staff_text=None))[1])
    assert "Tambahan dari kami" not in bare


def test_attachment_too_large_lists_the_files(renderer: Renderer) -> None:
    text, _ = _bodies(_compose(MailKind.ATTACHMENT_TOO_LARGE, renderer)[1])
    assert "melebihi batas 10 MB" in text
    assert "- scan-dokumen.zip" in text


def test_empty_requester_name_is_greeted_politely(renderer: Renderer) -> None:
    text, _ = _bodies(_compose(MailKind.UNREADABLE_MAIL, renderer, _context(requester_name=""))[1])
    assert text.startswith("Yth. Bapak/Ibu Pengguna SPSE,")


# --- the operator's templates ---------------------------------------------------------------


def test_template_dir_takes_precedence(tmp_path: Path) -> None:
    (tmp_path / "solution.txt").write_text(
        "Kepada {{ requester_name }}: {{ staff_text }} ({{ ticket_tag }})\n", encoding="utf-8"
    )
    renderer = Renderer(tmp_path)
    text, _ = _bodies(_compose(MailKind.SOLUTION, renderer, _context(staff_text="Sudah."))[1])
    assert text == f"Kepada Siti Nurhaliza Ñoño: Sudah. ({TAG})\n"
    other, _ = _bodies(_compose(MailKind.ACKNOWLEDGEMENT, renderer)[1])
    assert other.startswith("Yth. Bapak/Ibu")  # the packaged template


def test_template_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        Renderer(tmp_path / "missing")


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [MailKind.DATA_REQUEST, MailKind.SOLUTION, MailKind.LKPP_FORWARD])
def test_person_written_mail_needs_staff_text(kind: MailKind, renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="staff text"):
        _compose(kind, renderer, _context(staff_text="  \n"))


def test_relay_needs_lkpp_answer(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="LKPP"):
        _compose(MailKind.LKPP_ANSWER_RELAY, renderer, _context(lkpp_answer_text=None))


def test_original_only_for_the_forward(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="original"):
        _compose(MailKind.SOLUTION, renderer, original=_original())


def test_bad_message_id_and_naive_date(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        _compose(MailKind.SOLUTION, renderer, message_id="no id here")
    with pytest.raises(ValueError, match="timezone"):
        compose(
            MailKind.SOLUTION,
            _context(),
            to="siti@cv-maju.co.id",
            message_id="<x@lpse.contoh.go.id>",
            in_reply_to=None,
            references=(),
            date=datetime(2026, 5, 4, 9, 20),
            renderer=renderer,
        )


def test_names_cannot_inject_headers(renderer: Renderer) -> None:
    ctx = _context(helpdesk_name="Helpdesk\r\nBcc: spy@example.com")
    message = compose(
        MailKind.SOLUTION,
        ctx,
        to="siti@cv-maju.co.id",
        to_name="Siti\nBcc: spy@example.com",
        message_id="<x@lpse.contoh.go.id>",
        in_reply_to=None,
        references=(),
        date=DATE,
        renderer=renderer,
    )
    raw = message.as_bytes(policy=email.policy.SMTP)
    assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n", 1)[0]
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed["From"].addresses[0].display_name == "Helpdesk Bcc: spy@example.com"


@pytest.mark.parametrize("to", ["", "siti", "siti@", "si ti@example.com"])
def test_bad_recipient_address(to: str, renderer: Renderer) -> None:
    with pytest.raises(ValueError):
        compose(
            MailKind.SOLUTION,
            _context(),
            to=to,
            message_id="<x@lpse.contoh.go.id>",
            in_reply_to=None,
            references=(),
            date=DATE,
            renderer=renderer,
        )


@pytest.mark.parametrize("number", ["", "LPSE-2026-00042\r\nX: y", "LPSE 2026"])
def test_bad_ticket_number(number: str, renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="ticket number"):
        _compose(MailKind.SOLUTION, renderer, _context(ticket_number=number))


def test_utc_date_is_kept(renderer: Renderer) -> None:
    message = compose(
        MailKind.ACKNOWLEDGEMENT,
        _context(),
        to="siti@cv-maju.co.id",
        message_id="<x@lpse.contoh.go.id>",
        in_reply_to=None,
        references=(),
        date=datetime(2026, 5, 4, 2, 20, tzinfo=UTC),
        renderer=renderer,
    )
    assert email.utils.parsedate_to_datetime(message["Date"]) == DATE
