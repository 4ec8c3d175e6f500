"""The short recap for Telegram: counts, SLA compliance per step, medians, top categories."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.reports.summary import (
    RecapSummary,
    compute_summary,
    summary_html,
    summary_text,
)
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.tickets import Workflow
from tests.reports_support import LPSE, act, delivered, november, open_ticket, resolve, wib

NOW = wib(2026, 12, 1, 8, 0)


def _summary(db: Database, domain: DomainConfig) -> RecapSummary:
    with Session(db.engine) as session:
        return compute_summary(session, november(), domain, now=NOW)


def _month(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    """Four tickets on Tuesday 24 November 2026 (WIB), one each way through the SOP."""
    solved = open_ticket(db, workflow, clock, wib(2026, 11, 24, 9, 0))
    clock.advance(minutes=3)
    act(db, workflow, solved, Action.SET_PRIORITY, priority="tinggi")
    clock.advance(minutes=57)
    resolve(db, workflow, clock, solved)  # one hour after receipt

    slow = open_ticket(db, workflow, clock, wib(2026, 11, 24, 11, 0), category="AKUN_LUPA_PASSWORD")
    clock.advance(minutes=9)  # step 2 missed
    act(db, workflow, slow, Action.SET_PRIORITY, priority="rendah")
    clock.advance(minutes=171)
    resolve(db, workflow, clock, slow)  # three hours after receipt

    escalated = open_ticket(db, workflow, clock, wib(2026, 11, 24, 14, 0))
    clock.advance(minutes=5)
    act(db, workflow, escalated, Action.SET_PRIORITY, priority="tinggi")
    act(db, workflow, escalated, Action.ESCALATE, text="Galat server pusat.")
    delivered(db, workflow, clock, escalated, SopStep.ESCALATE_AND_NOTIFY)

    waiting = open_ticket(db, workflow, clock, wib(2026, 11, 24, 15, 0), category=None)
    clock.advance(minutes=1)
    act(db, workflow, waiting, Action.CLOSE)  # closed before it had a priority
    open_ticket(db, workflow, clock, wib(2026, 11, 25, 9, 0))  # still new at NOW


def test_counts_compliance_medians_and_categories(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    _month(db, workflow, clock)
    summary = _summary(db, domain)
    assert (summary.received, summary.resolved, summary.escalated) == (5, 2, 1)
    assert (summary.still_open, summary.closed_unresolved) == (2, 1)

    steps = {item.step: item for item in summary.steps}
    priority = steps[SopStep.SET_PRIORITY]
    # Met: 3 and 5 minutes, and the ticket closed after 1 minute; missed: 9 minutes;
    # the ticket still new on 1 December is past its 5 minutes and still running.
    assert (priority.met, priority.missed, priority.overdue) == (3, 1, 1)
    assert steps[SopStep.REPLY_AFTER_SOLVED].met == 2
    assert steps[SopStep.ESCALATE_AND_NOTIFY].met == 1
    assert steps[SopStep.REQUEST_DATA].judged == 0
    assert list(steps) == list(SopStep)

    assert summary.median_priority_minutes == 5  # 3, 5, 9 (the closed one had no priority)
    assert summary.median_resolution_minutes == 120  # 60 and 180 business minutes
    assert summary.top_categories == (
        ("TENDER_UNGGAH_PENAWARAN", 2),  # the new ticket has no confirmed category yet
        ("AKUN_LUPA_PASSWORD", 1),
    )
    days = dict(summary.per_day)
    assert len(days) == 30 and sum(days.values()) == 5
    assert days[wib(2026, 11, 24).date()] == 4


def test_text_is_indonesian_and_html_is_escaped(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    _month(db, workflow, clock)
    summary = _summary(db, domain)
    text = summary_text(summary, domain, LPSE)
    assert text.splitlines()[:3] == [
        f"Rekap Helpdesk {LPSE}",
        "Periode: November 2026",
        "",
    ]
    for line in (
        "Diterima: 5",
        "Selesai: 2",
        "Dieskalasi ke LKPP: 1",
        "Masih terbuka: 2",
        "Ditutup tanpa solusi: 1",
        "• Penetapan prioritas: 75% (3 dari 4 tepat waktu); 1 masih terbuka dan melewati batas",
        "• Permintaan data & telepon: belum ada data",
        "Nilai tengah (median) waktu sampai prioritas: 5 menit (dihitung dalam jam kerja)",
        "Nilai tengah (median) waktu sampai selesai: 2 jam (dihitung dalam jam kerja)",
        "1. Gagal unggah dokumen penawaran: 2",
        "2. Lupa password / reset akun: 1",
    ):
        assert line in text.splitlines(), line
    assert "\0" not in text

    html = summary_html(summary, domain, "LPSE <Kota> & Kabupaten")
    assert html.startswith("<b>Rekap Helpdesk LPSE &lt;Kota&gt; &amp; Kabupaten</b>\n")
    assert "<b>Mutu Baku Waktu per langkah SOP:</b>" in html
    assert "Permintaan data &amp; telepon" in html


def test_empty_period(db: Database, domain: DomainConfig) -> None:
    summary = _summary(db, domain)
    assert summary.received == 0 and summary.median_resolution_minutes is None
    assert summary_text(summary, domain, LPSE).endswith(
        "Tidak ada tiket yang diterima pada periode ini."
    )
