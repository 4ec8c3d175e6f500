"""A running TelegramService against the test Bot API server, with a movable clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lpse_helpdesk.bot.ratelimit import Limits
from lpse_helpdesk.bot.service import BotSettings, TelegramService
from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP
from tests.mailmaker import make_mail
from tests.servers.telegram import BotApiServer, SentMessage

GROUP = -1001234567890
T = TypeVar("T")


class OffsetClock:
    """Real time plus an offset that tests move forward (services keep running)."""

    def __init__(self, start: dt.datetime) -> None:
        self._offset = start - dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset

    def advance(self, **delta: float) -> None:
        self._offset += dt.timedelta(**delta)


@dataclass
class Harness:
    server: BotApiServer
    service: TelegramService
    db: Database
    workflow: Workflow
    intake: Intake
    clock: OffsetClock
    staff: dict[str, Any]
    other: dict[str, Any]

    def ingest(self, **mail: Any) -> int:
        result = self.db.run_sync(lambda s: self.intake.ingest(s, make_mail(**mail)))
        assert result.ticket_id is not None
        self.service.dispatcher.wake()
        return result.ticket_id

    async def until(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.02)

    def card_message_id(self, ticket_id: int) -> int | None:
        from lpse_helpdesk.storage.models import TelegramCard

        card = self.db.run_sync(lambda s: s.get(TelegramCard, ticket_id))
        return card.message_id if card else None

    async def card(self, ticket_id: int) -> SentMessage:
        message_id = await self.until(lambda: self.card_message_id(ticket_id))
        return self.server.message(GROUP, message_id)

    async def settled(self) -> None:
        """Wait until the Telegram outbox has nothing due."""
        from sqlalchemy import func, select

        from lpse_helpdesk.storage.models import OutboxChannel, OutboxItem, OutboxStatus

        def due() -> int:
            return self.db.run_sync(
                lambda s: (
                    s.scalar(
                        select(func.count())
                        .select_from(OutboxItem)
                        .where(
                            OutboxItem.channel == OutboxChannel.TELEGRAM,
                            OutboxItem.status == OutboxStatus.PENDING,
                            OutboxItem.next_attempt_at <= self.clock.now(),
                        )
                    )
                    or 0
                )
            )

        self.clock.advance(seconds=1.5)  # past the card-edit coalescing delay
        self.service.dispatcher.wake()
        await self.until(lambda: due() == 0)

    def texts(self) -> list[str]:
        return [m.text or m.caption or "" for m in self.server.messages(GROUP)]


def make_service(
    server: BotApiServer,
    db: Database,
    workflow: Workflow,
    domain: DomainConfig,
    *,
    staff_ids: frozenset[int] = frozenset(),
    supervisor_ids: frozenset[int] = frozenset({777}),
    limits: Limits | None = None,
) -> TelegramService:
    settings = BotSettings(
        token=server.token,
        api_url=server.base_url,
        chat_id=GROUP,
        staff_ids=staff_ids,
        supervisor_ids=supervisor_ids,
        ticket_prefix="LPSE",
        limits=limits or Limits(group_per_minute=100, global_per_second=100),
        poll_timeout=1,
    )
    service = TelegramService(settings, db, workflow.clock, workflow, domain)
    service.dispatcher.poll_seconds = 0.05
    return service


def make_intake(workflow: Workflow, domain: DomainConfig) -> Intake:
    config = IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    return Intake(workflow, domain, config)
