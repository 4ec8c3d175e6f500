"""Business time: working hours, Indonesian public holidays and cuti bersama, closed days.

All inputs and outputs are aware datetimes; calculations happen in the helpdesk's local
time zone (WIB/WITA/WIT have no daylight saving time).
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from lpse_helpdesk.domain.model import BusinessDuration, WorkingHours
from lpse_helpdesk.timekeeping.clock import as_utc

if TYPE_CHECKING:
    from holidays import HolidayBase

_MAX_SCAN_DAYS = 3660  # ten years without a working day means a broken calendar
_COUNTRIES = "holidays.countries"
_LOADING = threading.Lock()  # threads (database, event loop) must not both load a module


class UnknownHolidayCountry(ValueError):
    """The `holidays` package has no calendar for this country code."""


def holiday_entity(country: str) -> type[HolidayBase]:
    """The `holidays` class of `country` (e.g. "ID", "IDN" or "Indonesia").

    `holidays.countries` imports all of its ~250 country modules when first touched (a
    tenth of a second or more, at every start-up); this imports only the one asked for.
    """
    from holidays.registry import COUNTRIES

    for module, names in COUNTRIES.items():
        if country in names:
            return getattr(_country_module(module), names[0])  # type: ignore[no-any-return]
    raise UnknownHolidayCountry(country)


def _country_module(module: str) -> Any:
    with _LOADING:
        return _load_country_module(module)


def _load_country_module(module: str) -> Any:
    name = f"{_COUNTRIES}.{module}"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    if _COUNTRIES in sys.modules:
        return importlib.import_module(name)
    import holidays

    # The module's own imports are absolute (holidays.groups, holidays.calendars...); a later
    # `import holidays.countries` finds it in sys.modules and reuses it: one class per country.
    spec = importlib.util.spec_from_file_location(
        name, Path(holidays.__file__).parent / "countries" / f"{module}.py"
    )
    if spec is None or spec.loader is None:  # pragma: no cover (a package laid out otherwise)
        return importlib.import_module(name)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    return loaded


def check_holiday_calendar(country: str, categories: Sequence[str]) -> None:
    """UnknownHolidayCountry, or ValueError for a category the country does not have."""
    holiday_entity(country)(categories=tuple(categories))  # no year computed: cheap


class BusinessCalendar:
    def __init__(self, hours: WorkingHours, timezone: ZoneInfo) -> None:
        self.hours = hours
        self.timezone = timezone
        self._holidays_for = lru_cache(maxsize=16)(self._load_holidays)

    def _load_holidays(self, year: int) -> dict[dt.date, str]:
        if self.hours.holiday_country is None:
            return {}
        entity = holiday_entity(self.hours.holiday_country)
        table = entity(years=year, categories=self.hours.holiday_categories)
        return dict(table.items())

    def holiday_name(self, day: dt.date) -> str | None:
        if day in self.hours.extra_closed_days:
            return "Hari libur lokal"
        return self._holidays_for(day.year).get(day)

    def is_working_day(self, day: dt.date) -> bool:
        return self.hours.weekly[day.weekday()] is not None and self.holiday_name(day) is None

    def opening(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """Local opening and closing time of `day`, or None when closed."""
        if not self.is_working_day(day):
            return None
        hours = self.hours.weekly[day.weekday()]
        assert hours is not None
        return (
            dt.datetime.combine(day, hours.opens, self.timezone),
            dt.datetime.combine(day, hours.closes, self.timezone),
        )

    def _windows_from(self, start: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working windows (local) from `start` on, the first one clipped to `start`."""
        local = start.astimezone(self.timezone)
        day = local.date()
        for _ in range(_MAX_SCAN_DAYS):
            window = self.opening(day)
            if window is not None and window[1] > local:
                yield max(window[0], local), window[1]
            day += dt.timedelta(days=1)
        raise ValueError("no working day within ten years: check the working hours")

    def next_opening(self, at: dt.datetime) -> dt.datetime:
        """`at` itself when the helpdesk is open then, else its next opening (UTC)."""
        return as_utc(next(self._windows_from(at))[0])

    def is_open(self, at: dt.datetime) -> bool:
        return self.next_opening(at) == as_utc(at)

    def add_minutes(self, start: dt.datetime, minutes: float) -> dt.datetime:
        """The moment `minutes` business minutes after `start`."""
        remaining = dt.timedelta(minutes=minutes)
        for opens, closes in self._windows_from(start):
            if remaining <= closes - opens:
                return as_utc(opens + remaining)
            remaining -= closes - opens
        raise AssertionError("unreachable")  # pragma: no cover

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The same time of day `days` working days later (clamped to that day's closing).

        A start outside working hours counts from the next opening, so a mail received
        on Saturday with "1 working day" is due at Tuesday's opening.
        """
        begin = self.next_opening(start).astimezone(self.timezone)
        day = begin.date()
        for _ in range(days):
            day += dt.timedelta(days=1)
            scanned = 0
            while not self.is_working_day(day):
                day += dt.timedelta(days=1)
                scanned += 1
                if scanned > _MAX_SCAN_DAYS:
                    raise ValueError("no working day within ten years: check the working hours")
        window = self.opening(day)
        assert window is not None
        target = dt.datetime.combine(day, begin.timetz().replace(tzinfo=None), self.timezone)
        return as_utc(min(max(target, window[0]), window[1]))

    def deadline(self, start: dt.datetime, duration: BusinessDuration) -> dt.datetime:
        """start + duration in business time."""
        moment = (
            self.add_working_days(start, duration.working_days) if duration.working_days else start
        )
        return (
            self.add_minutes(moment, duration.minutes)
            if duration.minutes or not duration.working_days
            else moment
        )

    def elapsed_minutes(self, start: dt.datetime, end: dt.datetime) -> float:
        """Business minutes between `start` and `end` (0 when end <= start)."""
        if end <= start:
            return 0.0
        end_local = end.astimezone(self.timezone)
        total = dt.timedelta()
        for opens, closes in self._windows_from(start):
            if opens >= end_local:
                break
            total += min(closes, end_local) - opens
        return total.total_seconds() / 60
