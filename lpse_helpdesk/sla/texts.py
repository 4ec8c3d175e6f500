"""What staff read about SLA clocks: reminders, breach alerts, the morning summary, badges.

The notices are Telegram HTML; everything that comes from the database (ticket numbers,
subjects, names) is escaped. Deadlines are shown in the helpdesk's local time with
WIB/WITA/WIT. Nothing here touches the database or the clock.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from lpse_helpdesk.domain.model import SOP_STEP_LABELS, SopStep
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import as_utc
from lpse_helpdesk.timekeeping.localtime import DAYS, MONTHS, long_date, zone_label

Urgency = Literal["ok", "soon", "late"]

SUBJECT_CHARS = 80  # a subject longer than this is cut with "…" (one line on a phone)
SUMMARY_LINES = 15  # tickets listed per section of the summary; the rest are counted


@dataclass(frozen=True)
class SummaryLine:
    """One ticket in the morning summary: its most urgent running step."""

    number: str
    subject: str
    step_label: str
    deadline: dt.datetime | None
    number_html: str | None = None  # the number as a link to the card, when known


# --- Small formatting helpers ----------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=False)


def _subject(subject: str) -> str:
    text = " ".join(subject.split()) or "(tanpa subjek)"
    if len(text) > SUBJECT_CHARS:
        text = text[: SUBJECT_CHARS - 1].rstrip() + "…"
    return _e(text)


def step_label(value: object) -> str:
    """The Indonesian label of a step value ("set_priority" -> "Penetapan prioritas")."""
    try:
        return SOP_STEP_LABELS[SopStep(str(value))]
    except ValueError:
        return str(value)


def when(moment: dt.datetime, timezone: ZoneInfo, *, today: dt.date | None = None) -> str:
    """'14.05 WIB' on `today`, otherwise 'Sen 30 Nov 07.35 WIB'."""
    local = moment.astimezone(timezone)
    zone = zone_label(timezone)
    if today is not None and local.date() == today:
        return f"{local:%H.%M} {zone}"
    day, month = DAYS[local.weekday()][:3], MONTHS[local.month - 1][:3]
    return f"{day} {local.day} {month} {local:%H.%M} {zone}"


def span(delta: dt.timedelta) -> str:
    """A wall-clock span in words: '12 menit', '2 jam 5 menit', '3 hari'."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "kurang dari 1 menit"
    if minutes < 60:
        return f"{minutes} menit"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} jam {rest} menit" if rest else f"{hours} jam"
    days, hours = divmod(hours, 24)
    return f"{days} hari {hours} jam" if hours and days < 3 else f"{days} hari"


def _deadline(payload: Mapping[str, Any]) -> dt.datetime:
    return as_utc(dt.datetime.fromisoformat(str(payload["deadline"])))


# --- Notices in reply to a ticket's card -----------------------------------------------------


def _notice(
    headline: str, payload: Mapping[str, Any], number: str, subject: str, timezone: ZoneInfo
) -> list[str]:
    return [
        headline,
        f"<b>{_e(number)}</b> · {_subject(subject)}",
        f"Langkah: {_e(step_label(payload.get('step')))}",
        f"Batas waktu: {when(_deadline(payload), timezone)}",
    ]


@dataclass(frozen=True)
class ScanTicket:
    """A ticket named in a scan's message: its number as HTML (a link to its card)."""

    number_html: str
    subject: str


def scan_text(
    payload: Mapping[str, Any], tickets: Mapping[int, ScanTicket], timezone: ZoneInfo
) -> str:
    """One scan's breaches and reminders in one message ("sla_scan" alert), with links."""
    lines: list[str] = []
    sections = (
        ("breaches", "🚨 <b>Batas waktu terlewati</b>"),
        ("reminders", "🔔 <b>Batas waktu hampir habis</b>"),
    )
    for key, title in sections:
        entries = list(payload.get(key) or [])
        if not entries:
            continue
        if lines:
            lines.append("")
        lines.append(f"{title} ({len(entries)})")
        for entry in entries[:SUMMARY_LINES]:
            ticket = tickets.get(int(entry.get("ticket") or 0))
            number = ticket.number_html if ticket else "?"
            subject = _subject(ticket.subject) if ticket else ""
            due = when(_deadline(entry), timezone)
            line = f"• {number} {subject} — {_e(step_label(entry.get('step')))}, batas {due}"
            who = entry.get("handler") or entry.get("last_actor")
            if key == "breaches":
                line += f" · {_e(who)}" if who else " · belum ada petugas"
            lines.append(line)
        if len(entries) > SUMMARY_LINES:
            lines.append(f"… dan {len(entries) - SUMMARY_LINES} tiket lainnya")
    lines.append("Mohon segera ditindaklanjuti.")
    return "\n".join(lines)


