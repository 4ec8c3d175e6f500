"""Sliding-window budgets that keep the bot under Telegram's limits instead of hitting them."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    group_per_minute: int = 18  # Telegram: 20 messages/min per group; keep a margin
    global_per_second: int = 25  # Telegram: about 30 messages/s overall


class Window:
    """At most `limit` events in any `span` seconds."""

    def __init__(self, limit: int, span: float, now: Callable[[], float]) -> None:
        self.limit = limit
        self.span = span
        self._now = now
        self._events: deque[float] = deque()

    def _trim(self) -> float:
        now = self._now()
        while self._events and self._events[0] <= now - self.span:
            self._events.popleft()
        return now

    def available(self) -> int:
        self._trim()
        return max(self.limit - len(self._events), 0)

    def wait_time(self) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        now = self._trim()
        if len(self._events) < self.limit:
            return 0.0
        return self._events[0] + self.span - now + 0.01

    def record(self) -> None:
        self._trim()
        self._events.append(self._now())


class Budget:
    """Telegram's limits, each message charged to the chat it goes to.

    A group (negative chat id) has its own per-minute window; private chats count only
    toward the bot's overall per-second window. Edits count toward neither (Telegram does
    not limit them like sends).
    """

    def __init__(self, limits: Limits, now: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.overall = Window(limits.global_per_second, 1.0, now)
        self._groups: dict[int, Window] = {}
        self._now = now
        self.blocked_until = 0.0  # after a 429: nothing at all until then

    def set_group_limit(self, limit: int) -> None:
        """Messages per minute per group (e.g. this instance's share when several run)."""
        self.limits = Limits(limit, self.limits.global_per_second)
        for window in self._groups.values():
            window.limit = limit

    def chat(self, chat_id: int) -> Window | None:
        """The per-minute window of a group; None for a private chat."""
        if chat_id >= 0:
            return None
        window = self._groups.get(chat_id)
        if window is None:
            window = self._groups[chat_id] = Window(self.limits.group_per_minute, 60.0, self._now)
        return window

    def available(self, chat_id: int) -> int:
        window = self.chat(chat_id)
        return window.available() if window is not None else self.overall.available()

    def wait_time(self, chat_id: int, *, edit: bool = False) -> float:
        waits = [self.overall.wait_time(), max(self.blocked_until - self._now(), 0.0)]
        window = None if edit else self.chat(chat_id)
        if window is not None:
            waits.append(window.wait_time())
        return max(waits)

    def record(self, chat_id: int, *, edit: bool = False) -> None:
        self.overall.record()
        window = None if edit else self.chat(chat_id)
        if window is not None:
            window.record()

    def block(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, self._now() + seconds)
