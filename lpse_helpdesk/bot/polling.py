"""Long polling that survives outages and a second process polling with the same token.

PTB's polling loop already retries network errors with a growing pause (up to 30 s); this
guard gives it clear logs instead of a traceback per failed poll, and handles HTTP 409
"terminated by other getUpdates request" (two processes with one token): one clear log line
and one alert in the group per hour (across processes: the alert is claimed in the
database), and a pause before the next poll that doubles up to `CONFLICT_MAX_PAUSE`, so the
two pollers do not take turns ending each other's polls in a busy loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from telegram.error import Conflict, TelegramError
from telegram.request import HTTPXRequest

from lpse_helpdesk.bot.errors import Kind, classify
from lpse_helpdesk.bot.group import CONFLICT_ALERT, GroupState, claim_hourly
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram

log = logging.getLogger(__name__)

CONFLICT_FIRST_PAUSE = 5.0
CONFLICT_MAX_PAUSE = 300.0
ALERT_EVERY = dt.timedelta(hours=1)

CONFLICT_TEXT = (
    "⚠️ Ada proses lain yang memakai token bot helpdesk yang sama (Telegram menjawab "
    "409 Conflict). Hanya satu layanan lpse-helpdesk boleh berjalan dengan satu token: "
    "hentikan salinan yang lain. Sementara itu bot menunda membaca pesan dan tombol."
)


class GuardedRequest(HTTPXRequest):
    """The getUpdates request: waits out a pause before polling, notes each success."""

    def __init__(self, guard: PollingGuard, read_timeout: float) -> None:
        super().__init__(connection_pool_size=1, read_timeout=read_timeout)
        self.guard = guard

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        pause = self.guard.resume_at - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        code, payload = await super().do_request(*args, **kwargs)
        if code == 200:
            self.guard.answered()
        return code, payload


class PollingGuard:
    def __init__(self, db: Database, clock: Clock, group: GroupState) -> None:
        self.db = db
        self.clock = clock
        self.group = group
        self.wake: Callable[[], None] = lambda: None
        self.resume_at = 0.0
        self.conflicts = 0
        self._conflict_pause = 0.0
        self._conflict_logged = -1e9
        self._outage_since: float | None = None
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

    def on_error(self, error: TelegramError) -> None:
        """PTB's polling error callback (must not raise)."""
        try:
            self._on_error(error)
        except Exception:  # never break PTB's polling loop
            log.exception("error while handling a polling error")

    def _on_error(self, error: TelegramError) -> None:
        now = time.monotonic()
        if isinstance(error, Conflict):
            self.conflicts += 1
            self._conflict_pause = (
                CONFLICT_FIRST_PAUSE
                if not self._conflict_pause
                else min(self._conflict_pause * 2, CONFLICT_MAX_PAUSE)
            )
            self.resume_at = now + self._conflict_pause
            if now - self._conflict_logged >= ALERT_EVERY.total_seconds():
                self._conflict_logged = now
                log.error(
                    "another process is polling Telegram with the same TELEGRAM_BOT_TOKEN "
                    "(409 Conflict: %s); only one lpse-helpdesk may run per bot token. "
                    "Polling pauses (%.0f s, growing to %.0f s); stop the other process",
                    str(error)[:120],
                    self._conflict_pause,
                    CONFLICT_MAX_PAUSE,
                )
                task = asyncio.get_running_loop().create_task(self._alert())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                log.debug("409 Conflict again; polling pauses %.0f s", self._conflict_pause)
            return
        kind = classify(error, to_group=False)
        if kind in (Kind.TRANSIENT, Kind.MAYBE_SENT):
            if self._outage_since is None:
                self._outage_since = now
                log.warning(
                    "Telegram unreachable while polling (%s: %s); retrying with a growing pause",
                    type(error).__name__,
                    str(error)[:200],
                )
            return
        log.error("polling for updates failed: %s: %s", type(error).__name__, error)

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
