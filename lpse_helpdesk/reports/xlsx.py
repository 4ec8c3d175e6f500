"""The recap as an Excel workbook: sheet "Rekap" (the SOP's table) and sheet "Detail SLA"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from lpse_helpdesk.reports.data import TicketRow
from lpse_helpdesk.reports.formatting import zone_abbreviation
from lpse_helpdesk.reports.lines import (
    DETAIL_COLUMNS,
    RECAP_COLUMNS,
    TITLE,
    RecapContext,
    detail_lines,
    made_line,
    period_line,
    recap_line,
)
from lpse_helpdesk.reports.safety import safe_cell
from lpse_helpdesk.reports.xlsx_stream import SheetLayout, Style, XlsxBook, text_height

RECAP_SHEET = "Rekap"
DETAIL_SHEET = "Detail SLA"
RECAP_HEADER_ROW = 6
DETAIL_HEADER_ROW = 3
RECAP_WIDTHS = (5, 20, 26, 50, 40, 20, 20, 36)
DETAIL_WIDTHS = (17, 38, 11, 26, 20, 20, 20, 12, 12, 20)
_NAME_WIDTH, _EMAIL_WIDTH, _PROBLEM_WIDTH, _SOLUTION_WIDTH = RECAP_WIDTHS[1:5]
_REMARKS_WIDTH = RECAP_WIDTHS[7]
_RECAP_STYLES = (
    Style.INTEGER,
    Style.TEXT,
    Style.TEXT,
    Style.TEXT,
    Style.TEXT,
    Style.DATE,
    Style.DATE,
    Style.TEXT,
)
_DETAIL_STYLES = (
    Style.TEXT,
    Style.TEXT,
    Style.TEXT,
    Style.TEXT,
    Style.DATE,
    Style.DATE,
    Style.DATE,
    Style.DECIMAL,
    Style.DECIMAL,
    Style.TEXT,
)


def write_xlsx(tickets: Iterable[TicketRow], context: RecapContext, target: IO[bytes]) -> int:
    """Write the workbook to `target`; return the number of tickets in it."""
    zone = context.timezone
    date_format = f'dd/mm/yyyy hh.mm "{zone_abbreviation(zone, context.generated_at)}"'
    lpse = safe_cell(context.lpse_name, collapse=True)
    with XlsxBook(date_format=date_format, date_zone=zone, title=TITLE, creator=lpse) as book:
        recap = book.add_sheet(
            SheetLayout(
                RECAP_SHEET,
                RECAP_WIDTHS,
                header_row=RECAP_HEADER_ROW,
                merges=tuple(f"A{row}:H{row}" for row in range(1, 5)),
            )
        )
        detail = book.add_sheet(
            SheetLayout(
                DETAIL_SHEET, DETAIL_WIDTHS, header_row=DETAIL_HEADER_ROW, merges=("A1:J1",)
            )
        )
        recap.append([TITLE], [Style.TITLE])
        for text in (lpse, period_line(context), made_line(context)):
            recap.append([text], [Style.DEFAULT])
        recap.append([], [])
        recap.append(RECAP_COLUMNS, [Style.HEADER] * len(RECAP_COLUMNS))
        detail.append([f"Detail SLA · {lpse}"], [Style.TITLE])
        detail.append([f"{period_line(context)} · {made_line(context)}"], [Style.DEFAULT])
        detail.append(DETAIL_COLUMNS, [Style.HEADER] * len(DETAIL_COLUMNS))

        count = 0
        for count, row in enumerate(tickets, start=1):
            line = recap_line(count, row, context)
            height = text_height(
                (
                    (line.name, _NAME_WIDTH),
                    (line.email, _EMAIL_WIDTH),
                    (line.problem, _PROBLEM_WIDTH),
                    (line.solution, _SOLUTION_WIDTH),
                    (line.remarks, _REMARKS_WIDTH),
                )
            )
            recap.append(line, _RECAP_STYLES, height=height)
            for item in detail_lines(row, context):
                detail.append(item, _DETAIL_STYLES)
        book.save(target, created=context.generated_at)
    return count
