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
from lpse_helpdesk.bridge.intake import UNVERIFIED_LKPP, unused_reply_to
from lpse_helpdesk.domain.model import SOP_STEP_LABELS, DomainConfig, SopStep
from lpse_helpdesk.sla import queries as sla_queries
from lpse_helpdesk.sla import texts as sla_texts
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import Action, State
from lpse_helpdesk.storage.models import (
    Attachment,
    AuditEvent,
    Channel,
    Direction,
    FlaggedAddress,
    Message,
    Ticket,
)
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar

PREVIEW_CHARS = 800  # inside a collapsed (expandable) quote: three lines show on a phone
SUBJECT_CHARS = 80  # one line on a phone
NAME_CHARS = 60
STATE_ICONS = {
    State.NEW: "🆕",
    State.PRIORITIZED: "📌",
    State.WAITING_FOR_DATA: "⏳",
    State.DATA_RECEIVED: "📥",
    State.IN_ANALYSIS: "🔎",
    State.RESOLVED: "✅",
    State.ESCALATED: "⬆️",
    State.LKPP_ANSWERED: "💬",
    State.CLOSED: "🔒",
}
PRIORITY_ICONS = {0: "🔴", 1: "🟡", 2: "🟢"}  # by rank in the domain's list: high first
#: The last thing staff did, as a card line: "📨 minta data 10.05 · Budi".
LAST_ACTIONS = {
    "set_priority": "🏷 prioritas",
    "set_category": "🏷 kategori",
    "request_data": "📨 minta data",
    "confirm_phone": "📞 sudah ditelepon",
    "phone_unanswered": "📵 telepon tidak terhubung",
    "start_analysis": "🔎 analisis",
    "add_note": "📝 catatan",
    "resolve": "✅ solusi dikirim",
    "escalate": "⬆️ eskalasi LKPP",
    "close": "🔒 ditutup",
    "take": "🙋 ditangani",
}
MAX_PRIMARY_ROWS = 3

Keyboard = list[list[tuple[str, str]]]  # rows of (label, callback data)


@dataclass(frozen=True)
class Deadline:
    step: SopStep
    due: dt.datetime
    started: dt.datetime
    budget_minutes: float


@dataclass(frozen=True)
class LastAction:
    action: str
    at: dt.datetime
    actor: str | None


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
    last_action: LastAction | None
    requester_bounced: bool
    linked_number: str | None
    reopen_count: int
    handler_id: str | None = None
    handler_name: str | None = None
    #: Reply-To of the first mail when it is at another domain (not answered, issue #10).
    unused_reply_to: str | None = None
    #: A mail from LKPP's address that neither threads on our forward nor passes DKIM/DMARC.
    unverified_lkpp: bool = False


def last_action(session: Session, ticket_id: int) -> LastAction | None:
    """The last thing staff did on the ticket from Telegram."""
    row = session.execute(
        select(AuditEvent.action, AuditEvent.at, AuditEvent.actor_name)
        .where(AuditEvent.ticket_id == ticket_id, AuditEvent.channel == Channel.TELEGRAM)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(1)
    ).first()
    return LastAction(row[0], row[1], row[2]) if row is not None else None


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
    inbound = select(Message.note).where(
        Message.ticket_id == ticket_id, Message.direction == Direction.IN
    )
    first_note = session.scalar(inbound.order_by(Message.id).limit(1))
    unverified = (
        session.scalar(
            inbound.where(Message.note.contains(UNVERIFIED_LKPP, autoescape=True)).limit(1)
        )
        is not None
    )
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
        last_action=last_action(session, ticket_id),
        requester_bounced=session.get(FlaggedAddress, ticket.requester_email) is not None,
        linked_number=linked,
        reopen_count=ticket.reopen_count,
        handler_id=ticket.handler_id,
        handler_name=ticket.handler_name,
        unused_reply_to=unused_reply_to(first_note),
        unverified_lkpp=unverified,
    )


def _preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip() + " …"


def _one_line(text: str, limit: int) -> str:
    return _preview(" ".join(text.split()), limit)


@dataclass(frozen=True)
class Urgency:
    """What the card needs to say how close a deadline is, the way the SLA reminder does."""

    calendar: BusinessCalendar
    remind_ratio: float = 0.8


