"""Operating the service: status verdicts, health and metrics, roles, backups, the unit."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from lpse_helpdesk.ops import metrics
from lpse_helpdesk.ops.backup import BackupError, backup, restore
from lpse_helpdesk.ops.health import HealthServer
from lpse_helpdesk.ops.roles import AdvisoryLock, LocalLock, RoleGate, Roles
from lpse_helpdesk.ops.runtime import Heartbeat, Runtime
from lpse_helpdesk.ops.single import AnotherInstance, SqliteInstanceLock
from lpse_helpdesk.ops.status import Level, collect, render
from lpse_helpdesk.storage.db import Database, make_engine, upgrade
from lpse_helpdesk.storage.models import InstanceStatus, OutboxChannel, Ticket
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.outbox import claim_due, enqueue_mail, renew_claim
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow
from tests.servers.postgres import PostgresServer
from tests.test_cli import GOOD_ENV, _env_file, _run

ROOT = Path(__file__).parents[1]
USER = Actor.email("vendor@vendor.co.id", "Siti")


def _open(db: Database, workflow: Workflow, at: dt.datetime, n: int) -> int:
    new = NewTicket(
        requester_name="Siti",
        requester_email=f"user{n}@vendor.co.id",
        subject=f"Kendala {n}",
        problem_text="Gagal unggah.",
        received_at=at,
    )
    return db.run_sync(lambda s: workflow.open_ticket(s, new, USER).id)


# --- status ------------------------------------------------------------------------------


def _beat(db: Database, now: dt.datetime, **detail: object) -> None:
    base: dict[str, object] = {
        "roles": ["imap-reader:INBOX", "telegram-updates"],
        "imap": {"INBOX": {"connected": True, "mode": "idle", "last_sync_at": now.isoformat()}},
        "telegram": {"reachable": True},
    }
    base.update(detail)
    db.run_sync(
        lambda s: s.merge(
            InstanceStatus(instance="host:1", component="instance", detail=base, updated_at=now)
        )
    )


def _status(db: Database, now: dt.datetime) -> Level:
    status = collect(db, now, folders=["INBOX"], group_id=-100, database_label="test")
    assert render(status)  # renders in every condition
    return status.level


def test_status_in_each_condition(db: Database, clock: FixedClock) -> None:
    now = clock.now()
    assert _status(db, now) is Level.DOWN  # nothing runs
    _beat(db, now)
    assert _status(db, now) is Level.HEALTHY
    lost = {"INBOX": {"connected": False, "mode": "idle", "lost_since": now.isoformat()}}
    _beat(db, now, imap=lost)
    assert _status(db, now) is Level.HEALTHY  # a reconnect under way
    assert _status(db, now + dt.timedelta(seconds=30)) is Level.HEALTHY
    later = now + dt.timedelta(seconds=40)
    _beat(db, later, imap={"INBOX": {**lost["INBOX"], "lost_since": now.isoformat()}})
    assert _status(db, later + dt.timedelta(seconds=30)) is Level.DEGRADED
    _beat(db, now, imap={})
    assert _status(db, now) is Level.DEGRADED  # nobody reads the mailbox
    _beat(db, now, telegram={"reachable": False})
    assert _status(db, now) is Level.DEGRADED
    _beat(db, now)
    db.run_sync(
        lambda s: enqueue_mail(
            s,
            kind="acknowledgement",
            ticket_id=None,
            recipient="a@vendor.co.id",
            message_id="<x@lpse.test>",
            payload={},
            now=now - dt.timedelta(minutes=20),
        )
    )
    assert _status(db, now) is Level.DEGRADED  # the outbox does not drain
    # An instance that stopped writing is gone.
    assert _status(db, now + dt.timedelta(minutes=5)) is Level.DOWN


def test_status_of_an_unreachable_database_is_down(refused_port: int) -> None:
    db = Database.from_url(f"postgresql://postgres@127.0.0.1:{refused_port}/none")
    try:
        assert _status(db, dt.datetime.now(dt.UTC)) is Level.DOWN
    finally:
        db.close()


def test_status_command_exit_codes(tmp_path: Path) -> None:
    _env_file(tmp_path, GOOD_ENV)
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    result = _run(tmp_path, "status")
    assert result.returncode == 2 and "no instance is running" in result.stdout
    db = Database.from_url(f"sqlite:///{tmp_path / 'lpse-helpdesk.sqlite3'}")
    try:
        _beat(db, dt.datetime.now(dt.UTC))
    finally:
        db.close()
    result = _run(tmp_path, "status", "--json")
    assert result.returncode == 0, result.stdout
    assert '"level": "healthy"' in result.stdout and '"group_id": -1001234567890' in result.stdout


# --- health and metrics ------------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (127.0.0.1)
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_health_endpoints_and_metrics(
    db: Database, workflow: Workflow, clock: FixedClock
) -> None:
    _open(db, workflow, clock.now(), 1)
    runtime = Runtime("host:1", clock.now(), Roles("sqlite://", "host:1"))
    server = HealthServer("127.0.0.1:0", runtime, db, clock)
    metrics.record_sync({"new_ticket": 2}, 0, dt.timedelta(seconds=0.3))
    metrics.sent("mail")
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert await asyncio.to_thread(_get, f"{base}/healthz") == (200, "ok\n")
        assert (await asyncio.to_thread(_get, f"{base}/readyz"))[0] == 200
        code, body = await asyncio.to_thread(_get, f"{base}/metrics")
        assert code == 200
        families = {f.name: f for f in text_string_to_metric_families(body)}
        tickets = {s.labels["state"]: s.value for s in families["lpse_tickets"].samples}
        assert tickets == {"new": 1.0}
        ingested = families["lpse_mails_ingested"].samples
        assert any(s.labels.get("outcome") == "new_ticket" and s.value >= 2 for s in ingested)
        assert "lpse_intake_latency_seconds" in families
        assert {s.labels["channel"] for s in families["lpse_outbox_depth"].samples} == {
            c.value for c in OutboxChannel
        }
        for family in families.values():  # low cardinality: no addresses, no numbers
            for sample in family.samples:
                assert not any("@" in v or "LPSE-" in v for v in sample.labels.values())

        class Down:
            async def probe(self) -> None:
                raise OSError("unreachable")

        runtime.telegram = Down()
        runtime.telegram_error = "OSError"
        code, body = await asyncio.to_thread(_get, f"{base}/readyz")
        assert code == 503 and "Telegram unreachable" in body
    finally:
        await server.stop()


async def test_heartbeat_writes_and_forgets_its_row(db: Database, clock: FixedClock) -> None:
    runtime = Runtime("host:1", clock.now(), Roles("sqlite://", "host:1"))
    beat = Heartbeat(runtime, db, clock, every=0.05)
    await beat.start()
    for _ in range(100):
        if db.run_sync(lambda s: s.get(InstanceStatus, ("host:1", "instance"))):
            break
        await asyncio.sleep(0.05)
    await beat.stop()
    assert db.run_sync(lambda s: s.get(InstanceStatus, ("host:1", "instance"))) is None


# --- roles ---------------------------------------------------------------------------------


class Recorder:
    name = "recorder"

    def __init__(self, events: list[str], who: str) -> None:
        self.events, self.who = events, who

    async def start(self) -> None:
        self.events.append(f"start {self.who}")

    async def stop(self) -> None:
        self.events.append(f"stop {self.who}")


async def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_role_is_held_once_and_taken_over(postgres_url: str) -> None:
    events: list[str] = []
    names = ("a", "b")
    gates = [
        RoleGate(
            "sla-scanner",
            lambda who=who: Recorder(events, who),  # type: ignore[misc]
            AdvisoryLock(postgres_url, "sla-scanner", f"test-{who}"),
            check_seconds=0.1,
            settle_seconds=1.0,
        )
        for who in names
    ]
    for gate in gates:
        await gate.start()
    try:
        await _until(lambda: any(g.held.is_set() for g in gates))
        await asyncio.sleep(0.5)
        assert sum(g.held.is_set() for g in gates) == 1
        index = next(i for i, g in enumerate(gates) if g.held.is_set())
        seen = len(events)
        # The holder's lock connection is cut (its database link drops): it stops the role
        # at once; the role is then held again, by one instance.
        with psycopg.connect(postgres_url.replace("+psycopg", "")) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
                " WHERE l.locktype = 'advisory' AND l.granted"
            )
        await _until(lambda: f"stop {names[index]}" in events[seen:])
        await _until(lambda: any(g.held.is_set() for g in gates))
        assert sum(g.held.is_set() for g in gates) == 1
        # Stopping the holder hands the role over to the other.
        current = next(i for i, g in enumerate(gates) if g.held.is_set())
        await gates[current].stop()
        await _until(lambda: gates[1 - current].held.is_set())
    finally:
        for gate in gates:
            await gate.stop()
    # Never two at once: every start comes after the previous holder's stop.
    running = 0
    for event in events:
        running += 1 if event.startswith("start") else -1
        assert running in (0, 1), events
    assert running == 0


def test_roles_on_sqlite_are_local(sqlite_url: str) -> None:
    roles = Roles(sqlite_url, "host:1")
    assert not roles.distributed and isinstance(roles.lock("sla-scanner"), LocalLock)


def test_a_second_instance_on_one_sqlite_file_refuses(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    first = SqliteInstanceLock(database)
    first.acquire()
    try:
        with pytest.raises(AnotherInstance, match=r"^DATABASE_URL: another lpse-helpdesk"):
            SqliteInstanceLock(database).acquire()
        assert SqliteInstanceLock(database).holder() == os.getpid()
    finally:
        first.release()
    assert SqliteInstanceLock(database).holder() is None


def test_run_twice_on_sqlite_refuses_with_one_line(tmp_path: Path) -> None:
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
    try:
        while "is running" not in (line := process.stderr.readline()):
            assert line, "the first instance did not start"
        second = _run(tmp_path, "run")
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "several instances need PostgreSQL" in lines[0]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


# --- backups -------------------------------------------------------------------------------


def _numbers(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(Ticket.number).order_by(Ticket.number)).scalars())
    finally:
        engine.dispose()


def _round_trip(source_url: str, target_url: str, workflow: Workflow, tmp_path: Path) -> None:
    engine = make_engine(source_url)
    upgrade(engine)
    db = Database(engine)
    stop = threading.Event()
    written = [0]

    def write() -> None:
        while not stop.is_set():
            _open(db, workflow, dt.datetime.now(dt.UTC), written[0])
            written[0] += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while written[0] < 20:
            time.sleep(0.01)
        backup(source_url, tmp_path / "while-writing.bak")  # the service keeps writing
    finally:
        stop.set()
        writer.join()
    try:
        restore(target_url, tmp_path / "while-writing.bak")
        during = _numbers(target_url)
        final = _numbers(source_url)
        assert 20 <= len(during) <= len(final) and during == final[: len(during)]
        # A database holding data is not overwritten without --force.
        backup(source_url, tmp_path / "final.bak")
        with pytest.raises(BackupError, match="--force"):
            restore(target_url, tmp_path / "final.bak")
        restore(target_url, tmp_path / "final.bak", force=True)
        assert _numbers(target_url) == final
        check = make_engine(target_url)
        try:
            upgrade(check)  # the restored database is at the current revision
            with check.connect() as connection:
                assert connection.execute(select(func.count()).select_from(Ticket)).scalar() == len(
                    final
                )
        finally:
            check.dispose()
    finally:
        db.close()


def test_sqlite_backup_while_writing_and_restore(tmp_path: Path, workflow: Workflow) -> None:
    source = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    target = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    _round_trip(source, target, workflow, tmp_path)
    with sqlite3.connect(tmp_path / "restored.sqlite3") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_postgresql_backup_while_writing_and_restore(
    tmp_path: Path, workflow: Workflow, postgres_url: str, postgres_server: PostgresServer
) -> None:
    name = postgres_server.create_database()
    try:
        _round_trip(postgres_url, postgres_server.url(name), workflow, tmp_path)
    finally:
        postgres_server.drop_database(name)


def test_restore_refuses_the_wrong_kind_of_file(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "dump.bak").write_bytes(b"PGDMP...")
    with pytest.raises(BackupError, match="not a SQLite backup"):
        restore(sqlite_url, tmp_path / "dump.bak")


# --- settings and the unit -------------------------------------------------------------------


def test_check_config_refuses_the_example_values(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = _run(tmp_path, "check-config")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    named = {line.strip().split(":", 1)[0] for line in result.stderr.splitlines()[1:]}
    assert named == {
        "TELEGRAM_BOT_TOKEN",
        "IMAP_PASSWORD",
        "SMTP_PASSWORD",
        "IMAP_HOST",
        "IMAP_USER",
        "SMTP_HOST",
        "SMTP_USER",
        "HELPDESK_EMAIL",
        "LKPP_HELPDESK_EMAIL",
    }


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing (Debian package systemd; make test-servers)")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = (ROOT / "deploy" / "lpse-helpdesk.service").read_text("utf-8")
    program = Path(sys.executable).parent / "lpse-helpdesk"
    assert "/opt/lpse-helpdesk/.venv/bin/lpse-helpdesk" in unit
    (tmp_path / "lpse-helpdesk.service").write_text(
        unit.replace("/opt/lpse-helpdesk/.venv/bin/lpse-helpdesk", str(program)), "utf-8"
    )
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "lpse-helpdesk.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for option in (
        "User=lpse-helpdesk",
        "Restart=on-failure",
        "EnvironmentFile=",
        "NoNewPrivileges=yes",
    ):
        assert option in unit


# --- outbox claims -----------------------------------------------------------------------------


def _queue(db: Database, now: dt.datetime, count: int) -> None:
    def work(session: object) -> None:
        for n in range(count):
            enqueue_mail(
                session,  # type: ignore[arg-type]
                kind="acknowledgement",
                ticket_id=None,
                recipient=f"user{n}@vendor.co.id",
                message_id=f"<m{n}@lpse.test>",
                payload={},
                now=now,
            )

    db.run_sync(work)


def test_concurrent_claims_get_different_rows(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    db = Database(engine)
    now = dt.datetime.now(dt.UTC)
    try:
        _queue(db, now, 50)
        claimed: dict[str, list[int]] = {}
        barrier = threading.Barrier(2)

        def claim(name: str) -> None:
            with db.transaction() as session:
                barrier.wait()
                claimed[name] = claim_due(
                    session, OutboxChannel.MAIL, now=now, limit=30, instance=name
                )
                time.sleep(0.2)  # hold the row locks while the other claims

        threads = [threading.Thread(target=claim, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not set(claimed["a"]) & set(claimed["b"])
        assert len(claimed["a"]) + len(claimed["b"]) == 50
        # Leased rows stay with their holder; after the lease another instance takes them.
        assert (
            db.run_sync(lambda s: claim_due(s, OutboxChannel.MAIL, now=now, limit=50, instance="c"))
            == []
        )
        later = now + dt.timedelta(minutes=3)
        taken = db.run_sync(
            lambda s: claim_due(s, OutboxChannel.MAIL, now=later, limit=50, instance="c")
        )
        assert sorted(taken) == sorted(claimed["a"] + claimed["b"])
        first = claimed["a"][0] if claimed["a"] else claimed["b"][0]
        owner = "a" if claimed["a"] else "b"
        assert not db.run_sync(lambda s: renew_claim(s, first, now=later, instance=owner))
        assert db.run_sync(lambda s: renew_claim(s, first, now=later, instance="c"))
    finally:
        db.close()
