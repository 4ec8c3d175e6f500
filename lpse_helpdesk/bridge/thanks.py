"""Is a user's reply after the solution only thanks or a confirmation? (pure, no I/O)

"Terima kasih, sudah bisa" must not reopen a ticket; "masih gagal" must. The rule is
deliberately careful: a reply counts as thanks only when it is short, asks nothing, carries
no new attachment, contains a thanks or confirmation phrase and none of the words that say
the problem is still there. Anything else reopens the ticket as before, and staff can always
reopen a ticket whose thanks was recorded.
"""

from __future__ import annotations

import re

__all__ = ["MAX_WORDS", "is_thanks_only"]

#: Longer replies carry more than thanks.
MAX_WORDS = 40

_THANKS = re.compile(
    r"\b(?:terima\s*kasih|terimakasih|trima\s*kasih|makasih|makasi|trims|tks|thx|thanks|"
    r"thank\s*you|thankyou|ty|matur\s*nuwun|hatur\s*nuhun|"
    r"sudah\s+(?:bisa|berhasil|beres|selesai|normal|lancar|aman|masuk|teratasi)|"
    r"udah\s+(?:bisa|berhasil|beres)|sdh\s+(?:bisa|berhasil)|"
    r"berhasil|beres|teratasi|solved|it\s+works|works\s+now|resolved|all\s+good|"
    r"baik|oke|ok|okay|siap|noted|mantap|sip)\b",
    re.IGNORECASE,
)
#: The problem is still there, or something new is asked.
_TROUBLE = re.compile(
    r"\b(?:masih|belum|blm|gagal|tidak|tdk|tak|gak|nggak|ngga|enggak|ga|bukan|error|eror|"
    r"galat|kendala|masalah|problem|kenapa|mengapa|bagaimana|gimana|bagaimanakah|apakah|"
    r"mohon|tolong|bantu|bantuan|tapi|tetapi|namun|cuma|hanya|lagi|kembali|"
    r"still|not|cannot|can't|cant|doesn't|didn't|won't|fail|failed|again|but|however|"
    r"why|how|what|please|help|issue)\b",
    re.IGNORECASE,
)
#: Where a signature or a quoted mail begins: the rest is not the reply.
_CLOSING = re.compile(
    r"^\s*(?:salam|hormat\s+(?:saya|kami)|wassalam|regards|best\s+regards|br|cheers|--|"
    r"sent\s+from|dikirim\s+dari|on\s.+wrote:|pada\s.+menulis:)",
    re.IGNORECASE,
)


def _reply_part(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith(">") or _CLOSING.match(line):
            break
        lines.append(line)
    return " ".join(" ".join(lines).split())


def is_thanks_only(text: str, *, new_attachments: int = 0) -> bool:
    """True when ``text`` (quotes already stripped) only thanks or confirms the solution."""
    if new_attachments:
        return False
    reply = _reply_part(text)
    if not reply or "?" in reply:
        return False
    if len(reply.split()) > MAX_WORDS:
        return False
    if _TROUBLE.search(reply):
        return False
    return _THANKS.search(reply) is not None
