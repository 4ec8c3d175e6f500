"""The clock is injected everywhere; domain code never calls datetime.now()."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock for tests: stands still until moved."""

    def __init__(self, at: dt.datetime) -> None:
        self._at = as_utc(at)

    def now(self) -> dt.datetime:
        return self._at

    def set(self, at: dt.datetime) -> None:
        self._at = as_utc(at)

    def advance(self, **delta: float) -> dt.datetime:
        self._at += dt.timedelta(**delta)
        return self._at


def as_utc(value: dt.datetime) -> dt.datetime:
    """An aware datetime in UTC; a naive one is taken as UTC (as SQLite returns it)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
