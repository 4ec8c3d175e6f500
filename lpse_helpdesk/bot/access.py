"""Who may do what: staff act only from the helpdesk group; supervisors run /rekap."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Update

NOT_ALLOWED = (
    "Maaf, tidak diizinkan: hanya petugas helpdesk di grup helpdesk yang dapat melakukannya."
)
NOT_SUPERVISOR = "Maaf, tidak diizinkan: perintah ini hanya untuk supervisor."


@dataclass(frozen=True)
class Access:
    chat_id: int
    staff_ids: frozenset[int] = frozenset()
    supervisor_ids: frozenset[int] = frozenset()

    def is_staff(self, update: Update) -> bool:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or chat.id != self.chat_id or user.is_bot:
            return False
        return not self.staff_ids or user.id in self.staff_ids or user.id in self.supervisor_ids

    def is_supervisor(self, update: Update) -> bool:
        """Supervisors may ask in the group or in a private chat with the bot."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or user.id not in self.supervisor_ids:
            return False
        return chat.id == self.chat_id or chat.type == "private"
