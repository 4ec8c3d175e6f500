from __future__ import annotations

import pytest

from lpse_helpdesk.bridge.facts import phone_numbers, tender_codes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kode Tender: 12345678", ("12345678",)),
        ("kode paket 98765432", ("98765432",)),
        ("kode lelang 7654321", ("7654321",)),
        ("Kode RUP 31234567", ("31234567",)),
        ("ID RUP: 31234567", ("31234567",)),
        ("ikut tender 10012345000 kemarin", ("10012345000",)),
        ("kode non tender 12345", ("12345",)),
        ("Kode tender kami adalah 10012345000.", ("10012345000",)),
        ("No. Paket #123456", ("123456",)),
        ("kode tender 1234567, 2345678 dan 3456789", ("1234567", "2345678", "3456789")),
        ("KODE TENDER 12345678 dan kode paket 12345678", ("12345678",)),
        (
            "lihat https://spse.inaproc.id/kotacontoh/lelang/10012345000/pengumumanlelang",
            ("10012345000",),
        ),
        ("https://lpse.x.go.id/eproc4/nontender/9912345/pengumuman", ("9912345",)),
    ],
)
def test_tender_codes(text: str, expected: tuple[str, ...]) -> None:
    assert tender_codes(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hubungi 081234567890",
        "telepon (021) 1234567",
        "tanggal 12-05-2026 jam 14.00",
        "tender tanggal 12-05-2026",
        "tender 2026",  # a year, too short
        "paket senilai Rp 1.250.000.000",
        "tender 1234567890123",  # 13 digits: not a code
        "NPWP 01.234.567.8-901.000",
        "tender 0812-3456-7890",
        "",
    ],
)
def test_no_tender_codes(text: str) -> None:
    assert tender_codes(text) == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HP 0812-3456-7890", "+6281234567890"),
        ("HP 081234567890", "+6281234567890"),
        ("WA 0812 3456 789", "+628123456789"),
        ("+62 812-3456-7890", "+6281234567890"),
        ("+6281234567890", "+6281234567890"),
        ("62 857-1234-5678", "+6285712345678"),
        ("0857.1234.5678", "+6285712345678"),
        ("(021) 1234567", "+62211234567"),
        ("(0274) 512345", "+62274512345"),
        ("021-7654321", "+62217654321"),
        ("+62 21 7654321", "+62217654321"),
        ("+62-274-512345", "+62274512345"),
    ],
)
def test_phone_numbers_normalised(text: str, expected: str) -> None:
    assert phone_numbers(f"Hubungi saya di {text} ya.") == (expected,)


@pytest.mark.parametrize(
    "text",
    [
        "Kode Tender: 10012345000",
        "kode paket 62812345678",
        "tanggal 12-05-2026",
        "tanggal 08-12-2025",
        "NPWP 01.234.567.8-901.000",
        "jam 14.00 WIB",
        "nilai Rp 812.345.678",
        "NIB 0812345678901234",
        "",
    ],
)
def test_no_phone_numbers(text: str) -> None:
    assert phone_numbers(text) == ()


def test_signature_numbers_come_first() -> None:
    text = (
        "Kemarin pegawai kami (0811-1111-1111) sudah menelepon.\n"
        "Mohon dibantu.\n\n"
        "Salam,\n"
        "Budi\n"
        "HP: 0812-2222-3333\n"
        "Kantor: (021) 5550123\n"
    )
    assert phone_numbers(text) == ("+6281222223333", "+62215550123", "+6281111111111")


def test_duplicates_are_removed() -> None:
    assert phone_numbers("0812-3456-7890 atau +62 812 3456 7890") == ("+6281234567890",)
