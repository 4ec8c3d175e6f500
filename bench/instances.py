"""Issue #13: instances sharing one PostgreSQL: outbox throughput with 1 and 2, and takeover.

Outbox: N new tickets are made through the real intake (not timed), which queues N
acknowledgement mails. Then 1, and again 2, worker processes run the real
``MailSenderService`` (claims with FOR UPDATE SKIP LOCKED and a lease) against one
aiosmtpd server until the outbox is empty; the figure is mails/s from the moment the
workers are told to go until the last one is sent. Every run checks that each mail
reached the SMTP server exactly once.

Takeover: two worker processes compete for one role (advisory lock, as `run` uses it:
tried every CHECK_SECONDS, started after SETTLE_SECONDS); the holder is killed with SIGKILL
and the time until the other starts the role is measured, ``--takeovers`` times.

    .venv/bin/python -m bench.instances                 # 1,000 mails, 5 takeovers
    .venv/bin/python -m bench.instances --mails 3000 --takeovers 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from tests.servers.postgres import PostgresServer
from tests.servers.smtp import SmtpServer

ROOT = Path(__file__).resolve().parent.parent
HELPDESK = "helpdesk@lpse.test"


def _settings_env(url: str, smtp_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "123:bench",
        "TELEGRAM_API_URL": "http://127.0.0.1:9",
        "HELPDESK_CHAT_ID": "-100",
        "IMAP_HOST": "127.0.0.1",
        "IMAP_USER": "bench",
        "IMAP_PASSWORD": "bench",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "plain",
        "HELPDESK_EMAIL": HELPDESK,
        "LKPP_HELPDESK_EMAIL": "helpdesk@lkpp.test",
        "AUTO_MAIL_PER_HOUR": "1000",
        "DATABASE_URL": url,
    }


# --- workers (child processes) -----------------------------------------------------------


async def _mail_worker(go: Path) -> None:
    from sqlalchemy import func, select

    from lpse_helpdesk import app
    from lpse_helpdesk.config.settings import Settings
    from lpse_helpdesk.domain.loader import load_domain
    from lpse_helpdesk.storage.models import OutboxChannel, OutboxItem, OutboxStatus

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    services = app.build_services(settings, load_domain())
    sender = app.mail_sender(services)
    print("ready", flush=True)
    while not go.exists():
        await asyncio.sleep(0.005)
    sent = 0

    def pending(session: object) -> int:
        return int(
            session.scalar(  # type: ignore[attr-defined]
                select(func.count()).where(
                    OutboxItem.channel == OutboxChannel.MAIL,
                    OutboxItem.status == OutboxStatus.PENDING,
                )
            )
        )

    while True:
        done = await sender.deliver_due()  # type: ignore[attr-defined]
        sent += done
        if not done and not await services.db.run(pending):
            break
        if not done:
            await asyncio.sleep(0.01)  # rows claimed by the other worker are being sent
    print(f"done {sent} {time.time():.6f}", flush=True)
    services.db.close()


async def _role_worker() -> None:
    from lpse_helpdesk.ops.roles import SETTLE_SECONDS, AdvisoryLock, RoleGate

    class Holder:
        name = "holder"

        async def start(self) -> None:
            print(f"hold {time.time():.6f}", flush=True)

        async def stop(self) -> None:
            return None

    url = os.environ["DATABASE_URL"]
    lock = AdvisoryLock(url, "bench-role", f"w{os.getpid()}")
    gate = RoleGate("bench-role", Holder, lock, settle_seconds=SETTLE_SECONDS)
    await gate.start()
    await asyncio.Event().wait()


# --- the parent ----------------------------------------------------------------------------


def _worker(kind: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.instances", "--worker", kind, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _prepare_outbox(url: str, mails: int) -> None:
    from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
    from lpse_helpdesk.domain.loader import load_domain
    from lpse_helpdesk.storage.db import Database, make_engine, upgrade
    from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
    from lpse_helpdesk.timekeeping.clock import SystemClock
    from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
    from lpse_helpdesk.workflow.tickets import Workflow
    from tests.conftest import WIB
    from tests.mailmaker import make_mail

    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    domain = load_domain()
    planner = OutboxMailPlanner(
        domain, Addresses(helpdesk=HELPDESK, lkpp="helpdesk@lkpp.test"), auto_mail_per_hour=1000
    )
    workflow = Workflow(
        domain, BusinessCalendar(domain.working_hours, WIB), SystemClock(), planner, timezone=WIB
    )
    intake = Intake(workflow, domain, IntakeConfig(frozenset({HELPDESK}), "helpdesk@lkpp.test"))
    for i in range(mails):
        raw = make_mail(
            sender=f"Pengguna {i} <user{i}@vendor.co.id>",
            subject=f"Kendala {i}",
            message_id=f"<bench-{i}@vendor.co.id>",
        )
        db.run_sync(partial(_ingest, intake, raw))
    db.close()


def _reset_outbox(url: str) -> int:
    from sqlalchemy import text

    from lpse_helpdesk.storage.db import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        count = connection.execute(
            text(
                "UPDATE outbox SET status = 'pending', claimed_by = NULL, lease_until = NULL,"
                " attempts = 0, done_at = NULL, next_attempt_at = now() WHERE channel = 'mail'"
            )
        ).rowcount
    engine.dispose()
    return int(count)


def outbox_run(url: str, smtp: SmtpServer, workers: int, expected: int) -> float:
    smtp.handler.messages.clear()
    assert _reset_outbox(url) == expected
    with tempfile.TemporaryDirectory() as scratch:
        go = Path(scratch) / "go"
        env = _settings_env(url, smtp.port)
        children = [_worker("mail", env, str(go)) for _ in range(workers)]
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        started = time.time()
        go.touch()
        finished, counts = [], []
        for child in children:
            assert child.stdout is not None
            _, count, at = child.stdout.readline().split()
            counts.append(int(count))
            finished.append(float(at))
            child.wait()
    ids = collections.Counter(
        str(m.content.split(b"Message-ID:", 1)[1].split(b"\n", 1)[0].strip()) for m in smtp.messages
    )
    assert len(ids) == expected and set(ids.values()) == {1}, "a mail was sent twice or lost"
    seconds = max(finished) - started
    print(
        f"  {workers} instance(s): {expected} mails in {seconds:.2f} s = "
        f"{expected / seconds:.0f} mails/s (split {counts})"
    )
    return expected / seconds


def takeovers(url: str, rounds: int) -> list[float]:
    env = {**os.environ, "DATABASE_URL": url}
    times = []
    workers = [_worker("role", env), _worker("role", env)]
    try:
        holder = _first_holder(workers)
        for _ in range(rounds):
            other = workers[1 - workers.index(holder)]
            killed = time.time()
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            assert other.stdout is not None
            line = other.stdout.readline().split()
            times.append(float(line[1]) - killed)
            workers[workers.index(holder)] = _worker("role", env)
            holder = other
            time.sleep(1.0)  # the new worker is waiting for the role
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    return times


def _ingest(intake: Any, raw: bytes, session: Any) -> Any:
    return intake.ingest(session, raw)


def _first_holder(workers: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    import selectors

    selector = selectors.DefaultSelector()
    for worker in workers:
        assert worker.stdout is not None
        selector.register(worker.stdout, selectors.EVENT_READ, worker)
    key, _ = selector.select(timeout=30)[0]
    holder: subprocess.Popen[str] = key.data
    assert holder.stdout is not None
    holder.stdout.readline()
    selector.close()
    return holder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--takeovers", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("go", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "mail":
        asyncio.run(_mail_worker(Path(args.go)))
        return 0
    if args.worker == "role":
        asyncio.run(_role_worker())
        return 0
    with PostgresServer() as postgres, SmtpServer() as smtp:
        url = postgres.url(postgres.create_database())
        print(f"Preparing {args.mails} tickets and their acknowledgements (not timed)...")
        _prepare_outbox(url, args.mails)
        print("Mail outbox drained by real senders on one PostgreSQL:")
        one = outbox_run(url, smtp, 1, args.mails)
        two = outbox_run(url, smtp, 2, args.mails)
        print(f"  2 instances / 1 instance: {two / one:.2f}x")
        times = takeovers(url, args.takeovers)
        print(
            f"Takeover after kill -9 of the role holder ({len(times)} times): median "
            f"{statistics.median(times):.2f} s, max {max(times):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
