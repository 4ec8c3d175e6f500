"""The recap as CSV: the SOP's eight columns, UTF-8 with a BOM so that Excel reads it right.

The problem and the solution are given in full (the table formats cut them); dates are
written as in the other formats ("28/11/2026 14.05 WIB"). The delimiter is a comma; Excel
set to the Indonesian region expects a semicolon, which `delimiter=";"` gives.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable
from typing import IO

from lpse_helpdesk.reports.data import TicketRow
from lpse_helpdesk.reports.lines import RECAP_COLUMNS, RecapContext, recap_line


def write_csv(
    tickets: Iterable[TicketRow],
    context: RecapContext,
    target: IO[bytes],
    *,
    bom: bool = True,
    delimiter: str = ",",
) -> int:
    """Write the CSV to `target`; return the number of tickets in it."""
    if bom:
        target.write(codecs.BOM_UTF8)
    text = io.TextIOWrapper(target, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(RECAP_COLUMNS)
        count = 0
        for count, row in enumerate(tickets, start=1):
            line = recap_line(count, row, context, text_limit=None)
            writer.writerow(
                (
                    line.no,
                    line.name,
                    line.email,
                    line.problem,
                    line.solution,
                    context.when(line.received_at),
                    context.when(line.finished_at),
                    line.remarks,
                )
            )
        text.flush()
    finally:
        text.detach()  # leave `target` open for the caller
    return count
