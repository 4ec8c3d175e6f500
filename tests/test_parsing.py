from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

import pytest

from lpse_helpdesk.bridge.parsing import (
    AttachmentInfo,
    ParsedMail,
    decode_bytes,
    decode_header_value,
    is_machine_address,
    normalise_message_id,
    parse_mail,
    parse_message_ids,
    synthetic_message_id,
)
from tests.corpus import build

SYNTHETIC = re.compile(r"^sha256-[0-9a-f]{32}@lpse-helpdesk\.invalid$")


def mail(*headers: str, body: str = "Halo.\n", content_type: str | None = None) -> bytes:
    lines = list(headers)
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


BASIC = (
    "From: Budi Santoso <Budi.Santoso@Example.CO.ID>",
    "To: Helpdesk <helpdesk@lpse.go.id>, Other <other@x.id>",
    "Cc: atasan@example.co.id",
    "Subject: Gagal upload",
    "Date: Mon, 04 May 2026 09:12:31 +0700",
    "Message-ID: <abc.123@Example.CO.ID>",
)


def test_basic_fields() -> None:
    parsed = parse_mail(mail(*BASIC))
    assert parsed.message_id == "abc.123@Example.CO.ID"
    assert parsed.has_message_id
    assert parsed.from_name == "Budi Santoso"
    assert parsed.from_address == "budi.santoso@example.co.id"
    assert parsed.requester_address == "budi.santoso@example.co.id"
    assert parsed.requester_name == "Budi Santoso"
    assert parsed.reply_to_address is None
    assert parsed.to == ("helpdesk@lpse.go.id", "other@x.id")
    assert parsed.cc == ("atasan@example.co.id",)
    assert parsed.subject == "Gagal upload"
    assert parsed.date == dt.datetime(2026, 5, 4, 2, 12, 31, tzinfo=dt.UTC)
    assert parsed.text == "Halo."
    assert parsed.stripped_text == "Halo."
    assert parsed.html is None
    assert parsed.attachments == ()
    assert parsed.defects == ()
    assert parsed.auto_submitted is None
    assert parsed.header("subject") == "Gagal upload"
    assert parsed.header("X-Nothing") is None
    assert parsed.content_type == "text/plain"


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"\x00\x01\x02\xff\xfe",
        b"garbage without headers",
        b"From:\r\nSubject:\r\n\r\n",
        b":\r\n:\r\n\r\n",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n",
        b'Content-Type: text/plain; charset="\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!',
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: x\r\n",
        b"Subject: =?utf-8?b?####?= =?utf-8?q?=ZZ?=\r\n\r\n",
        b'From: "unterminated <a@b\r\nTo: <<<>>>@@@\r\nDate: Mon, 99 Foo 99999\r\n\r\n',
        b"Message-ID: <>\r\nReferences: <<>> <\r\nIn-Reply-To: ,,,\r\n\r\n",
        b"Content-Type: text/plain; charset*=utf-8''%ZZ\r\n\r\nx",
        b"Content-Disposition: attachment; filename*0*=utf-8''a; filename*1=b\r\n\r\nx",
    ],
)
def test_never_raises_on_odd_input(raw: bytes) -> None:
    parsed = parse_mail(raw)
    assert isinstance(parsed, ParsedMail)
    assert parsed.message_id
    assert parsed.size == len(raw)


def test_never_raises_on_random_bytes() -> None:
    rng = random.Random(20260504)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
        assert isinstance(parse_mail(raw), ParsedMail)


def test_never_raises_on_mutated_corpus() -> None:
    rng = random.Random(42)
    for item in build():
        raw = bytearray(item.raw)
        for _ in range(3):
            cut = rng.randrange(len(raw) + 1)
            assert isinstance(parse_mail(bytes(raw[:cut])), ParsedMail)
            mutated = bytearray(raw)
            for _ in range(20):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            assert isinstance(parse_mail(bytes(mutated)), ParsedMail)


def test_deeply_nested_multipart() -> None:
    depth = 200
    head = b"Subject: deep\r\n"
    body = b""
    for level in range(depth):
        body += f"Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n".encode()
    body += b"Content-Type: text/plain\r\n\r\ninner\r\n"
    for level in reversed(range(depth)):
        body += f"--b{level}--\r\n".encode()
    parsed = parse_mail(head + body)
    assert isinstance(parsed, ParsedMail)


