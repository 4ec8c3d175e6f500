"""`lpse-helpdesk status` and /readyz: one reading of the service, one verdict.

Healthy (exit 0), degraded (1: something needs a look, work may wait) or down (2: the
database cannot be read or no instance is running). The database's figures are read
directly; what only a running instance knows (its IMAP connection, whether Telegram
answers, the roles it holds) comes from the rows instances write (`runtime.Heartbeat`).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from lpse_helpdesk.ops.roles import (
    APPLICATION_NAME,
    MONTHLY_RECAP,
    RETENTION,
    SLA_SCANNER,
    TELEGRAM_UPDATES,
    imap_role,
    lock_parts,
    role_key,
)
from lpse_helpdesk.ops.runtime import STALE_AFTER, version
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    FailedMail,
    InstanceStatus,
    MailboxState,
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    SlaClock,
    Ticket,
)

#: IMAP may be lost this long (a reconnect) before the service counts as degraded.
IMAP_GRACE = dt.timedelta(seconds=60)
#: A due outbox item waiting longer than this means the outbox is not draining.
OUTBOX_STUCK = dt.timedelta(minutes=10)


class Level(enum.IntEnum):
    HEALTHY = 0
    DEGRADED = 1
    DOWN = 2


LEVEL_WORDS = {Level.HEALTHY: "sehat", Level.DEGRADED: "terganggu", Level.DOWN: "mati"}


@dataclass
class Figures:
    """What the database says, read in one transaction."""

    tickets_by_state: dict[str, int] = field(default_factory=dict)
    outbox_depth: dict[str, int] = field(default_factory=dict)
    outbox_oldest_seconds: dict[str, float] = field(default_factory=dict)
    outbox_overdue_seconds: dict[str, float] = field(default_factory=dict)
    breaches_by_step: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    last_sync_at: dict[str, str] = field(default_factory=dict)


def read_figures(session: Session, now: dt.datetime) -> Figures:
    figures = Figures()
    for state, count in session.execute(select(Ticket.state, func.count()).group_by(Ticket.state)):
        figures.tickets_by_state[str(state.value)] = int(count)
    pending = OutboxItem.status == OutboxStatus.PENDING
    for channel in OutboxChannel:
        figures.outbox_depth[channel.value] = 0
        figures.outbox_oldest_seconds[channel.value] = 0.0
        figures.outbox_overdue_seconds[channel.value] = 0.0
    for channel, count, oldest in session.execute(
        select(OutboxItem.channel, func.count(), func.min(OutboxItem.created_at))
        .where(pending)
        .group_by(OutboxItem.channel)
    ):
        figures.outbox_depth[channel.value] = int(count)
        figures.outbox_oldest_seconds[channel.value] = _age(now, oldest)
    for channel, due in session.execute(
        select(OutboxItem.channel, func.min(OutboxItem.next_attempt_at))
        .where(pending, OutboxItem.next_attempt_at <= now)
        .group_by(OutboxItem.channel)
    ):
        figures.outbox_overdue_seconds[channel.value] = _age(now, due)
    for step, count in session.execute(
        select(SlaClock.step, func.count())
        .where(
            SlaClock.stopped_at.is_(None),
            SlaClock.deadline_at.is_not(None),
            SlaClock.deadline_at < now,
        )
        .group_by(SlaClock.step)
    ):
        figures.breaches_by_step[str(step.value)] = int(count)
    figures.quarantined = int(
        session.scalar(select(func.count()).where(FailedMail.quarantined.is_(True))) or 0
    )
    for folder, updated in session.execute(select(MailboxState.folder, MailboxState.updated_at)):
        figures.last_sync_at[folder] = _utc(updated).isoformat()
    return figures


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _age(now: dt.datetime, then: dt.datetime | None) -> float:
    return max(0.0, (now - _utc(then)).total_seconds()) if then is not None else 0.0


def live_instances(session: Session, now: dt.datetime) -> dict[str, dict[str, Any]]:
    rows = session.scalars(select(InstanceStatus)).all()
    return {
        row.instance: {**row.detail, "seen_at": _utc(row.updated_at).isoformat()}
        for row in rows
        if now - _utc(row.updated_at) <= STALE_AFTER
    }


def known_roles(folders: list[str]) -> list[str]:
    return [
        *(imap_role(f) for f in folders),
        TELEGRAM_UPDATES,
        SLA_SCANNER,
        MONTHLY_RECAP,
        RETENTION,
    ]


def role_holders(
    engine: Engine, roles: list[str], instances: dict[str, dict[str, Any]]
) -> dict[str, str | None]:
    """Which instance holds each role: PostgreSQL's lock table, else what instances say."""
    holders: dict[str, str | None] = dict.fromkeys(roles)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT l.classid, l.objid, a.application_name FROM pg_locks l"
                    " JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                )
            ).all()
        held = {(int(c), int(o)): str(name or "") for c, o, name in rows}
        for role in roles:
            parts = lock_parts(role_key(role))
            name = held.get((parts["high"], parts["low"]))
            if name is not None:
                holders[role] = name.removeprefix(APPLICATION_NAME).strip() or "?"
        return holders
    for instance, detail in instances.items():
        for role in detail.get("roles", []):
            if role in holders:
                holders[role] = instance
    return holders


@dataclass
class Status:
    level: Level
    problems: list[str]
    version: str
    database: dict[str, Any]
    imap: dict[str, dict[str, Any]]
    quarantined: int
    outbox: dict[str, dict[str, float]]
    telegram: dict[str, Any]
    sla_breaches: dict[str, int]
    roles: dict[str, str | None]
    instances: list[str]

    def as_json(self) -> str:
        data = asdict(self)
        data["level"] = self.level.name.lower()
        return json.dumps(data, indent=2, sort_keys=True)


