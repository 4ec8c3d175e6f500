"""Telegram update handlers: thin glue between PTB and `Interactions` / `queries`.

Every handler answers (a press always gets answerCallbackQuery, a command a reply), checks
permissions first, and does its database work on the database's threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from html import escape
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from lpse_helpdesk.bot import cards, queries, texts
from lpse_helpdesk.bot.access import NOT_ALLOWED, NOT_SUPERVISOR, Access
from lpse_helpdesk.bot.callback_data import Button, Press, decode
from lpse_helpdesk.bot.dispatcher import markup
from lpse_helpdesk.bot.interactions import Interactions, PressResult, ReplyResult
from lpse_helpdesk.bot.prompt_copies import prompt_copy
from lpse_helpdesk.bot.reply_handlers import ON_PREVIEW, replied_to_preview
from lpse_helpdesk.bot.topics import Topics
from lpse_helpdesk.reports.delivery import RecapDelivery
from lpse_helpdesk.reports.period import PeriodError
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import TelegramCard
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.tickets import Workflow

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
PROMPT_RECORD_WAIT = 1.0  # seconds


def _actor(update: Update) -> Actor:
    user = update.effective_user
    assert user is not None
    return Actor.telegram(user.id, user.full_name)


class Handlers:
    def __init__(
        self,
        db: Database,
        interactions: Interactions,
        access: Access,
        *,
        wake: Callable[[], None],
        ticket_prefix: str,
        recap: RecapDelivery | None = None,
    ) -> None:
        self.db = db
        self.interactions = interactions
        self.access = access
        self.wake = wake
        self.prefix = ticket_prefix
        self.recap = recap
        self.topics: Topics | None = None  # set by the service: topics mode or not

    @property
    def workflow(self) -> Workflow:
        return self.interactions.workflow

    # --- presses ---------------------------------------------------------------------------

    async def on_press(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        if not self.access.is_staff(update):
            await query.answer(self.access.refusal(update), show_alert=True)
            return
        press = decode(query.data)
        if press is None:
            await query.answer(texts.STALE_BUTTON, show_alert=True)
            return
        if press.button is Button.PAGE:
            await self._queue_page(query, press.version)
            return
        user = update.effective_user
        assert user is not None
        actor = _actor(update)
        result: PressResult = await self.db.run(
            lambda s: self.interactions.press(s, press, actor, user.id)
        )
        if result.queued:
            self.wake()
        if result.keyboard is not None and query.message is not None:
            try:
                await query.edit_message_reply_markup(reply_markup=markup(result.keyboard))
            except BadRequest as error:
                if "not modified" not in str(error).lower():
                    raise
        await query.answer(result.answer[:200] or None, show_alert=result.alert)

    # --- typed replies ---------------------------------------------------------------------

    async def on_reply(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or message.reply_to_message is None or not message.text:
            return  # photos and files for a prompt: the replies flow (reply_handlers.py)
        if not self.access.is_staff(update):
            return  # not ours to answer: ordinary chat in some other group
        user = update.effective_user
        assert user is not None
        actor = _actor(update)
        text = message.text
        replied = message.reply_to_message

        def work(session: Any) -> ReplyResult:
            return self.interactions.reply(
                session,
                message.chat_id,
                prompt_copy(session, message.chat_id, replied, user.id),
                user.id,
                text,
                actor,
                message.message_id,
            )

        result = await self.db.run(work)
        if not result.handled and replied.from_user is not None and replied.from_user.is_bot:
            # A quick reply may arrive before the bot has noted its question's message id.
            await asyncio.sleep(PROMPT_RECORD_WAIT)
            result = await self.db.run(work)
        if not result.handled and replied_to_preview(update):
            await self._say(update, ON_PREVIEW)  # answered, never ignored
        if result.queued:
            self.wake()

    # --- commands --------------------------------------------------------------------------

    async def _staff_only(self, update: Update) -> bool:
        if self.access.is_staff(update):
            return True
        await self._refuse(update, NOT_ALLOWED)
        return False

    async def _refuse(self, update: Update, text: str) -> None:
        """Staff always hear why; anyone else at most once per 10 minutes, after the rest."""
        if self.access.may_answer(update):
            known = self.access.known(update)
            await self._say(update, text, Importance.PROMPT if known else Importance.STRANGER)

    async def _say(
        self,
        update: Update,
        text: str,
        importance: Importance = Importance.PROMPT,
        keyboard: cards.Keyboard | None = None,
    ) -> None:
        """Reply through the outbox (charged to the chat it goes to), in the same topic."""
        message = update.effective_message
        if message is None:
            return
        chat_id, reply_to = message.chat_id, message.message_id
        thread = message.message_thread_id if message.is_topic_message else None
        await self.db.run(
            lambda s: self.interactions.say(
                s, chat_id, reply_to, text, importance, thread_id=thread, keyboard=keyboard
            )
        )
        self.wake()

    async def start(self, update: Update, context: Context) -> None:
        chat = update.effective_chat
        if chat is not None and chat.type == "private":
            if self.access.is_supervisor(update):
                await self._say(update, texts.SUPERVISOR_WELCOME)
            else:  # anyone may write to a bot: answered at most once per 10 minutes
                await self._refuse(update, texts.PRIVATE_HELP)
            return
        if not await self._staff_only(update):
            return
        await self._say(update, texts.HELP)

    async def on_new_members(self, update: Update, context: Context) -> None:
        """A short welcome for a person who joins the helpdesk group."""
        message = update.effective_message
        if message is None or message.chat_id != self.access.chat_id:
            return
        for member in message.new_chat_members or ():
            if not member.is_bot:
                await self._say(update, texts.welcome_member(member.full_name))

    async def help(self, update: Update, context: Context) -> None:
        await self.start(update, context)

    async def cancel(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not await self._staff_only(update):
            return
        await self.db.run(
            lambda s: self.interactions.cancel(s, message.chat_id, user.id, message.message_id)
        )
        self.wake()

    async def ticket(self, update: Update, context: Context) -> None:
        if not await self._staff_only(update):
            return
        args = context.args or []
        if not args:
            await self._say(update, "Gunakan: /tiket &lt;nomor&gt;, mis. /tiket 42")
            return
        workflow = self.workflow
        in_topics = self.topics is not None and self.topics.enabled

        def work(session: Any) -> tuple[str, str | None] | None:
            ticket = queries.find_ticket(
                session, args[0], self.prefix, workflow.clock.now(), workflow.timezone
            )
            if ticket is None:
                return None
            card = session.get(TelegramCard, ticket.id)
            if card is not None and in_topics:
                # The card lives in its topic: a link there, rather than a second card.
                link = cards.ticket_link(ticket.number, card.chat_id, card.message_id)
                return str(ticket.number), texts.card_is_here(link)
            payload: dict[str, Any] = {}
            if card is not None:
                session.delete(card)  # the next card is posted anew, below the command
                payload["replaces"] = card.message_id  # the old one then points to it
            item = enqueue_telegram(
                session,
                TelegramOp.CARD,
                ticket_id=ticket.id,
                payload=payload,
                importance=Importance.PROMPT,
                now=workflow.clock.now(),
            )
            if item is not None:  # a pending edit is reused: it becomes the new card, now
                item.payload = {**item.payload, **payload}
                item.next_attempt_at = min(item.next_attempt_at, workflow.clock.now())
            return str(ticket.number), None

        found = await self.db.run(work)
        if found is None:
            await self._say(update, f"Tiket {escape(args[0])} tidak ditemukan.")
        elif found[1] is not None:
            await self._say(update, found[1])
        else:
            self.wake()

    async def queue(self, update: Update, context: Context) -> None:
        if not await self._staff_only(update):
            return
        text, keyboard = await self.db.run(lambda s: self._page(s, 0))
        await self._say(update, text, keyboard=keyboard)

    def _page(self, session: Any, page: int) -> tuple[str, cards.Keyboard | None]:
        workflow = self.workflow
        lines, page, pages = queries.queue_page(
            session, workflow.clock.now(), workflow.timezone, page
        )
        if not lines:
            return texts.QUEUE_EMPTY, None
        head = texts.queue_heading(page, pages)
        keyboard: cards.Keyboard | None = None
        if pages > 1:
            row = []
            if page > 0:
                row.append(("◀ Sebelumnya", Press(Button.PAGE, 0, page - 1).encode()))
            if page < pages - 1:
                row.append(("Berikutnya ▶", Press(Button.PAGE, 0, page + 1).encode()))
            keyboard = [row]
        return "\n".join([head, *lines]), keyboard

    async def _queue_page(self, query: Any, page: int) -> None:
        text, keyboard = await self.db.run(lambda s: self._page(s, page))
        try:
            await query.edit_message_text(
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup(keyboard),
                disable_web_page_preview=True,
            )
        except BadRequest as error:
            if "not modified" not in str(error).lower():
                raise
        await query.answer()

    async def search(self, update: Update, context: Context) -> None:
        if not await self._staff_only(update):
            return
        words = " ".join(context.args or [])
        if not words:
            await self._say(update, "Gunakan: /cari &lt;kata atau e-mail&gt;")
            return
        lines = await self.db.run(lambda s: queries.search(s, words))
        head = f"<b>Hasil pencarian</b> “{escape(words)}”:"
        await self._say(update, "\n".join([head, *lines]) if lines else "Tidak ditemukan.")

    async def mine(self, update: Update, context: Context) -> None:
        user = update.effective_user
        if user is None or not await self._staff_only(update):
            return
        lines = await self.db.run(lambda s: queries.mine(s, user.id))
        head = "<b>Tiket yang pernah Anda tangani</b>:"
        await self._say(
            update, "\n".join([head, *lines]) if lines else "Anda belum menangani tiket."
        )

    async def rekap(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None:
            return
        if not self.access.is_supervisor(update):
            await self._refuse(update, NOT_SUPERVISOR)
            return
        recap = self.recap
        if recap is None:
            await self._say(update, "Rekap belum tersedia.")
            return
        try:
            request = recap.parse(list(context.args or []))
        except PeriodError as error:
            await self._say(update, recap.usage(error))
            return
        chat_id, reply_to = message.chat_id, message.message_id
        await self.db.run(lambda s: recap.queue(s, request, chat_id, reply_to=reply_to))
        self.wake()

    async def on_error(self, update: object, context: Context) -> None:
        log.error("error while handling an update", exc_info=context.error)
        if isinstance(update, Update) and update.callback_query is not None:
            try:
                await update.callback_query.answer(texts.FAILED)
            except Exception:  # the query may be too old already
                log.debug("could not answer the failed callback", exc_info=True)