def deadline_line(
    deadline: Deadline, now: dt.datetime, timezone: ZoneInfo, urgency: Urgency | None = None
) -> str:
    """'Penetapan prioritas: ⏰ 14.05 WIB (3 menit lagi)', 🔔 when soon, 🚨 bold once past.

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


def priority_text(domain: DomainConfig, code: str) -> str:
    codes = [p.code for p in domain.priorities]
    icon = PRIORITY_ICONS.get(codes.index(code), "⚪") if code in codes else "⚪"
    return f"{icon} {escape(domain.priority_label(code))}"


def last_action_text(action: LastAction, timezone: ZoneInfo) -> str:
    label = LAST_ACTIONS.get(action.action, "✏️ diubah")
    line = f"{label} {action.at.astimezone(timezone):%H.%M}"  # the card shows the day above
    return line + (f" · {escape(action.actor)}" if action.actor else "")


def render_text(
    card: CardData,
    domain: DomainConfig,
    timezone: ZoneInfo,
    now: dt.datetime,
    urgency: Urgency | None = None,
) -> str:
    """What the card says, most urgent first: the state, then priority and deadline."""
    icon, label = STATE_ICONS[card.state], machine.STATE_LABELS[card.state]
    state = f"{icon} <b>{escape(card.number)}</b> · {label}"
    if card.reopen_count:
        state += f" (dibuka kembali {card.reopen_count}×)"
    lines = [state]
    second = []
    if card.priority:
        second.append(f"<b>{priority_text(domain, card.priority)}</b>")
    elif card.suggested_priority:
        suggested = escape(domain.priority_label(card.suggested_priority))
        second.append(f"Prioritas belum ditetapkan (saran: {suggested})")
    if card.deadline is not None and card.state in machine.OPEN_STATES | {State.RESOLVED}:
        second.append(deadline_line(card.deadline, now, timezone, urgency))
    if second:
        lines.append(" · ".join(second))
    if card.handler_name:
        lines.append(f"🙋 Ditangani: <b>{escape(_one_line(card.handler_name, NAME_CHARS))}</b>")
    sender = escape(_one_line(card.requester_email, NAME_CHARS))
    if card.requester_name:
        sender = f"{escape(_one_line(card.requester_name, NAME_CHARS))} &lt;{sender}&gt;"
    lines.append(f"👤 {sender}")
    if card.unused_reply_to:
        other = escape(_one_line(card.unused_reply_to, NAME_CHARS))
        lines.append(f"↩️ <i>Alamat balasan lain: {other} (domain berbeda; tidak dibalas)</i>")
    if card.requester_bounced:
        lines.append("⚠️ <i>E-mail ke alamat ini tidak sampai; hubungi lewat telepon.</i>")
    if card.unverified_lkpp:
        lines.append("⚠️ <i>Ada e-mail atas nama LKPP yang belum terverifikasi; periksa dahulu.</i>")
    subject = _one_line(card.subject, SUBJECT_CHARS) or "(tanpa perihal)"
    lines.append(f"✉️ {escape(subject)}")
    facts = []
    if card.tender_codes:
        codes = ", ".join(escape(c) for c in card.tender_codes[:3])
        facts.append(f"Kode tender: {codes}")
    if card.phone_numbers:
        phone = ", ".join(escape(p) for p in card.phone_numbers[:2])
        facts.append(f"☎️ {phone}" + (" ✔️" if card.phone_confirmed else ""))
    category = card.category or card.suggested_category
    if category:
        suffix = "" if card.category else " (saran)"
        facts.append(f"🏷 {escape(domain.category_label(category))}{suffix}")
    if facts:
        lines.append(" · ".join(facts))
    if card.linked_number:
        lines.append(f"🔗 Terkait tiket {escape(card.linked_number)}")
    today = now.astimezone(timezone).date()
    tail = [f"Diterima {sla_texts.when(card.received_at, timezone, today=today)}"]
    if card.last_action is not None:
        tail.append(last_action_text(card.last_action, timezone))
    if card.attachments:
        tail.append(f"📎 {card.attachments} lampiran")
    lines.append("<i>" + " · ".join(tail) + "</i>")
    body = _preview(card.text) or "(tanpa isi)"
    lines.append(f"<blockquote expandable>{escape(body)}</blockquote>")
    return "\n".join(lines)


#: Staff actions in the order they matter on a phone; what does not fit in the primary rows
#: goes behind "⋯ Lainnya" with the secondary actions.
_PRIMARY: list[tuple[Action, Button, str]] = [
    (Action.CONFIRM_PHONE, Button.PHONE, "📞 Sudah ditelepon"),
    (Action.CONFIRM_PHONE, Button.NO_ANSWER, "📵 Tidak terhubung"),
    (Action.REQUEST_DATA, Button.REQUEST_DATA, "📨 Minta Data"),
    (Action.START_ANALYSIS, Button.ANALYSE, "🔎 Mulai Analisis"),
    (Action.RESOLVE, Button.RESOLVE, "✅ Kirim Solusi"),
    (Action.ESCALATE, Button.ESCALATE, "⬆️ Eskalasi LKPP"),
]
_SECONDARY: list[tuple[Action, Button, str]] = [
    (Action.SET_CATEGORY, Button.CATEGORY_MENU, "🏷 Kategori"),
    (Action.ADD_NOTE, Button.NOTE, "📝 Catatan internal"),
    (Action.CLOSE, Button.CLOSE_ASK, "🔒 Tutup tiket"),
]
MORE_LABEL = "⋯ Lainnya"
TAKE_LABEL = "🙋 Saya tangani"
BACK_LABEL = "↩️ Kembali"


def _press(card: CardData, button: Button, arg: str | None = None) -> str:
    return Press(button, card.ticket_id, card.version, arg).encode()


def _pairs(buttons: list[tuple[str, str]]) -> Keyboard:
    return [buttons[i : i + 2] for i in range(0, len(buttons), 2)]


def _layout(card: CardData, domain: DomainConfig) -> tuple[Keyboard, list[tuple[str, str]]]:
    """(primary rows with "⋯ Lainnya" last, buttons that did not fit)."""
    allowed = set(machine.allowed_actions(card.state))
    rows: Keyboard = []
    if Action.SET_PRIORITY in allowed and card.priority is None:
        row = []
        for priority in domain.priorities:
            label = priority.label
            if priority.code == card.suggested_priority:
                label = f"⭐ {label}"
            row.append((label, _press(card, Button.PRIORITY, priority.code)))
        rows.append(row)
    buttons = [
        (label, _press(card, button))
        for action, button, label in _PRIMARY
        if action in allowed and not (action is Action.CONFIRM_PHONE and card.phone_confirmed)
    ]
    if card.handler_id is None and card.state in machine.OPEN_STATES:
        buttons.append((TAKE_LABEL, _press(card, Button.TAKE)))
    room = (MAX_PRIMARY_ROWS - len(rows)) * 2 - 1  # the last place is "⋯ Lainnya"
    shown, overflow = buttons[:room], buttons[room:]
    rows.extend(_pairs([*shown, (MORE_LABEL, _press(card, Button.MORE))]))
    return rows, overflow


def render_keyboard(card: CardData, domain: DomainConfig) -> Keyboard:
    """At most three rows of the actions the SOP allows now; the rest behind ⋯ Lainnya."""
    return _layout(card, domain)[0]


def more_keyboard(card: CardData, domain: DomainConfig) -> Keyboard:
    """Behind "⋯ Lainnya": what did not fit, priority change, category, note, close, files."""
    allowed = set(machine.allowed_actions(card.state))
    _, overflow = _layout(card, domain)
    buttons = list(overflow)
    if Action.SET_PRIORITY in allowed and card.priority is not None:
        buttons.append(("🔁 Ubah prioritas", _press(card, Button.PRIORITY_MENU)))
    if card.handler_id is not None and card.state in machine.OPEN_STATES:
        buttons.append(("🙋 Ambil alih", _press(card, Button.TAKE)))
    buttons.extend(
        (label, _press(card, button)) for action, button, label in _SECONDARY if action in allowed
    )
    buttons.append(("📄 Teks lengkap", _press(card, Button.FULL_TEXT)))
    if card.attachments:
        buttons.append((f"📎 Lampiran ({card.attachments})", _press(card, Button.ATTACHMENTS)))
    rows = _pairs(buttons)
    rows.append([(BACK_LABEL, _press(card, Button.BACK))])
    return rows


def priority_keyboard(card: CardData, domain: DomainConfig) -> Keyboard:
    """Changing a priority already set: the other levels (confirmed on the next press)."""
    row = [
        (priority.label, _press(card, Button.PRIORITY, priority.code))
        for priority in domain.priorities
        if priority.code != card.priority
    ]
    return [row, [(BACK_LABEL, _press(card, Button.BACK))]]


def priority_confirm_keyboard(card: CardData, domain: DomainConfig, code: str) -> Keyboard:
    label = domain.priority_label(code)
    return [
        [
            (f"✔️ Ya, ubah ke {label}", _press(card, Button.PRIORITY_CONFIRM, code)),
            ("↩️ Batal", _press(card, Button.BACK)),
        ]
    ]


def take_confirm_keyboard(card: CardData) -> Keyboard:
    return [
        [
            ("🙋 Ya, ambil alih", _press(card, Button.TAKE_CONFIRM)),
            ("↩️ Batal", _press(card, Button.BACK)),
        ]
    ]


def category_keyboard(card: CardData, domain: DomainConfig) -> Keyboard:
    current = card.category or card.suggested_category
    buttons = []
    for index, category in enumerate(domain.categories):
        label = ("● " if category.code == current else "") + category.button_label
        buttons.append((label, _press(card, Button.CATEGORY, str(index))))
    rows = _pairs(buttons)
    rows.append([(BACK_LABEL, _press(card, Button.BACK))])
    return rows


def close_keyboard(card: CardData) -> Keyboard:
    return [
        [
            ("🔒 Ya, tutup", _press(card, Button.CLOSE)),
            ("↩️ Batal", _press(card, Button.BACK)),
        ]
    ]


def fingerprint(text: str, keyboard: Keyboard) -> str:
    """Identifies what is on screen, to skip edits that would change nothing."""
    digest = hashlib.sha256(text.encode())
    for row in keyboard:
        for label, data in row:
            digest.update(f"\x00{label}\x01{data}".encode())
    return digest.hexdigest()


def message_link(chat_id: int, message_id: int) -> str | None:
    """https://t.me/c/… for a supergroup's message (members open it in the app)."""
    text = str(chat_id)
    if not text.startswith("-100"):
        return None
    return f"https://t.me/c/{text[4:]}/{message_id}"


def ticket_link(number: str, chat_id: int | None, message_id: int | None) -> str:
    """The ticket number, bold, a link to its card when the card is known."""
    link = message_link(chat_id, message_id) if chat_id and message_id else None
    if link is None:
        return f"<b>{escape(number)}</b>"
    return f'<a href="{link}"><b>{escape(number)}</b></a>'