def test_many_parts_are_capped() -> None:
    parts = b"".join(b"--x\r\nContent-Type: text/plain\r\n\r\np\r\n" for _ in range(600))
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + parts + b"--x--\r\n"
    parsed = parse_mail(raw)
    assert any("too many" in defect for defect in parsed.defects)


def test_falls_back_to_compat32_then_to_a_minimal_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    from lpse_helpdesk.bridge import parsing

    real_walk = parsing._walk
    calls: list[int] = []

    def failing_once(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise IndexError("header parser bug")
        real_walk(*args)

    monkeypatch.setattr(parsing, "_walk", failing_once)
    fallback = parse_mail(mail(*BASIC))
    assert fallback.text == "Halo."
    assert fallback.from_address == "budi.santoso@example.co.id"
    assert fallback.defects[-1] == "read with the compat32 policy after IndexError"

    def always_failing(*args: Any) -> None:
        raise RecursionError

    monkeypatch.setattr(parsing, "_walk", always_failing)
    raw = mail(*BASIC)
    minimal = parse_mail(raw)
    assert minimal.defects == ("unparseable message (RecursionError)",)
    assert minimal.message_id == synthetic_message_id(raw)
    assert "Halo." in minimal.text


def test_accepts_bytearray_and_memoryview() -> None:
    raw = mail(*BASIC)
    assert parse_mail(bytearray(raw)) == parse_mail(raw)  # type: ignore[arg-type]
    assert parse_mail(memoryview(raw)) == parse_mail(raw)  # type: ignore[arg-type]


def test_control_characters_are_removed_from_text() -> None:
    parsed = parse_mail(mail(*BASIC, body="a\x00b\x1bc\x07\td\n"))
    assert parsed.text == "abc\td"


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@Example.COM>", "abc@Example.COM"),
        ("  < abc@example.com >  ", "abc@example.com"),
        ("abc@example.com", "abc@example.com"),
        ("<abc@exa\r\n mple.com>", "abc@example.com"),
        ("(comment) <abc@x>", "abc@x"),
        ("", ""),
        ("<>", ""),
    ],
)
def test_normalise_message_id(value: str, expected: str) -> None:
    assert normalise_message_id(value) == expected


def test_parse_message_ids() -> None:
    value = "<a@x>\r\n <b@y> <a@x>\t<c@z>"
    assert parse_message_ids(value) == ("a@x", "b@y", "c@z")
    assert parse_message_ids("a@x, b@y") == ("a@x", "b@y")
    assert parse_message_ids("") == ()


def test_references_and_in_reply_to() -> None:
    raw = mail(
        *BASIC,
        "In-Reply-To: <r2@lpse.go.id> (Helpdesk's message of Mon, 4 May 2026)",
        "References: <r0@lpse.go.id>\r\n\t<r1@lpse.go.id>\r\n <r2@lpse.go.id>",
    )
    parsed = parse_mail(raw)
    assert parsed.in_reply_to == ("r2@lpse.go.id",)
    assert parsed.references == ("r0@lpse.go.id", "r1@lpse.go.id", "r2@lpse.go.id")


def test_missing_message_id_gets_a_repeatable_synthetic_one() -> None:
    raw = mail(*BASIC[:-1])
    first, second = parse_mail(raw), parse_mail(raw)
    assert not first.has_message_id
    assert SYNTHETIC.match(first.message_id)
    assert first.message_id == second.message_id == synthetic_message_id(raw)
    assert parse_mail(raw + b"x").message_id != first.message_id
    assert "missing Message-ID header" in first.defects


