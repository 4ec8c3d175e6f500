"""The monthly recap: the previous month, due from 07:00 on the 1st, sent once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from lpse_helpdesk.reports.monthly import due_monthly_period, month_key, next_monthly_run

WIB = ZoneInfo("Asia/Jakarta")
WIT = ZoneInfo("Asia/Jayapura")


def _at(day: int, hour: int, month: int = 12, zone: ZoneInfo = WIB) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=zone).astimezone(dt.UTC)


def test_due_on_the_first_from_seven() -> None:
    assert due_monthly_period(_at(1, 6), "2026-10", WIB) is None
    period = due_monthly_period(_at(1, 7), "2026-10", WIB)
    assert period is not None
    assert (period.start, period.end) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert month_key(period) == "2026-11"


def test_sent_once() -> None:
    assert due_monthly_period(_at(1, 9), "2026-11", WIB) is None
    assert due_monthly_period(_at(15, 9), "2026-11", WIB) is None


def test_catches_up_later_in_the_month() -> None:
    period = due_monthly_period(_at(3, 10), "2026-10", WIB)
    assert period is not None and month_key(period) == "2026-11"


def test_fresh_install_waits_for_the_first() -> None:
    assert due_monthly_period(_at(20, 10), None, WIB) is None
    assert due_monthly_period(_at(1, 8), None, WIB) is not None


def test_january_sends_december_in_local_time() -> None:
    # 1 January 2027, 07:30 WIT is still 31 December in UTC.
    now = dt.datetime(2027, 1, 1, 7, 30, tzinfo=WIT)
    assert now.astimezone(dt.UTC).day == 31
    period = due_monthly_period(now, "2026-11", WIT)
    assert period is not None and month_key(period) == "2026-12"
    assert period.timezone is WIT


def test_bad_last_sent() -> None:
    with pytest.raises(ValueError, match="2026-11"):
        due_monthly_period(_at(1, 8), "November", WIB)


def test_next_run() -> None:
    assert next_monthly_run(_at(1, 6), WIB) == _at(1, 7)
    assert next_monthly_run(_at(1, 7), WIB) == dt.datetime(2027, 1, 1, 7, 0, tzinfo=WIB)
    assert next_monthly_run(_at(20, 7, month=12), WIB) == dt.datetime(2027, 1, 1, 7, 0, tzinfo=WIB)
