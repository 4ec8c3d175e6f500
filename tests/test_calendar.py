"""Business time over weekends, Friday hours, holidays, cuti bersama, nights, year ends."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.domain.model import BusinessDuration
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock, as_utc

WIB = ZoneInfo("Asia/Jakarta")
WITA = ZoneInfo("Asia/Makassar")


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return BusinessCalendar(load_domain().working_hours, WIB)


def wib(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=WIB)


def minutes(n: float) -> BusinessDuration:
    return BusinessDuration(minutes=int(n))


@pytest.mark.parametrize(
    ("start", "duration", "due", "why"),
    [
        (wib(2026, 11, 24, 10, 0), 5, wib(2026, 11, 24, 10, 5), "inside working hours"),
        (wib(2026, 11, 27, 22, 0), 5, wib(2026, 11, 30, 7, 35), "Friday night -> Monday"),
        (wib(2026, 11, 28, 11, 0), 5, wib(2026, 11, 30, 7, 35), "Saturday -> Monday"),
        (wib(2026, 11, 24, 2, 0), 5, wib(2026, 11, 24, 7, 35), "at night -> that morning"),
        (wib(2026, 11, 26, 15, 58), 5, wib(2026, 11, 27, 7, 33), "Thursday closes 16:00"),
        (wib(2026, 11, 27, 16, 20), 15, wib(2026, 11, 30, 7, 35), "Friday closes 16:30"),
        (wib(2026, 8, 14, 16, 28), 5, wib(2026, 8, 18, 7, 33), "17 Agustus (holiday)"),
        (wib(2026, 12, 23, 15, 58), 5, wib(2026, 12, 28, 7, 33), "cuti bersama 24 Dec"),
        (wib(2026, 12, 31, 15, 59), 5, wib(2027, 1, 4, 7, 34), "year boundary, 1 Jan"),
        (wib(2026, 3, 17, 15, 0), 120, wib(2026, 3, 25, 8, 30), "Nyepi + Lebaran + cuti"),
    ],
)
def test_deadline_in_business_minutes(
    calendar: BusinessCalendar, start: dt.datetime, duration: int, due: dt.datetime, why: str
) -> None:
    assert calendar.deadline(start, minutes(duration)) == as_utc(due), why


def test_deadline_is_utc(calendar: BusinessCalendar) -> None:
    due = calendar.deadline(wib(2026, 11, 24, 10, 0), minutes(5))
    assert due.tzinfo == dt.UTC
    assert due == dt.datetime(2026, 11, 24, 3, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (wib(2026, 11, 23, 10, 0), 1, wib(2026, 11, 24, 10, 0)),  # Monday -> Tuesday
        (wib(2026, 11, 27, 10, 0), 1, wib(2026, 11, 30, 10, 0)),  # Friday -> Monday
        (wib(2026, 11, 27, 16, 15), 1, wib(2026, 11, 30, 16, 0)),  # clamped to Monday's close
        (wib(2026, 11, 28, 9, 0), 1, wib(2026, 12, 1, 7, 30)),  # Saturday counts from Monday
        (wib(2026, 11, 25, 9, 0), 3, wib(2026, 11, 30, 9, 0)),  # over a weekend
        (wib(2026, 12, 23, 9, 0), 1, wib(2026, 12, 28, 9, 0)),  # over cuti bersama + Christmas
    ],
)
def test_working_days(
    calendar: BusinessCalendar, start: dt.datetime, days: int, due: dt.datetime
) -> None:
    assert calendar.deadline(start, BusinessDuration(working_days=days)) == as_utc(due)


def test_mixed_duration(calendar: BusinessCalendar) -> None:
    duration = BusinessDuration(minutes=60, working_days=1)
    assert calendar.deadline(wib(2026, 11, 23, 10, 0), duration) == as_utc(wib(2026, 11, 24, 11))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (wib(2026, 11, 24, 10, 0), wib(2026, 11, 24, 10, 5), 5),
        (wib(2026, 11, 27, 16, 0), wib(2026, 11, 30, 8, 0), 60),  # Friday 30 + Monday 30
        (wib(2026, 11, 28, 8, 0), wib(2026, 11, 29, 20, 0), 0),  # all weekend
        (wib(2026, 11, 24, 20, 0), wib(2026, 11, 24, 10, 0), 0),  # end before start
        (wib(2026, 11, 23, 7, 30), wib(2026, 11, 24, 7, 30), 510),  # one Monday
        (wib(2026, 12, 23, 16, 0), wib(2026, 12, 28, 7, 30), 0),  # cuti bersama, Christmas
    ],
)
def test_elapsed(
    calendar: BusinessCalendar, start: dt.datetime, end: dt.datetime, expected: float
) -> None:
    assert calendar.elapsed_minutes(start, end) == pytest.approx(expected)


def test_elapsed_is_inverse_of_deadline(calendar: BusinessCalendar) -> None:
    start = wib(2026, 11, 27, 16, 10)
    due = calendar.deadline(start, minutes(500))
    assert calendar.elapsed_minutes(start, due) == pytest.approx(500)


def test_holiday_names_and_open(calendar: BusinessCalendar) -> None:
    assert calendar.holiday_name(dt.date(2026, 8, 17)) is not None
    assert calendar.holiday_name(dt.date(2026, 12, 24)) is not None  # cuti bersama
    assert not calendar.is_working_day(dt.date(2026, 11, 28))
    assert calendar.is_open(wib(2026, 11, 24, 9, 0))
    assert not calendar.is_open(wib(2026, 11, 24, 16, 30))
    assert calendar.is_open(wib(2026, 11, 27, 16, 29))


def test_extra_closed_days_and_wita() -> None:
    hours = load_domain().working_hours
    closed = dataclasses.replace(hours, extra_closed_days=frozenset({dt.date(2026, 11, 30)}))
    calendar = BusinessCalendar(closed, WITA)
    start = dt.datetime(2026, 11, 27, 22, 0, tzinfo=WITA)
    assert calendar.deadline(start, minutes(5)) == as_utc(
        dt.datetime(2026, 12, 1, 7, 35, tzinfo=WITA)
    )
    assert calendar.holiday_name(dt.date(2026, 11, 30)) == "Hari libur lokal"


def test_a_calendar_without_working_days_fails_clearly() -> None:
    hours = dataclasses.replace(load_domain().working_hours, weekly=(None,) * 7)
    with pytest.raises(ValueError, match="no working day"):
        BusinessCalendar(hours, WIB).deadline(wib(2026, 1, 5, 9, 0), minutes(5))


def test_fixed_clock() -> None:
    clock = FixedClock(wib(2026, 11, 24, 10, 0))
    assert clock.now() == dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
    clock.advance(minutes=5)
    assert clock.now() == dt.datetime(2026, 11, 24, 3, 5, tzinfo=dt.UTC)
    assert as_utc(dt.datetime(2026, 1, 1)) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
