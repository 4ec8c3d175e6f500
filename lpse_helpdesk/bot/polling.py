"""Long polling that survives outages and a second process polling with the same token.

Outages (network errors, 5xx) are waited out inside the getUpdates request with a pause
that doubles up to `OUTAGE_MAX_PAUSE`, logged once per outage; and HTTP 409
"terminated by other getUpdates request" (two processes with one token): one clear log line
and one alert in the group per hour (across processes: the alert is claimed in the
database), and a pause before the next poll that doubles up to `CONFLICT_MAX_PAUSE`, so the
two pollers do not take turns ending each other's polls in a busy loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from telegram.error import Conflict, NetworkError, TelegramError
from telegram.request import HTTPXRequest

from lpse_helpdesk.bot.errors import Kind, classify
from lpse_helpdesk.bot.group import CONFLICT_ALERT, GroupState, claim_hourly
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

log = logging.getLogger(__name__)

CONFLICT_FIRST_PAUSE = 5.0
CONFLICT_MAX_PAUSE = 300.0
OUTAGE_MAX_PAUSE = 15.0
ALERT_EVERY = dt.timedelta(hours=1)

CONFLICT_TEXT = (
    "⚠️ Ada proses lain yang memakai token bot helpdesk yang sama (Telegram menjawab "
    "409 Conflict). Hanya satu layanan lpse-helpdesk boleh berjalan dengan satu token: "
    "hentikan salinan yang lain. Sementara itu bot menunda membaca pesan dan tombol."
)


class GuardedRequest(HTTPXRequest):
    """The getUpdates request. Outages (network errors, 5xx) and 409 are waited out here,
    with our own pauses, instead of being raised into PTB's polling loop: there, the pause
    after an error cannot be interrupted, so stopping the service would wait for it."""

    def __init__(self, guard: PollingGuard, read_timeout: float) -> None:
        super().__init__(connection_pool_size=1, read_timeout=read_timeout)
        self.guard = guard

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if self.guard.closing:  # PTB's last getUpdates while stopping: no waiting
            return await super().do_request(*args, **kwargs)
        while True:
            pause = self.guard.resume_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)  # cancelled at once when polling stops
            try:
                code, payload = await super().do_request(*args, **kwargs)
            except NetworkError as error:  # TimedOut included
                self.guard.unreachable(error)
                continue
            if code >= 500:
                self.guard.unreachable(NetworkError(f"HTTP {code}: {_description(payload)}"))
                continue
            if code == 409:
                self.guard.conflict(_description(payload))
                continue
            self.guard.answered()
            return code, payload


def _description(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("description", ""))[:200]
    except (ValueError, AttributeError):
        return payload[:200].decode("utf-8", "replace")


class PollingGuard:
    def __init__(self, db: Database, clock: Clock, group: GroupState) -> None:
        self.db = db
        self.clock = clock
        self.group = group
        self.wake: Callable[[], None] = lambda: None
        self.resume_at = 0.0
        self.closing = False  # the service is stopping
        self.conflicts = 0
        self._conflict_pause = 0.0
        self._conflict_logged = -1e9
        self._outage_since: float | None = None
        self._outage_pause = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, read_timeout: float) -> GuardedRequest:
        return GuardedRequest(self, read_timeout)

    def answered(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "Telegram answers polling again after %.0f s", time.monotonic() - self._outage_since
            )
            self._outage_since = None
        if self._conflict_pause:
            log.info("polling works again; no other process took over the token meanwhile")
        self._conflict_pause = 0.0
        self._outage_pause = 0.0

    def unreachable(self, error: TelegramError) -> None:
        now = time.monotonic()
        self._outage_pause = min(max(self._outage_pause * 2, 1.0), OUTAGE_MAX_PAUSE)
        self.resume_at = now + self._outage_pause
        if self._outage_since is None:
            self._outage_since = now
            log.warning(
                "Telegram unreachable while polling (%s: %s); retrying with a growing pause",
                type(error).__name__,
                str(error)[:200],
            )

    def conflict(self, description: str) -> None:
        now = time.monotonic()
        self.conflicts += 1
        self._conflict_pause = (
            CONFLICT_FIRST_PAUSE
            if not self._conflict_pause
            else min(self._conflict_pause * 2, CONFLICT_MAX_PAUSE)
        )
        self.resume_at = now + self._conflict_pause
        if now - self._conflict_logged < ALERT_EVERY.total_seconds():
            log.debug("409 Conflict again; polling pauses %.0f s", self._conflict_pause)
            return
        self._conflict_logged = now
        log.error(
            "another process is polling Telegram with the same TELEGRAM_BOT_TOKEN "
            "(409 Conflict: %s); only one lpse-helpdesk may run per bot token. "
            "Polling pauses (%.0f s, growing to %.0f s); stop the other process",
            description,
            self._conflict_pause,
            CONFLICT_MAX_PAUSE,
        )
        task = asyncio.get_running_loop().create_task(self._alert())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_error(self, error: TelegramError) -> None:
        """PTB's polling error callback (must not raise): what the request did not absorb."""
        try:
            if isinstance(error, Conflict):
                self.conflict(str(error))
            elif classify(error, to_group=False) in (Kind.TRANSIENT, Kind.MAYBE_SENT):
                self.unreachable(error)
            else:
                log.error("polling for updates failed: %s: %s", type(error).__name__, error)
        except Exception:  # never break PTB's polling loop
            log.exception("error while handling a polling error")

    async def _alert(self) -> None:
        now = self.clock.now()
        chat_id = self.group.current

        def work(session: Session) -> bool:
            if not claim_hourly(session, CONFLICT_ALERT, now, ALERT_EVERY):
                return False
            enqueue_telegram(
                session,
                TelegramOp.MESSAGE,
                ticket_id=None,
                payload={"chat_id": chat_id, "text": CONFLICT_TEXT, "reply_to": None},
                importance=Importance.SLA_ALERT,
                now=now,
            )
            return True

        try:
            if await self.db.run(work):
                self.wake()
        except Exception:
            log.exception("could not queue the 409 Conflict alert")
