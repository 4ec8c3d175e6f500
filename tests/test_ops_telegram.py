"""Webhook mode: every instance takes updates pushed to it; the secret token is checked."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.error
import urllib.request

from lpse_helpdesk.bot.service import TelegramService
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.workflow.tickets import Workflow
from tests.bot_harness import GROUP, make_service
from tests.servers._proc import free_port
from tests.servers.telegram import BotApiServer

SECRET = "s3cret-token_value"


def _post(url: str, update: dict[str, object], secret: str | None) -> int:
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1)
        url, data=json.dumps(update).encode(), headers={"Content-Type": "application/json"}
    )
    if secret is not None:
        request.add_header("X-Telegram-Bot-Api-Secret-Token", secret)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def test_webhook_checks_the_secret_and_handles_updates(
    telegram_server: BotApiServer, db: Database, workflow: Workflow, domain: DomainConfig
) -> None:
    telegram_server.group(GROUP)
    port = free_port()
    base = make_service(telegram_server, db, workflow, domain)
    settings = dataclasses.replace(
        base.settings,
        webhook_url="https://helpdesk.lpse.test/telegram/hook",
        webhook_listen=f"127.0.0.1:{port}",
        webhook_secret=SECRET,
    )
    service = TelegramService(settings, db, workflow.clock, workflow, domain)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 20)
        assert telegram_server.calls_to("setWebhook")[-1].params["url"].endswith("/telegram/hook")
        update = {
            "update_id": 1,
            "message": {
                "message_id": 77,
                "date": int(time.time()),
                "chat": {"id": 1001, "type": "private", "first_name": "Budi"},
                "from": {"id": 1001, "is_bot": False, "first_name": "Budi"},
                "text": "/bantuan",
                "entities": [{"type": "bot_command", "offset": 0, "length": 8}],
            },
        }
        url = f"http://127.0.0.1:{port}/telegram/hook"
        assert await asyncio.to_thread(_post, url, update, "wrong") == 403
        assert await asyncio.to_thread(_post, url, update, None) == 403
        before = len(telegram_server.calls_to("sendMessage"))
        assert await asyncio.to_thread(_post, url, update, SECRET) == 200
        deadline = time.monotonic() + 10
        while len(telegram_server.calls_to("sendMessage")) == before:
            assert time.monotonic() < deadline, "the update was not handled"
            await asyncio.sleep(0.05)
    finally:
        await service.stop()


async def test_status_in_telegram_is_for_supervisors(
    telegram_server: BotApiServer, db: Database, workflow: Workflow, domain: DomainConfig
) -> None:
    from telegram.ext import CommandHandler

    from lpse_helpdesk.bot.access import Access
    from lpse_helpdesk.ops.telegram_status import NOT_ALLOWED, status_command

    telegram_server.group(GROUP)
    service = make_service(telegram_server, db, workflow, domain)
    access = Access(GROUP, frozenset(), frozenset({777}))
    handler = status_command(
        db, workflow.clock, access, folders=["INBOX"], group_id=GROUP, database_label="sqlite"
    )
    service.application.add_handler(CommandHandler("status", handler))
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 20)
        supervisor = telegram_server.user(777, "Sari")
        staff = telegram_server.user(1001, "Budi")
        telegram_server.send_private(supervisor, "/status")
        telegram_server.send_private(staff, "/status")

        def replies(chat_id: int) -> list[str]:
            return [m.plain_text or "" for m in telegram_server.messages(chat_id)]

        deadline = time.monotonic() + 10
        while not (replies(777) and replies(1001)):
            assert time.monotonic() < deadline, "no answer to /status"
            await asyncio.sleep(0.05)
        assert replies(777)[0].startswith("Status: mati")  # no instance has reported yet
        assert "Outbox mail" in replies(777)[0]
        assert replies(1001) == [NOT_ALLOWED]
    finally:
        await service.stop()
