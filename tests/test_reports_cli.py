"""`lpse-helpdesk rekap`: dates, the file by its extension, CSV to stdout, exit codes."""

from __future__ import annotations

import argparse
import codecs
import io
from pathlib import Path

import openpyxl
import pytest

from lpse_helpdesk.reports.cli import add_rekap_command
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.tickets import Workflow
from tests.reports_support import REQUIRED_SETTINGS, open_ticket, wib

ENV = REQUIRED_SETTINGS


@pytest.fixture
def run(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> argparse.ArgumentParser:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LPSE_NAME", "LPSE Kota Contoh")
    monkeypatch.delenv("REKAP_MASK_EMAIL", raising=False)
    parser = argparse.ArgumentParser(prog="lpse-helpdesk")
    parser.add_argument("--env-file", type=Path, default=tmp_path / "missing.env")
    add_rekap_command(parser.add_subparsers(dest="command", required=True))
    return parser


def _main(parser: argparse.ArgumentParser, *argv: str) -> int:
    args = parser.parse_args(["rekap", *argv])
    return int(args.handler(args))


def _tickets(db: Database, workflow: Workflow, clock: FixedClock) -> None:
    open_ticket(db, workflow, clock, wib(2026, 11, 2, 10, 0), email="siti@vendor.co.id")
    open_ticket(db, workflow, clock, wib(2026, 11, 30, 23, 30), name="Budi")
    open_ticket(db, workflow, clock, wib(2026, 12, 1, 0, 0), name="Desember")


def test_xlsx_by_extension(
    run: argparse.ArgumentParser,
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _tickets(db, workflow, clock)
    target = tmp_path / "rekap-2026-11.xlsx"
    assert _main(run, "--from", "2026-11-01", "--to", "2026-11-30", "--output", str(target)) == 0
    assert "Rekap November 2026: 2 tiket" in capsys.readouterr().err
    sheet = openpyxl.load_workbook(target)["Rekap"]
    assert sheet["A2"].value == "LPSE Kota Contoh"
    assert [sheet.cell(row, 2).value for row in (7, 8)] == ["Siti Vendor", "Budi"]
    assert sheet["C7"].value == "siti@vendor.co.id"
    assert not list(tmp_path.glob(".rekap-*"))  # no temporary file left behind


def test_csv_to_stdout_masked(
    run: argparse.ArgumentParser,
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    _tickets(db, workflow, clock)
    argv = ("--from", "2026-11-30", "--to", "2026-11-30", "--output", "-", "--mask-email")
    assert _main(run, *argv) == 0
    out = capsysbinary.readouterr().out
    assert not out.startswith(codecs.BOM_UTF8)  # pipes and scripts get no BOM
    lines = io.StringIO(out.decode("utf-8")).read().splitlines()
    assert lines[0] == "No,Nama,E-mail,Permasalahan,Solusi,Tgl diterima,Tgl Selesai,Keterangan"
    assert lines[1].startswith("1,Budi,s***@v***.co.id,")


def test_masking_follows_the_setting(
    run: argparse.ArgumentParser,
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _tickets(db, workflow, clock)
    monkeypatch.setenv("REKAP_MASK_EMAIL", "true")
    target = tmp_path / "rekap.csv"
    assert _main(run, "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(target)) == 0
    data = target.read_bytes()
    assert data.startswith(codecs.BOM_UTF8) and b"s***@v***.co.id" in data
    assert b"siti@vendor.co.id" not in data
    assert (
        _main(
            run, "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(target), "--no-mask-email"
        )
        == 0
    )
    assert b"siti@vendor.co.id" in target.read_bytes()


def test_pdf_and_png(
    run: argparse.ArgumentParser,
    db: Database,
    workflow: Workflow,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    _tickets(db, workflow, clock)
    for name, magic in (("r.pdf", b"%PDF-"), ("r.png", b"\x89PNG")):
        target = tmp_path / name
        assert _main(run, "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(target)) == 0
        assert target.read_bytes().startswith(magic)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--from", "2026-11-31", "--to", "2026-12-01"),
            "Tanggal tidak valid / invalid dates: Tanggal '2026-11-31' tidak ada di kalender.",
        ),
        (
            ("--from", "2026-12-01", "--to", "2026-11-01"),
            "Tanggal tidak valid / invalid dates: Tanggal akhir 01/11/2026 sebelum tanggal "
            "awal 01/12/2026.",
        ),
        (
            ("--from", "2026-11-01"),
            "Tanggal tidak valid / invalid dates: --from dan --to harus diisi keduanya "
            "(YYYY-MM-DD).",
        ),
    ],
)
def test_bad_dates_exit_2_with_one_line(
    run: argparse.ArgumentParser,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
) -> None:
    target = tmp_path / "r.xlsx"
    assert _main(run, *argv, "--output", str(target)) == 2
    assert capsys.readouterr().err == message + "\n"
    assert not target.exists()


def test_unknown_extension_and_bad_settings(
    run: argparse.ArgumentParser,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _main(run, "--output", str(tmp_path / "r.ods")) == 2
    assert "Format berkas 'r.ods' tidak dikenal" in capsys.readouterr().err
    # A recap reads only its own settings (config/recap.py): one the service needs and the
    # recap does not is no reason to refuse the recap.
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    assert _main(run, "--output", str(tmp_path / "r.xlsx")) == 0
    capsys.readouterr()
    monkeypatch.setenv("HELPDESK_TIMEZONE", "Asia/Bandung")
    monkeypatch.setenv("REKAP_MASK_EMAIL", "kadang")
    assert _main(run, "--output", str(tmp_path / "r2.xlsx")) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "Konfigurasi belum benar / configuration problems:",
        "  HELPDESK_TIMEZONE: 'Asia/Bandung' is not a time zone"
        " (use Asia/Jakarta, Asia/Makassar or Asia/Jayapura)",
        "  REKAP_MASK_EMAIL: Input should be a valid boolean, unable to interpret input",
    ]
    assert not (tmp_path / "r2.xlsx").exists()


def test_unwritable_output_exits_1(
    run: argparse.ArgumentParser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no-such-folder" / "r.xlsx"
    assert _main(run, "--output", str(target)) == 1
    assert capsys.readouterr().err.startswith("Gagal menulis / cannot write")
