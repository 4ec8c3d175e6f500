"""Telegram glue for the preview flow: our buttons, and photos or files sent as replies.

Every press is answered; a reply to a bot question that the bot cannot use (a sticker, a
voice note, a file over the size limit) is answered too, never ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from html import escape

from sqlalchemy.orm import Session
from telegram import Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from lpse_helpdesk.bot.access import NOT_ALLOWED, Access
from lpse_helpdesk.bot.interactions import Interactions
from lpse_helpdesk.bot.prompt_copies import prompt_copy
from lpse_helpdesk.bot.replies import Answer, Replies, StaffFile
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import PromptStatus, TelegramPrompt
from lpse_helpdesk.workflow.actors import Actor

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
_SAFE_NAME = re.compile(r"[^\w.\- ()]+", re.UNICODE)


PREVIEW_MARK = "👁 Pratinjau e-mail"
ON_PREVIEW = (
    "Pratinjau tidak dapat dibalas. Untuk mengganti teks atau menambah lampiran, tekan "
    "✏️ Ubah pada pratinjau, lalu balas pertanyaan bot yang muncul."
)


def replied_to_preview(update: Update) -> bool:
    """Whether the message answers one of our previews (staff may try to edit it so)."""
    message = update.effective_message
    replied = message.reply_to_message if message is not None else None
    if replied is None or replied.from_user is None or not replied.from_user.is_bot:
        return False
    return (replied.text or "").startswith(PREVIEW_MARK)


def safe_filename(name: str | None, fallback: str) -> str:
    """A file name for a mail attachment: no paths, no control characters, not empty."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = " ".join(_SAFE_NAME.sub("_", base).split()).strip("._ ")
    return base[:120] or fallback


class ReplyHandlers:
    def __init__(
        self,
        db: Database,
        interactions: Interactions,
        replies: Replies,
        access: Access,
        *,
        wake: Callable[[], None],
        max_bytes: int,
    ) -> None:
        self.db = db
        self.interactions = interactions
        self.replies = replies
        self.access = access
        self.wake = wake
        self.max_bytes = max_bytes

    async def on_press(self, update: Update, context: Context) -> None:
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None:
            return
        if not self.access.is_staff(update):
            await query.answer(NOT_ALLOWED, show_alert=True)
            return
        data = query.data or ""
        actor = Actor.telegram(user.id, user.full_name)
        answer: Answer = await self.db.run(lambda s: self.replies.press(s, data, actor, user.id))
        if answer.queued:
            self.wake()
        if answer.delete_message and query.message is not None:
            try:
                await query.get_bot().delete_message(
                    query.message.chat.id, query.message.message_id
                )
            except TelegramError as error:
                log.info("could not remove the used message: %s", error)
                answer.clear_buttons = True
        if answer.clear_buttons and query.message is not None:
            try:
                await query.edit_message_reply_markup(reply_markup=None)
            except BadRequest as error:
                if "not modified" not in str(error).lower():
                    log.info("could not clear the buttons: %s", error)
        await query.answer(answer.text[:200] or None, show_alert=answer.alert)

    async def on_media_reply(self, update: Update, context: Context) -> None:
        """A reply without text: a photo or file for the mail, or something unusable."""
        message = update.effective_message
        user = update.effective_user
        if message is None or user is None or message.reply_to_message is None:
            return
        if not self.access.is_staff(update):
            return
        chat_id, replied = message.chat_id, message.reply_to_message
        message_id = message.message_id
        interactions = self.interactions

        def check(session: Session) -> int | None:
            reply_to = prompt_copy(session, chat_id, replied, user.id)  # either copy counts
            prompt = interactions.find_prompt(session, chat_id, reply_to)
            if prompt is None:
                return None
            if not interactions.usable_prompt(session, prompt, chat_id, user.id, message_id):
                return -1
            return prompt.id

        prompt_id = await self.db.run(check)
        if prompt_id is None:
            if replied_to_preview(update):
                await self._say(chat_id, message_id, ON_PREVIEW)
            return  # else a reply to something that is not a question of ours
        if prompt_id < 0:
            self.wake()
            return
        staff_file, problem = await self._download(update)
        if staff_file is None:
            await self._say(chat_id, message_id, problem)
            return
        actor = Actor.telegram(user.id, user.full_name)
        caption = message.caption
        replies = self.replies

        def attach(session: Session) -> None:
            prompt = session.get(TelegramPrompt, prompt_id)
            if prompt is None or prompt.status is not PromptStatus.PENDING:
                interactions.say(session, chat_id, message_id, "Isian ini sudah tidak berlaku.")
                return
            replies.on_file(session, prompt, staff_file, caption, actor)

        await self.db.run(attach)
        self.wake()

    async def _download(self, update: Update) -> tuple[StaffFile | None, str]:
        message = update.effective_message
        assert message is not None
        limit_mb = self.max_bytes // (1024 * 1024)
        if message.photo:
            photo = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
            file_id, size = photo.file_id, photo.file_size
            name = f"foto-{message.message_id}.jpg"
            content_type = "image/jpeg"
        elif message.document is not None:
            document = message.document
            file_id, size = document.file_id, document.file_size
            name = safe_filename(document.file_name, f"berkas-{message.message_id}")
            content_type = document.mime_type or "application/octet-stream"
        else:
            return None, (
                "Balasan ini tidak dapat dipakai. Balas pesan bot dengan teks, "
                "foto, atau berkas (dokumen)."
            )
        too_big = (
            f"Berkas terlalu besar (lebih dari {limit_mb} MB) untuk dilampirkan; kirim tautan "
            "unduhannya di dalam teks."
        )
        if size is not None and size > self.max_bytes:
            return None, too_big
        try:
            telegram_file = await message.get_bot().get_file(file_id)
            data = bytes(await telegram_file.download_as_bytearray())
        except TelegramError as error:
            log.warning("could not download a reply file: %s", error)
            return None, "Berkas tidak dapat diambil dari Telegram; silakan kirim ulang."
        if len(data) > self.max_bytes:
            return None, too_big
        return StaffFile(name, content_type, data), ""

    async def _say(self, chat_id: int, reply_to: int, text: str) -> None:
        interactions = self.interactions
        await self.db.run(lambda s: interactions.say(s, chat_id, reply_to, escape(text)))
        self.wake()
