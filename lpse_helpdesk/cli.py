"""The `lpse-helpdesk` command.

Start-up time counts (a cron job's `rekap`, a restart of `run`): this module and the ones
registering subcommands import only the standard library; each command imports what it
uses when it runs, with the garbage collector paused meanwhile (ops/startup.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lpse_helpdesk.bridge.intake_cli import add_intake_commands
from lpse_helpdesk.ops import startup
from lpse_helpdesk.ops.commands import add_ops_commands
from lpse_helpdesk.reports.cli import add_rekap_command

if TYPE_CHECKING:
    from lpse_helpdesk.bridge.parse_worker import ParseWorker
    from lpse_helpdesk.config.check import ConfigReport
    from lpse_helpdesk.config.settings import Settings
    from lpse_helpdesk.domain.model import DomainConfig

EXIT_CONFIG = 2

DESCRIPTION = """\
Helpdesk e-mail LPSE yang dijalankan dari grup Telegram, mengikuti SOP Penanganan
Permasalahan Pengguna SPSE melalui E-mail. Settings come from the environment and .env."""


def _report_problems(report: ConfigReport) -> int:
    print("Konfigurasi belum benar / configuration problems:", file=sys.stderr)
    for line in report.problems:
        print(f"  {line}", file=sys.stderr)
    return EXIT_CONFIG


def _load(env_file: Path) -> ConfigReport:
    from lpse_helpdesk.config.check import check_config

    return check_config(env_file if env_file.exists() else None)


def cmd_check_config(args: argparse.Namespace) -> int:
    report = _load(args.env_file)
    if not report.ok:
        return _report_problems(report)
    assert report.settings is not None and report.domain is not None
    from lpse_helpdesk.config.check import summary

    print("Konfigurasi OK")
    for line in summary(report.settings, report.domain):
        print(f"  {line}")
    return 0


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Library loggers that would print URLs with the bot token at INFO/DEBUG.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    report = _load(args.env_file)
    if not report.ok:
        return _report_problems(report)
    assert report.settings is not None and report.domain is not None
    _setup_logging(report.settings.LOG_LEVEL)

    # Its start-up (a new interpreter importing the parser) runs beside our imports.
    worker = _early_parse_worker(report.settings, report.domain)
    from lpse_helpdesk.ops.single import AnotherInstance

    try:
        import asyncio

        from lpse_helpdesk.app import build_services, serve

        services = build_services(report.settings, report.domain, parse_worker=worker)
        asyncio.run(serve(services, running=startup.started))
    except AnotherInstance as refused:
        print(refused, file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:  # a second Ctrl+C while stopping
        return 130
    finally:
        if worker is not None:
            worker.close()  # nothing left to do when the mail intake took it over and stopped
    return 0


def _early_parse_worker(settings: Settings, domain: DomainConfig) -> ParseWorker | None:
    """The mail intake's parsing process, started now; on SQLite only, where this instance
    holds the IMAP role (on PostgreSQL another instance may hold it)."""
    if not settings.DATABASE_URL.startswith("sqlite"):  # (not importing SQLAlchemy yet)
        return None
    from lpse_helpdesk.bridge.parse_worker import ParseWorker

    # As MailIntakeService makes it (app._mail_intake takes it over only if they agree).
    worker = ParseWorker(
        settings.MAIL_MAX_BYTES,
        frozenset({settings.HELPDESK_EMAIL.lower()}),
        domain,
        budget=settings.MAIL_PARSE_SECONDS,
    )
    worker.start()
    return worker


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    report = _load(args.env_file)
    if report.settings is None:
        return _report_problems(report)
    from lpse_helpdesk.storage.db import current_revision, make_engine, upgrade

    engine = make_engine(report.settings.DATABASE_URL)
    try:
        upgrade(engine)
        print(f"Database up to date (revision {current_revision(engine)})")
    finally:
        engine.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpse-helpdesk", description=DESCRIPTION)
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        help="settings file read before the environment (default: .env)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="check the settings, upgrade the database and run the service"
    )
    # quick_start: the handler calls startup.started() once it has imported what it needs.
    run.set_defaults(handler=cmd_run, quick_start=True)
    check = commands.add_parser(
        "check-config", help="check the settings: exit 0 with a summary, or 2 with the problems"
    )
    check.set_defaults(handler=cmd_check_config, quick_start=True)
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_upgrade = db_commands.add_parser("upgrade", help="apply the database migrations")
    db_upgrade.set_defaults(handler=cmd_db_upgrade)
    add_rekap_command(commands)
    add_ops_commands(commands)
    add_intake_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    startup.begin()
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "quick_start", False):
            startup.started()  # a command that does not say when its start-up ends
        return int(args.handler(args))
    finally:
        startup.started()


if __name__ == "__main__":
    sys.exit(main())
