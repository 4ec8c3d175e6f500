"""The short recap for Telegram: counts, SLA compliance per SOP step, medians, top categories.

Everything is counted over the tickets received in the period, as the recap's rows are.
Compliance per step counts the stopped clocks (SlaClock.met); clocks still running past
their deadline are reported beside it, since they are being missed. Times are business
minutes ("jam kerja"), as the SOP's time standards are: to priority is the step-2 clock of
tickets that got a priority; to resolution runs from receipt to the solution, waiting for
the user included, for tickets solved and not reopened since.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Connection, and_, case, func, select

from lpse_helpdesk.domain.model import SOP_STEP_LABELS, DomainConfig, SopStep
from lpse_helpdesk.reports.data import connection_of
from lpse_helpdesk.reports.formatting import format_count, format_minutes, format_percent
from lpse_helpdesk.reports.period import Period, previous_month
from lpse_helpdesk.sop.machine import OPEN_STATES, State
from lpse_helpdesk.storage import tables
from lpse_helpdesk.storage.tables import Channel
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TOP_CATEGORIES = 5
OLDEST_OPEN = 3
#: The actions that make a staff member the officer of a ticket, latest first wins.
_OWNING_ACTIONS = ("resolve", "escalate", "request_data", "set_priority")
_TEMPLATE_ACTIONS = ("resolve", "request_data", "escalate")
# The columns of the tables read (SQLAlchemy Core: the CLI reads without the ORM).
_ticket = tables.tickets.c
_clock = tables.sla_clocks.c
_event = tables.audit_events.c


@dataclass(frozen=True)
class OfficerLine:
    name: str
    tickets: int  # tickets of the period this officer handled (solved, escalated, ...)
    breaches: int  # SOP steps missed on those tickets


@dataclass(frozen=True)
class OpenTicket:
    number: str
    subject: str
    received_at: dt.datetime


@dataclass(frozen=True)
class PreviousPeriod:
    period: Period
    received: int
    resolved: int
    met: int
    judged: int


@dataclass(frozen=True)
class StepCompliance:
    step: SopStep
    met: int = 0
    missed: int = 0
    overdue: int = 0  # still running, past the deadline

    @property
    def judged(self) -> int:
        return self.met + self.missed

    @property
    def percent(self) -> float | None:
        return 100 * self.met / self.judged if self.judged else None


@dataclass(frozen=True)
class RecapSummary:
    period: Period
    received: int
    resolved: int
    escalated: int
    still_open: int
    closed_unresolved: int
    steps: tuple[StepCompliance, ...]
    median_priority_minutes: float | None
    median_resolution_minutes: float | None
    top_categories: tuple[tuple[str, int], ...]  # category code, count; most first
    per_day: tuple[tuple[dt.date, int], ...]  # every day of the period
    officers: tuple[OfficerLine, ...] = ()
    previous: PreviousPeriod | None = None
    oldest_open: tuple[OpenTicket, ...] = ()
    templates_used: tuple[tuple[str, int], ...] = ()  # canned answer title, uses


def _in_period(period: Period) -> ColumnElement[bool]:
    return and_(_ticket.received_at >= period.start_utc, _ticket.received_at < period.end_utc)


def _resolved() -> ColumnElement[bool]:
    return and_(_ticket.resolved_at.is_not(None), _ticket.state.in_([State.RESOLVED, State.CLOSED]))


def _counts(connection: Connection, period: Period) -> tuple[int, int, int, int, int]:
    row = connection.execute(
        select(
            func.count(),
            func.count(case((_resolved(), 1))),
            func.count(_ticket.escalated_at),
            func.count(case((_ticket.state.in_(OPEN_STATES), 1))),
            func.count(
                case((and_(_ticket.state == State.CLOSED, _ticket.resolved_at.is_(None)), 1))
            ),
        ).where(_in_period(period))
    ).one()
    received, resolved, escalated, still_open, closed_unresolved = (int(v or 0) for v in row)
    return received, resolved, escalated, still_open, closed_unresolved


def _shown_steps(domain: DomainConfig) -> tuple[SopStep, ...]:
    return tuple(s for s in SopStep if s in domain.sop_steps or s is SopStep.RESOLVE)


def _compliance(
    connection: Connection, period: Period, domain: DomainConfig, now: dt.datetime
) -> tuple[StepCompliance, ...]:
    judged: Counter[tuple[SopStep, bool]] = Counter()
    for step, met, count in connection.execute(
        select(_clock.step, _clock.met, func.count())
        .join(tables.tickets, _ticket.id == _clock.ticket_id)
        .where(_in_period(period), _clock.stopped_at.is_not(None), _clock.met.is_not(None))
        .group_by(_clock.step, _clock.met)
    ):
        judged[(step, bool(met))] += count
    overdue: Counter[SopStep] = Counter()
    for step, count in connection.execute(
        select(_clock.step, func.count())
        .join(tables.tickets, _ticket.id == _clock.ticket_id)
        .where(
            _in_period(period),
            _clock.stopped_at.is_(None),
            _clock.paused_at.is_(None),
            _clock.deadline_at < now,
        )
        .group_by(_clock.step)
    ):
        overdue[step] += count
    steps = set(_shown_steps(domain)) | {step for step, _ in judged} | set(overdue)
    return tuple(
        StepCompliance(step, judged[(step, True)], judged[(step, False)], overdue[step])
        for step in SopStep
        if step in steps
    )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _median_priority(connection: Connection, period: Period) -> float | None:
    minutes = connection.scalars(
        select(_clock.business_minutes)
        .join(tables.tickets, _ticket.id == _clock.ticket_id)
        .where(
            _in_period(period),
            _clock.step == SopStep.SET_PRIORITY,
            _clock.business_minutes.is_not(None),
            _ticket.priority.is_not(None),
        )
    )
    return _median([m for m in minutes if m is not None])


def _median_resolution(
    connection: Connection, period: Period, domain: DomainConfig
) -> float | None:
    calendar = BusinessCalendar(domain.working_hours, period.timezone)
    values = []
    query = select(_ticket.received_at, _ticket.resolved_at).where(_in_period(period), _resolved())
    for received_at, resolved_at in connection.execute(query):
        if resolved_at is not None:
            values.append(calendar.elapsed_minutes(received_at, resolved_at))
    return _median(values)


def _top_categories(
    connection: Connection, period: Period, top: int
) -> tuple[tuple[str, int], ...]:
    count = func.count().label("n")
    rows = connection.execute(
        select(_ticket.category, count)
        .where(_in_period(period), _ticket.category.is_not(None))
        .group_by(_ticket.category)
        .order_by(count.desc(), _ticket.category)
        .limit(top)
    )
    return tuple((str(code), int(n)) for code, n in rows)


def _per_day(connection: Connection, period: Period) -> tuple[tuple[dt.date, int], ...]:
    days: Counter[dt.date] = Counter()
    query = select(_ticket.received_at).where(_in_period(period))
    for received_at in connection.scalars(query.execution_options(yield_per=2000)):
        days[received_at.astimezone(period.timezone).date()] += 1
    return tuple((day, days[day]) for day in period.days())


def _officers(connection: Connection, period: Period) -> tuple[OfficerLine, ...]:
    """Per officer: the period's tickets they own (who solved, escalated, asked for data or
    set the priority, in that order) and the SOP steps missed on them."""
    events = connection.execute(
        select(_event.ticket_id, _event.action, _event.actor_id, _event.actor_name)
        .join(tables.tickets, _ticket.id == _event.ticket_id)
        .where(
            _in_period(period),
            _event.channel == Channel.TELEGRAM,
            _event.action.in_(_OWNING_ACTIONS),
        )
        .order_by(_event.id)
    ).all()
    owner: dict[int, tuple[int, str, str]] = {}  # ticket -> (rank, actor id, display name)
    for ticket_id, action, actor_id, actor_name in events:
        if ticket_id is None or actor_id is None:
            continue
        rank = _OWNING_ACTIONS.index(action)
        if ticket_id not in owner or rank <= owner[ticket_id][0]:
            owner[ticket_id] = (rank, actor_id, actor_name or actor_id)
    if not owner:
        return ()
    missed: Counter[int] = Counter(
        connection.scalars(
            select(_clock.ticket_id).where(_clock.ticket_id.in_(list(owner)), _clock.met.is_(False))
        )
    )
    staff = tables.staff_names.c
    names = {
        str(user_id): name
        for user_id, name in connection.execute(select(staff.user_id, staff.official_name))
    }
    tickets: Counter[str] = Counter()
    breaches: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for ticket_id, (_, actor_id, actor_name) in owner.items():
        tickets[actor_id] += 1
        breaches[actor_id] += missed[ticket_id]
        shown[actor_id] = names.get(actor_id, actor_name)
    return tuple(
        OfficerLine(shown[actor], tickets[actor], breaches[actor])
        for actor in sorted(tickets, key=lambda a: (-tickets[a], shown[a]))
    )


def _previous_period(period: Period) -> Period:
    if period.is_month:
        return previous_month(period.start, period.timezone)
    length = period.end - period.start
    end = period.start - dt.timedelta(days=1)
    return Period(end - length, end, period.timezone)


def _previous(connection: Connection, period: Period) -> PreviousPeriod:
    earlier = _previous_period(period)
    received, resolved, *_ = _counts(connection, earlier)
    met, judged = connection.execute(
        select(func.count(case((_clock.met.is_(True), 1))), func.count(_clock.met))
        .join(tables.tickets, _ticket.id == _clock.ticket_id)
        .where(_in_period(earlier), _clock.stopped_at.is_not(None))
    ).one()
    return PreviousPeriod(earlier, received, resolved, int(met or 0), int(judged or 0))


def _oldest_open(connection: Connection, limit: int) -> tuple[OpenTicket, ...]:
    rows = connection.execute(
        select(_ticket.number, _ticket.subject, _ticket.received_at)
        .where(_ticket.state.in_(OPEN_STATES))
        .order_by(_ticket.received_at, _ticket.id)
        .limit(limit)
    )
    return tuple(OpenTicket(number, subject or "", at) for number, subject, at in rows)


def _templates_used(connection: Connection, period: Period) -> tuple[tuple[str, int], ...]:
    used: Counter[int] = Counter()
    for detail in connection.scalars(
        select(_event.detail).where(
            _event.at >= period.start_utc,
            _event.at < period.end_utc,
            _event.action.in_(_TEMPLATE_ACTIONS),
        )
    ):
        template = (detail or {}).get("template")
        if isinstance(template, int):
            used[template] += 1
    if not used:
        return ()
    query = select(tables.answer_templates.c.id, tables.answer_templates.c.title).where(
        tables.answer_templates.c.id.in_(list(used))
    )
    titles = {template_id: title for template_id, title in connection.execute(query)}
    return tuple(
        (titles.get(template, f"#{template}"), count) for template, count in used.most_common(5)
    )


def compute_summary(
    db: Connection | Session,
    period: Period,
    domain: DomainConfig,
    *,
    now: dt.datetime,
    top: int = TOP_CATEGORIES,
) -> RecapSummary:
    connection = connection_of(db)
    received, resolved, escalated, still_open, closed_unresolved = _counts(connection, period)
    return RecapSummary(
        period=period,
        received=received,
        resolved=resolved,
        escalated=escalated,
        still_open=still_open,
        closed_unresolved=closed_unresolved,
        steps=_compliance(connection, period, domain, now),
        median_priority_minutes=_median_priority(connection, period),
        median_resolution_minutes=_median_resolution(connection, period, domain),
        top_categories=_top_categories(connection, period, top),
        per_day=_per_day(connection, period),
        officers=_officers(connection, period),
        previous=_previous(connection, period),
        oldest_open=_oldest_open(connection, OLDEST_OPEN),
        templates_used=_templates_used(connection, period),
    )


# --- Text -----------------------------------------------------------------------------------

_HEADING = "\0"  # marks a line to be shown in bold where the output can


def _step_line(item: StepCompliance) -> str:
    label = SOP_STEP_LABELS[item.step]
    if item.judged:
        text = (
            f"{label}: {format_percent(item.met, item.judged)} "
            f"({format_count(item.met)} dari {format_count(item.judged)} tepat waktu)"
        )
    else:
        text = f"{label}: belum ada data"
    if item.overdue:
        text += f"; {format_count(item.overdue)} masih terbuka dan melewati batas"
    return f"• {text}"


def _lines(summary: RecapSummary, domain: DomainConfig, lpse_name: str) -> list[str]:
    period = summary.period
    lines = [
        f"{_HEADING}Rekap Helpdesk {lpse_name}",
        f"Periode: {period.label}",
        "",
    ]
    if not summary.received:
        return [*lines, "Tidak ada tiket yang diterima pada periode ini."]
    before = summary.previous if summary.previous and summary.previous.received else None
    lines += [
        f"Diterima: {format_count(summary.received)}"
        + (f" (periode sebelumnya {format_count(before.received)})" if before else ""),
        f"Selesai: {format_count(summary.resolved)}"
        + (f" (periode sebelumnya {format_count(before.resolved)})" if before else ""),
        f"Dieskalasi ke LKPP: {format_count(summary.escalated)}",
        f"Masih terbuka: {format_count(summary.still_open)}",
    ]
    if summary.closed_unresolved:
        lines.append(f"Ditutup tanpa solusi: {format_count(summary.closed_unresolved)}")
    lines += ["", f"{_HEADING}Mutu Baku Waktu per langkah SOP:"]
    lines += [_step_line(item) for item in summary.steps]
    if before is not None and before.judged:
        lines.append(
            f"Periode sebelumnya ({before.period.label}): "
            f"{format_percent(before.met, before.judged)} tepat waktu"
        )
    lines.append("")
    if summary.median_priority_minutes is not None:
        median = format_minutes(summary.median_priority_minutes)
        lines.append(
            f"Nilai tengah (median) waktu sampai prioritas: {median} (dihitung dalam jam kerja)"
        )
    if summary.median_resolution_minutes is not None:
        median = format_minutes(summary.median_resolution_minutes)
        lines.append(
            f"Nilai tengah (median) waktu sampai selesai: {median} (dihitung dalam jam kerja)"
        )
    if summary.top_categories:
        lines += ["", f"{_HEADING}Kategori terbanyak:"]
        lines += [
            f"{rank}. {domain.category_label(code)}: {format_count(count)}"
            for rank, (code, count) in enumerate(summary.top_categories, start=1)
        ]
    if summary.officers:
        lines += ["", f"{_HEADING}Per petugas (tiket ditangani / langkah SOP terlambat):"]
        lines += [
            f"• {o.name}: {format_count(o.tickets)} / {format_count(o.breaches)}"
            for o in summary.officers
        ]
    if summary.templates_used:
        lines += ["", f"{_HEADING}Templat jawaban terpakai:"]
        lines += [f"• {title}: {format_count(n)}×" for title, n in summary.templates_used]
    if summary.oldest_open:
        tz = period.timezone
        lines += ["", f"{_HEADING}Tiket terbuka paling lama:"]
        lines += [
            f"• {t.number} (sejak {t.received_at.astimezone(tz):%d/%m/%Y}): {t.subject[:60]}"
            for t in summary.oldest_open
        ]
    return lines


def summary_text(summary: RecapSummary, domain: DomainConfig, lpse_name: str) -> str:
    """Plain text, e.g. for a Telegram message without a parse mode."""
    return "\n".join(line.lstrip(_HEADING) for line in _lines(summary, domain, lpse_name))


def summary_html(summary: RecapSummary, domain: DomainConfig, lpse_name: str) -> str:
    """For Telegram's parse_mode=HTML: every value escaped, headings in bold."""
    out = []
    for line in _lines(summary, domain, lpse_name):
        if line.startswith(_HEADING):
            out.append(f"<b>{escape(line[1:], quote=False)}</b>")
        else:
            out.append(escape(line, quote=False))
    return "\n".join(out)
