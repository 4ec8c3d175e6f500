"""One entry point for every format: the bot, the monthly job and the CLI call `write_report`."""

from __future__ import annotations

from pathlib import PurePath
from typing import IO, TYPE_CHECKING

from lpse_helpdesk.reports.data import count_tickets, iter_tickets
from lpse_helpdesk.reports.lines import RecapContext
from lpse_helpdesk.reports.period import Period, ReportFormat

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

_EXTENSIONS = {
    ".xlsx": ReportFormat.XLSX,
    ".csv": ReportFormat.CSV,
    ".pdf": ReportFormat.PDF,
    ".png": ReportFormat.CHART,
}
MEDIA_TYPES = {
    ReportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.PDF: "application/pdf",
    ReportFormat.CHART: "image/png",
}


class RecapRefused(Exception):
    """A recap that is not written (e.g. pdf.TooManyTickets); `message` is Indonesian."""

    message: str


class UnknownFormat(ValueError):
    def __init__(self, name: str) -> None:
        self.message = f"Format berkas '{name}' tidak dikenal; gunakan .xlsx, .csv, .pdf atau .png."
        super().__init__(self.message)


def format_for_path(path: str | PurePath) -> ReportFormat:
    """The format named by a file's extension."""
    suffix = PurePath(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UnknownFormat(PurePath(path).name)
    return _EXTENSIONS[suffix]


def report_filename(fmt: ReportFormat, period: Period, prefix: str = "rekap-helpdesk") -> str:
    """E.g. "rekap-helpdesk-2026-11.xlsx"."""
    return f"{prefix}-{period.slug}.{fmt.value}"


def write_report(
    db: Connection | Session, fmt: ReportFormat, context: RecapContext, target: IO[bytes]
) -> int:
    """Write the recap of `context.period` in `fmt` to `target`; return the ticket count.

    `db`: a Session (the bot, the monthly job: read in its transaction) or a plain
    Connection (the CLI, which so never imports the ORM).

    Raises pdf.TooManyTickets (with an Indonesian message) for a PDF that would be too long.
    """
    period = context.period
    if fmt is ReportFormat.XLSX:
        from lpse_helpdesk.reports.xlsx import write_xlsx

        return write_xlsx(iter_tickets(db, period), context, target)
    if fmt is ReportFormat.CSV:
        from lpse_helpdesk.reports.csv_export import write_csv

        return write_csv(iter_tickets(db, period), context, target)
    if fmt is ReportFormat.PDF:
        from lpse_helpdesk.reports.pdf import PDF_MAX_TICKETS, TooManyTickets, write_pdf

        count = count_tickets(db, period)
        if count > PDF_MAX_TICKETS:
            raise TooManyTickets(count)
        return write_pdf(iter_tickets(db, period), context, target)
    from lpse_helpdesk.reports.chart import render_chart
    from lpse_helpdesk.reports.summary import compute_summary

    summary = compute_summary(db, period, context.domain, now=context.generated_at)
    target.write(render_chart(summary, context.lpse_name))
    return summary.received