def test_empty_message_id_counts_as_missing() -> None:
    parsed = parse_mail(mail(*BASIC[:-1], "Message-ID: <  >"))
    assert not parsed.has_message_id
    assert SYNTHETIC.match(parsed.message_id)


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=?UTF-8?Q?Gagal_unggah_=E2=80=93_mohon?=", "Gagal unggah – mohon"),
        ("=?utf-8?b?R2FnYWwgdW5nZ2Fo?=", "Gagal unggah"),
        ("=?utf-8?b?R2FnYWwgdW5nZ2Fo?=   =?utf-8?q?_lagi?=", "Gagal unggah lagi"),
        ("Re: =?iso-8859-1?q?Caf=E9?= dan teh", "Re: Café dan teh"),
        ("=?UTF-8?B?4oCT?=", "–"),
        ("=?UTF-8?B?4oA=?= =?UTF-8?B?kw==?=", "–"),  # a character split over two words
        ("=?utf-8*id?q?Halo?=", "Halo"),
        ("=?utf-8?b?R2FnYWw?=", "Gagal"),  # missing padding
        ("plain text", "plain text"),
        ("a\r\n b", "a b"),
    ],
)
def test_decode_header_value(raw: str, expected: str) -> None:
    assert decode_header_value(raw) == expected


def test_decode_header_value_unknown_charset() -> None:
    defects: list[str] = []
    assert decode_header_value("=?x-foo?q?caf=C3=A9?=", defects, "Subject header") == "café"
    assert defects == ["undecodable charset x-foo in Subject header"]


def test_subject_with_raw_8bit_bytes() -> None:
    utf8 = parse_mail("Subject: Kendala – akun\r\n\r\nx".encode())
    assert utf8.subject == "Kendala – akun"
    assert utf8.defects.count("8-bit bytes that are not UTF-8 in Subject header") == 0
    cp1252 = parse_mail("Subject: Kendala – akun\r\n\r\nx".encode("cp1252"))
    assert cp1252.subject == "Kendala – akun"


def test_headers_are_decoded_and_kept_in_order() -> None:
    parsed = parse_mail(mail(*BASIC, "X-Custom: =?utf-8?q?n=C3=AAw?=", "X-Custom: second"))
    names = [name for name, _ in parsed.headers]
    assert names[:2] == ["From", "To"]
    assert parsed.header("x-custom") == "nêw"
    assert parsed.header_values("X-CUSTOM") == ("nêw", "second")


def test_auto_submitted_and_return_path() -> None:
    parsed = parse_mail(mail(*BASIC, "Auto-Submitted: Auto-Replied", "Return-Path: <>"))
    assert parsed.auto_submitted == "auto-replied"
    assert parsed.return_path == ""
    other = parse_mail(mail(*BASIC, "Return-Path: <Bounce@X.id>"))
    assert other.return_path == "bounce@x.id"
    assert parse_mail(mail(*BASIC)).return_path is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 04 May 2026 09:12:31 +0700", dt.datetime(2026, 5, 4, 2, 12, 31, tzinfo=dt.UTC)),
        ("4 May 2026 09:12:31 -0000", dt.datetime(2026, 5, 4, 9, 12, 31, tzinfo=dt.UTC)),
        ("Mon, 4 May 2026 09:12:31 WIB", dt.datetime(2026, 5, 4, 9, 12, 31, tzinfo=dt.UTC)),
        ("Mon, 04 May 2026 09:12:31 GMT", dt.datetime(2026, 5, 4, 9, 12, 31, tzinfo=dt.UTC)),
    ],
)
def test_dates_are_aware_utc(value: str, expected: dt.datetime) -> None:
    parsed = parse_mail(mail("From: a@b.id", f"Date: {value}"))
    assert parsed.date == expected
    assert parsed.date is not None and parsed.date.tzinfo is dt.UTC


@pytest.mark.parametrize("value", ["yesterday", "32 Foo 2026", "", "Mon, 04 May 99999 00:00:00"])
def test_bad_dates_give_none(value: str) -> None:
    parsed = parse_mail(mail("From: a@b.id", f"Date: {value}"))
    assert parsed.date is None
    assert "unparseable Date header" in parsed.defects


def test_missing_date() -> None:
    parsed = parse_mail(mail("From: a@b.id"))
    assert parsed.date is None
    assert "missing Date header" in parsed.defects


# --------------------------------------------------------------------------- requester


def test_requester_from_reply_to_when_a_single_other_human_at_the_same_domain() -> None:
    parsed = parse_mail(mail(*BASIC, "Reply-To: =?utf-8?q?Sri_W=C3=A2ti?= <Sri@Example.co.id>"))
    assert parsed.reply_to_address == "sri@example.co.id"
    assert (parsed.requester_name, parsed.requester_address) == ("Sri Wâti", "sri@example.co.id")
    assert parsed.from_address == "budi.santoso@example.co.id"


