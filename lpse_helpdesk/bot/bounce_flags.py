"""The "clear flag" button on a bounce notice (or a failed-mail notice whose recipient the
server refused outright): staff who know an address works again (the
user phoned, the mailbox was full and is emptied) lift its bounce flag, so automatic mail to
it flows again. Callback data ``uf:<outbox item id of the notice>``; checked against the
database, never trusted."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import CallbackQueryHandler

from lpse_helpdesk.bot.access import Access
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import FlaggedAddress, OutboxItem

__all__ = ["PATTERN", "clear_flag_handler", "clear_flags", "keyboard"]

PREFIX = "uf"
NOTICES = ("bounce", "mail_failed")  # the notices that may report flagged addresses
PATTERN = re.compile(r"^uf:(\d{1,12})$")
LABEL = "✅ Hapus tanda bounce"
NOT_ALLOWED = "Maaf, hanya petugas helpdesk yang dapat memakai tombol ini."


def keyboard(item_id: int, payload: dict[str, Any]) -> list[list[tuple[str, str]]] | None:
    """The button for a bounce notice that flagged addresses, else None."""
    if payload.get("notice") not in NOTICES or not payload.get("flagged"):
        return None
    return [[(LABEL, f"{PREFIX}:{item_id}")]]


def clear_flags(session: Session, item_id: int) -> list[str]:
    """Lift the flags the notice reported; the addresses cleared (empty if none were left)."""
    item = session.get(OutboxItem, item_id)
    if item is None or item.payload.get("notice") not in NOTICES:
        return []
    addresses = [str(a).lower() for a in item.payload.get("flagged") or []]
    if not addresses:
        return []
    result = session.execute(delete(FlaggedAddress).where(FlaggedAddress.address.in_(addresses)))
    return addresses if getattr(result, "rowcount", 0) else []


def clear_flag_handler(db: Database, access: Access) -> CallbackQueryHandler[Any, Any]:
    async def on_clear(update: Update, _context: Any) -> None:
        query = update.callback_query
        if query is None:
            return
        if not access.is_staff(update):
            await query.answer(NOT_ALLOWED, show_alert=True)
            return
        match = PATTERN.match(query.data or "")
        if match is None:
            return
        item_id = int(match.group(1))

        def work(session: Session) -> list[str]:
            return clear_flags(session, item_id)

        cleared = await db.run(work)
        if query.message is not None:
            await query.edit_message_reply_markup(reply_markup=None)
        if cleared:
            await query.answer("Tanda bounce dihapus; e-mail otomatis ke alamat itu dikirim lagi.")
        else:
            await query.answer("Tanda bounce sudah tidak ada.")

    return CallbackQueryHandler(on_clear, pattern=PATTERN)
