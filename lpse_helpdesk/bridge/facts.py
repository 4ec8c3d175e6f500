"""Facts worth showing on a ticket card: SPSE tender/package codes and Indonesian phone numbers.

Both functions are pure and return values in order of relevance, without duplicates.
"""

from __future__ import annotations

import re

__all__ = ["phone_numbers", "tender_codes"]

_FLAGS = re.IGNORECASE

# "Kode Tender: 12345678", "kode paket 98765432", "ID RUP 31234567", "tender 10012345000",
# "no. lelang: 1234567"; up to two filler words ("adalah", "nomor", "no.") before the number.
# Linear time on any text: every run of blanks is possessive (\s*+), so no two quantifiers
# share out one run between them. Was: (?:\s*(?:filler)\s*){0,3}\s*, where the blanks between
# two fillers could be split between two \s* in every way (cubic on "kode tender - - ...").
_CODE_WORD = (
    r"(?:kode|id|nomor|no\.?)\s*+(?:tender|paket|lelang|rup|non[\s-]?tender|pl|pencatatan)"
    r"|(?:tender|paket|lelang|rup|non[\s-]?tender)"
)
_FILLER = r"(?:\s*+(?:[:#=]|adalah|yaitu|yakni|nomor|no\.?|id|kode|dengan|ini|kami|saya|-)){0,3}"
_NUMBER = r"(?<![\d.,/-])(\d{5,12})(?![\d]|[.,/-]\d|\s*+[-.]\s*+\d{3})"
_CODE = re.compile(rf"\b(?:{_CODE_WORD})\b{_FILLER}\s*+{_NUMBER}", _FLAGS)
# Further numbers in a list: "kode tender 1234567, 2345678 dan 3456789".
# Was \s*(...)\s*NUMBER: on a run of blanks the two \s* shared it out in every way.
_MORE = re.compile(rf"\s*+(?:,|;|/|&|\bdan\b|\band\b|\bserta\b)\s*+{_NUMBER}", _FLAGS)
# SPSE links: .../lelang/10012345000/pengumumanlelang, .../nontender/123456/...
_URL_CODE = re.compile(r"/(?:lelang|tender|nontender|pl|pencatatan|rup)/(\d{5,12})(?!\d)", _FLAGS)

# Mobile: 08xx / +62 8xx / 62 8xx, 9-12 digits after the 0 (or after 62).
_MOBILE = re.compile(r"(?<![\w+])(?:\+\s?62|62|0)[\s.-]?(8\d{1,3}(?:[\s.-]?\d{2,5}){1,3})(?![\w-])")
# Landline: (021) 1234567, 021-1234567, 0274 512345, +62 21 1234567, +62-274-512345.
_LANDLINE = re.compile(
    r"(?<![\w+])(?:\(\s?0([2-79]\d{1,2})\s?\)|0([2-79]\d{1,2})[\s.-]|\+\s?62[\s.-]?\(?0?([2-79]\d{1,2})\)?[\s.-]?)"
    r"\s?(\d{3,4}[\s.-]?\d{2,5})(?![\w-])"
)
# Was ^\s*(?:--\s*|...)$ with MULTILINE: ^\s* ran over blank lines, so each line of a run of
# blank lines rescanned all the rest (quadratic on a bounce with thousands of blank lines).
# Now only the line's own indentation, possessively.
_SIGNATURE_START = re.compile(
    r"^[^\S\n]*+(?:--[^\S\n]*+|salam\b.*|hormat\s+(?:kami|saya)\b.*|terima\s*kasih\b.*|terimakasih\b.*"
    r"|regards\b.*|best\s+regards\b.*|thanks?\b.*|wassalam\b.*|ttd\.?.*|tertanda\b.*"
    r"|salam\s++hormat\b.*|cp\s*+:.*|contact\s++person\b.*|hp\s*+[:/.].*|telp\.?\s*+[:/.].*"
    r"|wa\s*+[:/.].*)$",
    _FLAGS | re.MULTILINE,
)


def tender_codes(text: str) -> tuple[str, ...]:
    """SPSE tender / package / RUP codes mentioned near those words or in SPSE links."""
    found: list[tuple[int, str]] = []
    for match in _CODE.finditer(text):
        found.append((match.start(1), match.group(1)))
        position = match.end()
        while more := _MORE.match(text, position):
            found.append((more.start(1), more.group(1)))
            position = more.end()
    for match in _URL_CODE.finditer(text):
        found.append((match.start(1), match.group(1)))
    found.sort()
    return tuple(dict.fromkeys(code for _, code in found))


def _code_spans(text: str) -> list[tuple[int, int]]:
    spans = [m.span(1) for m in _CODE.finditer(text)]
    spans += [m.span(1) for m in _URL_CODE.finditer(text)]
    return spans


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _signature_start(text: str) -> int:
    """Where the signature probably starts: the first closing line near the end of the text."""
    floor = max(0, len(text) - 1200)
    for match in _SIGNATURE_START.finditer(text):
        if match.start() >= floor:
            return match.start()
    return len(text)


def phone_numbers(text: str) -> tuple[str, ...]:
    """Indonesian phone numbers, normalised to ``+62...``; those in the signature come first."""
    taken = _code_spans(text)
    hits: list[tuple[int, str]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    for match in _MOBILE.finditer(text):
        subscriber = _digits(match.group(1))
        if 9 <= len(subscriber) <= 12 and free(*match.span()):
            hits.append((match.start(), f"+62{subscriber}"))
            taken.append(match.span())
    for match in _LANDLINE.finditer(text):
        area = match.group(1) or match.group(2) or match.group(3) or ""
        local = _digits(match.group(4))
        if 5 <= len(local) <= 8 and 7 <= len(area) + len(local) <= 10 and free(*match.span()):
            hits.append((match.start(), f"+62{area}{local}"))
            taken.append(match.span())
    signature = _signature_start(text)
    hits.sort(key=lambda hit: (hit[0] < signature, hit[0]))
    return tuple(dict.fromkeys(number for _, number in hits))
