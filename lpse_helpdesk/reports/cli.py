"""`lpse-helpdesk rekap`: write the recap of a period to a file, for operators and cron.

    lpse-helpdesk rekap --from 2026-11-01 --to 2026-11-30 --output rekap-2026-11.xlsx

The format follows the extension (.xlsx, .csv, .pdf, .png); `--output -` writes CSV to
standard output, without the byte-order mark that files get. Exit status: 0 written,
1 could not be written, 2 bad settings, dates or file name.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lpse_helpdesk.ops import startup

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from lpse_helpdesk.reports.lines import RecapContext
    from lpse_helpdesk.reports.period import ReportFormat

EXIT_FAILED = 1
EXIT_USAGE = 2


def add_rekap_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the `rekap` subcommand; its handler is `cmd_rekap`."""
    parser = subparsers.add_parser(
        "rekap",
        help="write the SOP recap of a period (.xlsx, .csv, .pdf or .png)",
        description=(
            "Rekap Penanganan Permasalahan Melalui E-mail. Without --from/--to: this month. "
            "The format follows the extension of --output; '-' writes CSV to stdout. "
            "Reads and checks only the settings a recap uses."
        ),
    )
    parser.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day")
    parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (included)")
    parser.add_argument(
        "--output", "-o", required=True, metavar="FILE", help="file to write, or - for stdout"
    )
    parser.add_argument(
        "--mask-email",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mask e-mail addresses (default: the REKAP_MASK_EMAIL setting)",
    )
    parser.set_defaults(handler=cmd_rekap, quick_start=True)
    return parser


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(message, file=sys.stderr)
    return code


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A file that replaces `path` only when written completely."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _context(args: argparse.Namespace) -> tuple[RecapContext, str] | int:
    """The recap asked for and its database URL, or the exit status after saying why not."""
    # Only the settings a recap uses, read without pydantic (config/recap.py).
    from lpse_helpdesk.config.recap import load_recap_config
    from lpse_helpdesk.reports.lines import RecapContext, Signers
    from lpse_helpdesk.reports.period import PeriodError, parse_cli_period
    from lpse_helpdesk.timekeeping.clock import SystemClock

    env_file: Path = getattr(args, "env_file", Path(".env"))
    report = load_recap_config(env_file if env_file.exists() else None)
    if not report.ok or report.settings is None or report.domain is None:
        print("Konfigurasi belum benar / configuration problems:", file=sys.stderr)
        for line in report.problems:
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE
    settings = report.settings
    now = SystemClock().now()
    try:
        period = parse_cli_period(args.date_from, args.date_to, now=now, timezone=settings.timezone)
    except PeriodError as error:
        return _fail(f"Tanggal tidak valid / invalid dates: {error.message}")
    mask = settings.REKAP_MASK_EMAIL if args.mask_email is None else args.mask_email
    context = RecapContext(
        period,
        report.domain,
        settings.LPSE_NAME,
        now,
        mask_email=bool(mask),
        signers=Signers(settings.REKAP_CITY, settings.REKAP_HEAD_TITLE, settings.REKAP_HEAD_NAME),
    )
    return context, settings.DATABASE_URL


def _write(connection: Connection, fmt: ReportFormat, context: RecapContext, output: str) -> int:
    from lpse_helpdesk.reports.csv_export import write_csv
    from lpse_helpdesk.reports.data import iter_tickets
    from lpse_helpdesk.reports.export import write_report

    if output == "-":
        tickets = iter_tickets(connection, context.period)
        count = write_csv(tickets, context, sys.stdout.buffer, bom=False)
        sys.stdout.flush()
        return count
    with _atomic_file(Path(output)) as out:
        return write_report(connection, fmt, context, out)


def cmd_rekap(args: argparse.Namespace) -> int:
    """Write the recap; the file is readable by its owner only, as it holds personal data."""
    # What every format needs; each format's own module (and library) comes with it. The
    # recap reads with SQLAlchemy Core on a plain connection: the ORM is never imported.
    from lpse_helpdesk.reports.export import RecapRefused, UnknownFormat, format_for_path
    from lpse_helpdesk.reports.period import ReportFormat
    from lpse_helpdesk.storage.db import make_engine, upgrade

    try:
        fmt = ReportFormat.CSV if args.output == "-" else format_for_path(args.output)
    except UnknownFormat as error:
        return _fail(f"Berkas tidak dikenal / unknown file type: {error.message}")
    loaded = _context(args)
    if isinstance(loaded, int):
        return loaded
    context, database_url = loaded
    engine = make_engine(database_url)
    startup.started()
    try:
        upgrade(engine)
        with engine.connect() as connection:
            count = _write(connection, fmt, context, args.output)
    except RecapRefused as error:
        return _fail(error.message, EXIT_FAILED)
    except OSError as error:
        return _fail(f"Gagal menulis / cannot write {args.output}: {error.strerror}", EXIT_FAILED)
    finally:
        engine.dispose()
    where = "stdout" if args.output == "-" else args.output
    print(f"Rekap {context.period.label}: {count} tiket -> {where}", file=sys.stderr)
    return 0
