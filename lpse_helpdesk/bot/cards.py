"""The ticket card: what staff see in the group, rendered from the database every time.

Pure functions over a `CardData` snapshot; the buttons are exactly the staff actions the
SOP machine allows in the ticket's state. Everything from mail or staff is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot.callback_data import Button, Press
from lpse_helpdesk.domain.model import SOP_STEP_LABELS, DomainConfig, SopStep
from lpse_helpdesk.sla import queries as sla_queries
from lpse_helpdesk.sla import texts as sla_texts
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import Action, State
from lpse_helpdesk.storage.models import (
    Attachment,
    Direction,
    FlaggedAddress,
    Message,
    Ticket,
)
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.localtime import short_datetime

PREVIEW_CHARS = 800
SUBJECT_CHARS = 200  # with the preview and the rest, a card stays far below 4,096 characters
NAME_CHARS = 80
STATE_ICONS = {
    State.NEW: "🆕",
    State.PRIORITIZED: "📌",
    State.WAITING_FOR_DATA: "⏳",
    State.DATA_RECEIVED: "📥",
    State.IN_ANALYSIS: "🔎",
    State.RESOLVED: "✅",
    State.ESCALATED: "⬆️",
    State.LKPP_ANSWERED: "📨",
    State.CLOSED: "🔒",
}

Keyboard = list[list[tuple[str, str]]]  # rows of (label, callback data)


@dataclass(frozen=True)
class Deadline:
    step: SopStep
    due: dt.datetime
    started: dt.datetime
    budget_minutes: float


@dataclass(frozen=True)
class CardData:
    ticket_id: int
    number: str
    version: int
    state: State
    priority: str | None
    suggested_priority: str | None
    category: str | None
    suggested_category: str | None
    requester_name: str
    requester_email: str
    subject: str
    text: str
    received_at: dt.datetime
    tender_codes: tuple[str, ...]
    phone_numbers: tuple[str, ...]
    phone_confirmed: bool
    attachments: int
    deadline: Deadline | None
    last_actor: str | None
    requester_bounced: bool
    linked_number: str | None
    reopen_count: int


def load_card(session: Session, ticket_id: int) -> CardData | None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    attachments = session.scalar(
        select(func.count())
        .select_from(Attachment)
        .join(Message, Attachment.message_id == Message.id)
        .where(
            Message.ticket_id == ticket_id,
            Message.direction == Direction.IN,
            Attachment.inline.is_(False),
        )
    )
    clock = sla_queries.current_clock(session, ticket_id)
    deadline = None
    if clock is not None and clock.deadline_at is not None:
        deadline = Deadline(clock.step, clock.deadline_at, clock.started_at, clock.budget_minutes)
    last_actor = sla_queries.last_actor(session, ticket_id)
    linked = (
        session.scalar(select(Ticket.number).where(Ticket.id == ticket.linked_ticket_id))
        if ticket.linked_ticket_id
        else None
    )
    return CardData(
        ticket_id=ticket.id,
        number=ticket.number,
        version=ticket.version,
        state=ticket.state,
        priority=ticket.priority,
        suggested_priority=ticket.suggested_priority,
        category=ticket.category,
        suggested_category=ticket.suggested_category,
        requester_name=ticket.requester_name,
        requester_email=ticket.requester_email,
        subject=ticket.subject,
        text=ticket.problem_text,
        received_at=ticket.received_at,
        tender_codes=tuple(ticket.tender_codes),
        phone_numbers=tuple(ticket.phone_numbers),
        phone_confirmed=ticket.phone_confirmed_at is not None,
        attachments=attachments or 0,
        deadline=deadline,
        last_actor=last_actor,
        requester_bounced=session.get(FlaggedAddress, ticket.requester_email) is not None,
        linked_number=linked,
        reopen_count=ticket.reopen_count,
    )


def _preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip() + " …"


@dataclass(frozen=True)
class Urgency:
    """What the card needs to say how close a deadline is, the way the SLA reminder does."""

    calendar: BusinessCalendar
    remind_ratio: float = 0.8


def deadline_line(
    deadline: Deadline, now: dt.datetime, timezone: ZoneInfo, urgency: Urgency | None = None
) -> str:
    """'⏰ Penetapan prioritas: 14.05 WIB (3 menit lagi)', bold once it is past.

    The badge and its level are the SLA monitor's own (sla/texts.py), measured in business
    time, so the card turns urgent exactly when the reminder is sent.
    """
    level = None
    if urgency is not None:
        level = sla_texts.urgency(
            deadline.due,
            now,
            budget_minutes=deadline.budget_minutes,
            calendar=urgency.calendar,
            remind_ratio=urgency.remind_ratio,
        )
    label = escape(SOP_STEP_LABELS[deadline.step])
    badge = sla_texts.deadline_badge(deadline.due, now, timezone, level)
    if now >= deadline.due:
        return f"🚨 <b>{label}: {badge}</b>"
    return f"{label}: {badge}"


def render_text(
    card: CardData,
    domain: DomainConfig,
    timezone: ZoneInfo,
    now: dt.datetime,
    urgency: Urgency | None = None,
) -> str:
    icon, label = STATE_ICONS[card.state], machine.STATE_LABELS[card.state]
    state = f"{icon} <b>{escape(card.number)}</b> · {label}"
    if card.reopen_count:
        state += f" (dibuka kembali {card.reopen_count}×)"
    lines = [state]
    if card.priority:
        lines.append(f"Prioritas: <b>{escape(domain.priority_label(card.priority))}</b>")
    elif card.suggested_priority:
        suggested = escape(domain.priority_label(card.suggested_priority))
        lines.append(f"Prioritas: belum ditetapkan (saran: {suggested})")
    category = card.category or card.suggested_category
    if category:
        suffix = "" if card.category else " (saran)"
        lines.append(f"Kategori: {escape(domain.category_label(category))}{suffix}")
    sender = escape(_preview(card.requester_email, NAME_CHARS))
    if card.requester_name:
        sender = f"{escape(_preview(card.requester_name, NAME_CHARS))} &lt;{sender}&gt;"
    if card.requester_bounced:
        sender += " ⚠️ <i>alamat bounce</i>"
    lines.append(f"Dari: {sender}")
    lines.append(f"Subjek: {escape(_preview(card.subject, SUBJECT_CHARS) or '(tanpa subjek)')}")
    facts = []
    if card.tender_codes:
        codes = ", ".join(escape(c) for c in card.tender_codes[:5])
        facts.append(f"Kode tender/paket: {codes}")
    if card.phone_numbers:
        phone = ", ".join(escape(p) for p in card.phone_numbers[:2])
        facts.append(f"Telp: {phone}" + (" ✔️" if card.phone_confirmed else ""))
    if facts:
        lines.append(" · ".join(facts))
    lines.append(f"Diterima: {short_datetime(card.received_at, timezone)}")
    if card.linked_number:
        lines.append(f"Terkait tiket {escape(card.linked_number)}")
    if card.deadline is not None and card.state in machine.OPEN_STATES | {State.RESOLVED}:
        lines.append(deadline_line(card.deadline, now, timezone, urgency))
    if card.last_actor:
        lines.append(f"Petugas terakhir: {escape(card.last_actor)}")
    body = _preview(card.text) or "(tanpa isi)"
    lines.append("")
    lines.append(f"<blockquote>{escape(body)}</blockquote>")
    if card.attachments:
        lines.append(f"📎 {card.attachments} lampiran")
    return "\n".join(lines)


_ACTION_BUTTONS: list[tuple[Action, Button, str]] = [
    (Action.REQUEST_DATA, Button.REQUEST_DATA, "📨 Minta Data"),
    (Action.CONFIRM_PHONE, Button.PHONE, "📞 Telepon"),
    (Action.START_ANALYSIS, Button.ANALYSE, "🔎 Mulai Analisis"),
    (Action.RESOLVE, Button.RESOLVE, "✅ Selesai"),
    (Action.ESCALATE, Button.ESCALATE, "⬆️ Eskalasi LKPP"),
    (Action.ADD_NOTE, Button.NOTE, "📝 Catatan"),
    (Action.SET_CATEGORY, Button.CATEGORY_MENU, "🏷 Kategori"),
    (Action.CLOSE, Button.CLOSE_ASK, "🔒 Tutup"),
]


def render_keyboard(card: CardData, domain: DomainConfig) -> Keyboard:
    """Only the actions the SOP allows now; the full text and attachments always."""
    allowed = set(machine.allowed_actions(card.state))

    def press(button: Button, arg: str | None = None) -> str:
        return Press(button, card.ticket_id, card.version, arg).encode()

    rows: Keyboard = []
    if Action.SET_PRIORITY in allowed:
        row = []
        for priority in domain.priorities:
            label = priority.label
            if priority.code == card.priority:
                label = f"● {label}"
            elif card.priority is None and priority.code == card.suggested_priority:
                label = f"⭐ {label}"
            row.append((label, press(Button.PRIORITY, priority.code)))
        rows.append(row)
    buttons = [
        (label, press(button))
        for action, button, label in _ACTION_BUTTONS
        if action in allowed and not (action is Action.CONFIRM_PHONE and card.phone_confirmed)
    ]
    rows.extend(buttons[i : i + 2] for i in range(0, len(buttons), 2))
    extra = [("📄 Teks lengkap", press(Button.FULL_TEXT))]
    if card.attachments:
        extra.append((f"📎 Lampiran ({card.attachments})", press(Button.ATTACHMENTS)))
    rows.append(extra)
    return rows


def category_keyboard(card: CardData, domain: DomainConfig) -> Keyboard:
    rows: Keyboard = []
    current = card.category or card.suggested_category
    buttons = []
    for index, category in enumerate(domain.categories):
        label = ("● " if category.code == current else "") + category.label
        buttons.append(
            (label, Press(Button.CATEGORY, card.ticket_id, card.version, str(index)).encode())
        )
    rows.extend(buttons[i : i + 2] for i in range(0, len(buttons), 2))
    rows.append([("↩️ Kembali", Press(Button.BACK, card.ticket_id, card.version).encode())])
    return rows


def close_keyboard(card: CardData) -> Keyboard:
    return [
        [
            ("🔒 Ya, tutup tiket", Press(Button.CLOSE, card.ticket_id, card.version).encode()),
            ("↩️ Batal", Press(Button.BACK, card.ticket_id, card.version).encode()),
        ]
    ]


def fingerprint(text: str, keyboard: Keyboard) -> str:
    """Identifies what is on screen, to skip edits that would change nothing."""
    digest = hashlib.sha256(text.encode())
    for row in keyboard:
        for label, data in row:
            digest.update(f"\x00{label}\x01{data}".encode())
    return digest.hexdigest()
