"""The `lpse-helpdesk` command: check-config, db upgrade, run and a clean stop."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lpse_helpdesk.storage.db import Database, make_engine, upgrade
from lpse_helpdesk.storage.models import FailedMail, Ticket
from tests.mailmaker import make_mail

GOOD_ENV = {
    "TELEGRAM_BOT_TOKEN": "123456789:AAtest-token-that-is-secret",
    "TELEGRAM_API_URL": "http://127.0.0.1:9",
    "HELPDESK_CHAT_ID": "-1001234567890",
    "SUPERVISOR_IDS": "11,22",
    "IMAP_HOST": "127.0.0.1",
    "IMAP_PORT": "14143",
    "IMAP_USER": "helpdesk@lpse.test",
    "IMAP_PASSWORD": "imap-secret-password",
    "IMAP_SECURITY": "plain",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "2525",
    "SMTP_SECURITY": "plain",
    "SMTP_PASSWORD": "smtp-secret-password",
    "HELPDESK_EMAIL": "helpdesk@lpse.test",
    "LKPP_HELPDESK_EMAIL": "helpdesk@lkpp.test",
}


def _env_file(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), "utf-8")
    return path


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in GOOD_ENV and k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "lpse_helpdesk", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_ok_masks_secrets(tmp_path: Path) -> None:
    _env_file(tmp_path, GOOD_ENV)
    result = _run(tmp_path, "check-config")
    assert result.returncode == 0, result.stderr
    assert "Konfigurasi OK" in result.stdout
    for secret in ("AAtest-token-that-is-secret", "imap-secret-password", "smtp-secret-password"):
        assert secret not in result.stdout + result.stderr
    assert "sqlite:///lpse-helpdesk.sqlite3" in result.stdout


def test_check_config_missing_token_and_bad_port(tmp_path: Path) -> None:
    values = {k: v for k, v in GOOD_ENV.items() if k != "TELEGRAM_BOT_TOKEN"}
    values["IMAP_PORT"] = "99999"
    _env_file(tmp_path, values)
    result = _run(tmp_path, "check-config")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert problems == [
        "TELEGRAM_BOT_TOKEN: is required but not set",
        "IMAP_PORT: '99999' is not a port number (1-65535)",
    ]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("IMAP_SECURITY", "tls", "IMAP_SECURITY: 'tls' is not one of: ssl, starttls, plain"),
        ("HELPDESK_CHAT_ID", "grup", "HELPDESK_CHAT_ID: 'grup' is not a number"),
        ("SUPERVISOR_IDS", "11,abc", "SUPERVISOR_IDS: must be Telegram user ids"),
        ("HELPDESK_TIMEZONE", "Asia/Bandung", "HELPDESK_TIMEZONE: 'Asia/Bandung' is not a time"),
        ("HELPDESK_EMAIL", "helpdesk", "HELPDESK_EMAIL: 'helpdesk' is not an e-mail address"),
        ("TELEGRAM_API_URL", "api.telegram.org", "TELEGRAM_API_URL: must start with http"),
        ("HELPDESK_SOP_FILE", "nope.yaml", "HELPDESK_SOP_FILE: cannot read nope.yaml"),
        ("LKPP_HELPDESK_EMAIL", "helpdesk@lpse.test", "LKPP_HELPDESK_EMAIL: must differ"),
    ],
)
def test_each_bad_setting_is_one_line(tmp_path: Path, name: str, value: str, expected: str) -> None:
    _env_file(tmp_path, {**GOOD_ENV, name: value})
    result = _run(tmp_path, "check-config")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()[1:]
    assert len(lines) == 1 and lines[0].strip().startswith(expected), result.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = _run(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("run", "check-config", "db"):
        assert command in result.stdout


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    _env_file(tmp_path, GOOD_ENV)
    for _ in range(2):
        result = _run(tmp_path, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert "Database up to date" in result.stdout
    assert (tmp_path / "lpse-helpdesk.sqlite3").exists()


def test_run_refuses_a_bad_config(tmp_path: Path) -> None:
    _env_file(tmp_path, {**GOOD_ENV, "SMTP_PORT": "0"})
    result = _run(tmp_path, "run")
    assert result.returncode == 2
    assert "SMTP_PORT" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_starts_and_stops_cleanly(tmp_path: Path, signum: int) -> None:
    _env_file(tmp_path, GOOD_ENV)
    env = {k: v for k, v in os.environ.items() if k not in GOOD_ENV and k != "DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lpse_helpdesk", "run"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "is running" in line:
            break
    assert any("is running" in line for line in lines), "".join(lines)
    process.send_signal(signum)
    _, rest = process.communicate(timeout=60)
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "Traceback" not in log, log
    assert "started database (sqlite)" in log
    assert log.rstrip().endswith("stopped")
    for secret in ("AAtest-token-that-is-secret", "imap-secret-password"):
        assert secret not in log


@pytest.mark.dovecot
def test_run_works_off_a_backlog_through_the_helper_process(
    tmp_path: Path, imap_account: Any
) -> None:
    """`python -m lpse_helpdesk run` works off a backlog through the spawned helper process."""
    import sqlite3

    from lpse_helpdesk.bridge.inbound import PARALLEL_FROM
    from tests.mailmaker import make_mail

    count = PARALLEL_FROM + 5
    for i in range(count):
        imap_account.append(make_mail(subject=f"S {i}", sender=f"s{i}@x.co.id"))
    values = {
        **GOOD_ENV,
        "IMAP_HOST": imap_account.host,
        "IMAP_PORT": str(imap_account.port),
        "IMAP_USER": imap_account.user,
        "IMAP_PASSWORD": imap_account.password,
    }
    _env_file(tmp_path, values)
    env = {k: v for k, v in os.environ.items() if k not in GOOD_ENV and k != "DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lpse_helpdesk", "run"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    database = tmp_path / "lpse-helpdesk.sqlite3"

    def tickets() -> int:
        try:
            with sqlite3.connect(database) as connection:
                return int(connection.execute("SELECT count(*) FROM tickets").fetchone()[0])
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and tickets() < count:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=60)
    assert tickets() == count, log
    assert process.returncode == 0 and "Traceback" not in log, log
    assert log.count("is running") == 1


@pytest.mark.dovecot
def test_import_from_the_command_line_leaves_unread_mail_to_the_service(
    tmp_path: Path, imap_account: Any
) -> None:
    """`import` on IMAP_FOLDER before the service's first sync: the history becomes tickets,
    the recent mail is left for the service (its acknowledgement and SLA clocks)."""
    import sqlite3

    old_day = dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.UTC)
    for i in range(3):
        imap_account.append(make_mail(subject=f"Lama {i}"), date=old_day)
    imap_account.append(make_mail(subject="Baru"))  # now: the first sync will ticket it
    values = {
        **GOOD_ENV,
        "IMAP_HOST": imap_account.host,
        "IMAP_PORT": str(imap_account.port),
        "IMAP_USER": imap_account.user,
        "IMAP_PASSWORD": imap_account.password,
        "IMAP_SECURITY": "plain",
    }
    _env_file(tmp_path, values)
    env = {k: v for k, v in os.environ.items() if k not in GOOD_ENV and k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "lpse_helpdesk", "import", "--since", "2024-01-01"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "4 e-mail di INBOX: 3 tiket baru" in done.stdout, done.stdout
    assert "1 e-mail belum dibaca layanan dan tidak diimpor" in done.stdout, done.stdout
    with sqlite3.connect(tmp_path / "lpse-helpdesk.sqlite3") as connection:
        subjects = [row[0] for row in connection.execute("SELECT subject FROM tickets")]
    assert sorted(subjects) == ["Lama 0", "Lama 1", "Lama 2"]


def test_quarantine_list_and_retry_from_the_command_line(tmp_path: Path) -> None:
    """The operator's way back for a quarantined mail, through the real command (issue #10)."""
    database = tmp_path / "helpdesk.sqlite3"
    _env_file(tmp_path, {**GOOD_ENV, "DATABASE_URL": f"sqlite:///{database}"})
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    db = Database(engine)
    now = dt.datetime.now(dt.UTC)
    raw = make_mail(subject="Gagal unggah penawaran", message_id="<karantina-1@vendor.co.id>")
    db.run_sync(
        lambda s: s.add(
            FailedMail(
                folder="INBOX",
                uidvalidity=1,
                uid=7,
                message_id="<karantina-1@vendor.co.id>",
                raw=raw,
                failures=3,
                last_error="parsing took longer than MAIL_PARSE_SECONDS",
                quarantined=True,
                created_at=now,
                updated_at=now,
            )
        )
    )

    listed = _run(tmp_path, "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Gagal unggah penawaran" in listed.stdout and "MAIL_PARSE_SECONDS" in listed.stdout

    retried = _run(tmp_path, "quarantine", "retry", "--all")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "OK" in retried.stdout
    subjects = db.run_sync(lambda s: list(s.scalars(select(Ticket.subject))))
    assert subjects == ["Gagal unggah penawaran"]
    assert "Tidak ada e-mail di karantina" in _run(tmp_path, "quarantine", "list").stdout
    db.close()
