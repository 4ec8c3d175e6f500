"""Start-up (issue #14): what each command imports, the one holiday module, the early helper.

The figures themselves are measured by bench/startup.py; these tests keep the causes from
coming back silently (a module-level import of the Telegram stack, of every holiday country,
of a PDF library for a CSV, ...).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lpse_helpdesk import app, cli
from lpse_helpdesk.config.settings import Settings
from lpse_helpdesk.domain.loader import load_domain

GOOD_ENV = {
    "TELEGRAM_BOT_TOKEN": "123456789:AAtest-token-that-is-secret",
    "TELEGRAM_API_URL": "http://127.0.0.1:9",
    "HELPDESK_CHAT_ID": "-1001234567890",
    "IMAP_HOST": "127.0.0.1",
    "IMAP_PORT": "14143",
    "IMAP_USER": "helpdesk@lpse.test",
    "IMAP_PASSWORD": "imap-secret-password",
    "IMAP_SECURITY": "plain",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "2525",
    "SMTP_SECURITY": "plain",
    "HELPDESK_EMAIL": "helpdesk@lpse.test",
    "LKPP_HELPDESK_EMAIL": "helpdesk@lkpp.test",
}


def _env_file(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), "utf-8")
    return path


# Runs the command in a fresh interpreter, then writes the names of the modules it imported.
_PROBE = """
import json, sys
sys.argv = ["lpse-helpdesk", *json.loads(sys.argv[1])]
from lpse_helpdesk.cli import main
try:
    code = main()
except SystemExit as done:
    code = done.code
with open({out!r}, "w") as out:
    json.dump({{"code": code, "modules": sorted(sys.modules)}}, out)
"""

HEAVY_FOR_CSV = (
    "reportlab",
    "matplotlib",
    "PIL",
    "openpyxl",
    "telegram",
    "httpx",
    "jinja2",
    "alembic",
    "apscheduler",
    "lpse_helpdesk.reports.pdf",
    "lpse_helpdesk.reports.chart",
    "lpse_helpdesk.reports.xlsx",
    "lpse_helpdesk.bot",
)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in GOOD_ENV and k != "DATABASE_URL"}


def _imported(tmp_path: Path, *args: str) -> tuple[object, set[str]]:
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(out=str(out)), json.dumps(args)],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), done.stderr
    found = json.loads(out.read_text())
    return found["code"], set(found["modules"])


def _loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_rekap_to_stdout_imports_no_other_format_nor_the_bot(tmp_path: Path) -> None:
    _env_file(tmp_path, {**GOOD_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'h.sqlite3'}"})
    assert cli.main(["--env-file", str(tmp_path / ".env"), "db", "upgrade"]) == 0
    code, modules = _imported(tmp_path, "rekap", "--output", "-")
    assert code == 0
    assert "lpse_helpdesk.reports.csv_export" in modules  # the probe saw the real work
    assert [name for name in HEAVY_FOR_CSV if _loaded(modules, name)] == []
    assert "holidays.countries" not in modules  # the package: it imports all ~250 countries
    countries = [m for m in modules if m.startswith("holidays.countries.")]
    assert countries == ["holidays.countries.indonesia"]


def test_rekap_to_stdout_reads_without_the_orm_nor_pydantic(tmp_path: Path) -> None:
    """The recap reads with SQLAlchemy Core (storage/tables.py) and its own few settings
    (config/recap.py): the ORM and pydantic are a good part of a second to import."""
    _env_file(tmp_path, {**GOOD_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'h.sqlite3'}"})
    assert cli.main(["--env-file", str(tmp_path / ".env"), "db", "upgrade"]) == 0
    code, modules = _imported(tmp_path, "rekap", "--output", "-")
    assert code == 0
    assert "lpse_helpdesk.reports.csv_export" in modules and "sqlalchemy.engine" in modules
    unwanted = ("sqlalchemy.orm", "pydantic", "pydantic_settings", "lpse_helpdesk.storage.models")
    assert [name for name in unwanted if _loaded(modules, name)] == []


def test_help_and_a_bad_setting_import_neither_orm_nor_telegram(tmp_path: Path) -> None:
    code, modules = _imported(tmp_path, "--help")
    assert code == 0
    assert [m for m in ("pydantic", "sqlalchemy", "telegram") if _loaded(modules, m)] == []
    _env_file(tmp_path, {**GOOD_ENV, "SMTP_PORT": "0"})
    code, modules = _imported(tmp_path, "check-config")
    assert code == 2
    assert [m for m in ("sqlalchemy", "telegram", "holidays") if _loaded(modules, m)] == []


def test_the_collector_is_back_on_after_a_command(tmp_path: Path) -> None:
    _env_file(tmp_path, {**GOOD_ENV, "SMTP_PORT": "0"})
    assert gc.isenabled()
    assert cli.main(["--env-file", str(tmp_path / ".env"), "check-config"]) == 2
    assert gc.isenabled()


_HOLIDAYS_PROBE = """
import datetime as dt, json, sys
from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar, holiday_entity
from zoneinfo import ZoneInfo

