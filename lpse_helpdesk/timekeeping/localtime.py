"""Local time as Indonesians read it: "Senin, 4 Mei 2026 pukul 09.15 WIB", "28/11/2026 14.05"."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
_ZONES = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Jayapura": "WIT",
}


def zone_label(timezone: ZoneInfo, at: dt.datetime | None = None) -> str:
    """WIB, WITA or WIT; other zones by their own abbreviation, or UTC+hh:mm without one."""
    if timezone.key in _ZONES:
        return _ZONES[timezone.key]
    moment = (at or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).astimezone(timezone)
    name = moment.tzname() or ""
    if not name or name[0] in "+-":  # zones without an abbreviation, e.g. "+07"
        offset = moment.strftime("%z")
        return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    return name


def long_datetime(moment: dt.datetime, timezone: ZoneInfo) -> str:
    """'Senin, 4 Mei 2026 pukul 09.15 WIB'."""
    local = moment.astimezone(timezone)
    return (
        f"{DAYS[local.weekday()]}, {local.day} {MONTHS[local.month - 1]} {local.year} "
        f"pukul {local:%H.%M} {zone_label(timezone)}"
    )


def long_date(day: dt.date) -> str:
    """'4 Mei 2026'."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def short_datetime(moment: dt.datetime, timezone: ZoneInfo, *, zone: bool = True) -> str:
    """'28/11/2026 14.05 WIB'."""
    local = moment.astimezone(timezone)
    text = f"{local:%d/%m/%Y %H.%M}"
    return f"{text} {zone_label(timezone, moment)}" if zone else text


def clock_time(moment: dt.datetime, timezone: ZoneInfo) -> str:
    """'14.05 WIB'."""
    return f"{moment.astimezone(timezone):%H.%M} {zone_label(timezone)}"