def database_size(engine: Engine) -> int | None:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
        return int(size) if size is not None else None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    total = 0
    for suffix in ("", "-wal"):
        path = Path(database + suffix)
        if path.exists():
            total += path.stat().st_size
    return total


def collect(
    db: Database,
    now: dt.datetime,
    *,
    folders: list[str],
    group_id: int,
    database_label: str,
) -> Status:
    """Read everything and decide; an unreadable database is `down`, never an exception."""
    try:
        figures, instances = db.run_sync(
            lambda session: (read_figures(session, now), live_instances(session, now))
        )
        roles = role_holders(db.engine, known_roles(folders), instances)
        size = database_size(db.engine)
    except Exception as error:
        return Status(
            Level.DOWN,
            [f"database unreadable: {type(error).__name__}"],
            version(),
            {"url": database_label},
            {},
            0,
            {},
            {"group_id": group_id},
            {},
            {},
            [],
        )
    return assess(figures, instances, roles, now, folders, group_id, database_label, size)


def assess(
    figures: Figures,
    instances: dict[str, dict[str, Any]],
    roles: dict[str, str | None],
    now: dt.datetime,
    folders: list[str],
    group_id: int,
    database_label: str,
    size: int | None,
) -> Status:
    problems: list[str] = []
    level = Level.HEALTHY
    if not instances:
        problems.append("no instance is running")
        level = Level.DOWN
    imap: dict[str, dict[str, Any]] = {}
    for folder in folders:
        reader = roles.get(imap_role(folder))
        view = next(
            (d["imap"][folder] for d in instances.values() if folder in d.get("imap", {})), None
        )
        last = (view or {}).get("last_sync_at") or figures.last_sync_at.get(folder)
        entry: dict[str, Any] = {
            "reader": reader,
            "last_sync_at": last,
            "age_seconds": _age(now, dt.datetime.fromisoformat(last)) if last else None,
            "mode": (view or {}).get("mode"),
            "connected": (view or {}).get("connected"),
        }
        imap[folder] = entry
        if instances and view is None:
            problems.append(f"IMAP {folder}: no instance reads it")
        elif view is not None and not view.get("connected"):
            lost = view.get("lost_since")
            if lost is None or now - dt.datetime.fromisoformat(lost) > IMAP_GRACE:
                problems.append(f"IMAP {folder}: connection lost")
    reachable = [d["telegram"]["reachable"] for d in instances.values() if "telegram" in d]
    telegram = {"group_id": group_id, "reachable": any(reachable) if reachable else None}
    if instances and reachable and not any(reachable):
        problems.append("Telegram unreachable")
    outbox = {
        channel: {
            "pending": float(figures.outbox_depth.get(channel, 0)),
            "oldest_seconds": figures.outbox_oldest_seconds.get(channel, 0.0),
            "overdue_seconds": figures.outbox_overdue_seconds.get(channel, 0.0),
        }
        for channel in figures.outbox_depth
    }
    for channel, overdue in figures.outbox_overdue_seconds.items():
        if overdue > OUTBOX_STUCK.total_seconds():
            problems.append(f"outbox {channel}: not draining ({overdue / 60:.0f} min overdue)")
    if problems and level is Level.HEALTHY:
        level = Level.DEGRADED
    return Status(
        level,
        problems,
        version(),
        {"url": database_label, "size_bytes": size},
        imap,
        figures.quarantined,
        outbox,
        telegram,
        figures.breaches_by_step,
        roles,
        sorted(instances),
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f} detik"
    if value < 7200:
        return f"{value / 60:.0f} menit"
    return f"{value / 3600:.1f} jam"


def render(status: Status) -> list[str]:
    """Plain lines (Indonesian, as staff read it); the same text goes to /status."""
    lines = [f"Status: {LEVEL_WORDS[status.level]} (versi {status.version})"]
    lines += [f"  ! {problem}" for problem in status.problems]
    for folder, entry in status.imap.items():
        mode = {"idle": "IDLE", "polling": "polling"}.get(entry.get("mode") or "", "-")
        lines.append(
            f"IMAP {folder}: sinkron terakhir {entry.get('last_sync_at') or '-'}"
            f" ({_seconds(entry.get('age_seconds'))} lalu), {mode},"
            f" dibaca oleh {entry.get('reader') or '-'}"
        )
    lines.append(f"E-mail dikarantina: {status.quarantined}")
    for channel, entry in status.outbox.items():
        lines.append(
            f"Outbox {channel}: {entry['pending']:.0f} menunggu, tertua"
            f" {_seconds(entry['oldest_seconds'])}"
        )
    reachable = status.telegram.get("reachable")
    word = {True: "terhubung", False: "tidak terhubung", None: "-"}[reachable]
    lines.append(f"Telegram: {word}, grup {status.telegram.get('group_id')}")
    breaches = sum(status.sla_breaches.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(status.sla_breaches.items()))
    lines.append(
        f"Tenggat SOP terlewati (masih berjalan): {breaches}" + (f" ({detail})" if detail else "")
    )
    size = status.database.get("size_bytes")
    size_text = f"{size / 1024 / 1024:.1f} MB" if isinstance(size, int) else "-"
    lines.append(f"Basis data: {status.database.get('url')}, {size_text}")
    lines.append(f"Instans: {', '.join(status.instances) or '-'}")
    for role, holder in status.roles.items():
        lines.append(f"  peran {role}: {holder or '-'}")
    return lines
