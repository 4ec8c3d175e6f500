"""Benchmark: the month's recap of N tickets to .xlsx — time and peak memory per size.

    .venv/bin/python bench/rekap_xlsx.py                 # 10,000, 25,000 and 50,000 tickets
    .venv/bin/python bench/rekap_xlsx.py --sizes 50000

For each size a temporary SQLite database is filled in bulk (Indonesian problem texts of a
few hundred characters, four or five SLA clocks per ticket, a mix of states), then the
export runs in a fresh subprocess so that its peak RSS (getrusage ru_maxrss) is its own.
Target (issue #7): 50,000 tickets within 10 s and 300 MB peak RSS, growing linearly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIB = ZoneInfo("Asia/Jakarta")
MONTH_START = dt.datetime(2026, 11, 1, tzinfo=WIB)
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=WIB)

_OPENINGS = (
    "Selamat siang, saya dari {company} ingin melaporkan kendala pada SPSE.",
    "Yth. Helpdesk LPSE, mohon bantuannya terkait permasalahan berikut.",
    "Dengan hormat, kami mengalami masalah saat mengikuti tender kode {code}.",
)
_PROBLEMS = (
    "Saat mengunggah dokumen penawaran muncul pesan galat dan proses berhenti di 90 persen, "
    "padahal batas waktu pemasukan penawaran tinggal beberapa jam lagi.",
    "Akun kami tidak dapat login sejak kemarin; sudah mencoba reset password tetapi e-mail "
    "verifikasi tidak pernah sampai ke kotak masuk maupun folder spam.",
    "Data kualifikasi di SiKAP tidak tersinkron ke SPSE sehingga dokumen kualifikasi kami "
    "tidak terbaca oleh Pokja Pemilihan pada tahap evaluasi.",
    "Aplikasi Apendo menampilkan pesan bahwa berkas penawaran rusak ketika dibuka oleh Pokja, "
    "sementara di komputer kami berkas tersebut dapat dibuka dengan normal.",
    "Kami ingin mengajukan perubahan alamat e-mail akun penyedia karena e-mail lama sudah "
    "tidak aktif lagi; mohon informasi persyaratan yang harus dilengkapi.",
)
_CLOSINGS = (
    "Terlampir tangkapan layar galat. Atas perhatian dan bantuannya kami ucapkan terima kasih.",
    "Mohon arahan langkah selanjutnya. Terima kasih.",
    "Nomor telepon yang dapat dihubungi 0812-3456-7890. Hormat kami.",
)
_SOLUTION = (
    "Silakan bersihkan cache peramban, gunakan Apendo versi terbaru, lalu unggah ulang "
    "dokumen penawaran. Bila masih gagal, kirimkan log aplikasi kepada kami."
)
_NAMES = ("Siti Rahmawati", "Budi Santoso", "Agus Pratama", "Dewi Lestari", "Rina Wulandari")
_CATEGORIES = (
    ("TENDER_UNGGAH_PENAWARAN", "tinggi"),
    ("AKUN_LUPA_PASSWORD", "rendah"),
    ("DATA_PENYEDIA_SIKAP", "rendah"),
    ("APENDO_SPAMKODOK", "menengah"),
    ("AKUN_UBAH_EMAIL", "menengah"),
)


def _problem(rng: random.Random, n: int) -> str:
    opening = rng.choice(_OPENINGS).format(company=f"CV Maju Jaya {n}", code=40_000_000 + n)
    return f"{opening} {rng.choice(_PROBLEMS)} {rng.choice(_PROBLEMS)} {rng.choice(_CLOSINGS)}"


def _clock(
    ticket_id: int,
    step: str,
    start: dt.datetime,
    minutes: float,
    budget: float,
    stop: bool = True,
) -> dict[str, object]:
    end = start + dt.timedelta(minutes=minutes)
    return {
        "ticket_id": ticket_id,
        "step": step,
        "started_at": start,
        "resumed_at": start,
        "budget_minutes": budget,
        "deadline_at": start + dt.timedelta(minutes=budget),
        "used_minutes": 0.0 if stop else minutes,
        "stopped_at": end if stop else None,
        "business_minutes": minutes if stop else None,
        "met": (minutes <= budget) if stop else None,
    }


def fill(url: str, count: int, seed: int = 7) -> None:
    """Insert `count` tickets of November 2026 and their clocks, in bulk."""
    from sqlalchemy import insert

    from lpse_helpdesk.storage.db import make_engine, upgrade
    from lpse_helpdesk.storage.models import SlaClock, Ticket

    rng = random.Random(seed)
    engine = make_engine(url)
    upgrade(engine)
    span = (dt.datetime(2026, 12, 1, tzinfo=WIB) - MONTH_START).total_seconds() - 60
    tickets: list[dict[str, object]] = []
    clocks: list[dict[str, object]] = []
    with engine.begin() as connection:
        for n in range(1, count + 1):
            received = MONTH_START + dt.timedelta(seconds=span * n / (count + 1))
            category, priority = rng.choice(_CATEGORIES)
            prioritized = received + dt.timedelta(minutes=rng.uniform(1, 9))
            done = prioritized + dt.timedelta(minutes=rng.uniform(20, 600))
            roll = rng.random()
            state = "resolved" if roll < 0.7 else "escalated" if roll < 0.8 else "in_analysis"
            name = rng.choice(_NAMES)
            tickets.append(
                {
                    "id": n,
                    "number": f"LPSE-2026-{n:05d}",
                    "requester_name": name,
                    "requester_email": f"{name.split()[0].lower()}{n}@vendor{n % 97}.co.id",
                    "subject": "Kendala SPSE",
                    "problem_text": _problem(rng, n),
                    "category": category,
                    "priority": priority,
                    "state": state,
                    "solution": _SOLUTION if state == "resolved" else None,
                    "tender_codes": [],
                    "phone_numbers": [],
                    "reopen_count": 1 if rng.random() < 0.03 else 0,
                    "received_at": received,
                    "priority_set_at": prioritized,
                    "resolved_at": done if state == "resolved" else None,
                    "escalated_at": done if state == "escalated" else None,
                    "updated_at": done,
                    "version": 4,
                }
            )
            clocks.append(_clock(n, "set_priority", received, rng.uniform(1, 9), 5))
            work = (done - prioritized).total_seconds() / 60
            running = state == "in_analysis"
            clocks.append(_clock(n, "analyse", prioritized, work, 510, stop=not running))
            clocks.append(_clock(n, "resolve", prioritized, work, 240, stop=not running))
            if rng.random() < 0.3:
                clocks.append(_clock(n, "request_data", prioritized, rng.uniform(1, 8), 5))
            if state == "resolved":
                clocks.append(_clock(n, "reply_after_solved", done, rng.uniform(0, 12), 10))
            elif state == "escalated":
                clocks.append(_clock(n, "escalate_and_notify", done, rng.uniform(1, 7), 5))
            if len(tickets) >= 5000:
                connection.execute(insert(Ticket), tickets)
                connection.execute(insert(SlaClock), clocks)
                tickets.clear()
                clocks.clear()
        if tickets:
            connection.execute(insert(Ticket), tickets)
            connection.execute(insert(SlaClock), clocks)
    engine.dispose()


def export(url: str, output: Path) -> dict[str, float]:
    """Run in the child: the export as the bot and the CLI run it."""
    started = time.perf_counter()
    from sqlalchemy.orm import Session

    from lpse_helpdesk.domain.loader import load_domain
    from lpse_helpdesk.reports.export import write_report
    from lpse_helpdesk.reports.lines import RecapContext
    from lpse_helpdesk.reports.period import ReportFormat, month_period
    from lpse_helpdesk.storage.db import make_engine

    imported = time.perf_counter()
    at_import = resource.getrusage(resource.RUSAGE_SELF)
    cpu_at_import = at_import.ru_utime + at_import.ru_stime
    engine = make_engine(url)
    context = RecapContext(
        period=month_period(2026, 11, WIB),
        domain=load_domain(),
        lpse_name="LPSE Kabupaten Contoh",
        generated_at=NOW,
    )
    with Session(engine) as session, output.open("wb") as out:
        count = write_report(session, ReportFormat.XLSX, context, out)
    finished = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "tickets": count,
        "seconds": finished - imported,
        "seconds_with_imports": finished - started,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_at_import,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "file_mb": output.stat().st_size / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 25_000, 50_000])
    parser.add_argument("--child", nargs=2, metavar=("URL", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(export(args.child[0], Path(args.child[1]))))
        return 0
    print(
        f"{'tickets':>8} {'fill s':>7} {'export s':>9} {'CPU s':>6} {'peak RSS MB':>12} "
        f"{'file MB':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="rekap-bench-") as folder:
        for size in args.sizes:
            url = f"sqlite:///{folder}/bench-{size}.sqlite3"
            began = time.perf_counter()
            fill(url, size)
            filled = time.perf_counter() - began
            child = subprocess.run(
                [sys.executable, __file__, "--child", url, f"{folder}/rekap-{size}.xlsx"],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(child.stdout)
            print(
                f"{result['tickets']:>8} {filled:>7.1f} {result['seconds']:>9.2f} "
                f"{result['cpu_seconds']:>6.2f} {result['peak_rss_mb']:>12.0f} "
                f"{result['file_mb']:>8.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
