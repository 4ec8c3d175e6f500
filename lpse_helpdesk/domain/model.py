"""The domain data an LPSE configures: priorities, categories, SOP step times, working hours."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class SopStep(enum.StrEnum):
    """The SOP steps that carry a time standard (the "Mutu Baku - Waktu" column)."""

    SET_PRIORITY = "set_priority"  # step 2
    REQUEST_DATA = "request_data"  # step 4
    ANALYSE = "analyse"  # step 7
    RESOLVE = "resolve"  # step 8: resolution time from the priority table
    REPLY_AFTER_SOLVED = "reply_after_solved"  # step 9
    ESCALATE_AND_NOTIFY = "escalate_and_notify"  # step 10


SOP_STEP_LABELS: dict[SopStep, str] = {
    SopStep.SET_PRIORITY: "Penetapan prioritas",
    SopStep.REQUEST_DATA: "Permintaan data & telepon",
    SopStep.ANALYSE: "Analisis",
    SopStep.RESOLVE: "Penyelesaian",
    SopStep.REPLY_AFTER_SOLVED: "Balasan solusi",
    SopStep.ESCALATE_AND_NOTIFY: "Eskalasi & pemberitahuan",
}


@dataclass(frozen=True)
class BusinessDuration:
    """A span of business time: minutes of working hours plus whole working days."""

    minutes: int = 0
    working_days: int = 0

    def __str__(self) -> str:
        parts = []
        if self.working_days:
            parts.append(f"{self.working_days} hari kerja")
        if self.minutes:
            hours, minutes = divmod(self.minutes, 60)
            if hours:
                parts.append(f"{hours} jam kerja")
            if minutes:
                parts.append(f"{minutes} menit")
        return " ".join(parts) or "0 menit"


@dataclass(frozen=True)
class Priority:
    code: str
    label: str
    resolve_within: BusinessDuration
    example: str = ""


SHORT_LABEL_CHARS = 16


@dataclass(frozen=True)
class Category:
    code: str
    label: str
    default_priority: str
    keywords: tuple[str, ...] = ()
    short_label: str = ""  # at most SHORT_LABEL_CHARS, for buttons on a phone

    @property
    def button_label(self) -> str:
        return self.short_label or self.label[:SHORT_LABEL_CHARS]


@dataclass(frozen=True)
class CannedAnswer:
    """A default answer template (copied into the database once, by code)."""

    code: str
    step: str  # data_request, solution or escalation
    title: str
    body: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpeningHours:
    """Opening and closing time of one kind of day; None means closed all day."""

    opens: dt.time
    closes: dt.time


@dataclass(frozen=True)
class WorkingHours:
    """Working hours per weekday (0 = Monday) and the days the helpdesk is closed."""

    weekly: tuple[OpeningHours | None, ...]  # seven entries, Monday first
    holiday_country: str | None = "ID"
    holiday_categories: tuple[str, ...] = ("public", "government")
    extra_closed_days: frozenset[dt.date] = frozenset()


@dataclass(frozen=True)
class DomainConfig:
    priorities: tuple[Priority, ...]
    categories: tuple[Category, ...]
    sop_steps: dict[SopStep, BusinessDuration]
    working_hours: WorkingHours
    urgency_keywords: tuple[str, ...] = ()
    fallback_category: str = "LAINNYA"
    source: str = "(bawaan)"
    answer_templates: tuple[CannedAnswer, ...] = ()

    def priority(self, code: str) -> Priority:
        for priority in self.priorities:
            if priority.code == code:
                return priority
        raise KeyError(code)

    def category(self, code: str) -> Category:
        for category in self.categories:
            if category.code == code:
                return category
        raise KeyError(code)

    def priority_label(self, code: str | None) -> str:
        if code is None:
            return "-"
        try:
            return self.priority(code).label
        except KeyError:
            return code

    def category_label(self, code: str | None) -> str:
        if code is None:
            return "-"
        try:
            return self.category(code).label
        except KeyError:
            return code

    def step_time(self, step: SopStep, priority: str | None = None) -> BusinessDuration | None:
        """The time standard of a step; the resolution time depends on the priority."""
        if step is SopStep.RESOLVE:
            return self.priority(priority).resolve_within if priority else None
        return self.sop_steps.get(step)
