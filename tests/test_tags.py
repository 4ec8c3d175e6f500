from __future__ import annotations

import pytest

from lpse_helpdesk.bridge.tags import (
    add_tag,
    find_ticket_number,
    format_tag,
    forward_prefix,
    strip_reply_prefixes,
)

NUMBER = "LPSE-2026-00042"


def test_format_tag() -> None:
    assert format_tag(NUMBER) == "[LPSE-2026-00042]"


@pytest.mark.parametrize(
    "subject",
    [
        "[LPSE-2026-00042] Gagal upload",
        "Re: [LPSE-2026-00042] Gagal upload",
        "RE: RE: [LPSE-2026-00042] Gagal upload",
        "Fwd: [LPSE-2026-00042] Gagal upload",
        "FW: [LPSE-2026-00042] Gagal upload",
        "Bls: [LPSE-2026-00042] Gagal upload",
        "Balas: [LPSE-2026-00042] Gagal upload",
        "Tr: [LPSE-2026-00042] Gagal upload",
        "AW: [LPSE-2026-00042] Gagal upload",
        "Re[2]: [LPSE-2026-00042] Gagal upload",
        "Re: Re: Gagal upload [LPSE-2026-00042]",
        "Re: [lpse-2026-00042] Gagal upload",
        "Re: [ LPSE-2026-00042 ] Gagal upload",
        "Re: [LPSE - 2026 - 00042] Gagal upload",
        "Automatic reply: [LPSE-2026-00042] Gagal upload",
        "Eskalasi LPSE Kota Contoh: [LPSE-2026-00042] Dokumen",
    ],
)
def test_find_ticket_number_survives_prefixes(subject: str) -> None:
    assert find_ticket_number(subject, "LPSE") == NUMBER


@pytest.mark.parametrize(
    "subject",
    [
        "",
        "Gagal upload",
        "LPSE-2026-00042 Gagal upload",  # no brackets: too loose to trust
        "Re: (LPSE-2026-00042)",
        "[LPSE-2026-0042] four digits",
        "[LPSE-26-00042] short year",
        "[XLPSE-2026-00042] other prefix",
        "[LPSE-2026-00042x]",
    ],
)
def test_find_ticket_number_is_strict(subject: str) -> None:
    assert find_ticket_number(subject, "LPSE") is None


def test_find_ticket_number_uses_the_configured_prefix() -> None:
    assert find_ticket_number("Re: [HD-KAB-2026-123456] x", "HD-KAB") == "HD-KAB-2026-123456"
    assert find_ticket_number("Re: [LPSE-2026-00042] x", "HD") is None
    assert find_ticket_number("[lpse.x-2026-00042]", "LPSE.X") == "LPSE.X-2026-00042"
    assert find_ticket_number("[LPSEAX-2026-00042]", "LPSE.X") is None  # "." is literal
    assert find_ticket_number("[LPSE-2026-00042]", " ") is None


def test_find_ticket_number_takes_the_first_tag() -> None:
    subject = "Re: [LPSE-2026-00050] Fwd: [LPSE-2026-00042] lama"
    assert find_ticket_number(subject, "LPSE") == "LPSE-2026-00050"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Fwd: Bls: Gagal upload", "Gagal upload"),
        ("RE: RE: FW: Balas: Tr: AW: Gagal", "Gagal"),
        ("Re[2]: Re(3): Gagal", "Gagal"),
        ("Re : Gagal", "Gagal"),
        ("Re：Gagal", "Gagal"),
        ("Gagal upload", "Gagal upload"),
        ("Regulasi: pertanyaan", "Regulasi: pertanyaan"),
        ("Tr:", ""),
        ("", ""),
        ("  Re:   [LPSE-2026-00042] X  ", "[LPSE-2026-00042] X"),
    ],
)
def test_strip_reply_prefixes(subject: str, expected: str) -> None:
    assert strip_reply_prefixes(subject) == expected


def test_forward_prefix() -> None:
    assert forward_prefix("Fwd: x")
    assert forward_prefix("FW: x")
    assert forward_prefix("Tr: x")
    assert not forward_prefix("Re: Fwd: x")
    assert not forward_prefix("Forum")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Gagal upload", "[LPSE-2026-00042] Gagal upload"),
        ("Re: Gagal upload", "Re: [LPSE-2026-00042] Gagal upload"),
        ("", "[LPSE-2026-00042]"),
        ("Re:", "Re: [LPSE-2026-00042]"),
        ("Re: [LPSE-2026-00042] Gagal", "Re: [LPSE-2026-00042] Gagal"),
        ("Re: [ lpse-2026-00042 ] Gagal", "Re: [ lpse-2026-00042 ] Gagal"),
        ("Re: [LPSE-2026-00017] Lama", "Re: [LPSE-2026-00042] [LPSE-2026-00017] Lama"),
        ("Gagal\r\n  upload", "[LPSE-2026-00042] Gagal upload"),
    ],
)
def test_add_tag(subject: str, expected: str) -> None:
    assert add_tag(subject, NUMBER) == expected


def test_add_tag_is_idempotent() -> None:
    once = add_tag("Re: Gagal upload", NUMBER)
    assert add_tag(once, NUMBER) == once
    assert find_ticket_number(once, "LPSE") == NUMBER
