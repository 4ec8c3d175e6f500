"""The salutation of a letter ("Yth. ...") from the display name a mail came with.

Display names are what mail clients happen to carry: "PT. MAJU JAYA", "admin", "budi",
"Bpk. AHMAD S.Kom", "Pokja Pemilihan 3". A letter greets a person as "Bapak/Ibu <name>",
an organisation (PT, CV, Pokja, ...) by its name alone, and anyone without a usable name as
"Bapak/Ibu Pengguna SPSE". Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["FALLBACK", "clean_name", "is_organisation", "organisation", "salutation"]

FALLBACK = "Bapak/Ibu Pengguna SPSE"

#: Words that open an organisation's name; written as here whatever the mail's case.
_ORGANISATION_WORDS = {
    "pt": "PT",
    "cv": "CV",
    "ud": "UD",
    "pd": "PD",
    "fa": "Fa",
    "koperasi": "Koperasi",
    "kop": "Kop.",
    "yayasan": "Yayasan",
    "firma": "Firma",
    "persekutuan": "Persekutuan",
    "pokja": "Pokja",
    "ukpbj": "UKPBJ",
    "lpse": "LPSE",
    "dinas": "Dinas",
    "badan": "Badan",
    "bagian": "Bagian",
    "kantor": "Kantor",
    "sekretariat": "Sekretariat",
    "rsud": "RSUD",
    "puskesmas": "Puskesmas",
    "kecamatan": "Kecamatan",
    "kelurahan": "Kelurahan",
    "pemerintah": "Pemerintah",
    "pemkab": "Pemkab",
    "pemkot": "Pemkot",
    "pemprov": "Pemprov",
    "bumd": "BUMD",
    "perumda": "Perumda",
    "pdam": "PDAM",
    "tim": "Tim",
}
#: Words kept upper case inside a name (legal forms, acronyms of roles).
_UPPER_WORDS = {"pt", "cv", "ud", "pd", "ppk", "pp", "bumd", "ii", "iii", "iv"}
#: Names that name nobody: mailbox roles and placeholders.
_GENERIC = {
    "admin",
    "administrator",
    "adm",
    "info",
    "informasi",
    "user",
    "pengguna",
    "penyedia",
    "customer",
    "cs",
    "marketing",
    "office",
    "kantor",
    "sales",
    "support",
    "helpdesk",
    "tender",
    "lelang",
    "pengadaan",
    "procurement",
    "finance",
    "keuangan",
    "owner",
    "direktur",
    "direksi",
    "staff",
    "staf",
    "operator",
    "root",
    "test",
    "tes",
    "no-reply",
    "noreply",
    "unknown",
    "me",
    "saya",
}
#: Honorifics already in the name: the letter adds its own "Bapak/Ibu".
_HONORIFIC = re.compile(
    r"^(?:yth\.?\s+)?(?P<word>bapak|bpk|bp|pak|ibu|ibuk|bu|sdr|sdri|saudara|saudari|mr|mrs|ms)"
    r"\.?\s+",
    re.IGNORECASE,
)
_MALE = {"bapak", "bpk", "bp", "pak", "mr"}
_FEMALE = {"ibu", "ibuk", "bu", "mrs", "ms"}
_QUOTES = "\"'`“”‘’«»"


def _strip_symbols(text: str) -> str:
    """Letters, digits, spaces and the punctuation names use; emoji and symbols go."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "LNZ" or char in ".,-'&()/":
            kept.append(char)
        else:
            kept.append(" ")
    return " ".join("".join(kept).split())


def _title_word(word: str) -> str:
    bare = word.strip(".,()").lower()
    if bare in _UPPER_WORDS:
        return word.upper().replace("PT.", "PT").replace("CV.", "CV")
    if re.fullmatch(r"[a-z]\.([a-z]{1,4}\.?)+", word.lower()):  # S.Kom., S.T., M.Si.
        return ".".join(part.capitalize() for part in word.split("."))
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


def clean_name(raw: str) -> str:
    """The name as a letter may print it, or "" when there is no usable name."""
    return _clean(raw)[0]


def _clean(raw: str) -> tuple[str, str]:
    """(name, honorific): "Bapak" or "Ibu" when the display name said which, else "".

    Quotes, emoji, a leading honorific and an e-mail address are removed; an ALL-CAPS or
    all-lower-case name is written in title case (legal forms such as PT stay upper case);
    "PT." becomes "PT".
    """
    text = raw.strip().strip(_QUOTES).strip()
    if "@" in text:
        text = re.sub(r"<?[^\s<>]+@[^\s<>]+>?", " ", text)
    text = _strip_symbols(text)
    honorific = ""
    match = _HONORIFIC.match(text)
    if match is not None:
        word = match.group("word").lower()
        honorific = "Bapak" if word in _MALE else "Ibu" if word in _FEMALE else ""
        text = text[match.end() :]
    text = text.strip(" ,-").lstrip(".")
    if " " not in text and re.fullmatch(r"[a-z]+(?:[._][a-z]+)+", text):
        text = re.sub(r"[._]", " ", text)  # "siti.aminah": a mailbox name
    if not text or not any(char.isalpha() for char in text):
        return "", ""
    if text.lower() in _GENERIC or text.lower().replace(".", "").replace(" ", "") in _GENERIC:
        return "", ""
    letters = [char for char in text if char.isalpha()]
    if all(char.isupper() for char in letters) or all(char.islower() for char in letters):
        text = " ".join(_title_word(word) for word in text.split())
    words = text.split()
    first = words[0].rstrip(".").lower()
    if first in _ORGANISATION_WORDS:
        words[0] = _ORGANISATION_WORDS[first]
    text = " ".join(words)
    return text[:120], honorific


def is_organisation(name: str) -> bool:
    """Whether a cleaned name is an organisation's (PT, CV, Pokja, a government office)."""
    words = name.split()
    return bool(words) and words[0].rstrip(".").lower() in _ORGANISATION_WORDS


def organisation(raw: str) -> str | None:
    """The company or office a display name names, if it names one."""
    name = clean_name(raw)
    return name if is_organisation(name) else None


def salutation(raw: str) -> str:
    """Who a letter greets after "Yth.": "Bapak/Ibu Budi Santoso", "PT Maju Jaya", or
    "Bapak/Ibu Pengguna SPSE"."""
    name, honorific = _clean(raw)
    if not name:
        return FALLBACK
    if is_organisation(name):
        return name
    return f"{honorific or 'Bapak/Ibu'} {name}"
