"""The operator's subcommands: status, backup, restore, data export / erase."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lpse_helpdesk.ops import startup

if TYPE_CHECKING:
    from lpse_helpdesk.config.settings import Settings

EXIT_CONFIG = 2


def _settings(args: argparse.Namespace) -> Settings | None:
    from lpse_helpdesk.config.check import check_config

    env_file: Path = args.env_file
    report = check_config(env_file if env_file.exists() else None)
    if report.settings is None:
        print("Konfigurasi belum benar / configuration problems:", file=sys.stderr)
        for line in report.problems:
            print(f"  {line}", file=sys.stderr)
        return None
    return report.settings


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    from lpse_helpdesk.config.check import redact_url
    from lpse_helpdesk.ops.status import collect, render
    from lpse_helpdesk.storage.db import Database
    from lpse_helpdesk.timekeeping.clock import SystemClock

    db = Database.from_url(settings.DATABASE_URL, existing=True)  # look, never create
    startup.started()  # (monitoring runs `status` every minute: its start-up counts)
    try:
        status = collect(
            db,
            SystemClock().now(),
            folders=[settings.IMAP_FOLDER],
            group_id=settings.HELPDESK_CHAT_ID,
            database_label=redact_url(settings.DATABASE_URL),
        )
    finally:
        db.close()
    print(status.as_json() if args.json else "\n".join(render(status)))
    return int(status.level)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    from lpse_helpdesk.ops.backup import BackupError, backup

    try:
        backup(settings.DATABASE_URL, args.file)
    except BackupError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Cadangan tersimpan di {args.file} ({args.file.stat().st_size} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    from lpse_helpdesk.ops.backup import BackupError, restore

    try:
        restore(settings.DATABASE_URL, args.file, force=args.force)
    except BackupError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Dipulihkan dari {args.file}; jalankan `lpse-helpdesk db upgrade` bila versinya lama")
    return 0


def _with_db(settings: Settings, work: Any) -> Any:
    from sqlalchemy.exc import OperationalError

    from lpse_helpdesk.config.check import redact_url
    from lpse_helpdesk.storage.db import Database

    db = Database.from_url(settings.DATABASE_URL, existing=True)
    try:
        return db.run_sync(work)
    except OperationalError as error:  # missing file, server down: one line, no traceback
        reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        print(
            f"Basis data {redact_url(settings.DATABASE_URL)} tidak dapat dibuka: {reason}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    finally:
        db.close()


def cmd_data_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    from lpse_helpdesk.ops.privacy import export_person

    content: bytes = _with_db(settings, lambda s: export_person(s, args.email))
    output: Path = args.output or Path(f"data-{args.email.strip().lower()}.zip")
    output.write_bytes(content)
    print(f"Data tentang {args.email} tersimpan di {output}")
    return 0


def cmd_data_erase(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    from lpse_helpdesk.ops.privacy import erase_person
    from lpse_helpdesk.timekeeping.clock import SystemClock

    now = SystemClock().now()
    actor = args.actor or getpass.getuser()
    erased = _with_db(settings, lambda s: erase_person(s, args.email, now, actor))
    print(f"Data pribadi {args.email} disamarkan pada {erased.masked} tiket (tercatat di audit)")
    if erased.finishing:
        print(
            "Disamarkan kecuali e-mail/pesan yang masih menunggu terkirim; sisanya disamarkan "
            "otomatis pada putaran retensi (tiap 6 jam) sesudah terkirim: "
            + ", ".join(erased.finishing)
        )
    if erased.still_open:
        print(
            "Tiket masih terbuka, belum disamarkan (selesaikan dulu): "
            + ", ".join(erased.still_open),
            file=sys.stderr,
        )
        return 1
    return 0


def add_ops_commands(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="the service's state: exit 0 healthy, 1 degraded, 2 down",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=cmd_status, quick_start=True)
    backup = commands.add_parser(
        "backup", help="back up the database to FILE (safe while the service runs)"
    )
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.set_defaults(handler=cmd_backup)
    restore = commands.add_parser(
        "restore", help="restore the database from FILE (refuses a database holding data)"
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument("--force", action="store_true", help="replace the data already there")
    restore.set_defaults(handler=cmd_restore)
    data = commands.add_parser("data", help="personal data of one person (UU PDP)")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    export = data_commands.add_parser("export", help="everything held about ADDR, as a zip")
    export.add_argument("--email", required=True, metavar="ADDR")
    export.add_argument("--output", type=Path, help="zip file (default: data-ADDR.zip)")
    export.set_defaults(handler=cmd_data_export)
    erase = data_commands.add_parser(
        "erase", help="mask ADDR's personal data on closed tickets now (audited)"
    )
    erase.add_argument("--email", required=True, metavar="ADDR")
    erase.add_argument("--actor", help="who asked, for the audit (default: the OS user)")
    erase.set_defaults(handler=cmd_data_erase)
