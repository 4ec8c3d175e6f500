"""Issue #3: one mail appended while the intake idles; time from APPEND to committed ticket.

Starts a throwaway Dovecot (tests/servers/dovecot.py) and the real ``MailIntakeService``
(``start()``: connect, sync, then IMAP IDLE) on a fresh, migrated SQLite database. Then K
times (default 20): waits until the service is back in IDLE, APPENDs one new mail from a
second IMAP connection and measures

* commit: from just before the APPEND is sent to the moment the transaction holding the
  mail's Message row committed (an SQLAlchemy ``after_commit`` listener on the service's own
  sessionmaker records it, so no polling error), checked afterwards in the database: the mail
  is there with a ticket;
* synced: to the end of that sync, i.e. the mail is also flagged \\Seen on the server (the
  service's ``synced`` event);
* woken: to the moment the service's IDLE call returned with the server's untagged response,
  which splits the latency into the server's part (Dovecot waits about 0.5 s after a change
  before it tells idling sessions) and the service's own (woken -> committed).

    .venv/bin/python -m bench.idle_latency            # 20 mails
    .venv/bin/python -m bench.idle_latency -k 50

Target (issue #3): median APPEND -> committed ticket under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from bench.intake_backlog import HELPDESK, build_service
from tests.mailmaker import make_mail
from tests.servers.dovecot import DovecotServer

TARGET_SECONDS = 2.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(k: int, pause: float, timeout: float) -> int:
    run_id = secrets.token_hex(4)
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    try:
        with DovecotServer() as server:
            account = server.add_user()
            db_path = work / "helpdesk.sqlite3"
            service, db = build_service(
                account.host, account.port, account.user, account.password, db_path
            )

            # Commit times of inbound mails, by Message-ID, recorded on the database thread.
            committed: dict[str, float] = {}

            @event.listens_for(db.sessions, "after_flush")
            def _flushed(session: Session, _context: Any) -> None:
                from lpse_helpdesk.storage.models import Message

                for obj in session.new:
                    if isinstance(obj, Message) and obj.message_id:
                        session.info.setdefault("bench_ids", []).append(obj.message_id)

            @event.listens_for(db.sessions, "after_commit")
            def _committed(session: Session) -> None:
                now = time.perf_counter()
                for message_id in session.info.pop("bench_ids", []):
                    committed.setdefault(message_id, now)

            # When IDLE returned with a response from the server (on the IMAP thread).
            woken: list[float] = []
            idle = service.session.idle

            def timed_idle(timeout: float) -> list[bytes]:
                responses = idle(timeout)
                if responses:
                    woken.append(time.perf_counter())
                return responses

            service.session.idle = timed_idle  # type: ignore[method-assign]

            probe = sqlite3.connect(db_path)
            appender = server.connect(account.user)
            await service.start()
            try:
                await asyncio.wait_for(service.synced.wait(), timeout)
                if not service.session.supports_idle:
                    print("the server does not offer IDLE: this measures polling", flush=True)
                commit_lat: list[float] = []
                synced_lat: list[float] = []
                woken_lat: list[float] = []
                for i in range(k):
                    # Back in IDLE after the previous sync; jitter so that the APPEND does not
                    # fall in step with Dovecot's 1 s mailbox check.
                    await asyncio.sleep(pause + random.uniform(0, 0.25))
                    service.synced.clear()
                    woken.clear()
                    message_id = f"idle.{run_id}.{i}@vendor.co.id"
                    raw = make_mail(
                        sender=f"Penyedia {i} <penyedia{i}.{run_id}@vendor.co.id>",
                        to=f"Helpdesk LPSE <{HELPDESK}>",
                        subject=f"Gagal upload penawaran paket {10_000_000 + i}",
                        message_id=f"<{message_id}>",
                    )
                    started = time.perf_counter()
                    typ, data = await asyncio.to_thread(appender.append, "INBOX", None, None, raw)
                    if typ != "OK":
                        raise RuntimeError(f"APPEND failed: {data!r}")
                    await asyncio.wait_for(service.synced.wait(), timeout)
                    synced = time.perf_counter()
                    if message_id not in committed:
                        raise RuntimeError(f"mail {i} synced but not committed")
                    row = probe.execute(
                        "SELECT ticket_id FROM messages WHERE message_id = ?", (message_id,)
                    ).fetchone()
                    if row is None or row[0] is None:
                        raise RuntimeError(f"mail {i}: no ticket in the database")
                    if not woken:
                        raise RuntimeError(f"mail {i}: synced without an IDLE response")
                    commit_lat.append(committed[message_id] - started)
                    synced_lat.append(synced - started)
                    woken_lat.append(woken[0] - started)
                    print(
                        f"  mail {i + 1:>3}: IDLE woke after {1000 * woken_lat[-1]:6.1f} ms, "
                        f"committed after {1000 * commit_lat[-1]:6.1f} ms, "
                        f"\\Seen after {1000 * synced_lat[-1]:6.1f} ms",
                        flush=True,
                    )
            finally:
                await service.stop()
                appender.logout()
                probe.close()
                db.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"IDLE latency over {k} mails (APPEND sent -> ...):")
    service_part = [c - w for c, w in zip(commit_lat, woken_lat, strict=True)]
    for name, values in (
        ("IDLE woken", woken_lat),
        ("committed ticket", commit_lat),
        ("marked \\Seen", synced_lat),
        ("(woken->committed)", service_part),
    ):
        print(
            f"  {name:<18} median {1000 * statistics.median(values):7.1f} ms   "
            f"p90 {1000 * _quantile(values, 0.9):7.1f} ms   max {1000 * max(values):7.1f} ms"
        )
    median = statistics.median(commit_lat)
    verdict = "met" if median < TARGET_SECONDS else "MISSED"
    print(f"target: median under {TARGET_SECONDS:.0f} s: {verdict}")
    return 0 if median < TARGET_SECONDS else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", "--mails", type=int, default=20, help="mails to append, one by one")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds idle before each")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a mail after")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(run(args.mails, args.pause, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
