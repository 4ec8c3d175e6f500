"""Who may do what: staff act only from the helpdesk group; supervisors run /rekap.

"The helpdesk group" is `GroupState.current`: after Telegram turns the group into a
supergroup, presses and commands from the new chat id pass the same checks. People who
are not staff are answered at most once per `STRANGER_SECONDS` each, and after everything
else (`StrangerGate`), so one account cannot starve the helpdesk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telegram import Update

from lpse_helpdesk.bot.group import GroupState

log = logging.getLogger(__name__)

NOT_ALLOWED = (
    "Maaf, tidak diizinkan: hanya petugas helpdesk di grup helpdesk yang dapat melakukannya."
)
NOT_SUPERVISOR = "Maaf, tidak diizinkan: perintah ini hanya untuk supervisor."
MOVED = (
    "Grup ini sudah dipindah Telegram ke supergroup baru; kartu terbaru ada di sana. "
    "Tombol pada kartu lama tidak berlaku lagi."
)
STRANGER_SECONDS = 600.0


class StrangerGate:
    """At most one answer per person per `every` seconds; the rest are counted and logged."""

    def __init__(
        self, every: float = STRANGER_SECONDS, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self._now = now
        self._answered: dict[int, float] = {}
        self.ignored: dict[int, int] = {}

    def allow(self, user_id: int) -> bool:
        now = self._now()
        last = self._answered.get(user_id)
        if last is not None and now - last < self.every:
            count = self.ignored.get(user_id, 0) + 1
            self.ignored[user_id] = count
            if count == 1 or count % 100 == 0:
                log.info(
                    "ignoring messages from non-staff Telegram user %s: %d since the last "
                    "answer (answered at most once per %.0f min)",
                    user_id,
                    count,
                    self.every / 60,
                )
            return False
        if self.ignored.get(user_id):
            log.info(
                "non-staff Telegram user %s: %d messages were ignored; answering again",
                user_id,
                self.ignored[user_id],
            )
        self.ignored[user_id] = 0
        self._answered[user_id] = now
        if len(self._answered) > 10_000:  # forget the oldest, keep memory bounded
            for old in sorted(self._answered, key=self._answered.__getitem__)[:5_000]:
                self._answered.pop(old, None)
                self.ignored.pop(old, None)
        return True


class Access:
    def __init__(
        self,
        chat_id: int | GroupState,
        staff_ids: frozenset[int] = frozenset(),
        supervisor_ids: frozenset[int] = frozenset(),
        *,
        strangers: StrangerGate | None = None,
    ) -> None:
        self.group = chat_id if isinstance(chat_id, GroupState) else GroupState.of(chat_id)
        self.staff_ids = staff_ids
        self.supervisor_ids = supervisor_ids
        self.strangers = strangers or StrangerGate()

    @property
    def chat_id(self) -> int:
        return self.group.current

    def in_group(self, chat_id: int) -> bool:
        """The one check that a chat is the helpdesk group (its current id)."""
        return self.group.is_group(chat_id)

    def is_staff(self, update: Update) -> bool:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or not self.in_group(chat.id) or user.is_bot:
            return False
        return not self.staff_ids or user.id in self.staff_ids or user.id in self.supervisor_ids

    def refusal(self, update: Update) -> str:
        """Why a press is refused: a card left in the group's old chat, or not staff."""
        chat = update.effective_chat
        if chat is not None and chat.id in self.group.previous:
            return MOVED
        return NOT_ALLOWED

    def is_supervisor(self, update: Update) -> bool:
        """Supervisors may ask in the group or in a private chat with the bot."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or user.id not in self.supervisor_ids:
            return False
        return self.in_group(chat.id) or chat.type == "private"

    def known(self, update: Update) -> bool:
        """Staff or supervisor wherever they write (their answers are never rationed)."""
        user = update.effective_user
        if user is None:
            return False
        if user.id in self.supervisor_ids or user.id in self.staff_ids:
            return True
        return self.is_staff(update)

    def may_answer(self, update: Update) -> bool:
        """Whether a refusal is worth a message: always for staff, rationed for others."""
        user = update.effective_user
        if user is None:
            return False
        return self.known(update) or self.strangers.allow(user.id)