def test_reply_to_at_another_domain_is_kept_but_not_answered() -> None:
    """Otherwise anyone could make the helpdesk mail a third party."""
    parsed = parse_mail(mail(*BASIC, "Reply-To: =?utf-8?q?Sri_W=C3=A2ti?= <Sri@Kantor.id>"))
    assert parsed.reply_to_address == "sri@kantor.id"
    assert parsed.requester_address == "budi.santoso@example.co.id"


@pytest.mark.parametrize(
    "reply_to",
    [
        "Reply-To: noreply@kantor.id",
        "Reply-To: No-Reply <no_reply@kantor.id>",
        "Reply-To: a@kantor.id, b@kantor.id",
        "Reply-To: BUDI.SANTOSO@example.co.id",
        "Reply-To: mailer-daemon@kantor.id",
        "Reply-To: undisclosed-recipients:;",
    ],
)
def test_requester_falls_back_to_from(reply_to: str) -> None:
    parsed = parse_mail(mail(*BASIC, reply_to))
    assert parsed.requester_address == "budi.santoso@example.co.id"
    assert parsed.requester_name == "Budi Santoso"


def test_missing_from_uses_reply_to() -> None:
    parsed = parse_mail(mail("Subject: x", "Reply-To: sri@kantor.id"))
    assert parsed.from_address == ""
    assert parsed.requester_address == "sri@kantor.id"
    assert "missing From header" in parsed.defects


def test_missing_from_without_reply_to() -> None:
    parsed = parse_mail(mail("Subject: x"))
    assert (parsed.from_name, parsed.from_address) == ("", "")
    assert (parsed.requester_name, parsed.requester_address) == ("", "")
    assert "missing From header" in parsed.defects


def test_unparseable_from() -> None:
    parsed = parse_mail(mail("From: just a name"))
    assert parsed.from_address == ""
    assert "unparseable From header" in parsed.defects


def test_encoded_display_name_with_comma() -> None:
    parsed = parse_mail(mail("From: =?utf-8?q?Budi=2C_S=2ET=2E?= <budi@x.id>"))
    assert (parsed.from_name, parsed.from_address) == ("Budi, S.T.", "budi@x.id")


@pytest.mark.parametrize(
    ("address", "machine"),
    [
        ("noreply@x.id", True),
        ("no-reply@x.id", True),
        ("do-not-reply@x.id", True),
        ("donotreply@x.id", True),
        ("MAILER-DAEMON@x.id", True),
        ("postmaster@x.id", True),
        ("bounces+abc@x.id", True),
        ("budi@x.id", False),
        ("replyto@x.id", False),
        ("noreplyanto@x.id", False),
    ],
)
def test_is_machine_address(address: str, machine: bool) -> None:
    assert is_machine_address(address) is machine


# --------------------------------------------------------------------------- charsets


