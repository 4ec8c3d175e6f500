"""Text that is safe in a spreadsheet cell, a CSV field, an XML file and a PDF.

Spreadsheets run a cell that starts with = + - @ as a formula (CSV/formula injection); a tab
or carriage return at the start can hide such a character. Following OWASP, such a cell is
prefixed with an apostrophe, so it shows as the text it is and runs nothing. The full-width
forms of the four characters are treated the same, and so is a formula character after
leading spaces. Control characters that XML 1.0 forbids are removed.
"""

from __future__ import annotations

import re

FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def neutralise(value: str) -> str:
    """Prefix `'` when the cell would start a formula; other text is returned unchanged."""
    if not value:
        return value
    if value[0] in FORMULA_STARTS or (value[0].isspace() and value.lstrip()[:1] in FORMULA_STARTS):
        return "'" + value
    return value


def clean(value: str | None) -> str:
    """Line ends made "\\n" and characters XML cannot hold removed."""
    if not value:
        return ""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    return _ILLEGAL.sub("", text)


def _cut(text: str, limit: int | None) -> str:
    if limit is not None and len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text


def one_line(value: str, limit: int | None = None) -> str:
    """Whitespace collapsed to single spaces, cut at `limit` characters with "…"."""
    return _cut(" ".join(value.split()), limit)


def safe_cell(value: str | None, limit: int | None = None, *, collapse: bool = False) -> str:
    """Cleaned, optionally collapsed, cut, then neutralised: what every format writes."""
    if not value:
        return ""
    if collapse:
        text = " ".join(value.split())
        if not text.isprintable():  # the common case, plain text, skips the expression
            text = " ".join(_ILLEGAL.sub("", text).split())
        return neutralise(_cut(text, limit))
    return neutralise(_cut(clean(value), limit))
