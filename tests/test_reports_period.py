"""What /rekap and `lpse-helpdesk rekap` understand as a period, in the local time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from lpse_helpdesk.reports.export import UnknownFormat, format_for_path, report_filename
from lpse_helpdesk.reports.formatting import (
    format_count,
    format_datetime,
    format_minutes,
    format_percent,
)
from lpse_helpdesk.reports.period import (
    USAGE,
    Period,
    PeriodError,
    ReportFormat,
    parse_cli_period,
    parse_rekap_args,
)

WIB = ZoneInfo("Asia/Jakarta")
WIT = ZoneInfo("Asia/Jayapura")
# Tuesday 24 November 2026, 09:00 WIB.
NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


def _period(args: str, zone: ZoneInfo = WIB, now: dt.datetime = NOW) -> Period:
    return parse_rekap_args(args, now=now, timezone=zone).period


def test_no_argument_is_this_month() -> None:
    request = parse_rekap_args([], now=NOW, timezone=WIB)
    assert request.format is ReportFormat.XLSX
    assert (request.period.start, request.period.end) == (
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 30),
    )
    assert request.period.label == "November 2026"


def test_month_range_week_and_day() -> None:
    assert _period("2026-02").end == dt.date(2026, 2, 28)
    assert _period("2028-2").end == dt.date(2028, 2, 29)
    assert _period("2026-12").end == dt.date(2026, 12, 31)
    ranged = _period("2026-11-01 2026-11-15")
    assert (ranged.start, ranged.end) == (dt.date(2026, 11, 1), dt.date(2026, 11, 15))
    assert ranged.label == "1 November 2026 – 15 November 2026"
    week = _period("minggu")
    assert (week.start, week.end) == (dt.date(2026, 11, 23), dt.date(2026, 11, 29))
    assert week.start.weekday() == 0
    today = _period("hari")
    assert today.start == today.end == dt.date(2026, 11, 24)
    assert _period("2026-11-05").start == dt.date(2026, 11, 5)
    assert _period("bulan") == _period("")


def test_last_month() -> None:
    last = _period("bulanlalu")
    assert (last.start, last.end) == (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert last.label == "Oktober 2026"
    assert _period("bulan lalu") == last
    january = _period("bulanlalu", now=dt.datetime(2027, 1, 3, 2, 0, tzinfo=dt.UTC))
    assert (january.start, january.end) == (dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    request = parse_rekap_args("pdf bulanlalu", now=NOW, timezone=WIB)
    assert request.format is ReportFormat.PDF and request.period == last


def test_today_is_the_local_day() -> None:
    # 17:30 UTC on 30 November is already 1 December in Jakarta (00:30 WIB).
    late = dt.datetime(2026, 11, 30, 17, 30, tzinfo=dt.UTC)
    assert _period("hari", now=late).start == dt.date(2026, 12, 1)
    assert _period("", now=late).label == "Desember 2026"
    # 15:00 UTC on 30 November is midnight, 1 December, in Jayapura (WIT, UTC+9).
    assert _period("hari", WIT, now=dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)).start == (
        dt.date(2026, 12, 1)
    )


def test_format_words() -> None:
    assert parse_rekap_args("pdf 2026-11", now=NOW, timezone=WIB).format is ReportFormat.PDF
    assert parse_rekap_args("CSV", now=NOW, timezone=WIB).format is ReportFormat.CSV
    assert parse_rekap_args("grafik minggu", now=NOW, timezone=WIB).format is ReportFormat.CHART
    assert parse_rekap_args("excel hari", now=NOW, timezone=WIB).format is ReportFormat.XLSX


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("2026-13", "Bulan pada '2026-13' harus 01 sampai 12."),
        ("2026-02-30", "Tanggal '2026-02-30' tidak ada di kalender."),
        ("kemarin", "'kemarin' bukan tanggal; tulis TTTT-BB-HH, mis. 2026-11-05."),
        ("2026-11-30 2026-11-01", "Tanggal akhir 01/11/2026 sebelum tanggal awal 30/11/2026."),
        ("2026-11-01 2026-11-02 2026-11-03", "Terlalu banyak argumen."),
        ("1900-01", "Tahun pada '1900-01' tidak masuk akal."),
        ("word 2026-11", "'word' bukan tanggal; tulis TTTT-BB-HH, mis. 2026-11-05."),
    ],
)
def test_bad_arguments_say_why_in_indonesian(args: str, message: str) -> None:
    with pytest.raises(PeriodError) as caught:
        parse_rekap_args(args, now=NOW, timezone=WIB)
    assert caught.value.message == message


def test_usage_is_indonesian_and_names_every_form() -> None:
    assert USAGE.startswith("Penggunaan: /rekap")
    for form in ("hari", "minggu", "2026-11", "2026-11-01 2026-11-30", "pdf", "csv", "grafik"):
        assert form in USAGE


def test_utc_range_is_half_open_at_local_midnight() -> None:
    november = _period("2026-11")
    assert november.start_utc == dt.datetime(2026, 10, 31, 17, 0, tzinfo=dt.UTC)
    assert november.end_utc == dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)
    last_evening = dt.datetime(2026, 11, 30, 23, 30, tzinfo=WIB)
    assert november.contains(last_evening)
    assert not november.contains(dt.datetime(2026, 12, 1, 0, 0, tzinfo=WIB))
    assert november.contains(dt.datetime(2026, 11, 1, 0, 0, tzinfo=WIB))
    assert not november.contains(dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=WIB))


def test_utc_range_in_jayapura() -> None:
    november = _period("2026-11", WIT)
    assert november.start_utc == dt.datetime(2026, 10, 31, 15, 0, tzinfo=dt.UTC)
    # 00:30 WIT on 1 December is still 30 November in Jakarta, but not November in Jayapura.
    moment = dt.datetime(2026, 12, 1, 0, 30, tzinfo=WIT)
    assert not november.contains(moment)
    assert _period("2026-11").contains(moment)


def test_cli_dates() -> None:
    period = parse_cli_period("2026-11-01", "2026-11-30", now=NOW, timezone=WIB)
    assert period.is_month and period.slug == "2026-11"
    assert parse_cli_period(None, None, now=NOW, timezone=WIB).label == "November 2026"
    with pytest.raises(PeriodError, match="--from dan --to"):
        parse_cli_period("2026-11-01", None, now=NOW, timezone=WIB)
    with pytest.raises(PeriodError, match="bukan tanggal"):
        parse_cli_period("01/11/2026", "2026-11-30", now=NOW, timezone=WIB)


def test_file_names_and_formats() -> None:
    assert report_filename(ReportFormat.PDF, _period("2026-11")) == "rekap-helpdesk-2026-11.pdf"
    assert report_filename(ReportFormat.CHART, _period("hari")) == "rekap-helpdesk-2026-11-24.png"
    assert _period("2026-11-01 2026-11-15").slug == "2026-11-01_2026-11-15"
    assert format_for_path("out/Rekap.XLSX") is ReportFormat.XLSX
    with pytest.raises(UnknownFormat, match=r"rekap\.ods"):
        format_for_path("rekap.ods")


def test_indonesian_formats() -> None:
    moment = dt.datetime(2026, 11, 28, 7, 5, tzinfo=dt.UTC)
    assert format_datetime(moment, WIB) == "28/11/2026 14.05 WIB"
    assert format_datetime(moment, ZoneInfo("Asia/Makassar")) == "28/11/2026 15.05 WITA"
    assert format_datetime(moment, WIT) == "28/11/2026 16.05 WIT"
    assert format_datetime(None, WIB) == ""
    assert format_minutes(4.4) == "4 menit"
    assert format_minutes(200) == "3 jam 20 menit"
    assert format_minutes(1500) == "25 jam"
    assert format_percent(23, 24) == "95,8%"
    assert format_percent(5, 5) == "100%"
    assert format_count(12345) == "12.345" and format_count(999) == "999"
