"""Facts worth showing on a ticket card: SPSE tender/package codes and Indonesian phone numbers.

Both functions are pure and return values in order of relevance, without duplicates.
"""

from __future__ import annotations

import re

__all__ = ["card_facts", "phone_numbers", "tender_codes"]

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
# Each alternative begins with its literal character and checks the one before it after that
# ((?<![\w+].) instead of a leading (?<![\w+])): the same matches, but the regex engine can
# skip ahead to the next "+", "6" or "0" instead of trying every position of the text.
_NOT_AFTER_WORD = r"(?<![\w+].)"
_MOBILE = re.compile(
    rf"(?:\+{_NOT_AFTER_WORD}\s?62|6{_NOT_AFTER_WORD}2|0{_NOT_AFTER_WORD})"
    r"[\s.-]?(8\d{1,3}(?:[\s.-]?\d{2,5}){1,3})(?![\w-])"
)
# Landline: (021) 1234567, 021-1234567, 0274 512345, +62 21 1234567, +62-274-512345.
_LANDLINE = re.compile(
    rf"(?:\({_NOT_AFTER_WORD}\s?0([2-79]\d{{1,2}})\s?\)|0{_NOT_AFTER_WORD}([2-79]\d{{1,2}})[\s.-]"
    rf"|\+{_NOT_AFTER_WORD}\s?62[\s.-]?\(?0?([2-79]\d{{1,2}})\)?[\s.-]?)"
    r"\s?(\d{3,4}[\s.-]?\d{2,5})(?![\w-])"
)
# Was ^\s*(?:--\s*|...)$ with MULTILINE: ^\s* ran over blank lines, so each line of a run of
# blank lines rescanned all the rest (quadratic on a bounce with thousands of blank lines).
# Now only the line's own indentation, possessively.
_SIGNATURE_LINE = (
    r"[^\S\n]*+(?:--[^\S\n]*+|salam\b.*|hormat\s+(?:kami|saya)\b.*|terima\s*kasih\b.*|terimakasih\b.*"
    r"|regards\b.*|best\s+regards\b.*|thanks?\b.*|wassalam\b.*|ttd\.?.*|tertanda\b.*"
    r"|salam\s++hormat\b.*|cp\s*+:.*|contact\s++person\b.*|hp\s*+[:/.].*|telp\.?\s*+[:/.].*"
    r"|wa\s*+[:/.].*)$"
)
_SIGNATURE_START = re.compile("^" + _SIGNATURE_LINE, _FLAGS | re.MULTILINE)
# The same lines after a line break: a literal first character lets the regex engine skip
# from line break to line break (a match at i here is _SIGNATURE_START's match at i + 1).
_SIGNATURE_NEXT = re.compile(r"\n" + _SIGNATURE_LINE, _FLAGS | re.MULTILINE)
# Where a _CODE match can begin: each of its code words starts with one of these.
_CODE_HEADS = ("kode", "id", "no", "tender", "paket", "lelang", "rup")
#: Characters the IGNORECASE regexes take for an ASCII letter that ``str.lower`` does not
#: turn into it (or turns into two characters): dotted capital I, dotless i, long s.
_NOT_LOWERED = ("\u0130", "\u0131", "\u017f")


def tender_codes(text: str) -> tuple[str, ...]:
    """SPSE tender / package / RUP codes mentioned near those words or in SPSE links."""
    return _codes_of(text, _code_matches(text), _url_matches(text))


def phone_numbers(text: str) -> tuple[str, ...]:
    """Indonesian phone numbers, normalised to ``+62...``; those in the signature come first."""
    return _phones_of(text, _code_spans(text))


def card_facts(subject: str, text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``tender_codes(f"{subject}\\n{text}")`` and ``phone_numbers(text)`` together, the code
    words looked for once."""
    joined = f"{subject}\n{text}"
    codes, urls = _code_matches(joined), _url_matches(joined)
    offset = len(subject) + 1
    if any(m.start() < offset < m.end() for m in codes):
        spans = _code_spans(text)  # a match runs from the subject into the text
    else:
        # The text alone has the same matches as the joined text after the subject: its
        # first character follows a line break there, the start of the string here, and
        # every lookbehind of these patterns treats the two alike.
        spans = [
            (a - offset, b - offset) for m in codes if m.start() >= offset for a, b in [m.span(1)]
        ]
        spans += [
            (a - offset, b - offset) for m in urls if m.start() >= offset for a, b in [m.span(1)]
        ]
    return _codes_of(joined, codes, urls), _phones_of(text, spans)


def _lowered(text: str) -> str | None:
    """``text.lower()`` when its characters stand where the text's do and are an ASCII letter
    exactly when an IGNORECASE regex takes the text's character for that letter."""
    if not text.isascii() and any(c in text for c in _NOT_LOWERED):
        return None
    return text.lower()


def _code_matches(text: str) -> list[re.Match[str]]:
    """``list(_CODE.finditer(text))``, the regex tried only where a code word begins."""
    lowered = _lowered(text)
    if lowered is None:
        return list(_CODE.finditer(text))
    starts: set[int] = set()
    for head in _CODE_HEADS:
        at = lowered.find(head)
        while at >= 0:
            if at == 0 or not (text[at - 1].isalnum() or text[at - 1] == "_"):  # \b
                starts.add(at)
            at = lowered.find(head, at + 1)
    matches: list[re.Match[str]] = []
    end = 0
    for at in sorted(starts):
        if at >= end and (match := _CODE.match(text, at)):
            matches.append(match)
            end = match.end()  # never empty: a match holds a code word
    return matches


def _url_matches(text: str) -> list[re.Match[str]]:
    return list(_URL_CODE.finditer(text)) if "/" in text else []


def _codes_of(text: str, codes: list[re.Match[str]], urls: list[re.Match[str]]) -> tuple[str, ...]:
    found: list[tuple[int, str]] = []
    for match in codes:
        found.append((match.start(1), match.group(1)))
        position = match.end()
        while more := _MORE.match(text, position):
            found.append((more.start(1), more.group(1)))
            position = more.end()
    for match in urls:
        found.append((match.start(1), match.group(1)))
    found.sort()
    return tuple(dict.fromkeys(code for _, code in found))


def _code_spans(text: str) -> list[tuple[int, int]]:
    spans = [m.span(1) for m in _code_matches(text)]
    spans += [m.span(1) for m in _url_matches(text)]
    return spans


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _signature_start(text: str) -> int:
    """Where the signature probably starts: the first closing line near the end of the text.

    That is the first match at or after the floor of ``_SIGNATURE_START.finditer(text)``;
    after the first line each match is looked for as a line break and a signature line.
    """
    floor = max(0, len(text) - 1200)
    position = 0
    first = _SIGNATURE_START.match(text)
    if first is not None:
        if first.start() >= floor:
            return first.start()
        position = first.end()
    while (match := _SIGNATURE_NEXT.search(text, max(0, position - 1))) is not None:
        start = match.start() + 1
        if start >= floor:
            return start
        position = match.end()
    return len(text)


def _phones_of(text: str, taken: list[tuple[int, int]]) -> tuple[str, ...]:
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
