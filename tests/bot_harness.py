"""A running TelegramService against the test Bot API server, with a movable clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lpse_helpdesk.bot.ratelimit import Limits
from lpse_helpdesk.bot.service import BotSettings, TelegramService
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.bridge.letters import Letterhead
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import OffsetClock
from tests.mailmaker import make_mail
from tests.servers.telegram import AnsweredCallback, BotApiServer, SentMessage

GROUP = -1001234567890
T = TypeVar("T")


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

    async def until(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.02)

    async def answer(self, query: str) -> AnsweredCallback:
        """The bot's answer to callback query `query`, once it has given one."""
        return await self.until(lambda: self.server.answered_callbacks.get(query))

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
    letterhead: Letterhead | None = None,
    chat_id: int = GROUP,
) -> TelegramService:
    settings = BotSettings(
        token=server.token,
        api_url=server.base_url,
        chat_id=chat_id,
        staff_ids=staff_ids,
        supervisor_ids=supervisor_ids,
        ticket_prefix="LPSE",
        limits=limits or Limits(group_per_minute=100, global_per_second=100),
        poll_timeout=1,
        letterhead=letterhead,
    )
    service = TelegramService(settings, db, workflow.clock, workflow, domain)
    service.dispatcher.poll_seconds = 0.05
    return service


def button_data(message: SentMessage, word: str) -> str | None:
    for button in message.buttons:
        if word in button["text"]:
            return str(button["callback_data"])
    return None


async def latest_with_button(h: Harness, word: str, *, after: int = 0) -> SentMessage:
    """The newest bot message (id above `after`), not a ticket card, that shows a button
    labelled with `word` (cards have their own "✅ Kirim Solusi"; press those with the card)."""
    from sqlalchemy import select

    from lpse_helpdesk.storage.models import TelegramCard

    def find() -> SentMessage | None:
        cards = set(h.db.run_sync(lambda s: list(s.scalars(select(TelegramCard.message_id)))))
        for message in reversed(h.server.messages(GROUP, include_deleted=False)):
            if message.message_id in cards:
                continue
            if message.message_id > after and button_data(message, word) is not None:
                return message
        return None

    return await h.until(find)


async def press_latest(
    h: Harness, word: str, user: dict[str, Any] | None = None, *, after: int = 0
) -> str:
    """Press `word` on the newest message showing it; returns the callback answer."""
    message = await latest_with_button(h, word, after=after)
    data = button_data(message, word)
    assert data is not None
    query = h.server.press(GROUP, message.message_id, user or h.staff, data)
    answered = await h.until(lambda: h.server.answered_callbacks.get(query))
    return answered.text or ""


async def open_prompt(h: Harness, *, after: int = 0) -> SentMessage:
    """The newest ForceReply question of the bot (id above `after`)."""

    def find() -> SentMessage | None:
        for message in reversed(h.server.messages(GROUP)):
            if message.message_id > after and (message.reply_markup or {}).get("force_reply"):
                return message
        return None

    prompt = await h.until(find)

    def recorded() -> bool:
        from sqlalchemy import select

        from lpse_helpdesk.storage.models import TelegramPrompt

        query = select(TelegramPrompt.id).where(TelegramPrompt.message_id == prompt.message_id)
        return h.db.run_sync(lambda s: s.scalar(query)) is not None

    await h.until(recorded)  # a reply before the bot noted its question would go unseen
    return prompt


def last_message_id(h: Harness) -> int:
    messages = h.server.messages(GROUP)
    return messages[-1].message_id if messages else 0
