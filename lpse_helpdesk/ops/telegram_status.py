"""/status in Telegram: what `lpse-helpdesk status` prints, for supervisors only."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from html import escape
from typing import Any

from telegram import Update
from telegram.constants import ParseMode

from lpse_helpdesk.bot.access import Access
from lpse_helpdesk.ops.status import collect, render
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import Clock

NOT_ALLOWED = "Maaf, /status hanya untuk supervisor."


def status_command(
    db: Database,
    clock: Clock,
    access: Access,
    *,
    folders: list[str],
    group_id: int,
    database_label: str,
) -> Callable[[Update, Any], Coroutine[Any, Any, None]]:
    async def on_status(update: Update, context: Any) -> None:
        message = update.effective_message
        if message is None:
            return
        if not access.is_supervisor(update):
            await message.reply_text(NOT_ALLOWED)
            return
        status = await db.run_plain(
            lambda: collect(
                db,
                clock.now(),
                folders=folders,
                group_id=group_id,
                database_label=database_label,
            )
        )
        text = "\n".join(render(status))
        await message.reply_text(f"<pre>{escape(text)}</pre>", parse_mode=ParseMode.HTML)

    return on_status
