"""The monthly recap goes to every supervisor once, on the 1st (or later that month)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.reports.delivery import RecapDelivery, RecapOptions
from lpse_helpdesk.reports.monthly_job import MonthlyRecapService
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import OutboxItem
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import NewTicket, Workflow
from tests.conftest import WIB


def test_sent_once_per_month_to_each_supervisor(
    db: Database, workflow: Workflow, domain: DomainConfig, clock: FixedClock
) -> None:
    new = NewTicket("Siti", "siti@x.co.id", "Lupa password", "Mohon reset.", clock.now())
    db.run_sync(lambda s: workflow.open_ticket(s, new, Actor.system()))
    delivery = RecapDelivery(domain, clock, RecapOptions("LPSE Kota Contoh", WIB))
    job = MonthlyRecapService(db, clock, delivery, frozenset({11, 22}), WIB)

    clock.set(dt.datetime(2026, 12, 1, 6, 0, tzinfo=WIB))
    assert db.run_sync(job.send_if_due) is None  # before 07:00 on the 1st
    clock.set(dt.datetime(2026, 12, 1, 8, 0, tzinfo=WIB))
    assert db.run_sync(job.send_if_due) == "2026-11"
    assert db.run_sync(job.send_if_due) is None  # once
    clock.set(dt.datetime(2026, 12, 15, 8, 0, tzinfo=WIB))
    assert db.run_sync(job.send_if_due) is None
    items = db.run_sync(
        lambda s: list(
            s.scalars(select(OutboxItem).where(OutboxItem.dedup_key.like("rekap-monthly:%")))
        )
    )
    by_chat: dict[int, list[str]] = {}
    for item in items:
        by_chat.setdefault(item.payload["chat_id"], []).append(item.kind)
    assert by_chat == {11: ["message", "document"], 22: ["message", "document"]}
    file = next(i for i in items if i.kind == "document")
    assert file.payload["filename"] == "rekap-helpdesk-2026-11.xlsx"
    # Down on 1 January: sent when the service runs again later that month.
    clock.set(dt.datetime(2027, 1, 9, 10, 0, tzinfo=WIB))
    assert db.run_sync(job.send_if_due) == "2026-12"