def reminder_text(
    payload: Mapping[str, Any], ticket_number: str, subject: str, timezone: ZoneInfo
) -> str:
    """A step's time is nearly used up (payload of a "sla_reminder" notice)."""
    lines = _notice("🔔 <b>Pengingat batas waktu</b>", payload, ticket_number, subject, timezone)
    lines.append("Mohon segera ditindaklanjuti agar tidak melewati batas waktu SOP.")
    return "\n".join(lines)


def breach_text(
    payload: Mapping[str, Any], ticket_number: str, subject: str, timezone: ZoneInfo
) -> str:
    """A step's deadline has passed (payload of a "sla_breach" notice)."""
    lines = _notice("⚠️ <b>Batas waktu terlewati</b>", payload, ticket_number, subject, timezone)
    actor = payload.get("last_actor")
    if actor:
        lines.append(f"Terakhir ditangani: {_e(actor)}")
    else:
        lines.append("Belum ada petugas yang menangani tiket ini.")
    lines.append("Mohon segera ditindaklanjuti.")
    return "\n".join(lines)


# --- The morning summary ---------------------------------------------------------------------


def _section(
    title: str,
    ticket_ids: Sequence[int],
    tickets: Mapping[int, SummaryLine],
    timezone: ZoneInfo,
    today: dt.date,
) -> list[str]:
    known = [tickets[i] for i in ticket_ids if i in tickets]
    lines = [f"{title} ({len(ticket_ids)})"]
    for line in known[:SUMMARY_LINES]:
        due = f", batas {when(line.deadline, timezone, today=today)}" if line.deadline else ""
        lines.append(
            f"• {line.number_html or f'<b>{_e(line.number)}</b>'} {_subject(line.subject)} — "
            f"{_e(line.step_label)}{due}"
        )
    hidden = len(ticket_ids) - min(len(known), SUMMARY_LINES)
    if hidden > 0:
        lines.append(f"… dan {hidden} tiket lainnya")
    return lines


def summary_text(
    payload: Mapping[str, Any], tickets: Mapping[int, SummaryLine], timezone: ZoneInfo
) -> str:
    """The morning summary ("sla_summary" alert); `tickets` maps ticket ids to their lines."""
    day = dt.date.fromisoformat(str(payload["date"]))
    overdue = [int(i) for i in payload.get("overdue", [])]
    due_today = [int(i) for i in payload.get("due_today", [])]
    lines = [f"📋 <b>Ringkasan Mutu Baku Waktu · {DAYS[day.weekday()]}, {long_date(day)}</b>"]
    if not overdue and not due_today:
        lines.append("✅ Tidak ada tiket yang terlambat atau jatuh tempo hari ini.")
        open_count = payload.get("open")
        if open_count:
            lines.append(f"Tiket terbuka: {int(open_count)}.")
        return "\n".join(lines)
    if overdue:
        lines += ["", *_section("⚠️ <b>Terlambat</b>", overdue, tickets, timezone, day)]
    if due_today:
        lines += [
            "",
            *_section("⏰ <b>Jatuh tempo hari ini</b>", due_today, tickets, timezone, day),
        ]
    return "\n".join(lines)


# --- The deadline on a ticket's card ---------------------------------------------------------


def urgency(
    deadline_utc: dt.datetime,
    now: dt.datetime,
    *,
    budget_minutes: float,
    calendar: BusinessCalendar,
    remind_ratio: float,
) -> Urgency:
    """ "late" from the deadline on; "soon" once the reminder ratio of the budget is used."""
    if now >= deadline_utc:
        return "late"
    left = calendar.elapsed_minutes(now, deadline_utc)
    return "soon" if left <= (1 - remind_ratio) * budget_minutes + 1e-6 else "ok"


def deadline_badge(
    deadline_utc: dt.datetime,
    now: dt.datetime,
    timezone: ZoneInfo,
    level: Urgency | None = None,
) -> str:
    """'⏰ 14.05 WIB (12 menit lagi)', '🔔 …' when soon, '⚠️ lewat 5 menit (batas 14.05 WIB)'.

    Plain text without markup (safe inside Telegram HTML as it is). `level` comes from
    `urgency()`; without it the badge is "late" from the deadline on and "ok" before.
    """
    today = now.astimezone(timezone).date()
    due = when(deadline_utc, timezone, today=today)
    if now >= deadline_utc:
        return f"⚠️ lewat {span(now - deadline_utc)} (batas {due})"
    icon = "🔔" if level == "soon" else "⏰"
    return f"{icon} {due} ({span(deadline_utc - now)} lagi)"
