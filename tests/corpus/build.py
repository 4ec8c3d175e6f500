"""A corpus of realistic inbound mails for the mail bridge, with the expectations for each.

Every entry is built here as raw bytes (CRLF line ends, real-world header shapes) so that the
corpus is reviewable as code and needs no binary files. ``python -m tests.corpus.build DIR``
writes the mails as ``.eml`` files for a look in a mail client.

The helpdesk of this corpus is ``helpdesk@lpse.kotacontoh.go.id`` (LPSE Kota Contoh); our
outgoing mail carries Message-IDs ``...@lpse.kotacontoh.go.id`` and ``X-LPSE-Helpdesk-Ticket``.
"""

from __future__ import annotations

import base64
import quopri
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OWN = "helpdesk@lpse.kotacontoh.go.id"
OWN_ADDRESSES = (OWN,)
PREFIX = "LPSE"
OUR_ID = "20260504031500.5f2a9c7e@lpse.kotacontoh.go.id"
OUR_ID_2 = "20260505081200.77ab01d3@lpse.kotacontoh.go.id"
CRLF = b"\r\n"


@dataclass(frozen=True)
class Expect:
    """What the bridge must make of a corpus mail."""

    kind: str = "normal"  # hygiene.MailClassKind value
    requester: str = ""
    category: str = "LAINNYA"
    priority: str | None = None
    stripped_has: tuple[str, ...] = ()  # substrings of stripped_text
    stripped_lacks: tuple[str, ...] = ()
    subject: str | None = None
    ticket: str | None = None  # ticket number tagged in the subject
    has_message_id: bool = True
    bounced_ids: tuple[str, ...] = ()  # must all be in MailClass.bounced_message_ids
    failed: tuple[str, ...] = ()  # must equal MailClass.failed_recipients
    transient: bool = False
    attachments: tuple[str, ...] = ()  # file names, in order
    inline: tuple[str, ...] = ()  # file names of inline attachments
    omitted: bool = False  # attachment payloads omitted (over the size limit)
    defects_has: tuple[str, ...] = ()  # substrings each found in some defect
    tender_codes: tuple[str, ...] | None = None
    phones: tuple[str, ...] | None = None  # the first phone numbers found, in order


@dataclass(frozen=True)
class CorpusMail:
    name: str
    raw: bytes
    expect: Expect
    max_bytes: int | None = None  # parse_mail's limit, when not the default


# --------------------------------------------------------------------------- builders


def _b(text: str | bytes, charset: str = "utf-8") -> bytes:
    return text if isinstance(text, bytes) else text.encode(charset)


def _lines(text: str | bytes) -> bytes:
    """Normalise line ends to CRLF."""
    data = _b(text)
    return CRLF.join(data.replace(b"\r\n", b"\n").split(b"\n"))


