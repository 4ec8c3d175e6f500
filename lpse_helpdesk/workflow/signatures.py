"""Who signs a letter: the staff member's official name and position, never a nickname.

Set once with `/nama Budi Santoso, S.Kom. — Petugas Helpdesk` (stored in `staff_names`) or in
the STAFF_NAMES setting; the database wins, being the later and explicit choice. With neither,
letters carry no personal name at all (the Telegram display name never reaches a letter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import Channel, StaffName
from lpse_helpdesk.workflow.actors import Actor

__all__ = ["MAX_NAME", "OfficialName", "official_name", "parse_official", "parse_staff_names"]

MAX_NAME = 120
_SPLIT = re.compile(r"\s+[—–]\s+|\s+-\s+|\s*\|\s*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f<>]")


@dataclass(frozen=True)
class OfficialName:
    name: str
    position: str = ""

    def line(self) -> str:
        return f"{self.name} — {self.position}" if self.position else self.name


def parse_official(text: str) -> OfficialName | None:
    """ "Budi Santoso, S.Kom. — Petugas Helpdesk" -> name and position; None when unusable."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    if not text:
        return None
    parts = _SPLIT.split(text, maxsplit=1)
    name = parts[0].strip(" ,;")
    position = parts[1].strip(" ,;") if len(parts) > 1 else ""
    if sum(char.isalpha() for char in name) < 2:
        return None
    if len(name) > MAX_NAME or len(position) > MAX_NAME:
        return None
    return OfficialName(name, position)


def parse_staff_names(value: str) -> dict[int, OfficialName]:
    """STAFF_NAMES: `id=Name — Position; id=Name`. Raises ValueError naming the bad entry."""
    names: dict[int, OfficialName] = {}
    for entry in value.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, rest = entry.partition("=")
        official = parse_official(rest) if sep else None
        if not key.strip().lstrip("-").isdigit() or official is None:
            raise ValueError(f"'{entry}' is not id=Nama — Jabatan")
        names[int(key.strip())] = official
    return names


def official_name(
    session: Session, actor: Actor, configured: Mapping[int, OfficialName] | None = None
) -> OfficialName | None:
    """The official name of a Telegram staff member, or None (no personal name is signed)."""
    if actor.channel is not Channel.TELEGRAM or not actor.id or not actor.id.isdigit():
        return None
    user_id = int(actor.id)
    stored = session.get(StaffName, user_id)
    if stored is not None:
        return OfficialName(stored.official_name, stored.position)
    return (configured or {}).get(user_id)
