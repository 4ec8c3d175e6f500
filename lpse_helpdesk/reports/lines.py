"""One ticket as the SOP's recap columns, and its clocks as "Detail SLA" lines.

Every text a file shows passes through `safety.safe_cell` here, once, for every format.

Decisions:
- Permasalahan is the ticket's problem text (the subject when the text is empty). The table
  formats (Excel, PDF) show it with its whitespace collapsed, cut at TABLE_TEXT_LIMIT
  characters (PDF: pdf.PDF_TEXT_LIMIT); the CSV keeps the full text, line breaks included
  (up to Excel's cell limit), for whoever needs it. Solusi likewise.
- Solusi is the last solution sent, also on a ticket reopened since (Keterangan says so).
- Tgl Selesai is when the solution was sent (resolved_at) for a solved ticket; for a ticket
  closed without a solution it is when it was closed, and Keterangan says so. A ticket still
  open (with LKPP, or reopened and not solved again) has no Tgl Selesai.
- Keterangan starts with the ticket number (the key into "Detail SLA"), then the state,
  the priority, the escalation, reopenings, the SOP steps whose time was missed (or is
  being missed by a clock still running) and a linked ticket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple
from zoneinfo import ZoneInfo

from lpse_helpdesk.domain.model import SOP_STEP_LABELS, DomainConfig
from lpse_helpdesk.reports.data import ClockRow, TicketRow
from lpse_helpdesk.reports.formatting import format_date, format_datetime
from lpse_helpdesk.reports.masking import mask_email
from lpse_helpdesk.reports.period import Period
from lpse_helpdesk.reports.safety import safe_cell
from lpse_helpdesk.sop.machine import STATE_LABELS, State
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar

#: The SOP's columns, in its order and with its headings.
RECAP_COLUMNS = (
    "No",
    "Nama",
    "E-mail",
    "Permasalahan",
    "Solusi",
    "Tgl diterima",
    "Tgl Selesai",
    "Keterangan",
)
DETAIL_COLUMNS = (
    "No. Tiket",
    "Kategori",
    "Prioritas",
    "Langkah SOP",
    "Mulai",
    "Batas waktu",
    "Selesai",
    "Menit kerja",
    "Batas (menit kerja)",
    "Status",
)
TITLE = "Rekap Penanganan Permasalahan Melalui E-mail"
TABLE_TEXT_LIMIT = 500
CELL_TEXT_LIMIT = 32_000  # Excel holds at most 32,767 characters in a cell

MET, MISSED, RUNNING, OVERDUE, PAUSED = (
    "Tepat waktu",
    "Terlambat",
    "Berjalan",
    "Berjalan, lewat batas",
    "Dijeda",
)


@dataclass(frozen=True)
class Signers:
    """Who signs the printed recap, as Indonesian offices lay it out."""

    city: str = ""
    head_title: str = "Kepala LPSE"
    head_name: str = ""


@dataclass(frozen=True)
class RecapContext:
    """Everything a recap file needs besides the tickets."""

    period: Period
    domain: DomainConfig
    lpse_name: str
    generated_at: dt.datetime  # aware; also "now" for clocks still running
    mask_email: bool = False
    #: The PDF's signature block (REKAP_CITY, REKAP_HEAD_TITLE, REKAP_HEAD_NAME).
    signers: Signers = field(default_factory=lambda: Signers())
    calendar: BusinessCalendar = field(init=False, repr=False, compare=False)

    _minutes_from_day: dict[dt.date, float] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        calendar = BusinessCalendar(self.domain.working_hours, self.period.timezone)
        object.__setattr__(self, "calendar", calendar)

    def minutes_until_now(self, since: dt.datetime) -> float:
        """Business minutes from `since` to `generated_at`.

        The whole days after `since`'s day are counted once per day and remembered: many
        clocks still running share them, and counting them each time was the slowest part
        of a large recap.
        """
        now = self.generated_at
        day = since.astimezone(self.timezone).date() + dt.timedelta(days=1)
        midnight = dt.datetime.combine(day, dt.time(0, 0), self.timezone)
        if midnight >= now:
            return self.calendar.elapsed_minutes(since, now)
        rest = self._minutes_from_day.get(day)
        if rest is None:
            rest = self._minutes_from_day[day] = self.calendar.elapsed_minutes(midnight, now)
        return self.calendar.elapsed_minutes(since, midnight) + rest

    @property
    def timezone(self) -> ZoneInfo:
        return self.period.timezone

    def when(self, value: dt.datetime | None) -> str:
        return format_datetime(value, self.timezone)


class RecapLine(NamedTuple):
    """The SOP's eight columns, in order (a tuple, so that writers take it as a row)."""

    no: int
    name: str
    email: str
    problem: str
    solution: str
    received_at: dt.datetime
    finished_at: dt.datetime | None
    remarks: str


