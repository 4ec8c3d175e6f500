"""Strip quoted history and mail-client footers from a mail's text, for a short ticket card.

The full original text is always kept elsewhere; this only decides what the card shows.

Rules, applied line by line:

- A reply attribution ("Pada <tanggal> <nama> menulis:", "On ... wrote:", also wrapped over up
  to three lines) cuts the text there, unless ``>``-quoted lines follow it: then only the
  attribution and the quoted lines are dropped, so answers written between quotes survive.
- Lines starting with ``>`` are dropped.
- An Outlook header block (``Dari:/Dikirim:/Kepada:/Subjek:``, ``From:/Sent:/To:/Subject:``;
  a ``From``/``Dari`` line followed by at least two more header lines) cuts the text there,
  together with the ``_____`` line Outlook puts above it.
- ``-----Pesan Asli-----`` / ``-----Original Message-----`` cut the text there.
- Client footers ("Dikirim dari iPhone saya", "Sent from Outlook for Android", "Get Outlook for
  Android"...) are dropped.

Forwards: the forwarded content *is* the problem the user brings (a rejected upload notice, an
SPSE error mail), so it is kept. An explicit forward marker (``---------- Pesan terusan
---------``, ``---------- Forwarded message ---------``, "Begin forwarded message:") is never a
cut point, and the header block right after it is kept too. With ``forwarded=True`` (the caller
saw a ``Fwd:``/``FW:``/``Tr:`` subject) the first Outlook header block or ``-----Original
Message-----`` line is treated the same way, because Outlook forwards look exactly like its
replies. Quoted history *below* the forwarded message is still cut.

The result is never empty when the input had content: if stripping would remove everything, the
original text is returned.
"""

from __future__ import annotations

import re

__all__ = ["strip_quoted"]

_FLAGS = re.IGNORECASE

# Linear time on any line: the runs of blanks are possessive (\s*+, \s++), so no two
# quantifiers share one run out between them; the lazy .{0,400}? is bounded.
_ATTRIBUTION = re.compile(
    r"^(?:pada|on|le|am|el|em|op)\b.{0,400}?"
    r"(?:menulis|wrote|a\s++écrit|schrieb|escribió|escreveu|schreef)\s*+:\s*+$",
    _FLAGS | re.DOTALL,
)
_ATTRIBUTION_START = re.compile(r"^(?:pada|on|le|am|el|em|op)\b", _FLAGS)
_ORIGINAL = re.compile(
    r"^-{2,}+\s*+(?:original\s++message|pesan\s++asli|pesan\s++awal|pesan\s++semula"
    r"|ursprüngliche\s++nachricht|message\s++d'origine|mensaje\s++original)\s*+-{2,}+$",
    _FLAGS,
)
_FORWARD = re.compile(
    r"^(?:-{2,}+\s*+(?:forwarded\s++message|pesan\s++terusan|pesan\s++yang\s++diteruskan"
    r"|forwarded\s++e-?mail)\s*+-{2,}+"
    r"|(?:begin\s++forwarded\s++message|mulai\s++pesan\s++yang\s++diteruskan"
    r"|pesan\s++yang\s++diteruskan)\s*+:)$",
    _FLAGS,
)
# Was ^[*\s]*(?:from|dari)\s*:\s*\*?\s*\S: "From:" and a long run of blanks took quadratic
# time (the run split between the two \s* around the optional "*"); now possessive.
_HEADER_FROM = re.compile(r"^[*\s]*+(?:from|dari)\s*+:\s*+\*?\s*+\S", _FLAGS)
_HEADER_OTHER = re.compile(
    r"^[*\s]*+(?:sent|dikirim|terkirim|date|tanggal|waktu|to|kepada|untuk|subject|subjek"
    r"|perihal|cc|tembusan)\s*+:",
    _FLAGS,
)
_SEPARATOR_LINE = re.compile(r"^(?:_{5,}|-{5,}|={5,})$")
_DEVICES = (
    r"iphone|ipad|android|yahoo|outlook|gmail|windows|samsung|galaxy|huawei|xiaomi|redmi"
    r"|oppo|vivo|realme|blackberry|ponsel|smartphone|mobile|seluler|aol|proton"
)
# Was ...\b.{0,40}\s*(?:<[^>\s]*>)?\s*[.!]?$: a footer line ending in a long run of blanks took
# quadratic time (the run split between the two \s*); now the runs are possessive.
_FOOTER = re.compile(
    r"^(?:(?:sent|dikirim|terkirim)\s++(?:from|dari|via|melalui|with|dengan)\s++(?:my\s++)?"
    rf".{{0,40}}?\b(?:{_DEVICES})\b.{{0,40}}"
    r"|(?:get|dapatkan|unduh)\s++outlook\s++(?:for|untuk)\s++(?:android|ios|iphone)"
    r")\s*+(?:<[^>\s]*+>)?\s*+[.!]?$",
    _FLAGS,
)
_QUOTED = re.compile(r"^\s*+>")
#: The first characters (of the stripped line) that one of the rules above can begin with:
#: the first letters of their words in both cases, the long s that IGNORECASE takes for an
#: "s", and "-", ">", "*". Any other line is kept as it is, without trying the rules.
_LINE_STARTS = frozenset("sdtgubmpolaefSDTGUBMPOLAEF\u017f->*")
_HEADER_LOOKAHEAD = 6