calendar = BusinessCalendar(load_domain().working_hours, ZoneInfo("Asia/Jakarta"))
ours = {str(d): n for y in (2025, 2026, 2027) for d, n in calendar._holidays_for(y).items()}
alone = "holidays.countries" not in sys.modules
import holidays  # the package's own way, which imports every country

theirs = {
    str(d): n
    for d, n in holidays.country_holidays(
        "ID", years=(2025, 2026, 2027), categories=("public", "government")
    ).items()
}
import holidays.countries  # imported in full later: it reuses the module loaded alone

same_class = holiday_entity("ID") is holidays.countries.Indonesia
print(json.dumps([alone, ours == theirs, len(ours), same_class]))
"""


def test_the_calendar_imports_one_country_and_agrees_with_the_package() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HOLIDAYS_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    alone, same, count, same_class = json.loads(done.stdout)
    assert alone and same and same_class
    assert count > 40  # three years of public holidays and cuti bersama


def test_holiday_check_names_country_and_category() -> None:
    from lpse_helpdesk.domain.loader import DomainConfigError, domain_from_mapping
    from lpse_helpdesk.timekeeping.calendar import (
        UnknownHolidayCountry,
        check_holiday_calendar,
        holiday_entity,
    )

    check_holiday_calendar("IDN", ["public"])
    assert holiday_entity("Indonesia") is holiday_entity("ID")
    with pytest.raises(UnknownHolidayCountry):
        check_holiday_calendar("country_holidays", ["public"])  # a function, not a country
    with pytest.raises(ValueError, match="Category is not supported: bank"):
        check_holiday_calendar("ID", ["bank"])
    import yaml

    defaults = Path(__file__).parents[1] / "lpse_helpdesk" / "domain" / "defaults.yaml"
    data = yaml.safe_load(defaults.read_text("utf-8"))
    data["working_hours"]["holidays"] = {"country": "ID", "categories": ["bank"]}
    with pytest.raises(DomainConfigError, match=r"working_hours\.holidays\.categories"):
        domain_from_mapping(data, "test")


def test_the_mail_intake_starts_first_and_everything_stops_in_reverse_order() -> None:
    factories = app.piece_factories(None)
    order = [factories[i] for i in app.start_order(factories)]
    assert order[0] is app.mail_intake
    assert sorted(order, key=factories.index) == factories


async def test_serve_stops_pieces_in_reverse_list_order(tmp_path: Path) -> None:
    events: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        async def start(self) -> None:
            events.append(f"start {self.name}")

        async def stop(self) -> None:
            events.append(f"stop {self.name}")

    def maker(name: str) -> Any:
        return lambda services: Recorder(name)

    services = app.build_services(_settings(tmp_path), load_domain())
    import asyncio

    stop = asyncio.Event()
    stop.set()
    calls: list[int] = []
    await app.serve(
        services, [maker("a"), maker("b"), maker("c")], stop=stop, running=lambda: calls.append(1)
    )
    assert events == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert calls == [1]


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        **{**GOOD_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'h.sqlite3'}"},  # type: ignore[arg-type]
    )


def test_the_mail_intake_takes_over_the_early_parse_worker(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    domain = load_domain()
    early = cli._early_parse_worker(settings, domain)
    assert early is not None
    try:
        services = app.build_services(settings, domain, parse_worker=early)
        intake = app._mail_intake(services)
        assert intake.worker is early and services.parse_worker is None
    finally:
        early.close()
    postgres = settings.model_copy(update={"DATABASE_URL": "postgresql://u@127.0.0.1/db"})
    assert cli._early_parse_worker(postgres, domain) is None  # another instance may read mail


def _children(pid: int) -> list[str]:
    """The command lines of `pid`'s child processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" "))
            except OSError:
                continue
    return [line.decode(errors="replace") for line in found]


@pytest.mark.dovecot
def test_run_starts_one_parsing_process_before_its_imports(
    tmp_path: Path, imap_account: Any
) -> None:
    from tests.mailmaker import make_mail

    imap_account.append(make_mail(subject="Gagal upload", sender="penyedia@vendor.co.id"))
    values = {
        **GOOD_ENV,
        "IMAP_HOST": imap_account.host,
        "IMAP_PORT": str(imap_account.port),
        "IMAP_USER": imap_account.user,
        "IMAP_PASSWORD": imap_account.password,
    }
    _env_file(tmp_path, values)
    process = subprocess.Popen(
        [sys.executable, "-m", "lpse_helpdesk", "run"],
        cwd=tmp_path,
        env=_clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "IMAP sync: 1 fetched, 1 committed" in line:
                break
        children = _children(process.pid)
        parsers = [c for c in children if "parse_worker import child_main" in c]
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    log = "".join(lines) + rest
    assert any("IMAP sync: 1 fetched, 1 committed" in line for line in lines), log
    assert len(parsers) == 1, parsers
    assert children == parsers, children  # no other process (multiprocessing's tracker)
    assert process.returncode == 0 and "Traceback" not in log, log