class DetailLine(NamedTuple):
    """The "Detail SLA" columns, in order."""

    number: str
    category: str
    priority: str
    step: str
    started_at: dt.datetime
    deadline_at: dt.datetime | None
    stopped_at: dt.datetime | None
    minutes: float
    budget_minutes: float
    status: str


def period_line(context: RecapContext) -> str:
    period = context.period
    return f"Periode: {period.label} ({format_date(period.start)} s.d. {format_date(period.end)})"


def made_line(context: RecapContext) -> str:
    line = f"Dibuat: {format_datetime(context.generated_at, context.timezone)}"
    if context.mask_email:
        line += " · alamat e-mail disamarkan"
    return line


def remarks(row: TicketRow, context: RecapContext) -> list[str]:
    """The facts a reader of the recap needs, one short phrase each."""
    parts = [row.number]
    if row.closed_unresolved:
        parts.append("Ditutup tanpa solusi")
    elif row.state is not State.ESCALATED:  # the escalation is told with its date below
        parts.append(STATE_LABELS[row.state])
    if row.priority is not None:
        parts.append(f"Prioritas {context.domain.priority_label(row.priority)}")
    else:
        parts.append("Prioritas belum ditetapkan")
    if row.escalated_at is not None:
        parts.append(f"Dieskalasi ke LKPP {context.when(row.escalated_at)}")
    if row.lkpp_answered_at is not None:
        parts.append(f"Dijawab LKPP {context.when(row.lkpp_answered_at)}")
    if row.reopen_count:
        parts.append(f"Dibuka kembali {row.reopen_count} kali")
    missed = row.missed_steps(context.generated_at)
    if missed:
        parts.append("SLA terlewat: " + ", ".join(SOP_STEP_LABELS[step] for step in missed))
    if row.linked_number:
        parts.append(f"Tiket terkait {row.linked_number}")
    return parts


def recap_line(
    no: int, row: TicketRow, context: RecapContext, *, text_limit: int | None = TABLE_TEXT_LIMIT
) -> RecapLine:
    """The SOP's eight columns; `text_limit=None` keeps the full problem and solution."""
    collapse = text_limit is not None
    limit = text_limit if text_limit is not None else CELL_TEXT_LIMIT
    email = mask_email(row.requester_email) if context.mask_email else row.requester_email
    problem = row.problem_text if row.problem_text.strip() else row.subject
    return RecapLine(
        no=no,
        name=safe_cell(row.requester_name, 255, collapse=True),
        email=safe_cell(email, 320, collapse=True),
        problem=safe_cell(problem, limit, collapse=collapse),
        solution=safe_cell(row.solution, limit, collapse=collapse),
        received_at=row.received_at,
        finished_at=row.finished_at,
        remarks=safe_cell("\n".join(remarks(row, context))),
    )


def clock_minutes(clock: ClockRow, context: RecapContext) -> float:
    """Business minutes used: final when stopped, so far when still running."""
    if clock.business_minutes is not None:
        return clock.business_minutes
    if clock.paused_at is not None or clock.resumed_at is None:
        return clock.used_minutes
    return round(clock.used_minutes + context.minutes_until_now(clock.resumed_at), 2)


def clock_status(clock: ClockRow, now: dt.datetime) -> str:
    if clock.met is True:
        return MET
    if clock.met is False:
        return MISSED
    if clock.paused_at is not None:
        return PAUSED
    return OVERDUE if clock.overdue(now) else RUNNING


def detail_lines(row: TicketRow, context: RecapContext) -> Iterator[DetailLine]:
    """One line per run of a step's clock, in the order they started."""
    category = safe_cell(context.domain.category_label(row.category), collapse=True)
    priority = safe_cell(context.domain.priority_label(row.priority), collapse=True)
    for clock in row.clocks:
        yield DetailLine(
            row.number,
            category,
            priority,
            SOP_STEP_LABELS[clock.step],
            clock.started_at,
            clock.deadline_at,
            clock.stopped_at,
            clock_minutes(clock, context),
            round(clock.budget_minutes, 2),
            clock_status(clock, context.generated_at),
        )
