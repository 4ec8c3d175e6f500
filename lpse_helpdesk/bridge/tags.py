"""Ticket tags in mail subjects: ``[LPSE-2026-00042]``.

A ticket number is ``<PREFIX>-<year>-<sequence>`` (sequence of five or more digits); the tag is
the number in square brackets. Matching is strict on the brackets but tolerates whitespace inside
them and any letter case, so the tag survives the reply and forward prefixes of common mail
clients (``Re:``, ``RE:``, ``Fwd:``, ``FW:``, ``Bls:``, ``Balas:``, ``Tr:``, ``AW:``, ``Re[2]:``).
"""

from __future__ import annotations

import re

#: Header carried by every mail we send; the intake uses it to recognise our own mail.
TICKET_HEADER = "X-LPSE-Helpdesk-Ticket"

__all__ = [
    "add_tag",
    "find_ticket_number",
    "format_tag",
    "forward_prefix",
    "strip_reply_prefixes",
]

# Reply and forward prefixes of the mail clients our users have (Indonesian, English, and the
# usual European ones that reach a government mailbox), with optional counters: "Re[2]:",
# "RE (3):". A fullwidth colon is accepted too.
_PREFIX_WORDS = (
    "re|aw|sv|vs|antw|odp|rif|res|r"  # replies
    "|bls|balas|balasan"  # Indonesian replies
    "|fwd|fw|tr|wg|enc|doorst|rv|terusan|teruskan|diteruskan"  # forwards
)
# Every run of blanks is possessive (\s*+): each is followed by something that is not a blank,
# so nothing is lost, and no two quantifiers share one run out between them. Was
# \s*(?:words)\s*(?:counter)?\s*[:] : "Re" and a long run of spaces without a colon took
# quadratic time, as every split of the run between the two \s* was tried.
_PREFIX = re.compile(
    rf"\s*+(?:{_PREFIX_WORDS})\s*+(?:\[\d++\]|\(\d++\))?\s*+[:：]\s*+",
    re.IGNORECASE,
)
_FORWARD_PREFIX = re.compile(
    r"^\s*+(?:fwd|fw|tr|wg|enc|doorst|rv|terusan|teruskan|diteruskan)\s*+(?:\[\d++\]|\(\d++\))?"
    r"\s*+[:：]",
    re.IGNORECASE,
)
_TAG_TEMPLATE = r"\[\s*+({prefix})\s*+-\s*+(\d{{4}})\s*+-\s*+(\d{{5,}}+)\s*+\]"


def format_tag(number: str) -> str:
    """The subject tag of a ticket number: ``LPSE-2026-00042`` -> ``[LPSE-2026-00042]``."""
    return f"[{number.strip()}]"


def _tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(_TAG_TEMPLATE.format(prefix=re.escape(prefix.strip())), re.IGNORECASE)


def find_ticket_number(subject: str, prefix: str) -> str | None:
    """The ticket number tagged in a subject, or None.

    The first tag wins (the outermost one in a thread). The number is returned in its canonical
    form with the configured prefix: ``Re: [ lpse-2026-00042 ]`` -> ``LPSE-2026-00042``.
    """
    if not subject or not prefix.strip():
        return None
    match = _tag_pattern(prefix).search(subject)
    if match is None:
        return None
    return f"{prefix.strip()}-{match.group(2)}-{match.group(3)}"


def _split_prefixes(subject: str) -> tuple[str, str]:
    """Split a subject into its leading reply/forward prefixes and the rest."""
    position = 0
    while True:
        match = _PREFIX.match(subject, position)
        if match is None or match.end() == position:
            break
        position = match.end()
    return subject[:position], subject[position:]


def strip_reply_prefixes(subject: str) -> str:
    """Remove all leading reply and forward prefixes: ``Re: Fwd: Bls: X`` -> ``X``."""
    return _split_prefixes(subject)[1].strip()


def forward_prefix(subject: str) -> bool:
    """True when the subject's first prefix marks a forward (``Fwd:``, ``FW:``, ``Tr:``...)."""
    return _FORWARD_PREFIX.match(subject) is not None


def _number_pattern(number: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in number.strip().split("-")]
    return re.compile(r"\[\s*+" + r"\s*+-\s*+".join(parts) + r"\s*+\]", re.IGNORECASE)


def add_tag(subject: str, number: str) -> str:
    """Add the ticket tag to a subject once: after any reply prefixes, before the text.

    ``Re: Gagal upload`` -> ``Re: [LPSE-2026-00042] Gagal upload``. A subject that already
    carries the tag (in any case or spacing) is returned unchanged.
    """
    subject = " ".join(subject.split())
    if _number_pattern(number).search(subject):
        return subject
    prefixes, rest = _split_prefixes(subject)
    head = f"{prefixes.strip()} " if prefixes.strip() else ""
    tail = f" {rest.strip()}" if rest.strip() else ""
    return f"{head}{format_tag(number)}{tail}"
