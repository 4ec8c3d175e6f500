"""Dates, durations and numbers written the Indonesian way ("28/11/2026 14.05 WIB")."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from lpse_helpdesk.timekeeping.localtime import MONTHS, long_date, short_datetime, zone_label

__all__ = [
    "MONTHS",
    "format_count",
    "format_date",
    "format_datetime",
    "format_minutes",
    "format_percent",
    "long_date",
    "zone_abbreviation",
]


def zone_abbreviation(timezone: ZoneInfo, at: dt.datetime | None = None) -> str:
    """WIB, WITA or WIT for the Indonesian zones; the zone's own abbreviation elsewhere."""
    return zone_label(timezone, at)


def format_datetime(value: dt.datetime | None, timezone: ZoneInfo) -> str:
    """ "28/11/2026 14.05 WIB" in the helpdesk's zone; "" for None."""
    return "" if value is None else short_datetime(value, timezone)


def format_date(value: dt.date) -> str:
    return f"{value:%d/%m/%Y}"


def format_minutes(minutes: float) -> str:
    """ "4 menit", "3 jam 20 menit": hours, never days, since a working day is not 24 hours."""
    total = round(minutes)
    if total < 60:
        return f"{total} menit"
    hours, rest = divmod(total, 60)
    return f"{hours} jam {rest} menit" if rest else f"{hours} jam"


def format_count(value: int) -> str:
    """ "12.345": the Indonesian thousands separator."""
    return f"{value:,}".replace(",", ".")


def format_percent(part: int, whole: int) -> str:
    """ "95,8%" with the Indonesian decimal comma; "100%" without a decimal."""
    value = round(100 * part / whole, 1) if whole else 0.0
    text = f"{value:.0f}" if value == int(value) else f"{value:.1f}".replace(".", ",")
    return f"{text}%"
