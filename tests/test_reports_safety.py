"""Formula injection, XML-unsafe characters and e-mail masking, format-independent."""

from __future__ import annotations

import pytest

from lpse_helpdesk.reports.masking import mask_email
from lpse_helpdesk.reports.safety import clean, neutralise, one_line, safe_cell


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://evil.example","Klik")',
        "+62 812 3456 7890",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "  =1+1",
        "\uff1d1+1",  # full-width equals sign
    ],
)
def test_formula_starts_are_neutralised(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["", "Lupa password", "a=b", "Tender 1-2", "'sudah'", " x"])
def test_other_text_is_unchanged(value: str) -> None:
    assert neutralise(value) == value


def test_safe_cell_cleans_collapses_cuts_then_neutralises() -> None:
    assert safe_cell("  \n=1+1  ", collapse=True) == "'=1+1"
    assert safe_cell("a\x00b\x07c\r\nd") == "abc\nd"
    assert safe_cell("x" * 20, 10) == "x" * 9 + "…"
    assert safe_cell(None) == ""
    assert safe_cell("baris satu\n\nbaris   dua", collapse=True) == "baris satu baris dua"
    assert safe_cell("-" + "a" * 20, 5) == "'-aaa…"
    assert clean("\ufffe ok \x1f") == " ok "
    assert one_line(" a \t b ") == "a b"


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("siti@vendor.co.id", "s***@v***.co.id"),
        ("budi.santoso@gmail.com", "b***@g***.com"),
        ("pokja@mail.lpse.go.id", "p***@l***.go.id"),
        ("x@localhost", "x***@l***"),
        ("tanpa-at", "t***"),
        ("", ""),
    ],
)
def test_mask_email(address: str, masked: str) -> None:
    assert mask_email(address) == masked
