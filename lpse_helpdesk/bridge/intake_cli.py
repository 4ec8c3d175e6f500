"""The ``import`` and ``quarantine`` subcommands (registered by cli.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

__all__ = ["add_intake_commands"]

EXIT_FAILED = 1
EXIT_USAGE = 2


def add_intake_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = subparsers.add_parser(
        "import",
        help="import older mail of the mailbox as tickets (no acknowledgement, no SLA clocks)",
        description=(
            "Turn mail the first start left on the server into tickets with their real arrival "
            "dates: no acknowledgement, no SLA clocks, one summary in the group instead of a "
            "card per ticket. Running it twice on the same range changes nothing. In "
            "IMAP_FOLDER, mail the service has not read yet is left to it (it gets its "
            "acknowledgement and SLA clocks); the mail on the server is never flagged or moved."
        ),
    )
    imp.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="first day")
    imp.add_argument("--until", metavar="YYYY-MM-DD", help="last day (included; default: today)")
    imp.add_argument("--folder", help="IMAP folder (default: the IMAP_FOLDER setting)")
    imp.add_argument(
        "--dry-run", action="store_true", help="only count what would be imported; change nothing"
    )
    imp.set_defaults(handler=cmd_import)

    quarantine = subparsers.add_parser("quarantine", help="list or re-ingest quarantined mail")
    sub = quarantine.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="list the quarantined mails with their reasons")
    listing.set_defaults(handler=cmd_quarantine_list)
    retry = sub.add_parser("retry", help="ingest quarantined mail again (after a fix)")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="the id shown by 'quarantine list'")
    which.add_argument("--all", action="store_true", help="every quarantined mail")
    retry.set_defaults(handler=cmd_quarantine_retry)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(message, file=sys.stderr)
    return code


def _day(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise SystemExit(_fail(f"{name}: '{value}' is not a date (YYYY-MM-DD)")) from None


def _services(args: argparse.Namespace) -> Any:
    from lpse_helpdesk.config.check import check_config

    report = check_config(args.env_file if args.env_file.exists() else None)
    if not report.ok or report.settings is None or report.domain is None:
        print("Konfigurasi belum benar / configuration problems:", file=sys.stderr)
        for line in report.problems:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    from lpse_helpdesk.app import build_services
    from lpse_helpdesk.storage.db import upgrade

    services = build_services(report.settings, report.domain)
    upgrade(services.db.engine)
    return services


def _intake_and_worker(services: Any) -> tuple[Any, Any]:
    from lpse_helpdesk.app import intake_config
    from lpse_helpdesk.bridge.intake import Intake
    from lpse_helpdesk.bridge.parse_worker import ParseWorker

    config = intake_config(services.settings)
    intake = Intake(services.workflow, services.domain, config)
    worker = ParseWorker(
        config.max_bytes,
        config.helpdesk_addresses,
        services.domain,
        budget=services.settings.MAIL_PARSE_SECONDS,
    )
    return intake, worker


def _bar(done: int, total: int) -> None:
    if not sys.stderr.isatty() and done not in (0, total):
        return
    width = 30
    filled = width * done // total if total else width
    end = "\n" if done >= total else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    since = _day(args.since, "--since")
    until = _day(args.until, "--until")
    assert since is not None
    if until is not None and until < since:
        return _fail("--until is before --since")
    services = _services(args)
    from dataclasses import replace

    from lpse_helpdesk.app import imap_account
    from lpse_helpdesk.bridge.history_import import import_history
    from lpse_helpdesk.bridge.imap_client import ImapSession

    account = imap_account(services)
    if args.folder:
        account = replace(account, folder=args.folder)
    intake, worker = _intake_and_worker(services)
    session = ImapSession(account)
    try:
        session.connect()
        report = import_history(
            session,
            intake,
            services.db,
            worker,
            since=since,
            until=until,
            dry_run=args.dry_run,
            progress=_bar,
            live_folder=account.folder == services.settings.IMAP_FOLDER,
            backfill_days=services.settings.IMAP_BACKFILL_DAYS,
        )
    except OSError as error:
        return _fail(f"IMAP {account.host}:{account.port}: {error}", EXIT_FAILED)
    finally:
        session.close()
        worker.close()
        services.db.close()
    if args.dry_run:
        print(
            f"{report.found} e-mail di {account.folder}: {report.would_import} akan diimpor, "
            f"{report.already} sudah ada (dry run, tidak ada yang diubah)"
        )
    else:
        print(
            f"{report.found} e-mail di {account.folder}: {report.tickets} tiket baru, "
            f"{report.joined} ditambahkan ke tiketnya, {report.already} sudah ada, "
            f"{report.other} otomatis/bounce, {report.failed} gagal"
        )
    if report.left_to_service:
        print(
            f"{report.left_to_service} e-mail belum dibaca layanan dan tidak diimpor: layanan"
            " sendiri menjadikannya tiket (dengan tanda terima dan tenggat SOP)"
        )
    return EXIT_FAILED if report.failed else 0


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    services = _services(args)
    from lpse_helpdesk.bridge.quarantine import list_quarantined

    try:
        entries = list_quarantined(services.db)
    finally:
        services.db.close()
    if not entries:
        print("Tidak ada e-mail di karantina / no quarantined mail")
        return 0
    for entry in entries:
        print(
            f"{entry.id:>5}  {entry.folder} UID {entry.uid}  {entry.since:%Y-%m-%d %H:%M}Z  "
            f"{entry.sender!r}  {entry.subject!r}\n       {entry.last_error[:200]}"
        )
    return 0


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    services = _services(args)
    from lpse_helpdesk.bridge.quarantine import retry_quarantined

    intake, worker = _intake_and_worker(services)
    try:
        results = retry_quarantined(services.db, intake, worker, None if args.all else [args.id])
    finally:
        worker.close()
        services.db.close()
    if not results:
        return _fail("Tidak ditemukan di karantina / not in quarantine", EXIT_FAILED)
    for result in results:
        state = "OK" if result.ok else "GAGAL"
        print(f"{result.id:>5}  {state}  {result.detail}")
    return 0 if all(r.ok for r in results) else EXIT_FAILED
