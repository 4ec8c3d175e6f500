"""Inline-button data: `code:ticket:version[:arg]`, at most 64 bytes, never trusted.

The ticket id and version only say what the staff member saw; every press is checked
against the database before anything happens.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

MAX_BYTES = 64


class Button(enum.StrEnum):
    PRIORITY = "p"  # arg: priority code; asks first when a priority is already set
    PRIORITY_MENU = "pm"
    PRIORITY_CONFIRM = "pc"  # arg: priority code
    MORE = "mo"
    TAKE = "tk"
    TAKE_CONFIRM = "tc"
    NO_ANSWER = "na"
    PAGE = "q"  # /antrian page: ticket field 0, version field = page number
    CATEGORY_MENU = "cm"
    CATEGORY = "c"  # arg: category index in the domain config
    BACK = "b"
    REQUEST_DATA = "rq"
    PHONE = "ph"
    ANALYSE = "an"
    NOTE = "nt"
    RESOLVE = "rs"
    ESCALATE = "es"
    CLOSE_ASK = "ca"
    CLOSE = "cl"
    FULL_TEXT = "tx"
    ATTACHMENTS = "at"


_PATTERN = re.compile(r"^([a-z]{1,2}):(\d{1,12}):(\d{1,9})(?::([A-Za-z0-9_\-]{1,40}))?$")


@dataclass(frozen=True)
class Press:
    button: Button
    ticket_id: int
    version: int
    arg: str | None = None

    def encode(self) -> str:
        data = f"{self.button.value}:{self.ticket_id}:{self.version}"
        if self.arg is not None:
            data += f":{self.arg}"
        if len(data.encode()) > MAX_BYTES:
            raise ValueError(f"callback data over {MAX_BYTES} bytes: {data!r}")
        return data


def decode(data: str | None) -> Press | None:
    """The press, or None for data we did not make (old clients, tampering)."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    match = _PATTERN.match(data)
    if match is None:
        return None
    try:
        button = Button(match.group(1))
    except ValueError:
        return None
    return Press(button, int(match.group(2)), int(match.group(3)), match.group(4))
