"""Issue #10: peak memory while working off a backlog that holds several 20 MB mails.

Starts a throwaway Dovecot, fills a new user's INBOX with ``--mails`` ordinary mails and
``--large`` mails of ``--large-mb`` MB each (a PDF-like attachment, base64) spread through the
backlog, then runs the real ``MailIntakeService.sync_once()`` in a fresh child process against
a fresh SQLite database. Sizes are fetched first (RFC822.SIZE) and the FETCH batches are cut by
bytes; mails are parsed in the parsing process. The child reports its own peak RSS and that of
its parsing process (``RUSAGE_CHILDREN``); the target is under 300 MB.

    .venv/bin/python -m bench.intake_large                       # 200 mails + 5 x 20 MB
    .venv/bin/python -m bench.intake_large --large 8 --large-mb 24
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from bench.intake_backlog import build_service
from tests.mailmaker import make_mail
from tests.servers.dovecot import DovecotServer

ROOT = Path(__file__).resolve().parent.parent
TARGET_MIB = 300


def _large_mail(index: int, megabytes: float) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Besar {index} <besar{index}@vendor.co.id>"
    mail["To"] = "helpdesk@lpse.test"
    mail["Subject"] = f"Dokumen penawaran lengkap {index}"
    mail["Message-ID"] = f"<large.{index}.{os.getpid()}@vendor.co.id>"
    mail.set_content("Terlampir dokumen penawaran kami, mohon diperiksa. Kode tender 12345678.")
    payload = os.urandom(int(megabytes * 1024 * 1024 * 3 / 4))  # base64 grows it by 4/3
    mail.add_attachment(payload, maintype="application", subtype="pdf", filename="dok.pdf")
    return mail.as_bytes()


def _child(args: argparse.Namespace) -> None:
    service, db = build_service(args.host, args.port, args.user, args.password, Path(args.db))

    async def run() -> dict[str, object]:
        await service._imap(service.session.connect)
        started = time.perf_counter()
        report = await service.sync_once()
        seconds = time.perf_counter() - started
        await service.stop()
        return {
            "seconds": seconds,
            "fetched": report.fetched,
            "committed": report.committed,
            "failed": report.failed,
            "outcomes": report.outcomes,
        }

    result = asyncio.run(run())
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["parser_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    db.close()
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=200)
    parser.add_argument("--large", type=int, default=5)
    parser.add_argument("--large-mb", type=float, default=20.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("host", "user", "password", "db"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0
    with DovecotServer() as server, tempfile.TemporaryDirectory() as tmp:
        account = server.add_user()
        started = time.perf_counter()
        every = max(1, args.mails // max(1, args.large))
        large = 0
        for i in range(args.mails):
            account.append(make_mail(subject=f"Masalah {i}", sender=f"u{i}@vendor.co.id"))
            if i % every == every - 1 and large < args.large:
                account.append(_large_mail(large, args.large_mb))
                large += 1
        while large < args.large:
            account.append(_large_mail(large, args.large_mb))
            large += 1
        filled = time.perf_counter() - started
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.intake_large",
                "--child",
                "--host",
                account.host,
                "--port",
                str(account.port),
                "--user",
                account.user,
                "--password",
                account.password,
                "--db",
                str(Path(tmp) / "bench.sqlite3"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return 1
        result = json.loads(child.stdout.strip().splitlines()[-1])
    total = args.mails + args.large
    print(
        f"intake of a backlog with large mails: {args.mails} mails + {args.large} x "
        f"{args.large_mb:g} MB (filled in {filled:.1f} s)"
    )
    print(
        f"  {result['committed']}/{total} committed, {result['failed']} failed in "
        f"{result['seconds']:.1f} s; outcomes {result['outcomes']}"
    )
    peak = float(result["peak_rss_mib"])
    parser_peak = float(result["parser_peak_rss_mib"])
    verdict = "under" if max(peak, parser_peak) < TARGET_MIB else "OVER"
    print(
        f"  peak RSS: service {peak:.0f} MiB, parsing process {parser_peak:.0f} MiB "
        f"({verdict} the {TARGET_MIB} MB target)"
    )
    return 0 if result["committed"] == total and verdict == "under" else 1


if __name__ == "__main__":
    sys.exit(main())