@pytest.mark.parametrize(
    ("data", "charset", "text", "defect"),
    [
        ("café".encode(), "utf-8", "café", None),
        ("café".encode("latin-1"), "iso-8859-1", "café", None),
        ("“x”".encode("cp1252"), "iso-8859-1", "“x”", None),  # read as windows-1252
        ("“x”".encode("cp1252"), None, "“x”", None),
        ("café".encode(), "iso-8859-1", "café", "is declared iso-8859-1 but is UTF-8"),
        ("café".encode(), "us-ascii", "café", "is declared us-ascii but is UTF-8"),
        ("“x”".encode("cp1252"), "utf-8", "“x”", "is not valid utf-8"),
        (b"caf\xc3\xa9", "x-foo", "café", "undecodable charset x-foo"),
        (b"caf\xc3\xa9", '"UTF-8"', "café", None),
        (b"\x81\x8d", "utf-8", "\x81\x8d", "is not valid utf-8"),
        ("Привет".encode("koi8-r"), "koi8-r", "Привет", None),
        (b"abc", "base64", "abc", None),  # a non-text codec is not used
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, text: str, defect: str | None) -> None:
    defects: list[str] = []
    assert decode_bytes(data, charset, defects, "text part") == text
    if defect is None:
        assert all("base64" in d for d in defects) if charset == "base64" else defects == []
    else:
        assert any(defect in d for d in defects), defects


def test_quoted_printable_and_base64_bodies() -> None:
    qp = parse_mail(
        mail(
            "From: a@b.id",
            "Content-Transfer-Encoding: quoted-printable",
            body="Caf=C3=A9 soft=\r\nbreak\r\n",
            content_type="text/plain; charset=utf-8",
        )
    )
    assert qp.text == "Café softbreak"
    b64 = parse_mail(
        mail(
            "From: a@b.id",
            "Content-Transfer-Encoding: base64",
            body="SGFsbyBkdW5pYQ==\r\n",
            content_type="text/plain; charset=utf-8",
        )
    )
    assert b64.text == "Halo dunia"


# --------------------------------------------------------------------------- bodies


def _multipart(*parts: str, subtype: str = "mixed", boundary: str = "B") -> str:
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return body + f"--{boundary}--\r\n"


def test_html_only_is_converted_with_inscriptis() -> None:
    html = "<html><body><p>Halo <b>tim</b></p><ul><li>satu</li><li>dua</li></ul></body></html>"
    parsed = parse_mail(mail("From: a@b.id", body=html, content_type="text/html; charset=utf-8"))
    assert parsed.html == html
    assert "Halo tim" in parsed.text
    assert "satu" in parsed.text and "<" not in parsed.text


def test_alternative_prefers_plain_and_keeps_html() -> None:
    body = _multipart(
        "Content-Type: text/plain; charset=utf-8\r\n\r\nteks biasa",
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>teks html</p>",
    )
    parsed = parse_mail(
        mail("From: a@b.id", body=body, content_type="multipart/alternative; boundary=B")
    )
    assert parsed.text == "teks biasa"
    assert parsed.html == "<p>teks html</p>"


def test_alternative_with_empty_plain_uses_html() -> None:
    body = _multipart(
        "Content-Type: text/plain; charset=utf-8\r\n\r\n  ",
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>teks html</p>",
    )
    parsed = parse_mail(
        mail("From: a@b.id", body=body, content_type="multipart/alternative; boundary=B")
    )
    assert parsed.text == "teks html"


def test_several_inline_text_parts_are_joined() -> None:
    body = _multipart(
        "Content-Type: text/plain\r\n\r\nbagian satu",
        "Content-Type: image/png\r\nContent-Disposition: inline\r\n\r\nPNG",
        "Content-Type: text/plain\r\n\r\nbagian dua",
    )
    parsed = parse_mail(mail("From: a@b.id", body=body, content_type="multipart/mixed; boundary=B"))
    assert parsed.text == "bagian satu\n\nbagian dua"
    assert [a.inline for a in parsed.attachments] == [True]


def test_attachment_details() -> None:
    body = _multipart(
        "Content-Type: text/plain\r\n\r\nlihat lampiran",
        "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="=?utf-8?q?Surat_=E2=80=93_1.pdf?="\r\n\r\n'
        "JVBERi0xLjQK",
        "Content-Type: text/csv\r\n"
        'Content-Disposition: attachment; filename="../../etc/data.csv"\r\n\r\na,b',
        "Content-Type: application/octet-stream\r\n\r\n\x01\x02",
        "Content-Type: text/plain\r\n"
        "Content-Disposition: attachment; filename=catatan.txt\r\n\r\nisi",
    )
    parsed = parse_mail(mail("From: a@b.id", body=body, content_type="multipart/mixed; boundary=B"))
    assert parsed.text == "lihat lampiran"
    first, second, third, fourth = parsed.attachments
    assert first == AttachmentInfo(
        filename="Surat – 1.pdf",
        content_type="application/pdf",
        size=9,
        inline=False,
        content_id=None,
        payload=b"%PDF-1.4\n",
        omitted_reason=None,
    )
    assert second.filename == "data.csv"
    assert third.filename == "attachment-3.bin"
    assert fourth.filename == "catatan.txt" and fourth.payload == b"isi"


def test_cid_image_is_inline_only_when_referenced() -> None:
    html = '<p>lihat</p><img src="cid:img1@x">'
    body = _multipart(
        f"Content-Type: text/html\r\n\r\n{html}",
        "Content-Type: image/png\r\nContent-ID: <img1@x>\r\n\r\nPNG1",
        "Content-Type: image/png\r\nContent-ID: <img2@x>\r\n"
        "Content-Disposition: attachment; filename=b.png\r\n\r\nPNG2",
    )
    parsed = parse_mail(
        mail("From: a@b.id", body=body, content_type="multipart/related; boundary=B")
    )
    first, second = parsed.attachments
    assert (first.content_id, first.inline) == ("img1@x", True)
    assert (second.content_id, second.inline) == ("img2@x", False)
    assert first.filename == "attachment-1.png"


def test_winmail_dat() -> None:
    body = _multipart(
        "Content-Type: text/plain\r\n\r\nisi",
        "Content-Type: application/ms-tnef\r\nContent-Transfer-Encoding: base64\r\n\r\neJ8+Ig==",
        "Content-Type: application/octet-stream; name=WINMAIL.DAT\r\n\r\nx",
    )
    parsed = parse_mail(mail("From: a@b.id", body=body, content_type="multipart/mixed; boundary=B"))
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("winmail.dat", "application/ms-tnef"),
        ("WINMAIL.DAT", "application/ms-tnef"),
    ]


