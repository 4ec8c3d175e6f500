"""What period a recap covers: /rekap's arguments and the CLI's dates, in local time.

A period is a range of local calendar days; its UTC range is half-open, so a mail received
at 23:30 WIB on the last day belongs to the period and one at 00:00 WIB the next day does not.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from lpse_helpdesk.reports.formatting import MONTHS, format_date, long_date

USAGE = """\
Penggunaan: /rekap [format] [periode]

Format (boleh dilewati, bawaannya Excel):
  excel   berkas .xlsx (bawaan)
  csv     berkas .csv
  pdf     berkas PDF A4 untuk dicetak dan ditandatangani
  grafik  gambar: tiket per hari dan kepatuhan SLA

Periode (boleh dilewati, bawaannya bulan ini):
  hari                     hari ini
  minggu                   minggu ini (Senin-Minggu)
  bulan                    bulan ini
  bulanlalu                bulan lalu
  2026-11                  satu bulan
  2026-11-05               satu hari
  2026-11-01 2026-11-30    dari tanggal sampai tanggal

Contoh: /rekap pdf 2026-11"""

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_MIN_YEAR, _MAX_YEAR = 2000, 2100


class ReportFormat(enum.StrEnum):
    XLSX = "xlsx"
    CSV = "csv"
    PDF = "pdf"
    CHART = "png"


_FORMAT_WORDS: dict[str, ReportFormat] = {
    "excel": ReportFormat.XLSX,
    "xlsx": ReportFormat.XLSX,
    "csv": ReportFormat.CSV,
    "pdf": ReportFormat.PDF,
    "grafik": ReportFormat.CHART,
}


class PeriodError(ValueError):
    """Arguments that name no period; `message` is one Indonesian sentence for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Period:
    """Local calendar days `start` to `end`, both included, in `timezone`."""

    start: dt.date
    end: dt.date
    timezone: ZoneInfo

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(
                f"Tanggal akhir {format_date(self.end)} sebelum tanggal awal "
                f"{format_date(self.start)}."
            )

    @property
    def start_utc(self) -> dt.datetime:
        """The first moment of the period (included), in UTC."""
        return _midnight(self.start, self.timezone)

    @property
    def end_utc(self) -> dt.datetime:
        """The first moment after the period (excluded), in UTC."""
        return _midnight(self.end + dt.timedelta(days=1), self.timezone)

    def contains(self, moment: dt.datetime) -> bool:
        return self.start_utc <= moment < self.end_utc

    def days(self) -> Iterator[dt.date]:
        day = self.start
        while day <= self.end:
            yield day
            day += dt.timedelta(days=1)

    @property
    def is_month(self) -> bool:
        return self.start.day == 1 and self.end == _month_end(self.start)

    @property
    def label(self) -> str:
        """ "November 2026", "24 November 2026" or "1 November 2026 – 15 November 2026"."""
        if self.is_month:
            return f"{MONTHS[self.start.month - 1]} {self.start.year}"
        if self.start == self.end:
            return long_date(self.start)
        return f"{long_date(self.start)} – {long_date(self.end)}"

    @property
    def slug(self) -> str:
        """For file names: "2026-11", "2026-11-24" or "2026-11-01_2026-11-15"."""
        if self.is_month:
            return f"{self.start:%Y-%m}"
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()}_{self.end.isoformat()}"


@dataclass(frozen=True)
class RekapRequest:
    format: ReportFormat
    period: Period


def _midnight(day: dt.date, timezone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0, 0), timezone).astimezone(dt.UTC)


def _month_end(day: dt.date) -> dt.date:
    first_next = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first_next - dt.timedelta(days=1)


def month_period(year: int, month: int, timezone: ZoneInfo) -> Period:
    start = dt.date(year, month, 1)
    return Period(start, _month_end(start), timezone)


def previous_month(today: dt.date, timezone: ZoneInfo) -> Period:
    last_day = today.replace(day=1) - dt.timedelta(days=1)
    return month_period(last_day.year, last_day.month, timezone)


def local_today(now: dt.datetime, timezone: ZoneInfo) -> dt.date:
    return now.astimezone(timezone).date()


def _check_year(year: int, text: str) -> None:
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise PeriodError(f"Tahun pada '{text}' tidak masuk akal.")


def parse_date(text: str) -> dt.date:
    """ "2026-11-05" (leading zeros optional); PeriodError in Indonesian otherwise."""
    match = _DAY.match(text.strip())
    if not match:
        raise PeriodError(f"'{text}' bukan tanggal; tulis TTTT-BB-HH, mis. 2026-11-05.")
    year, month, day = (int(part) for part in match.groups())
    _check_year(year, text)
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise PeriodError(f"Tanggal '{text}' tidak ada di kalender.") from None


def _parse_month(text: str, timezone: ZoneInfo) -> Period | None:
    match = _MONTH.match(text)
    if not match:
        return None
    year, month = int(match[1]), int(match[2])
    _check_year(year, text)
    if not 1 <= month <= 12:
        raise PeriodError(f"Bulan pada '{text}' harus 01 sampai 12.")
    return month_period(year, month, timezone)


def parse_period(words: Sequence[str], *, now: dt.datetime, timezone: ZoneInfo) -> Period:
    """The period named by /rekap's words (after the format); this month when none."""
    today = local_today(now, timezone)
    words = [word.strip().lower() for word in words if word.strip()]
    if not words or words == ["bulan"]:
        return month_period(today.year, today.month, timezone)
    if len(words) == 1:
        word = words[0]
        if word == "hari":
            return Period(today, today, timezone)
        if word in ("bulanlalu", "bulan-lalu", "lalu"):
            return previous_month(today, timezone)
        if word == "minggu":
            monday = today - dt.timedelta(days=today.weekday())
            return Period(monday, monday + dt.timedelta(days=6), timezone)
        month = _parse_month(word, timezone)
        if month is not None:
            return month
        day = parse_date(word)
        return Period(day, day, timezone)
    if words == ["bulan", "lalu"]:
        return previous_month(today, timezone)
    if len(words) == 2:
        return Period(parse_date(words[0]), parse_date(words[1]), timezone)
    raise PeriodError("Terlalu banyak argumen.")


def parse_rekap_args(
    args: Sequence[str] | str, *, now: dt.datetime, timezone: ZoneInfo
) -> RekapRequest:
    """Parse `/rekap [format] [periode]`; raise PeriodError (show it with USAGE)."""
    words = args.split() if isinstance(args, str) else list(args)
    fmt = ReportFormat.XLSX
    if words and words[0].strip().lower() in _FORMAT_WORDS:
        fmt = _FORMAT_WORDS[words.pop(0).strip().lower()]
    return RekapRequest(fmt, parse_period(words, now=now, timezone=timezone))


def parse_cli_period(
    date_from: str | None, date_to: str | None, *, now: dt.datetime, timezone: ZoneInfo
) -> Period:
    """--from and --to (YYYY-MM-DD, both days included), given together; neither: this month."""
    if date_from is None and date_to is None:
        return parse_period([], now=now, timezone=timezone)
    if date_from is None or date_to is None:
        raise PeriodError("--from dan --to harus diisi keduanya (YYYY-MM-DD).")
    return Period(parse_date(date_from), parse_date(date_to), timezone)