def encode(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(body)
    if cte == "quoted-printable":
        return quopri.encodestring(body)
    return body


def leaf(
    content_type: str,
    body: str | bytes,
    *,
    cte: str = "8bit",
    charset: str = "utf-8",
    headers: Sequence[str] = (),
) -> bytes:
    """A single MIME entity: its headers, a blank line, the encoded body."""
    head = [f"Content-Type: {content_type}", f"Content-Transfer-Encoding: {cte}", *headers]
    return _lines("\n".join(head)) + CRLF + CRLF + _lines(encode(_b(body, charset), cte))


def multi(subtype: str, *parts: bytes, boundary: str, params: str = "") -> bytes:
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{params}'
    out = [_lines(head), b"", b"This is a multi-part message in MIME format.", b""]
    for part in parts:
        out += [f"--{boundary}".encode(), part]
    out += [f"--{boundary}--".encode(), b""]
    return CRLF.join(out)


def message(headers: Sequence[str], entity: bytes) -> bytes:
    """A whole mail: top-level headers, then the entity (which starts with Content-Type)."""
    return _lines("\n".join([*headers, "MIME-Version: 1.0"])) + CRLF + entity


def top(
    sender: str,
    subject: str,
    *,
    msgid: str | None,
    to: str = f"Helpdesk LPSE Kota Contoh <{OWN}>",
    date: str = "Mon, 04 May 2026 09:12:31 +0700",
    extra: Sequence[str] = (),
) -> list[str]:
    headers = [
        "Received: from mail-sor-f41.google.com (mail-sor-f41.google.com [209.85.220.41])",
        "\tby mx.kotacontoh.go.id (Postfix) with ESMTPS id 4Zx1;",
        "\tMon, 04 May 2026 09:12:33 +0700 (WIB)",
    ]
    if sender:
        headers.append(f"From: {sender}")
    headers += [f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if msgid is not None:
        headers.append(f"Message-ID: <{msgid}>")
    return headers + list(extra)


def text_mail(
    sender: str,
    subject: str,
    body: str | bytes,
    *,
    msgid: str | None,
    charset: str = "utf-8",
    cte: str = "quoted-printable",
    extra: Sequence[str] = (),
    date: str = "Mon, 04 May 2026 09:12:31 +0700",
    content_type: str | None = None,
) -> bytes:
    ctype = content_type or f"text/plain; charset={charset}"
    return message(
        top(sender, subject, msgid=msgid, extra=extra, date=date),
        leaf(ctype, body, cte=cte, charset=charset),
    )


def alternative(plain: str, html: str, boundary: str, cte: str = "quoted-printable") -> bytes:
    return multi(
        "alternative",
        leaf('text/plain; charset="UTF-8"', plain, cte=cte),
        leaf('text/html; charset="UTF-8"', html, cte=cte),
        boundary=boundary,
    )


# Small binary payloads with real magic numbers.
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
XLSX = b"PK\x03\x04\x14\x00\x06\x00" + b"[Content_Types].xml" + bytes(range(256)) * 4
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
TNEF = b"\x78\x9f\x3e\x22" + b"\x01\x06\x90\x08\x00\x04\x00\x00\x00\x00\x00\x01\x00" * 20

SIGNATURE = """Salam,
Budi Santoso
PT Maju Konstruksi Nusantara
HP/WA: 0812-3456-7890"""

OUR_ORIGINAL = message(
    [
        f"From: Helpdesk LPSE Kota Contoh <{OWN}>",
        "To: Rina Wulandari <rina.w@cvberkah.co.id>",
        "Subject: Re: [LPSE-2026-00042] Gagal upload penawaran",
        "Date: Mon, 04 May 2026 10:15:00 +0700",
        f"Message-ID: <{OUR_ID}>",
        "Auto-Submitted: auto-replied",
        "X-Auto-Response-Suppress: All",
        "X-LPSE-Helpdesk-Ticket: LPSE-2026-00042",
    ],
    leaf(
        "text/plain; charset=utf-8",
        "Yth. Ibu Rina,\n\nTiket Anda LPSE-2026-00042 telah kami terima.\n",
        cte="quoted-printable",
    ),
)


# --------------------------------------------------------------------------- the corpus


def _conversation() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    plain = f"""Selamat siang Bapak/Ibu Helpdesk,

Kami gagal upload penawaran untuk Kode Tender: 10012345000 (Pembangunan Jalan Lingkar
Utara). Setiap kali unggah muncul tulisan "Dokumen penawaran gagal dikirim".
Batas waktu pemasukan penawaran hari ini jam 14.00 WIB. Mohon bantuan segera.

{SIGNATURE}
"""
    html = (
        '<div dir="ltr"><div>Selamat siang Bapak/Ibu Helpdesk,</div><div><br></div>'
        "<div>Kami gagal upload penawaran untuk Kode Tender: 10012345000 (Pembangunan "
        "Jalan Lingkar Utara).</div></div>"
    )
    mails.append(
        CorpusMail(
            "gmail_id_new_urgent",
            message(
                top(
                    "Budi Santoso <budi.santoso@gmail.com>",
                    "Gagal upload penawaran - mohon segera",
                    msgid="CAJ8m2Lx4h=Qv9pZ7nK3Rr@mail.gmail.com",
                ),
                alternative(plain, html, "000000000000a1b2c3d4e5f60718"),
            ),
            Expect(
                requester="budi.santoso@gmail.com",
                category="TENDER_UNGGAH_PENAWARAN",
                priority="tinggi",
                stripped_has=("Kode Tender: 10012345000", "HP/WA"),
                tender_codes=("10012345000",),
                phones=("+6281234567890",),
            ),
        )
    )
    reply = """Baik Pak, berikut kami lampirkan screenshot error yang muncul saat login.

Terima kasih.

Pada tanggal Sen, 4 Mei 2026 pukul 10.15 Helpdesk LPSE Kota Contoh <
helpdesk@lpse.kotacontoh.go.id> menulis:

> Yth. Ibu Rina,
>
> Mohon kirimkan tangkapan layar pesan kesalahan yang muncul.
>
> Salam,
> Helpdesk LPSE Kota Contoh
"""
    mails.append(
        CorpusMail(
            "gmail_id_reply_wrapped_attribution",
            message(
                top(
                    "Rina Wulandari <rina.w@cvberkah.co.id>",
                    "Re: [LPSE-2026-00042] Tidak bisa login",
                    msgid="CAHx9_vR2kQ@mail.gmail.com",
                    extra=[f"In-Reply-To: <{OUR_ID}>", f"References: <{OUR_ID}>"],
                ),
                multi(
                    "mixed",
                    alternative(reply, "<div>Baik Pak, berikut kami lampirkan</div>", "alt42"),
                    leaf(
                        'image/png; name="error-login.png"',
                        PNG,
                        cte="base64",
                        headers=['Content-Disposition: attachment; filename="error-login.png"'],
                    ),
                    boundary="000000000000mixed42",
                ),
            ),
            Expect(
                requester="rina.w@cvberkah.co.id",
                category="LOGIN_ERROR_APLIKASI",
                stripped_has=("screenshot error",),
                stripped_lacks=("menulis", "tangkapan layar"),
                ticket="LPSE-2026-00042",
                attachments=("error-login.png",),
            ),
        )
    )
    outlook_id = """Selamat pagi,

Passphrase sertifikat elektronik saya tidak diterima waktu tanda tangan dokumen kontrak.
Mohon arahannya.

Hormat saya,
Dewi Anggraini
PPK Dinas PUPR Kota Contoh
Telp. (0274) 512345

________________________________
Dari: Helpdesk LPSE Kota Contoh <helpdesk@lpse.kotacontoh.go.id>
Dikirim: Senin, 04 Mei 2026 10.30
Kepada: Dewi Anggraini <dewi.pupr@kotacontoh.go.id>
Subjek: Re: [LPSE-2026-00051] Sertifikat elektronik

Yth. Ibu Dewi, mohon jelaskan kendala yang dialami.
"""
    mails.append(
        CorpusMail(
            "outlook_id_reply_header_block",
            message(
                top(
                    "Dewi Anggraini <dewi.pupr@kotacontoh.go.id>",
                    "RE: [LPSE-2026-00051] Sertifikat elektronik",
                    msgid="SG2PR06MB5263E1F0A6B7C8D9@SG2PR06MB5263.apcprd06.prod.outlook.com",
                    extra=[
                        "Thread-Topic: [LPSE-2026-00051] Sertifikat elektronik",
                        "X-MS-Has-Attach:",
                        "X-Auto-Response-Suppress: All",
                        "Content-Language: id-ID",
                    ],
                ),
                multi(
                    "alternative",
                    leaf(
                        'text/plain; charset="Windows-1252"',
                        outlook_id,
                        cte="base64",
                        charset="cp1252",
                    ),
                    leaf(
                        'text/html; charset="Windows-1252"',
                        "<p>Selamat pagi,</p>",
                        cte="base64",
                        charset="cp1252",
                    ),
                    boundary="_000_SG2PR06MB5263_",
                ),
            ),
            Expect(
                requester="dewi.pupr@kotacontoh.go.id",
                category="SERTIFIKAT_ELEKTRONIK",
                stripped_has=("Passphrase", "Dewi Anggraini"),
                stripped_lacks=("Dikirim:", "mohon jelaskan", "_____"),
                ticket="LPSE-2026-00051",
                phones=("+62274512345",),
            ),
        )
    )
    outlook_en = """Dear Helpdesk,

The schedule change for tender 10098765000 is not visible on the announcement page.

Regards,
Andi

From: Helpdesk LPSE Kota Contoh <helpdesk@lpse.kotacontoh.go.id>
Sent: Monday, May 4, 2026 11:02 AM
To: Andi Pratama <andi@pratama-group.com>
Subject: RE: [LPSE-2026-00017] Jadwal tender

Dear Sir, which tender do you mean?
"""
    mails.append(
        CorpusMail(
            "outlook_en_reply",
            text_mail(
                "Andi Pratama <andi@pratama-group.com>",
                "RE: RE: [LPSE-2026-00017] Jadwal tender",
                outlook_en,
                msgid="PH0PR11MB4872A@PH0PR11MB4872.namprd11.prod.outlook.com",
                charset="us-ascii",
                cte="7bit",
            ),
            Expect(
                requester="andi@pratama-group.com",
                category="JADWAL_TAHAPAN",
                stripped_has=("schedule change",),
                stripped_lacks=("which tender",),
                ticket="LPSE-2026-00017",
                tender_codes=("10098765000",),
            ),
        )
    )
    yahoo = """Mohon bantuan reset password akun penyedia saya, saya lupa password.
User ID: cvsinarjaya

Dikirim dari Yahoo Mail di Android

  Pada Sen, 4 Mei 2026 pada 8:01, Helpdesk LPSE<helpdesk@lpse.kotacontoh.go.id> menulis:
  Silakan sampaikan kendala Anda.
"""
    mails.append(
        CorpusMail(
            "yahoo_android_footer",
            text_mail(
                "Sinar Jaya <cv.sinarjaya@yahoo.co.id>",
                "Re: Lupa password",
                yahoo,
                msgid="1234567890.987654.1746320000000@mail.yahoo.com",
            ),
            Expect(
                requester="cv.sinarjaya@yahoo.co.id",
                category="AKUN_LUPA_PASSWORD",
                priority="rendah",
                stripped_has=("cvsinarjaya",),
                stripped_lacks=("Yahoo Mail", "Silakan"),
            ),
        )
    )
    iphone = """Sudah saya coba, tetap tidak bisa masuk.

Dikirim dari iPhone saya

> Pada 4 Mei 2026, pukul 10.12, Helpdesk LPSE Kota Contoh <helpdesk@lpse.kotacontoh.go.id> menulis:
>
> Silakan hapus cache browser lalu coba login kembali.
"""
    mails.append(
        CorpusMail(
            "iphone_quoted_reply",
            text_mail(
                "Hendra <hendra.wijaya@icloud.com>",
                "Bls: [LPSE-2026-00060] Tidak bisa masuk SPSE",
                iphone,
                msgid="A1B2C3D4-E5F6-7890-ABCD-EF1234567890@icloud.com",
            ),
            Expect(
                requester="hendra.wijaya@icloud.com",
                category="LOGIN_ERROR_APLIKASI",
                stripped_has=("tetap tidak bisa masuk",),
                stripped_lacks=("iPhone", "cache"),
                ticket="LPSE-2026-00060",
            ),
        )
    )
    outlook_android = """Apakah aplikasi Apendo masih dipakai untuk tender tahun ini?

Get Outlook for Android<https://aka.ms/AAb9ysg>
________________________________
From: Helpdesk LPSE Kota Contoh <helpdesk@lpse.kotacontoh.go.id>
Sent: Monday, May 4, 2026 1:14:08 PM
To: rudi.h@outlook.co.id <rudi.h@outlook.co.id>
Subject: Re: [LPSE-2026-00063] Pertanyaan

Terima kasih, pertanyaan Anda kami terima.
"""
    mails.append(
        CorpusMail(
            "outlook_android_footer",
            text_mail(
                "Rudi Hartono <rudi.h@outlook.co.id>",
                "Re: [LPSE-2026-00063] Pertanyaan",
                outlook_android,
                msgid="TY0PR01MB1234.jpnprd01.prod.outlook.com",
            ),
            Expect(
                requester="rudi.h@outlook.co.id",
                category="APENDO_SPAMKODOK",
                stripped_has=("Apendo",),
                stripped_lacks=("Get Outlook", "kami terima"),
                ticket="LPSE-2026-00063",
            ),
        )
    )
    mails.append(
        CorpusMail(
            "pesan_asli_separator",
            text_mail(
                "Slamet Riyadi <slamet@cvkaryamandiri.id>",
                "Balas: Verifikasi akun",
                """Berkas verifikasi akun sudah kami kirim ulang kemarin.

-----Pesan Asli-----
Dari: Helpdesk LPSE
Mohon lengkapi berkas registrasi Anda.
""",
                msgid="000001dabc12$34567890$abcdef01@cvkaryamandiri.id",
            ),
            Expect(
                requester="slamet@cvkaryamandiri.id",
                category="AKUN_REGISTRASI_VERIFIKASI",
                stripped_has=("sudah kami kirim ulang",),
                stripped_lacks=("Pesan Asli", "lengkapi berkas"),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "original_message_separator",
            text_mail(
                "Linda <linda@majubersama.co.id>",
                "RE: Sanggah",
                """Kami ingin mengajukan sanggah atas hasil evaluasi paket 55512345.

----- Original Message -----
From: Pokja Pemilihan
To: linda@majubersama.co.id
Subject: Pengumuman pemenang
""",
                msgid="002a01d9$aabbccdd$@majubersama.co.id",
            ),
            Expect(
                requester="linda@majubersama.co.id",
                category="SANGGAH",
                priority="tinggi",
                stripped_has=("sanggah",),
                stripped_lacks=("Pokja",),
                tender_codes=("55512345",),
            ),
        )
    )
    return mails


def _charsets() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    latin1 = "Registrasi akun untuk José Ramos (PT Café Nusantara) belum diverifikasi.\n"
    mails.append(
        CorpusMail(
            "latin1_quoted_printable",
            text_mail(
                "=?ISO-8859-1?Q?Jos=E9_Ramos?= <jose@cafenusantara.co.id>",
                "=?ISO-8859-1?Q?Registrasi_Caf=E9_Nusantara?=",
                latin1.encode("latin-1"),
                msgid="latin1.1@cafenusantara.co.id",
                charset="ISO-8859-1",
            ),
            Expect(
                requester="jose@cafenusantara.co.id",
                category="AKUN_REGISTRASI_VERIFIKASI",
                subject="Registrasi Café Nusantara",
                stripped_has=("José Ramos", "Café"),
            ),
        )
    )
    cp1252 = "Menu \u201cKirim Penawaran\u201d \u2013 tombolnya tidak muncul, gagal unggah.\n"
    mails.append(
        CorpusMail(
            "windows1252_8bit",
            text_mail(
                "Agus <agus@tokobangunan.co.id>",
                "Kirim penawaran",
                cp1252.encode("cp1252"),
                msgid="cp1252.1@tokobangunan.co.id",
                charset="windows-1252",
                cte="8bit",
            ),
            Expect(
                requester="agus@tokobangunan.co.id",
                category="TENDER_UNGGAH_PENAWARAN",
                stripped_has=("\u201cKirim Penawaran\u201d \u2013",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "utf8_labelled_latin1",
            text_mail(
                "Sri <sri@koperasimaju.or.id>",
                "Data kualifikasi",
                b"Data kualifikasi di SiKAP tidak tersimpan "
                b"\xe2\x80\x99setelah\xe2\x80\x99 klik simpan.\n",
                msgid="mislabel.1@koperasimaju.or.id",
                charset="iso-8859-1",
                cte="8bit",
            ),
            Expect(
                requester="sri@koperasimaju.or.id",
                category="DATA_PENYEDIA_SIKAP",
                stripped_has=("\u2019setelah\u2019",),
                defects_has=("declared iso-8859-1 but is UTF-8",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "cp1252_labelled_utf8",
            text_mail(
                "Yudi <yudi@cvsejahtera.id>",
                "Gangguan akses",
                "SPSE tidak dapat diakses sejak pagi \u2013 muncul 503.\n".encode("cp1252"),
                msgid="mislabel.2@cvsejahtera.id",
                charset="utf-8",
                cte="8bit",
            ),
            Expect(
                requester="yudi@cvsejahtera.id",
                category="GANGGUAN_SERVER",
                stripped_has=("pagi \u2013 muncul",),
                defects_has=("not valid utf-8",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "unknown_charset",
            text_mail(
                "Wati <wati@gmail.com>",
                "=?x-unknown?Q?Agregasi_data?=",
                b"Mohon agregasi data penyedia ganda, akun lama dan baru.\n",
                msgid="unknown.1@mail.gmail.com",
                charset="x-unknown",
                cte="7bit",
            ),
            Expect(
                requester="wati@gmail.com",
                category="AKUN_AGREGASI_ADP",
                subject="Agregasi data",
                stripped_has=("agregasi data penyedia",),
                defects_has=("undecodable charset x-unknown",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "no_charset_8bit_utf8",
            text_mail(
                "Bambang <bambang@ptkonstruksi.co.id>",
                "Pertanyaan regulasi",
                "Apakah Perpres 46/2025 sudah berlaku untuk paket kami? Terima kasih \U0001f64f\n",
                msgid="nocharset.1@ptkonstruksi.co.id",
                content_type="text/plain",
                cte="8bit",
            ),
            Expect(
                requester="bambang@ptkonstruksi.co.id",
                category="KONSULTASI_REGULASI",
                stripped_has=("Perpres 46/2025", "\U0001f64f"),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "rfc2047_split_multibyte",
            text_mail(
                "=?UTF-8?B?UHV0cmkgTWF3YXJkaQ==?= <putri@contoh.co.id>",
                # "Perubahan e-mail akun – mohon dibantu" split inside the en dash.
                "=?UTF-8?B?UGVydWJhaGFuIGUtbWFpbCBha3VuIOKA?=\n =?UTF-8?B?kyBtb2hvbiBkaWJhbnR1?=",
                "Saya ingin ganti email akun penyedia ke alamat baru.\n",
                msgid="rfc2047.1@contoh.co.id",
            ),
            Expect(
                requester="putri@contoh.co.id",
                category="AKUN_UBAH_EMAIL",
                subject="Perubahan e-mail akun \u2013 mohon dibantu",
                stripped_has=("ganti email",),
            ),
        )
    )
    return mails


def _html() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    html = """<html><head><style>p{margin:0}</style></head><body>
<p>Yth. Helpdesk LPSE,</p>
<p>Sejak pukul 08.00 <b>SPSE tidak dapat diakses</b>, halaman menampilkan
<i>502 Bad Gateway</i>.</p>
<table><tr><td>Kode paket</td><td>77712345</td></tr></table>
<p>Hormat kami,<br>Pokja Pemilihan 3<br>Telp (021) 7654321</p>
<script>alert(1)</script>
</body></html>"""
    mails.append(
        CorpusMail(
            "html_only_outlook",
            message(
                top(
                    "Pokja 3 <pokja3@kotacontoh.go.id>",
                    "SPSE tidak dapat diakses",
                    msgid="html.1@kotacontoh.go.id",
                ),
                leaf('text/html; charset="utf-8"', html, cte="base64"),
            ),
            Expect(
                requester="pokja3@kotacontoh.go.id",
                category="GANGGUAN_SERVER",
                priority="tinggi",
                stripped_has=("SPSE tidak dapat diakses", "502 Bad Gateway", "77712345"),
                stripped_lacks=("<b>", "alert(1)", "margin"),
                tender_codes=("77712345",),
                phones=("+62217654321",),
            ),
        )
    )
    html_reply = """<div dir="ltr">Jadwal tahapan sudah kami ubah, tapi belum tampil.</div><br>
<div class="gmail_quote"><div dir="ltr" class="gmail_attr">Pada tanggal Sen, 4 Mei 2026 pukul
 09.00 Helpdesk LPSE &lt;<a href="mailto:helpdesk@lpse.kotacontoh.go.id">
 helpdesk@lpse.kotacontoh.go.id</a>&gt;
 menulis:<br></div><blockquote class="gmail_quote">Silakan ubah jadwal melalui menu
 Perubahan Jadwal.</blockquote></div>"""
    mails.append(
        CorpusMail(
            "html_only_gmail_reply",
            message(
                top(
                    "Pokja 1 <pokja1.kotacontoh@gmail.com>",
                    "Re: [LPSE-2026-00070] Perubahan jadwal",
                    msgid="CAK7html2@mail.gmail.com",
                ),
                leaf('text/html; charset="UTF-8"', html_reply, cte="quoted-printable"),
            ),
            Expect(
                requester="pokja1.kotacontoh@gmail.com",
                category="JADWAL_TAHAPAN",
                stripped_has=("belum tampil",),
                stripped_lacks=("menulis", "menu"),
                ticket="LPSE-2026-00070",
            ),
        )
    )
    return mails


def _attachments() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    mails.append(
        CorpusMail(
            "pdf_and_xlsx",
            message(
                top(
                    "Tono <tono@cvtekniksipil.co.id>",
                    "Dokumen penawaran tidak bisa dibuka",
                    msgid="attach.1@cvtekniksipil.co.id",
                ),
                multi(
                    "mixed",
                    leaf(
                        "text/plain; charset=utf-8",
                        "Dokumen penawaran kami tidak bisa dibuka oleh Pokja. Terlampir file.\n",
                        cte="quoted-printable",
                    ),
                    leaf(
                        'application/pdf; name="Penawaran Harga.pdf"',
                        PDF,
                        cte="base64",
                        headers=['Content-Disposition: attachment; filename="Penawaran Harga.pdf"'],
                    ),
                    leaf(
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        XLSX,
                        cte="base64",
                        headers=[
                            "Content-Disposition: attachment;",
                            " filename*=utf-8''Rincian%20HPS%20%E2%80%93%202026.xlsx",
                        ],
                    ),
                    boundary="mixed-attach-1",
                ),
            ),
            Expect(
                requester="tono@cvtekniksipil.co.id",
                category="TENDER_DOKUMEN_TIDAK_TERBUKA",
                stripped_has=("tidak bisa dibuka",),
                attachments=("Penawaran Harga.pdf", "Rincian HPS \u2013 2026.xlsx"),
            ),
        )
    )
    related = multi(
        "related",
        leaf(
            'text/html; charset="utf-8"',
            '<p>Muncul pesan error seperti ini:</p><p><img src="cid:image001.png@01DABC12.34567890"'
            ' alt="error"></p>',
            cte="quoted-printable",
        ),
        leaf(
            'image/png; name="image001.png"',
            PNG,
            cte="base64",
            headers=[
                "Content-ID: <image001.png@01DABC12.34567890>",
                'Content-Disposition: inline; filename="image001.png"',
            ],
        ),
        boundary="related-1",
        params='; type="text/html"',
    )
    mails.append(
        CorpusMail(
            "inline_cid_image",
            message(
                top(
                    "Maya <maya@ptsinergi.co.id>",
                    "Error saat login",
                    msgid="inline.1@ptsinergi.co.id",
                ),
                multi(
                    "alternative",
                    leaf("text/plain; charset=utf-8", "Muncul pesan error seperti ini:\n[error]\n"),
                    related,
                    boundary="alt-inline-1",
                ),
            ),
            Expect(
                requester="maya@ptsinergi.co.id",
                category="LOGIN_ERROR_APLIKASI",
                stripped_has=("pesan error",),
                attachments=("image001.png",),
                inline=("image001.png",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "outlook_winmail_dat",
            message(
                top(
                    "Heru <heru@dinaskesehatan.kotacontoh.go.id>",
                    "Pencatatan non tender",
                    msgid="tnef.1@dinaskesehatan.kotacontoh.go.id",
                ),
                multi(
                    "mixed",
                    leaf(
                        "text/plain; charset=us-ascii",
                        "Bagaimana cara pencatatan non tender untuk belanja swakelola?\n",
                        cte="7bit",
                    ),
                    leaf(
                        "application/ms-tnef",
                        TNEF,
                        cte="base64",
                        headers=["Content-Disposition: attachment"],
                    ),
                    boundary="tnef-boundary",
                ),
            ),
            Expect(
                requester="heru@dinaskesehatan.kotacontoh.go.id",
                category="NONTENDER_PENCATATAN",
                stripped_has=("swakelola",),
                attachments=("winmail.dat",),
            ),
        )
    )
    big = b"\x00\x01" * 40_000
    mails.append(
        CorpusMail(
            "over_size_limit",
            message(
                top(
                    "Indra <indra@ptbesar.co.id>",
                    "Dokumen kualifikasi lengkap",
                    msgid="big.1@ptbesar.co.id",
                ),
                multi(
                    "mixed",
                    leaf("text/plain; charset=utf-8", "Terlampir dokumen izin usaha dan akta.\n"),
                    leaf(
                        'application/zip; name="dokumen.zip"',
                        big,
                        cte="base64",
                        headers=['Content-Disposition: attachment; filename="dokumen.zip"'],
                    ),
                    boundary="big-1",
                ),
            ),
            Expect(
                requester="indra@ptbesar.co.id",
                category="DATA_PENYEDIA_SIKAP",
                stripped_has=("izin usaha",),
                attachments=("dokumen.zip",),
                omitted=True,
                defects_has=("exceeds the 50000 byte limit",),
            ),
            max_bytes=50_000,
        )
    )
    return mails


def _broken() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    mails.append(
        CorpusMail(
            "malformed_headers",
            _lines(
                "From: eko@ptabadi.co.id\n"
                "To: helpdesk@lpse.kotacontoh.go.id,,\n"
                "Subject: =?utf-8?Q?Status_tender_yang_=ZZrusak?=\n"
                "Date: 32 Foo 2026 25:61:00 +0700\n"
                "Message-ID: <malformed.1@ptabadi.co.id>\n"
                "Content-Type: text/plain; charset=\n"
                "This line is not a header\n"
                "\n"
                "Status tahapan tender tidak berubah.\n"
            ),
            Expect(
                requester="eko@ptabadi.co.id",
                category="JADWAL_TAHAPAN",
                defects_has=("unparseable Date header",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "missing_message_id",
            text_mail(
                "Fajar <fajar@cvmakmur.id>",
                "Akun terkunci",
                "Akun terkunci setelah salah password tiga kali.\n",
                msgid=None,
            ),
            Expect(
                requester="fajar@cvmakmur.id",
                category="AKUN_LUPA_PASSWORD",
                has_message_id=False,
                defects_has=("missing Message-ID header",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "missing_from",
            text_mail(
                "",
                "Tanpa pengirim",
                "Mohon info katalog elektronik.\n",
                msgid="nofrom.1@mx.example.net",
            ),
            Expect(
                requester="",
                category="EKATALOG",
                defects_has=("missing From header",),
            ),
        )
    )
    truncated = message(
        top("Gita <gita@ptcahaya.co.id>", "Upload gagal", msgid="trunc.1@ptcahaya.co.id"),
        multi(
            "mixed",
            leaf("text/plain; charset=utf-8", "Gagal unggah dokumen, lampiran terpotong.\n"),
            leaf('application/pdf; name="a.pdf"', PDF * 30, cte="base64"),
            boundary="trunc-1",
        ),
    )
    mails.append(
        CorpusMail(
            "truncated_multipart",
            truncated[: len(truncated) - 700],
            Expect(
                requester="gita@ptcahaya.co.id",
                category="TENDER_UNGGAH_PENAWARAN",
                stripped_has=("lampiran terpotong",),
                attachments=("a.pdf",),
                defects_has=("close boundary",),
            ),
        )
    )
    mails.append(
        CorpusMail(
            "raw_8bit_header",
            _lines(
                b"From: Pak Nurdin <nurdin@ptsentosa.co.id>\n"
                + "Subject: Sirup – paket belum muncul\n".encode("cp1252")
                + b"To: helpdesk@lpse.kotacontoh.go.id\n"
                b"Date: Tue, 05 May 2026 08:00:00 +0700\n"
                b"Message-ID: <8bit.1@ptsentosa.co.id>\n"
                b"\n"
                b"Paket di SiRUP belum muncul di SPSE.\n"
            ),
            Expect(
                requester="nurdin@ptsentosa.co.id",
                category="SIRUP",
                subject="Sirup \u2013 paket belum muncul",
                defects_has=("8-bit bytes",),
            ),
        )
    )
    return mails


def _senders() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    mails.append(
        CorpusMail(
            "reply_to_human",
            text_mail(
                "Formulir Kontak LPSE <noreply@kotacontoh.go.id>",
                "Formulir kontak: registrasi penyedia",
                "Nama: Lestari\nPesan: Bagaimana cara registrasi penyedia baru?\n",
                msgid="form.1@kotacontoh.go.id",
                extra=["Reply-To: Lestari <lestari.ayu@gmail.com>"],
            ),
            # Reply-To at another domain than From is not answered automatically (else anyone
            # could make the helpdesk mail a third party); staff see both and write by hand.
            Expect(
                requester="noreply@kotacontoh.go.id",
                category="AKUN_REGISTRASI_VERIFIKASI",
            ),
        )
    )
    mails.append(
        CorpusMail(
            "reply_to_noreply",
            text_mail(
                "Taufik <taufik@cvjaya.co.id>",
                "Sertifikat",
                "Bagaimana memperpanjang sertifikat elektronik dari BSrE?\n",
                msgid="rt.2@cvjaya.co.id",
                extra=["Reply-To: no-reply@cvjaya.co.id"],
            ),
            Expect(requester="taufik@cvjaya.co.id", category="SERTIFIKAT_ELEKTRONIK"),
        )
    )
    mails.append(
        CorpusMail(
            "reply_to_two_addresses",
            text_mail(
                "Yanti <yanti@cvabadi.co.id>",
                "e-Katalog",
                "Produk kami di e-katalog belum tayang.\n",
                msgid="rt.3@cvabadi.co.id",
                extra=["Reply-To: yanti@cvabadi.co.id, admin@cvabadi.co.id"],
            ),
            Expect(requester="yanti@cvabadi.co.id", category="EKATALOG"),
        )
    )
    lkpp = """Yth. Helpdesk LPSE Kota Contoh,

Permasalahan dekripsi telah kami perbaiki di server. Silakan Pokja mencoba kembali.

Salam,
Helpdesk LKPP

-----Original Message-----
From: Helpdesk LPSE Kota Contoh <helpdesk@lpse.kotacontoh.go.id>
Sent: Monday, May 4, 2026 2:00 PM
Subject: Eskalasi LPSE Kota Contoh: [LPSE-2026-00042] Dokumen tidak dapat dibuka
"""
    mails.append(
        CorpusMail(
            "lkpp_helpdesk_reply",
            text_mail(
                "Helpdesk LKPP <helpdesk@lkpp.go.id>",
                "RE: Eskalasi LPSE Kota Contoh: [LPSE-2026-00042] Dokumen tidak dapat dibuka",
                lkpp,
                msgid="LKPP-REPLY-8841@lkpp.go.id",
                extra=[f"In-Reply-To: <{OUR_ID_2}>", f"References: <{OUR_ID}> <{OUR_ID_2}>"],
            ),
            Expect(
                requester="helpdesk@lkpp.go.id",
                category="TENDER_DOKUMEN_TIDAK_TERBUKA",
                stripped_has=("dekripsi",),
                stripped_lacks=("Eskalasi",),
                ticket="LPSE-2026-00042",
            ),
        )
    )
    mails.append(
        CorpusMail(
            "lkpp_ticket_system_ack",
            text_mail(
                "LKPP Helpdesk <no-reply@lkpp.go.id>",
                "[#LKPP-884120] Tiket Anda telah diterima",
                "Terima kasih, tiket Anda telah kami terima dan akan segera diproses.\n",
                msgid="ack.884120@helpdesk.lkpp.go.id",
                extra=["Auto-Submitted: auto-generated", "Precedence: bulk"],
            ),
            Expect(kind="auto_reply", requester="no-reply@lkpp.go.id"),
        )
    )
    mails.append(
        CorpusMail(
            "own_address",
            text_mail(
                f"Helpdesk LPSE Kota Contoh <{OWN}>",
                "Catatan internal",
                "Tes kirim dari akun helpdesk.\n",
                msgid="own.1@lpse.kotacontoh.go.id",
            ),
            Expect(kind="own", requester=OWN),
        )
    )
    mails.append(
        CorpusMail(
            "loop_our_mail_back",
            text_mail(
                f"Helpdesk LPSE Kota Contoh <{OWN}>",
                "Re: [LPSE-2026-00042] Gagal upload penawaran",
                "Yth. Ibu Rina,\n\nTiket Anda telah kami terima.\n",
                msgid=OUR_ID,
                extra=[
                    "Auto-Submitted: auto-replied",
                    "X-LPSE-Helpdesk-Ticket: LPSE-2026-00042",
                ],
            ),
            Expect(
                kind="loop",
                requester=OWN,
                category="TENDER_UNGGAH_PENAWARAN",
                ticket="LPSE-2026-00042",
            ),
        )
    )
    mails.append(
        CorpusMail(
            "outlook_normal_with_suppress",
            text_mail(
                "Wahyu <wahyu@setda.kotacontoh.go.id>",
                "Konsultasi dasar hukum",
                "Mohon konsultasi dasar hukum pengadaan langsung di atas 200 juta.\n",
                msgid="suppress.1@setda.kotacontoh.go.id",
                extra=["X-Auto-Response-Suppress: All", "X-MS-TNEF-Correlator:"],
            ),
            Expect(requester="wahyu@setda.kotacontoh.go.id", category="KONSULTASI_REGULASI"),
        )
    )
    return mails


def _auto_replies() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    tender = "TENDER_UNGGAH_PENAWARAN"
    cases = [
        (
            "auto_submitted_id",
            "Balasan otomatis: [LPSE-2026-00042] Gagal upload",
            ["Auto-Submitted: auto-replied"],
            tender,
        ),
        ("precedence_bulk", "Buletin Pengadaan Mei 2026", ["Precedence: bulk"], "LAINNYA"),
        ("precedence_auto_reply", "Re: Pertanyaan", ["Precedence: auto_reply"], "LAINNYA"),
        ("x_autoreply", "Re: [LPSE-2026-00042] Gagal upload", ["X-Autoreply: yes"], tender),
        (
            "x_autorespond",
            "Terima kasih atas email Anda",
            ["X-Autorespond: Terima kasih"],
            "LAINNYA",
        ),
        (
            "list_id",
            "[forum-pengadaan] Diskusi bulan ini",
            [
                "List-Id: Forum Pengadaan <forum-pengadaan.googlegroups.com>",
                "List-Unsubscribe: <mailto:forum-pengadaan+unsubscribe@googlegroups.com>",
            ],
            "LAINNYA",
        ),
        (
            "ooo_automatic_reply_en",
            "Automatic reply: [LPSE-2026-00042] Gagal upload",
            ["X-Auto-Response-Suppress: All"],
            tender,
        ),
        ("ooo_out_of_office", "Out of Office: Re: Jadwal tender", [], "JADWAL_TAHAPAN"),
        ("ooo_sedang_cuti", "Sedang cuti sampai 11 Mei 2026", [], "LAINNYA"),
        ("ooo_di_luar_kantor", "Di luar kantor: Re: [LPSE-2026-00042] Gagal upload", [], tender),
        ("ooo_balas_otomatis", "Balas otomatis: Pengumuman", [], "LAINNYA"),
    ]
    for name, subject, extra, category in cases:
        mails.append(
            CorpusMail(
                name,
                text_mail(
                    "Ratna Sari <ratna.sari@ptmegah.co.id>",
                    subject,
                    "Saya sedang cuti sampai 11 Mei 2026. "
                    "Untuk hal mendesak hubungi 0813-1111-2222.\n",
                    msgid=f"{name}.1@ptmegah.co.id",
                    extra=extra,
                ),
                Expect(
                    kind="auto_reply",
                    requester="ratna.sari@ptmegah.co.id",
                    category=category,
                    priority="tinggi",  # "mendesak" is an urgency word
                    ticket="LPSE-2026-00042" if "[LPSE-2026-00042]" in subject else None,
                    phones=("+6281311112222",),
                ),
            )
        )
    mails.append(
        CorpusMail(
            "read_receipt_mdn",
            message(
                top(
                    "Ratna Sari <ratna.sari@ptmegah.co.id>",
                    "Read: [LPSE-2026-00042] Gagal upload",
                    msgid="mdn.1@ptmegah.co.id",
                ),
                multi(
                    "report",
                    leaf("text/plain; charset=utf-8", "Your message was read.\n"),
                    leaf(
                        "message/disposition-notification",
                        f"Final-Recipient: rfc822; ratna.sari@ptmegah.co.id\n"
                        f"Original-Message-ID: <{OUR_ID}>\n"
                        "Disposition: manual-action/MDN-sent-manually; displayed\n",
                        cte="7bit",
                    ),
                    boundary="mdn-1",
                    params="; report-type=disposition-notification",
                ),
            ),
            Expect(
                kind="auto_reply",
                requester="ratna.sari@ptmegah.co.id",
                category="TENDER_UNGGAH_PENAWARAN",
                ticket="LPSE-2026-00042",
            ),
        )
    )
    return mails


def _bounces() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    status = (
        "Reporting-MTA: dns; googlemail.com\n"
        "Arrival-Date: Mon, 04 May 2026 03:15:01 -0700 (PDT)\n"
        f"X-Original-Message-ID: <{OUR_ID}>\n"
        "\n"
        "Final-Recipient: rfc822; rina.w@cvberkah.co.id\n"
        "Action: failed\n"
        "Status: 5.1.1\n"
        "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does\n"
        " not exist.\n"
        "Last-Attempt-Date: Mon, 04 May 2026 03:15:02 -0700 (PDT)\n"
    )
    mails.append(
        CorpusMail(
            "bounce_gmail",
            message(
                [
                    "Return-Path: <>",
                    "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                    f"To: {OWN}",
                    "Subject: Delivery Status Notification (Failure)",
                    "Date: Mon, 04 May 2026 03:15:02 -0700 (PDT)",
                    "Message-ID: <6640aa11.bounce.gmail@mx.google.com>",
                    f"References: <{OUR_ID}>",
                    f"In-Reply-To: <{OUR_ID}>",
                    "X-Failed-Recipients: rina.w@cvberkah.co.id",
                    "Auto-Submitted: auto-replied",
                ],
                multi(
                    "report",
                    alternative(
                        "** Address not found **\n\nYour message wasn't delivered to "
                        "rina.w@cvberkah.co.id because the address couldn't be found.\n",
                        "<p><b>Address not found</b></p>",
                        "alt-gmail-bounce",
                    ),
                    leaf("message/delivery-status", status, cte="7bit"),
                    _lines(b"Content-Type: message/rfc822\n\n") + OUR_ORIGINAL,
                    boundary="000000000000bounce1",
                    params="; report-type=delivery-status",
                ),
            ),
            Expect(
                kind="bounce",
                requester="mailer-daemon@googlemail.com",
                bounced_ids=(OUR_ID,),
                failed=("rina.w@cvberkah.co.id",),
                attachments=("Re [LPSE-2026-00042] Gagal upload penawaran.eml",),
            ),
        )
    )
    postfix_status = (
        "Reporting-MTA: dns; mx.kotacontoh.go.id\n"
        "X-Postfix-Queue-ID: 4Zx9K21fQpz1\n"
        "Arrival-Date: Mon,  4 May 2026 10:15:00 +0700 (WIB)\n"
        "\n"
        "Final-Recipient: rfc822; salah.alamat@cvberkah.co.id\n"
        "Original-Recipient: rfc822;salah.alamat@cvberkah.co.id\n"
        "Action: failed\n"
        "Status: 5.1.2\n"
        "Diagnostic-Code: X-Postfix; Host or domain name not found.\n"
    )
    mails.append(
        CorpusMail(
            "bounce_postfix_headers_only",
            message(
                [
                    "Return-Path: <>",
                    "From: MAILER-DAEMON@mx.kotacontoh.go.id (Mail Delivery System)",
                    f"To: {OWN}",
                    "Subject: Undelivered Mail Returned to Sender",
                    "Date: Mon,  4 May 2026 10:15:04 +0700 (WIB)",
                    "Message-Id: <20260504031504.4Zx9K21fQpz2@mx.kotacontoh.go.id>",
                    "Auto-Submitted: auto-replied",
                ],
                multi(
                    "report",
                    leaf(
                        "text/plain; charset=us-ascii",
                        "This is the mail system at host mx.kotacontoh.go.id.\n\n"
                        "I'm sorry to have to inform you that your message could not\n"
                        "be delivered to one or more recipients.\n",
                        cte="7bit",
                        headers=["Content-Description: Notification"],
                    ),
                    leaf("message/delivery-status", postfix_status, cte="7bit"),
                    leaf(
                        "text/rfc822-headers",
                        f"From: {OWN}\nTo: salah.alamat@cvberkah.co.id\n"
                        f"Subject: Re: [LPSE-2026-00042] Gagal upload penawaran\n"
                        f"Message-ID: <{OUR_ID_2}>\nX-LPSE-Helpdesk-Ticket: LPSE-2026-00042\n",
                        cte="7bit",
                    ),
                    boundary="4Zx9K21fQpz2.1746328504/mx.kotacontoh.go.id",
                    params="; report-type=delivery-status",
                ),
            ),
            Expect(
                kind="bounce",
                requester="mailer-daemon@mx.kotacontoh.go.id",
                bounced_ids=(OUR_ID_2,),
                failed=("salah.alamat@cvberkah.co.id",),
            ),
        )
    )
    exchange_status = (
        "Reporting-MTA: dns;SG2PR06MB5263.apcprd06.prod.outlook.com\n"
        "Received-From-MTA: dns;SG2PR06MB5263.apcprd06.prod.outlook.com\n"
        "\n"
        "Final-Recipient: rfc822;mantan.pegawai@kotacontoh.go.id\n"
        "Action: failed\n"
        "Status: 5.1.10\n"
        "Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found\n"
    )
    mails.append(
        CorpusMail(
            "bounce_exchange_ndr",
            message(
                [
                    "From: Microsoft Outlook <postmaster@kotacontoh.onmicrosoft.com>",
                    f"To: <{OWN}>",
                    "Subject: Undeliverable: Re: [LPSE-2026-00042] Gagal upload penawaran",
                    "Date: Mon, 4 May 2026 03:16:10 +0000",
                    "Message-ID: <b1e2f3a4-ndr@SG2PR06MB5263.apcprd06.prod.outlook.com>",
                    f"In-Reply-To: <{OUR_ID}>",
                    f"References: <{OUR_ID}>",
                    "Content-Language: en-US",
                    "X-MS-Exchange-Message-Is-Ndr:",
                ],
                multi(
                    "report",
                    alternative(
                        "Your message to mantan.pegawai@kotacontoh.go.id couldn't be delivered.\n",
                        "<html><body><b>Your message couldn't be delivered.</b></body></html>",
                        "alt-ndr",
                    ),
                    leaf("message/delivery-status", exchange_status, cte="7bit"),
                    _lines(b"Content-Type: message/rfc822\n\n") + OUR_ORIGINAL,
                    boundary="_ndr_boundary_",
                    params='; report-type="delivery-status"',
                ),
            ),
            Expect(
                kind="bounce",
                requester="postmaster@kotacontoh.onmicrosoft.com",
                category="TENDER_UNGGAH_PENAWARAN",  # computed, though a bounce opens no ticket
                ticket="LPSE-2026-00042",
                bounced_ids=(OUR_ID,),
                failed=("mantan.pegawai@kotacontoh.go.id",),
                attachments=("Re [LPSE-2026-00042] Gagal upload penawaran.eml",),
            ),
        )
    )
    delayed = (
        "Reporting-MTA: dns; mx.kotacontoh.go.id\n\n"
        "Final-Recipient: rfc822; lambat@servermacet.co.id\n"
        "Action: delayed\n"
        "Status: 4.4.1\n"
        "Diagnostic-Code: X-Postfix; connect to mx.servermacet.co.id: Connection timed out\n"
    )
    mails.append(
        CorpusMail(
            "bounce_delayed",
            message(
                [
                    "Return-Path: <>",
                    "From: MAILER-DAEMON@mx.kotacontoh.go.id (Mail Delivery System)",
                    f"To: {OWN}",
                    "Subject: Delayed Mail (still being retried)",
                    "Date: Mon,  4 May 2026 14:15:04 +0700 (WIB)",
                    "Message-Id: <20260504071504.delay@mx.kotacontoh.go.id>",
                ],
                multi(
                    "report",
                    leaf("text/plain", "Your message has been delayed.\n", cte="7bit"),
                    leaf("message/delivery-status", delayed, cte="7bit"),
                    leaf("text/rfc822-headers", f"Message-ID: <{OUR_ID}>\n", cte="7bit"),
                    boundary="delay-1",
                    params="; report-type=delivery-status",
                ),
            ),
            Expect(
                kind="bounce",
                requester="mailer-daemon@mx.kotacontoh.go.id",
                bounced_ids=(OUR_ID,),
                failed=("lambat@servermacet.co.id",),
                transient=True,
            ),
        )
    )
    qmail = f"""Hi. This is the qmail-send program at mail.hostingmurah.id.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<tidakada@hostingmurah.id>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <{OWN}>
From: Helpdesk LPSE Kota Contoh <{OWN}>
Message-ID: <{OUR_ID_2}>
Subject: Re: [LPSE-2026-00042] Gagal upload penawaran

Yth. Bapak/Ibu,
"""
    mails.append(
        CorpusMail(
            "bounce_qmail_plain",
            _lines(
                "Return-Path: <>\n"
                "From: MAILER-DAEMON@mail.hostingmurah.id\n"
                f"To: {OWN}\n"
                "Subject: failure notice\n"
                "Date: 4 May 2026 03:20:00 -0000\n"
                "Message-ID: <qmail.bounce.1@mail.hostingmurah.id>\n"
                "\n" + qmail
            ),
            Expect(
                kind="bounce",
                requester="mailer-daemon@mail.hostingmurah.id",
                category="TENDER_UNGGAH_PENAWARAN",  # from the returned copy in the text
                bounced_ids=(OUR_ID_2,),
            ),
        )
    )
    return mails


def _forwards() -> list[CorpusMail]:
    mails: list[CorpusMail] = []
    gmail_fwd = """Mohon bantuan, kami menerima email ini saat unggah penawaran.

---------- Pesan terusan ---------
Dari: SPSE Kota Contoh <noreply@spse.kotacontoh.go.id>
Date: Sen, 4 Mei 2026 pukul 13.55
Subject: Pemberitahuan: Dokumen penawaran gagal dikirim
To: <dian@cvlancar.co.id>


Dokumen penawaran gagal dikirim untuk kode tender 10055512000. Silakan ulangi.
"""
    mails.append(
        CorpusMail(
            "forwarded_gmail_id",
            text_mail(
                "Dian <dian@cvlancar.co.id>",
                "Fwd: Pemberitahuan: Dokumen penawaran gagal dikirim",
                gmail_fwd,
                msgid="CAFwd1@mail.gmail.com",
            ),
            Expect(
                requester="dian@cvlancar.co.id",
                category="TENDER_UNGGAH_PENAWARAN",
                stripped_has=("Pesan terusan", "gagal dikirim untuk kode tender 10055512000"),
                tender_codes=("10055512000",),
            ),
        )
    )
    outlook_fw = """Mohon ditindaklanjuti.

________________________________
From: Eka Putra <eka@ptcahaya.co.id>
Sent: Monday, May 4, 2026 8:10 AM
To: Kepala Bagian Pengadaan <kabag.pbj@kotacontoh.go.id>
Subject: Akun terkunci

Akun SPSE kami terkunci, mohon dibuka. Username: ptcahaya01

________________________________
From: Sistem SPSE
Sent: Sunday, May 3, 2026 8:00 PM
To: Eka Putra
Subject: Peringatan login

Akun Anda terkunci.
"""
    mails.append(
        CorpusMail(
            "forwarded_outlook_fw",
            text_mail(
                "Kabag PBJ <kabag.pbj@kotacontoh.go.id>",
                "FW: Akun terkunci",
                outlook_fw,
                msgid="fw.1@kotacontoh.go.id",
            ),
            Expect(
                requester="kabag.pbj@kotacontoh.go.id",
                category="AKUN_LUPA_PASSWORD",
                stripped_has=("Mohon ditindaklanjuti", "ptcahaya01"),
                stripped_lacks=("Peringatan login",),
            ),
        )
    )
    apple = """Lihat di bawah.

Begin forwarded message:

From: Bela Pengadaan <info@belapengadaan.id>
Subject: Status pesanan toko daring
Date: 3 May 2026 at 19.00.00 GMT+7
To: toko@umkmkita.id

Pesanan toko daring Anda menunggu konfirmasi.
"""
    mails.append(
        CorpusMail(
            "forwarded_apple_mail",
            text_mail(
                "UMKM Kita <toko@umkmkita.id>",
                "Fwd: Status pesanan toko daring",
                apple,
                msgid="apple.fwd.1@umkmkita.id",
            ),
            Expect(
                requester="toko@umkmkita.id",
                category="EKATALOG",
                stripped_has=("menunggu konfirmasi",),
            ),
        )
    )
    inner = text_mail(
        "Pokja 2 <pokja2@kotacontoh.go.id>",
        "Undangan pembuktian kualifikasi",
        "Undangan pembuktian kualifikasi paket 66612345.\n",
        msgid="inner.1@kotacontoh.go.id",
    )
    mails.append(
        CorpusMail(
            "forwarded_as_attachment",
            message(
                top(
                    "Rahmat <rahmat@cvsentosa.id>",
                    "Fwd: Undangan pembuktian kualifikasi",
                    msgid="fwdattach.1@cvsentosa.id",
                ),
                multi(
                    "mixed",
                    leaf("text/plain; charset=utf-8", "Apakah jadwal pembuktian bisa diubah?\n"),
                    _lines(
                        b"Content-Type: message/rfc822\n"
                        b'Content-Disposition: attachment; filename="undangan.eml"\n\n'
                    )
                    + inner,
                    boundary="fwd-attach-1",
                ),
            ),
            Expect(
                requester="rahmat@cvsentosa.id",
                category="JADWAL_TAHAPAN",
                stripped_has=("jadwal pembuktian",),
                attachments=("undangan.eml",),
            ),
        )
    )
    return mails


def build() -> tuple[CorpusMail, ...]:
    """All corpus mails, in a stable order with unique names."""
    mails = (
        _conversation()
        + _charsets()
        + _html()
        + _attachments()
        + _broken()
        + _senders()
        + _auto_replies()
        + _bounces()
        + _forwards()
    )
    names = [mail.name for mail in mails]
    assert len(names) == len(set(names)), "corpus names must be unique"
    return tuple(mails)


def main(argv: Sequence[str]) -> int:
    target = Path(argv[0] if argv else "corpus-eml")
    target.mkdir(parents=True, exist_ok=True)
    for mail in build():
        (target / f"{mail.name}.eml").write_bytes(mail.raw)
    print(f"wrote {len(build())} mails to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