def test_over_size_mail_omits_payloads_but_keeps_text() -> None:
    body = _multipart(
        "Content-Type: text/plain\r\n\r\nteks tetap ada",
        "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=a.zip\r\n\r\n"
        + "x" * 5000,
    )
    raw = mail(
        "From: a@b.id", "Subject: besar", body=body, content_type="multipart/mixed; boundary=B"
    )
    parsed = parse_mail(raw, max_bytes=1000)
    assert parsed.subject == "besar"
    assert parsed.text == "teks tetap ada"
    (attachment,) = parsed.attachments
    assert attachment.payload is None
    assert attachment.size == 5000
    assert attachment.omitted_reason == f"mail of {len(raw)} bytes exceeds the 1000 byte limit"
    assert parse_mail(raw).attachments[0].payload == b"x" * 5000


def test_truncated_multipart_keeps_what_arrived() -> None:
    raw = mail(
        "From: a@b.id",
        body="--B\r\nContent-Type: text/plain\r\n\r\nsampai sini\r\n--B\r\nContent-Type: applic",
        content_type="multipart/mixed; boundary=B",
    )
    parsed = parse_mail(raw)
    assert parsed.text == "sampai sini"
    assert parsed.defects


def test_forward_subject_keeps_outlook_forward_in_stripped_text() -> None:
    body = (
        "Mohon dicek.\r\n\r\nFrom: Eka <e@x.id>\r\nSent: Monday\r\nTo: Kabag\r\n"
        "Subject: Akun\r\n\r\nAkun terkunci.\r\n"
    )
    forwarded = parse_mail(mail("From: a@b.id", "Subject: FW: Akun", body=body))
    replied = parse_mail(mail("From: a@b.id", "Subject: RE: Akun", body=body))
    assert "Akun terkunci." in forwarded.stripped_text
    assert replied.stripped_text == "Mohon dicek."
    assert "Akun terkunci." in replied.text


def test_report_details() -> None:
    body = _multipart(
        "Content-Type: text/plain\r\n\r\ngagal",
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; A@X.ID\r\nAction: failed\r\nStatus: 5.1.1 (bad)\r\n"
        "Diagnostic-Code: smtp; 550 no such user",
        "Content-Type: message/rfc822\r\n\r\n"
        "Message-ID: <orig@lpse.go.id>\r\nSubject: s\r\n\r\nisi",
    )
    parsed = parse_mail(
        mail(
            "From: MAILER-DAEMON@mx.id",
            body=body,
            content_type="multipart/report; report-type=Delivery-Status; boundary=B",
        )
    )
    report = parsed.report
    assert report.report_type == "delivery-status"
    assert report.final_recipients == ("a@x.id",)
    assert report.actions == ("failed",)
    assert report.statuses == ("5.1.1",)
    assert report.diagnostics == ("smtp; 550 no such user",)
    assert report.original_message_ids == ("orig@lpse.go.id",)
    assert report.has_delivery_status
    assert [a.filename for a in parsed.attachments] == ["s.eml"]
    assert parsed.text == "gagal"


def test_ordinary_mail_has_an_empty_report() -> None:
    report = parse_mail(mail(*BASIC)).report
    assert report.report_type is None
    assert not report.has_delivery_status
    assert report.original_message_ids == ()
