"""What staff read: reminders, breach alerts, the summary and the card's deadline badge."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from lpse_helpdesk.sla.texts import (
    SummaryLine,
    breach_text,
    deadline_badge,
    reminder_text,
    span,
    summary_text,
    urgency,
)
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import as_utc
from tests.conftest import WIB
from tests.sla_support import wib

EVIL = "<script>alert(1)</script> & co"
PAYLOAD = {
    "notice": "sla_breach",
    "step": "set_priority",
    "deadline": "2026-11-24T07:05:00+00:00",  # 14.05 WIB
    "last_actor": "Budi <b>& Sari</b>",
}


def test_reminder_text() -> None:
    text = reminder_text({**PAYLOAD, "notice": "sla_reminder"}, "LPSE-2026-00001", "Gagal", WIB)
    assert text.splitlines() == [
        "🔔 <b>Pengingat batas waktu</b>",
        "<b>LPSE-2026-00001</b> · Gagal",
        "Langkah: Penetapan prioritas",
        "Batas waktu: Sel 24 Nov 14.05 WIB",
        "Mohon segera ditindaklanjuti agar tidak melewati batas waktu SOP.",
    ]


def test_breach_text_names_the_last_actor() -> None:
    text = breach_text({**PAYLOAD, "last_actor": "Budi"}, "LPSE-2026-00001", "Gagal", WIB)
    assert text.startswith("⚠️ <b>Batas waktu terlewati</b>\n")
    assert "Terakhir ditangani: Budi" in text
    nobody = breach_text({**PAYLOAD, "last_actor": None}, "LPSE-2026-00001", "Gagal", WIB)
    assert "Belum ada petugas yang menangani tiket ini." in nobody


@pytest.mark.parametrize("render", [reminder_text, breach_text])
def test_notices_escape_what_comes_from_the_database(render: object) -> None:
    text = render(PAYLOAD, "LPSE<&>", EVIL, WIB)  # type: ignore[operator]
    assert "<script>" not in text and "<b>&" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in text
    assert "LPSE&lt;&amp;&gt;" in text


def test_breach_text_escapes_the_actor() -> None:
    text = breach_text(PAYLOAD, "LPSE-2026-00001", "Gagal", WIB)
    assert "Terakhir ditangani: Budi &lt;b&gt;&amp; Sari&lt;/b&gt;" in text


def test_local_time_zones_and_long_subjects() -> None:
    wita = reminder_text(PAYLOAD, "T-1", "x" * 200, ZoneInfo("Asia/Makassar"))
    assert "Batas waktu: Sel 24 Nov 15.05 WITA" in wita
    assert "x" * 79 + "…" in wita and "x" * 80 not in wita
    wit = breach_text(PAYLOAD, "T-1", "", ZoneInfo("Asia/Jayapura"))
    assert "16.05 WIT" in wit and "(tanpa subjek)" in wit


def test_summary_escapes_and_counts_what_it_does_not_list() -> None:
    lines = {
        i: SummaryLine(f"LPSE-2026-{i:05d}", EVIL, "Analisis", as_utc(wib(2026, 11, 24, 9, 0)))
        for i in range(1, 21)
    }
    payload = {
        "alert": "sla_summary",
        "date": "2026-11-24",
        "overdue": list(range(1, 21)),
        "due_today": [],
        "open": 25,
    }
    text = summary_text(payload, lines, WIB)
    assert "<script>" not in text and "&lt;script&gt;" in text and "&amp; co" in text
    assert "⚠️ <b>Terlambat</b> (20)" in text
    assert text.count("• ") == 15 and "… dan 5 tiket lainnya" in text
    assert "Jatuh tempo" not in text
    assert "— Analisis, batas 09.00 WIB" in text  # today's deadlines show only the time


def test_summary_without_open_tickets() -> None:
    payload = {"alert": "sla_summary", "date": "2026-11-24", "overdue": [], "due_today": []}
    text = summary_text(payload, {}, WIB)
    assert "✅ Tidak ada tiket yang terlambat atau jatuh tempo hari ini." in text
    assert "Tiket terbuka" not in text


@pytest.mark.parametrize(
    ("now", "badge"),
    [
        (wib(2026, 11, 24, 13, 53), "⏰ 14.05 WIB (12 menit lagi)"),
        (wib(2026, 11, 24, 11, 0), "⏰ 14.05 WIB (3 jam 5 menit lagi)"),
        (wib(2026, 11, 24, 14, 4, 30), "⏰ 14.05 WIB (kurang dari 1 menit lagi)"),
        (wib(2026, 11, 21, 10, 0), "⏰ Sel 24 Nov 14.05 WIB (3 hari lagi)"),
        (wib(2026, 11, 24, 14, 5), "⚠️ lewat kurang dari 1 menit (batas 14.05 WIB)"),
        (wib(2026, 11, 24, 14, 10), "⚠️ lewat 5 menit (batas 14.05 WIB)"),
        (wib(2026, 11, 25, 9, 0), "⚠️ lewat 18 jam 55 menit (batas Sel 24 Nov 14.05 WIB)"),
    ],
)
def test_deadline_badge(now: dt.datetime, badge: str) -> None:
    assert deadline_badge(as_utc(wib(2026, 11, 24, 14, 5)), as_utc(now), WIB) == badge


def test_a_soon_badge_looks_different() -> None:
    deadline, now = as_utc(wib(2026, 11, 24, 14, 5)), as_utc(wib(2026, 11, 24, 14, 4))
    assert deadline_badge(deadline, now, WIB, "soon") == "🔔 14.05 WIB (1 menit lagi)"


def test_urgency_counts_business_minutes(calendar: BusinessCalendar) -> None:
    deadline = as_utc(wib(2026, 11, 30, 7, 33))  # 5 minutes from Friday 16:28

    def level(now: dt.datetime) -> str:
        return urgency(deadline, as_utc(now), budget_minutes=5, calendar=calendar, remind_ratio=0.8)

    assert level(wib(2026, 11, 27, 16, 29)) == "ok"  # 4 business minutes left
    assert level(wib(2026, 11, 28, 12, 0)) == "ok"  # the weekend does not count
    assert level(wib(2026, 11, 30, 7, 32)) == "soon"  # 1 minute left = past 0.8
    assert level(wib(2026, 11, 30, 7, 33)) == "late"


def test_span() -> None:
    assert span(dt.timedelta(seconds=59)) == "kurang dari 1 menit"
    assert span(dt.timedelta(hours=2)) == "2 jam"
    assert span(dt.timedelta(days=1, hours=3)) == "1 hari 3 jam"
    assert span(dt.timedelta(days=4, hours=3)) == "4 hari"
