"""The recap as a PDF to print and sign: A4 landscape, the SOP's table, a signature block.

The table cuts long problems and solutions at PDF_TEXT_LIMIT characters. A PDF of more than
PDF_MAX_TICKETS tickets (hundreds of pages) is refused with an Indonesian message; Excel
and CSV have no such limit. The font is Bitstream Vera, shipped inside reportlab, so that
names with letters beyond Latin-1 print.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from lpse_helpdesk.reports.data import TicketRow
from lpse_helpdesk.reports.export import RecapRefused
from lpse_helpdesk.reports.formatting import long_date
from lpse_helpdesk.reports.lines import (
    RECAP_COLUMNS,
    TITLE,
    RecapContext,
    made_line,
    period_line,
    recap_line,
)
from lpse_helpdesk.reports.safety import safe_cell

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

PDF_MAX_TICKETS = 1000  # about 140 pages, 4 s; 3,000 took 12 s and 230 MB
PDF_TEXT_LIMIT = 300
FONT, FONT_BOLD = "RekapVera", "RekapVera-Bold"
# Points; they add up to the width of A4 landscape less the margins.
_WIDTHS = (24, 80, 100, 185, 150, 60, 60, 114)
_MARGIN = 34.0  # 12 mm


class TooManyTickets(RecapRefused):
    """The period holds more tickets than a printable PDF should; `message` is Indonesian."""

    def __init__(self, count: int, *, at_least: bool = False) -> None:
        self.count = count
        how_many = f"lebih dari {count - 1}" if at_least else str(count)
        self.message = (
            f"Periode ini berisi {how_many} tiket, terlalu banyak untuk PDF "
            f"(paling banyak {PDF_MAX_TICKETS}). Gunakan Excel atau CSV, atau persempit periode."
        )
        super().__init__(self.message)


def _register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT, "Vera.ttf"))
        pdfmetrics.registerFont(TTFont(FONT_BOLD, "VeraBd.ttf"))
        pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD)


def _markup(text: str) -> str:
    """Plain text as reportlab paragraph markup."""
    return escape(text).replace("\n", "<br/>")


def _canvas_class(footer: str) -> type[Canvas]:
    """A canvas that writes "Halaman N dari M" once the number of pages is known."""
    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                width = float(self._pagesize[0])  # type: ignore[attr-defined]
                self.setFont(FONT, 7)
                self.drawString(_MARGIN, 20, footer)
                page = self.getPageNumber()
                self.drawRightString(width - _MARGIN, 20, f"Halaman {page} dari {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


_BLANK_NAME = "(..............................................)"


def signature_rows(context: RecapContext) -> list[list[str]]:
    """ "Mengetahui, <jabatan>" on the left; "<kota>, <tanggal>" and "Dibuat oleh" on the
    right, as Indonesian offices lay out a report to sign."""
    signers = context.signers
    day = long_date(context.generated_at.astimezone(context.timezone))
    place = safe_cell(signers.city, collapse=True)
    head_title = safe_cell(signers.head_title, collapse=True) or "Kepala LPSE"
    head_name = safe_cell(signers.head_name, collapse=True)
    return [
        ["Mengetahui,", f"{place}, {day}" if place else day],
        [head_title, "Dibuat oleh,"],
        ["", "Petugas Helpdesk"],
        ["", ""],
        [head_name or _BLANK_NAME, _BLANK_NAME],
        ["NIP.", "NIP."],
    ]


def write_pdf(tickets: Iterable[TicketRow], context: RecapContext, target: IO[bytes]) -> int:
    """Write the PDF to `target`; return the number of tickets in it."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import (
        KeepTogether,
        LongTable,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    _register_fonts()
    title_style = ParagraphStyle("title", fontName=FONT_BOLD, fontSize=13, leading=16)
    info_style = ParagraphStyle("info", fontName=FONT, fontSize=9, leading=12)
    cell_style = ParagraphStyle("cell", fontName=FONT, fontSize=7, leading=8.6)
    head_style = ParagraphStyle("head", parent=cell_style, fontName=FONT_BOLD, alignment=1)
    lpse = safe_cell(context.lpse_name, collapse=True)

    def cell(text: str) -> Paragraph:
        return Paragraph(_markup(text), cell_style)

    rows: list[list[Any]] = [[Paragraph(_markup(name), head_style) for name in RECAP_COLUMNS]]
    count = 0
    for count, ticket in enumerate(tickets, start=1):
        if count > PDF_MAX_TICKETS:  # export.write_report counts first and says how many
            raise TooManyTickets(count, at_least=True)
        line = recap_line(count, ticket, context, text_limit=PDF_TEXT_LIMIT)
        rows.append(
            [
                cell(str(line.no)),
                cell(line.name),
                cell(line.email),
                cell(line.problem),
                cell(line.solution),
                cell(context.when(line.received_at)),
                cell(context.when(line.finished_at)),
                cell(line.remarks),
            ]
        )
    if count == 0:
        rows.append([cell(""), cell("Tidak ada tiket pada periode ini."), *[cell("")] * 6])

    table = LongTable(rows, colWidths=_WIDTHS, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDEBF7")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    signature = Table(
        signature_rows(context),
        colWidths=(360, 360),
        rowHeights=(14, 14, 14, 50, 14, 14),
        hAlign="CENTER",
    )
    signature.setStyle(
        TableStyle([("FONT", (0, 0), (-1, -1), FONT, 9), ("ALIGN", (0, 0), (-1, -1), "CENTER")])
    )

    document = SimpleDocTemplate(
        target,
        pagesize=landscape(A4),
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 10,
        title=TITLE,
        author=lpse,
        creator="lpse-helpdesk",
    )
    story = [
        Paragraph(_markup(TITLE), title_style),
        Paragraph(_markup(lpse), info_style),
        Paragraph(_markup(period_line(context)), info_style),
        Paragraph(_markup(made_line(context)), info_style),
        Spacer(0, 8),
        table,
        Spacer(0, 18),
        KeepTogether([signature]),
    ]
    footer = f"{TITLE} · {lpse} · {context.period.label}"
    document.build(story, canvasmaker=_canvas_class(footer))
    return count