def _attribution_span(lines: list[str], index: int) -> int:
    """Number of lines (1-3) of a reply attribution starting at ``index``, or 0."""
    first = lines[index].strip()
    if not _ATTRIBUTION_START.match(first):
        return 0
    joined = first
    for extra in range(3):
        if extra:
            if index + extra >= len(lines) or not lines[index + extra].strip():
                return 0
            joined = f"{joined} {lines[index + extra].strip()}"
        if _ATTRIBUTION.match(joined):
            return extra + 1
    return 0


def _is_header_block(lines: list[str], index: int) -> bool:
    if not _HEADER_FROM.match(lines[index]):
        return False
    found = 0
    for line in lines[index + 1 : index + 1 + _HEADER_LOOKAHEAD]:
        if _HEADER_OTHER.match(line):
            found += 1
    return found >= 2


def _next_content_line(lines: list[str], index: int) -> str | None:
    while index < len(lines):
        if lines[index].strip():
            return lines[index]
        index += 1
    return None


def _trim_before_cut(out: list[str]) -> None:
    """Drop the blank and separator lines just above a cut point."""
    while out and (not out[-1].strip() or _SEPARATOR_LINE.match(out[-1].strip())):
        out.pop()


def _tidy(lines: list[str]) -> str:
    result: list[str] = []
    blank = 0
    for line in lines:
        line = line.rstrip()
        if not line:
            blank += 1
            if blank > 1:
                continue
        else:
            blank = 0
        result.append(line)
    return "\n".join(result).strip("\n")


def strip_quoted(text: str, *, forwarded: bool = False) -> str:
    """The user's new text, without quoted history and client footers (see the module doc)."""
    if not text or not text.strip():
        return text
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    keep_next_block = False  # just after an explicit forward marker
    transparent = forwarded  # the first Outlook separator is a forward, not a reply
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped or stripped[0] not in _LINE_STARTS:  # none of the rules applies
            out.append(line)
            index += 1
            continue
        if _FOOTER.match(stripped):
            index += 1
            continue
        if _FORWARD.match(stripped):
            out.append(line)
            keep_next_block = True
            transparent = False
            index += 1
            continue
        span = _attribution_span(lines, index)
        if span:
            following = _next_content_line(lines, index + span)
            if following is not None and _QUOTED.match(following):
                index += span  # inline or bottom reply: drop only what is quoted
                continue
            break
        if _QUOTED.match(line):
            index += 1
            continue
        if _ORIGINAL.match(stripped):
            if not transparent:
                break
            transparent = False
            keep_next_block = True
            out.append(line)
            index += 1
            continue
        if _is_header_block(lines, index):
            if not (keep_next_block or transparent):
                break
            keep_next_block = False
            transparent = False
        out.append(line)
        index += 1
    _trim_before_cut(out)
    result = _tidy(out)
    return result if result.strip() else text
