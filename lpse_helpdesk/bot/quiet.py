"""Which group messages may ring a phone: few, and none at night.

Only what needs someone now rings, and only within the business calendar's working hours: a
new ticket, new input from a user or LKPP on a ticket, a breached deadline, a service alert.
Everything else (prompts, answers, reminders, files, the board) arrives silently. The
morning summary rings (it is sent once, at its set time on a working day): the first sound
of the day.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lpse_helpdesk.workflow.outbox import TelegramOp

AUDIBLE_NOTICES = frozenset({"user_mail", "user_data", "lkpp_reply", "reopened"})
AUDIBLE_ALERTS = frozenset({"imap_down", "smtp_login", "quarantined"})


def audible(op: str, payload: Mapping[str, Any], *, new_card: bool, working_hours: bool) -> bool:
    if op == TelegramOp.ALERT and payload.get("alert") == "sla_summary":
        return True
    if not working_hours:
        return False
    if op == TelegramOp.CARD:
        return new_card
    if op == TelegramOp.NOTICE:
        return payload.get("notice") in AUDIBLE_NOTICES
    if op == TelegramOp.ALERT:
        kind = payload.get("alert")
        return kind in AUDIBLE_ALERTS or (kind == "sla_scan" and bool(payload.get("breaches")))
    return False
