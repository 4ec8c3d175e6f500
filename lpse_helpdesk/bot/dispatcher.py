"""Delivers the Telegram outbox: cards, notices, prompts, alerts, documents.

Importance first (new tickets and SLA alerts before edits), under the group's and the
bot's rate limits, honouring RetryAfter. When more new tickets wait than the group's
budget lets through within a minute, a digest lists them all at once so every ticket is
visible quickly (in terser lines when the budget has few messages left); the cards follow
as the budget allows. Card edits are coalesced: one
pending edit per ticket, applied a second after the change, skipped when nothing visible
changed, and "message is not modified" counts as success.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import warnings
from dataclasses import dataclass, replace
from functools import partial
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select
from sqlalchemy.orm import Session
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    ReplyParameters,
)
from telegram import (
    Message as TgMessage,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from lpse_helpdesk.bot import board, cards, quiet, texts, topics
from lpse_helpdesk.bot.interactions import attachment_bytes
from lpse_helpdesk.bot.ratelimit import Budget, Limits
from lpse_helpdesk.bot.replies import notice_keyboard
from lpse_helpdesk.bot.topics import Topics
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.ops import metrics
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import (
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    PromptStatus,
    TelegramCard,
    TelegramPrompt,
    Ticket,
)
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import Clock, as_utc
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, claim_due, enqueue_telegram
from lpse_helpdesk.workflow.worker import PollingWorker

log = logging.getLogger(__name__)

DIGEST_LINES = 30  # full lines (number, sender, subject) per digest message
DIGEST_CHARS = 3500  # characters of a digest message (Telegram allows 4096)
#: Group messages per minute kept for digests, prompts, notices and alerts: a new ticket's
#: own card never takes the last ones, so a burst is announced at once (within
#: RESERVE_DIGEST_DELAY when only the reserve is left).
RESERVE = 3
#: Once only the reserve is left, a digest waits until its oldest ticket has waited this
#: long: each of the reserve's few messages then lists every ticket that came meanwhile, and
#: the reserve lasts until the minute's window frees messages again.
RESERVE_DIGEST_DELAY = dt.timedelta(seconds=60 / (RESERVE + 1))


_NOT_MESSAGES = frozenset({TelegramOp.DELETE, TelegramOp.REACTION})
_REPOSTED = frozenset({TelegramOp.CARD, TelegramOp.BOARD})  # posted again when deleted


@dataclass(frozen=True)
class Outgoing:
    """One Telegram call prepared from an outbox row (in a database thread)."""

    item_id: int
    op: str
    chat_id: int
    text: str
    keyboard: cards.Keyboard | None = None
    reply_to: int | None = None
    edit_message_id: int | None = None  # edit this message instead of sending
    fingerprint: str | None = None
    ticket_id: int | None = None
    force_reply: bool = False
    document: tuple[str, bytes] | None = None
    skip: bool = False  # nothing visible changed
    thread_id: int | None = None  # the ticket's forum topic (topics mode)
    silent: bool = False  # disable_notification (see bot/quiet.py)
    reaction: str | None = None  # REACTION: the emoji to set on message edit_message_id
    placeholder: str | None = None  # PROMPT: what the input field says

    @property
    def counts_for_group(self) -> bool:
        return self.edit_message_id is None and self.op not in _NOT_MESSAGES

    @property
    def is_new_card(self) -> bool:
        return self.op == TelegramOp.CARD and self.edit_message_id is None


def retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: Any = error.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def markup(keyboard: cards.Keyboard | None) -> InlineKeyboardMarkup | None:
    if keyboard is None:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=data) for label, data in row]
            for row in keyboard
        ]
    )


class TelegramDispatcher(PollingWorker):
    name = "telegram dispatcher"

    def __init__(
        self,
        bot: Bot,
        db: Database,
        clock: Clock,
        domain: DomainConfig,
        timezone: ZoneInfo,
        chat_id: int,
        *,
        limits: Limits | None = None,
        budget: Budget | None = None,
        poll_seconds: float = 0.5,
        batch: int = 40,
        urgency: cards.Urgency | None = None,
        calendar: BusinessCalendar | None = None,
        topics: Topics | None = None,
    ) -> None:
        super().__init__()
        self.bot = bot
        self.db = db
        self.clock = clock
        self.domain = domain
        self.timezone = timezone
        self.chat_id = chat_id
        self.budget = budget or Budget(limits or Limits())
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.urgency = urgency
        self.calendar = calendar or (urgency.calendar if urgency is not None else None)
        self.topics = topics
        self.sent = 0
        self.retry_after_received = 0
        #: Digests go from one instance only (the update receiver's); see app.telegram_bot.
        self.digests = True

    async def work_once(self) -> bool:
        return await self.dispatch_once()

    # --- one round -------------------------------------------------------------------------

    async def dispatch_once(self) -> bool:
        """Send what is due and fits the budget; True when something was done."""
        # New cards are not even fetched while they must wait: they would fill the batch and
        # hold back edits, notices and alerts. The digest decides after the fetch, so that it
        # has seen every new card this round may send.
        new_cards = self.budget.group.available() > RESERVE
        ids = await self.db.run(partial(self._due_ids, new_cards=new_cards))
        await self._digest_if_needed()
        progressed = False
        for item_id in ids:
            if self.stopping:
                break
            outgoing = await self.db.run(partial(self._prepare, item_id=item_id))
            if outgoing is None:
                progressed = True
                continue
            if outgoing.skip:
                await self.db.run(partial(self._done, out=outgoing, sent=None))
                progressed = True
                continue
            if outgoing.is_new_card and self.budget.group.available() <= RESERVE:
                continue  # the card waits; its ticket is listed in a digest
            wait = self.budget.wait_time(counts_for_group=outgoing.counts_for_group)
            if wait > 0:
                if wait > self.poll_seconds * 2:
                    break  # the rest waits for budget; look again soon
                await asyncio.sleep(wait)
            if not await self._send(outgoing):
                break
            progressed = True
        return progressed

    def _due_ids(self, session: Session, new_cards: bool = True) -> list[int]:
        where = []
        if not new_cards:
            has_card = exists().where(TelegramCard.ticket_id == OutboxItem.ticket_id)
            where.append((OutboxItem.kind != TelegramOp.CARD.value) | has_card)
        return claim_due(
            session, OutboxChannel.TELEGRAM, now=self.clock.now(), limit=self.batch, where=where
        )

    # --- preparing (database thread) -------------------------------------------------------

    def _prepare(self, session: Session, item_id: int) -> Outgoing | None:
        item = session.get(OutboxItem, item_id)
        if item is None or item.status is not OutboxStatus.PENDING:
            return None
        out = self._prepare_item(session, item)
        return self._place(session, item, out) if out is not None else None

    def _prepare_item(self, session: Session, item: OutboxItem) -> Outgoing | None:
        op = item.kind
        if op == TelegramOp.CARD:
            return self._prepare_card(session, item)
        if op == TelegramOp.NOTICE:
            number, reply_to = self._card_anchor(session, item.ticket_id)
            ticket = session.get(Ticket, item.ticket_id) if item.ticket_id else None
            subject = ticket.subject if ticket is not None else ""
            tag = cards.ticket_link(number, self.chat_id, reply_to)
            text = texts.notice_text(session, number, subject, item.payload, self.timezone, tag)
            keyboard = notice_keyboard(item.payload, item.ticket_id)
            return Outgoing(
                item.id,
                op,
                self.chat_id,
                text,
                keyboard=keyboard,
                reply_to=reply_to,
                ticket_id=item.ticket_id,
            )
        if op == TelegramOp.ALERT:
            text = texts.alert_text(session, item.payload, self.timezone)
            return Outgoing(item.id, op, self.chat_id, text)
        if op == TelegramOp.PROMPT:
            prompt = session.get(TelegramPrompt, item.payload.get("prompt"))
            if prompt is None or prompt.status is not PromptStatus.PENDING:
                self._finish(item, OutboxStatus.CANCELLED, "prompt no longer pending")
                return None
            number, reply_to = self._card_anchor(session, prompt.ticket_id)
            text = texts.prompt_text(prompt.action, number, prompt.user_id, prompt.user_name)
            return Outgoing(
                item.id,
                op,
                prompt.chat_id,
                text,
                reply_to=reply_to,
                force_reply=True,
                ticket_id=prompt.ticket_id,
                placeholder=texts.PLACEHOLDERS.get(prompt.action),
            )
        if op == TelegramOp.MESSAGE:
            payload = item.payload
            keyboard = payload.get("keyboard")
            return Outgoing(
                item.id,
                op,
                int(payload.get("chat_id", self.chat_id)),
                str(payload["text"]),
                reply_to=payload.get("reply_to"),
                edit_message_id=payload.get("edit_message_id"),
                keyboard=[[(str(b[0]), str(b[1])) for b in row] for row in keyboard]
                if keyboard
                else None,
                ticket_id=item.ticket_id,
                thread_id=payload.get("thread_id"),
            )
        if op == TelegramOp.DOCUMENT:
            payload = item.payload
            if "content_hex" in payload:
                content: bytes | None = bytes.fromhex(str(payload["content_hex"]))
            else:
                content = attachment_bytes(
                    session, int(payload["message_pk"]), int(payload["part_index"])
                )
            if content is None:
                self._finish(item, OutboxStatus.FAILED, "attachment no longer available")
                return None
            return Outgoing(
                item.id,
                op,
                int(payload.get("chat_id", self.chat_id)),
                str(payload.get("caption", "")),
                reply_to=payload.get("reply_to"),
                document=(str(payload["filename"]) or "lampiran", content),
                ticket_id=item.ticket_id,
            )
        if op in (TelegramOp.DELETE, TelegramOp.REACTION, TelegramOp.BOARD):
            return self._prepare_group_op(session, item)
        self._finish(item, OutboxStatus.FAILED, f"unknown telegram operation {op}")
        return None

    def _card_anchor(self, session: Session, ticket_id: int | None) -> tuple[str, int | None]:
        if ticket_id is None:
            return "", None
        ticket = session.get(Ticket, ticket_id)
        card = session.get(TelegramCard, ticket_id)
        return (ticket.number if ticket else "?"), (card.message_id if card else None)

    def _prepare_card(self, session: Session, item: OutboxItem) -> Outgoing | None:
        if item.ticket_id is None:
            self._finish(item, OutboxStatus.FAILED, "card without ticket")
            return None
        data = cards.load_card(session, item.ticket_id)
        if data is None:
            self._finish(item, OutboxStatus.FAILED, "ticket not found")
            return None
        text = cards.render_text(data, self.domain, self.timezone, self.clock.now(), self.urgency)
        keyboard = cards.render_keyboard(data, self.domain)
        fingerprint = cards.fingerprint(text, keyboard)
        card = session.get(TelegramCard, item.ticket_id)
        if card is not None:
            return Outgoing(
                item.id,
                TelegramOp.CARD,
                card.chat_id,
                text,
                keyboard=keyboard,
                edit_message_id=card.message_id,
                fingerprint=fingerprint,
                ticket_id=item.ticket_id,
                skip=card.rendered_hash == fingerprint,
            )
        return Outgoing(
            item.id,
            TelegramOp.CARD,
            self.chat_id,
            text,
            keyboard=keyboard,
            fingerprint=fingerprint,
            ticket_id=item.ticket_id,
        )

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, out: Outgoing) -> bool:
        """Make the call; False when sending must pause (RetryAfter)."""
        self.budget.record(counts_for_group=out.counts_for_group)
        sent: TgMessage | None = None
        try:
            out = await self._open_topic(out)
            sent = await self._call(out)
        except RetryAfter as error:
            seconds = retry_seconds(error)
            self.retry_after_received += 1
            metrics.retry_after()
            log.warning("telegram asks to wait %.0f s", seconds)
            self.budget.block(seconds)
            await self.db.run(lambda s: self._postpone(s, out.item_id, seconds, "RetryAfter"))
            return False
        except BadRequest as error:
            message = str(error).lower()
            if "not modified" in message or (out.op in _NOT_MESSAGES and "not found" in message):
                await self.db.run(lambda s: self._done(s, out, None))
                return True
            if topics.is_thread_gone(error) and out.ticket_id is not None:
                # A person deleted the ticket's topic: a new topic and card, then this.
                await self.db.run(lambda s: self._topic_gone(s, out))
                return True
            if out.edit_message_id is not None and "not found" in message and out.op in _REPOSTED:
                # The card was deleted in the group: post it again.
                await self.db.run(lambda s: self._forget_card(s, out))
                return True
            if out.reply_to is not None and "replied not found" in message:
                await self.db.run(lambda s: self._drop_reply(s, out))
                return True
            metrics.failed("telegram")
            log.error("telegram refused %s #%s: %s", out.op, out.item_id, error)
            reason = f"BadRequest: {error}"
            await self.db.run(lambda s: self._failed(s, out.item_id, reason))
            return True
        except Forbidden as error:
            metrics.failed("telegram")
            log.error("telegram forbids %s #%s: %s", out.op, out.item_id, error)
            reason = f"Forbidden: {error}"
            if out.chat_id == self.chat_id:
                # Removed from the helpdesk group: keep everything until it is added back.
                await self.db.run(lambda s: self._postpone(s, out.item_id, 300, reason))
            else:
                # A person who never started the bot (e.g. a supervisor's private chat).
                await self.db.run(lambda s: self._failed(s, out.item_id, reason))
            return True
        except (NetworkError, TelegramError) as error:
            reason = type(error).__name__
            metrics.failed("telegram")
            log.warning("telegram unavailable (%s); retrying", reason)
            await self.db.run(lambda s: self._postpone(s, out.item_id, 10, reason))
            return False
        self.sent += 1
        metrics.sent("telegram")
        await self.db.run(lambda s: self._done(s, out, sent))
        await self._after(out, sent)
        return True

    async def _call(self, out: Outgoing) -> TgMessage | None:
        reply = (
            ReplyParameters(message_id=out.reply_to, allow_sending_without_reply=True)
            if out.reply_to
            else None
        )
        if out.document is not None:
            filename, content = out.document
            return await self.bot.send_document(
                out.chat_id,
                InputFile(content, filename=filename),
                caption=out.text or None,
                parse_mode=ParseMode.HTML,
                reply_parameters=reply,
                message_thread_id=out.thread_id,
                disable_notification=out.silent,
            )
        if out.op == TelegramOp.DELETE:
            assert out.edit_message_id is not None
            await self.bot.delete_message(out.chat_id, out.edit_message_id)
            return None
        if out.op == TelegramOp.REACTION:
            assert out.edit_message_id is not None
            await self.bot.set_message_reaction(
                out.chat_id, out.edit_message_id, reaction=out.reaction
            )
            return None
        if out.edit_message_id is not None:
            result = await self.bot.edit_message_text(
                out.text,
                chat_id=out.chat_id,
                message_id=out.edit_message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup(out.keyboard),
                disable_web_page_preview=True,
            )
            return result if isinstance(result, TgMessage) else None
        reply_markup: InlineKeyboardMarkup | ForceReply | None = markup(out.keyboard)
        if out.force_reply:
            reply_markup = ForceReply(
                selective=True, input_field_placeholder=out.placeholder or "Ketik di sini…"
            )
        return await self.bot.send_message(
            out.chat_id,
            out.text,
            parse_mode=ParseMode.HTML,
            reply_markup=reply_markup,
            reply_parameters=reply,
            disable_web_page_preview=True,
            message_thread_id=out.thread_id,
            disable_notification=out.silent,
        )

    # --- outcomes (database thread) --------------------------------------------------------

    def _finish(self, item: OutboxItem, status: OutboxStatus, error: str | None) -> None:
        item.status = status
        item.last_error = error
        item.done_at = self.clock.now()

    def _done(self, session: Session, out: Outgoing, sent: TgMessage | None) -> None:
        item = session.get_one(OutboxItem, out.item_id)
        item.attempts += 1
        self._finish(item, OutboxStatus.SENT, None)
        now = self.clock.now()
        if out.op == TelegramOp.CARD and out.ticket_id is not None:
            card = session.get(TelegramCard, out.ticket_id)
            if card is None and sent is not None:
                session.add(
                    TelegramCard(
                        ticket_id=out.ticket_id,
                        chat_id=sent.chat_id,
                        message_id=sent.message_id,
                        rendered_hash=out.fingerprint,
                        updated_at=now,
                    )
                )
            elif card is not None:
                card.rendered_hash = out.fingerprint
                card.updated_at = now
            board.request(session, now)
            replaces = item.payload.get("replaces")
            if replaces and sent is not None:
                self._point_to_new_card(session, out, int(replaces), sent.message_id)
        if out.op == TelegramOp.BOARD:
            if sent is not None:
                board.store(session, out.chat_id, sent.message_id, out.fingerprint or "", now)
            else:
                current = board.current(session, out.chat_id)
                if current is not None:
                    current.rendered_hash, current.updated_at = out.fingerprint, now
        if out.op == TelegramOp.PROMPT and sent is not None:
            prompt = session.get(TelegramPrompt, item.payload.get("prompt"))
            if prompt is not None:
                prompt.message_id = sent.message_id

    def _postpone(self, session: Session, item_id: int, seconds: float, error: str) -> None:
        item = session.get_one(OutboxItem, item_id)
        item.attempts += 1
        item.last_error = error
        item.next_attempt_at = self.clock.now() + dt.timedelta(seconds=seconds)

    def _failed(self, session: Session, item_id: int, error: str) -> None:
        item = session.get_one(OutboxItem, item_id)
        item.attempts += 1
        self._finish(item, OutboxStatus.FAILED, error[:2000])

    def _forget_card(self, session: Session, out: Outgoing) -> None:
        if out.op == TelegramOp.BOARD:
            board.forget(session, out.chat_id)  # deleted by a person: posted and pinned anew
        if out.ticket_id is not None and out.op == TelegramOp.CARD:
            card = session.get(TelegramCard, out.ticket_id)
            if card is not None:
                session.delete(card)
        item = session.get_one(OutboxItem, out.item_id)
        item.attempts += 1
        item.importance = min(item.importance, 10)

    def _drop_reply(self, session: Session, out: Outgoing) -> None:
        item = session.get_one(OutboxItem, out.item_id)
        item.payload = {**item.payload, "reply_to": None}
        item.attempts += 1

    # --- the digest ------------------------------------------------------------------------

    async def _digest_if_needed(self) -> None:
        if not self.digests:
            return
        waiting = await self.db.run(self._undigested_new_tickets)
        if not waiting:
            return
        budget = self.budget.group.available()
        pending_new = await self.db.run(self._pending_new_cards)
        if pending_new <= budget - RESERVE:
            return  # the cards themselves fit within the minute
        if budget <= RESERVE:
            oldest = min(as_utc(created) for *_, created in waiting)
            if self.clock.now() - oldest < RESERVE_DIGEST_DELAY:
                return  # the reserve's next message will list more tickets at once
        # All of them at once, in as few messages as it takes to keep the reserve.
        for ids, text in self._digest_pages(waiting, pending_new, max(budget - RESERVE, 1)):
            wait = self.budget.wait_time(counts_for_group=True)
            if wait > 0:
                return
            self.budget.record(counts_for_group=True)
            try:
                await self.bot.send_message(
                    self.chat_id,
                    text,
                    parse_mode=ParseMode.HTML,
                    disable_web_page_preview=True,
                    disable_notification=not self._working_hours(),
                )
            except RetryAfter as error:
                self.retry_after_received += 1
                self.budget.block(retry_seconds(error))
                return
            except TelegramError as error:
                log.warning("digest not sent: %s", error)
                return
            self.sent += 1
            await self.db.run(partial(self._mark_digested, item_ids=ids))

    def _pending_new_cards(self, session: Session) -> int:
        return len(self._new_card_items(session))

    def _new_card_items(self, session: Session) -> list[OutboxItem]:
        items = session.scalars(
            select(OutboxItem).where(
                OutboxItem.channel == OutboxChannel.TELEGRAM,
                OutboxItem.kind == TelegramOp.CARD.value,
                OutboxItem.status == OutboxStatus.PENDING,
            )
        ).all()
        with_card = set(
            session.scalars(
                select(TelegramCard.ticket_id).where(
                    TelegramCard.ticket_id.in_([i.ticket_id for i in items if i.ticket_id])
                )
            )
        )
        return [i for i in items if i.ticket_id not in with_card]

    def _undigested_new_tickets(
        self, session: Session
    ) -> list[tuple[int, str, str, str, dt.datetime]]:
        rows = []
        for item in self._new_card_items(session):
            if item.payload.get("digested") or item.ticket_id is None:
                continue
            ticket = session.get(Ticket, item.ticket_id)
            if ticket is not None:
                sender = ticket.requester_name or ticket.requester_email
                rows.append((item.id, ticket.number, sender, ticket.subject, item.created_at))
        return rows

    def _mark_digested(self, session: Session, item_ids: list[int]) -> None:
        for item in session.scalars(select(OutboxItem).where(OutboxItem.id.in_(item_ids))):
            item.payload = {**item.payload, "digested": True}

    @staticmethod
    def _digest_pages(
        rows: list[tuple[int, str, str, str, dt.datetime]], pending: int, most: int
    ) -> list[tuple[list[int], str]]:
        """(outbox ids, text) of digest messages listing every row: full lines when they fit
        in `most` messages, else shorter ones, else bare numbers (the first pages go now)."""
        header = f"📬 <b>{pending} tiket baru</b> menunggu kartunya (dikirim bertahap):"
        footer = "Gunakan /tiket &lt;nomor&gt; untuk menampilkan satu kartu lebih dulu."
        room = DIGEST_CHARS - len(header) - len(footer)

        def cut(text: str, size: int) -> str:
            return text if len(text) <= size else text[:size] + "…"

        def full(number: str, sender: str, subject: str) -> tuple[str, int]:
            sender, subject = sender[:40], cut(subject, 60)
            html = f"• <b>{escape(number)}</b> — {escape(sender)}: {escape(subject)}"
            return html, len(f"• {number} — {sender}: {subject}")

        def short(number: str, sender: str, subject: str) -> tuple[str, int]:
            line = f"• {number} — {cut(subject, 30)}"
            return escape(line), len(line)

        def bare(number: str, sender: str, subject: str) -> tuple[str, int]:
            return escape(number), len(number)

        styles = ((full, "\n", DIGEST_LINES), (short, "\n", None), (bare, ", ", None))
        for style, separator, max_lines in styles:
            pages: list[tuple[list[int], list[str]]] = []
            used = room
            for item_id, number, sender, subject, _ in rows:
                html, size = style(number, sender, subject)
                size += len(separator)
                page_full = bool(pages) and max_lines is not None and len(pages[-1][0]) >= max_lines
                if used + size > room or page_full:
                    pages.append(([], []))
                    used = 0
                pages[-1][0].append(item_id)
                pages[-1][1].append(html)
                used += size
            if len(pages) <= most:
                break
        return [(ids, "\n".join([header, separator.join(parts), footer])) for ids, parts in pages]

    # --- the group: topics, silence, the board, deletions and reactions --------------------

    def _working_hours(self) -> bool:
        return self.calendar is None or self.calendar.is_open(self.clock.now())

    def _place(self, session: Session, item: OutboxItem, out: Outgoing) -> Outgoing:
        """Into the ticket's topic (topics mode), ringing only when bot/quiet.py says so."""
        thread = out.thread_id
        in_topic = out.op not in (TelegramOp.ALERT, TelegramOp.BOARD) and out.ticket_id is not None
        if thread is None and in_topic and self.topics is not None and self.topics.enabled:
            thread = self.topics.thread_of(session, out.ticket_id)
        silent = not quiet.audible(
            out.op,
            item.payload,
            new_card=out.is_new_card,
            working_hours=self._working_hours(),
        )
        if item.payload.get("silent"):
            silent = True
        return replace(out, thread_id=thread, silent=silent)

    async def _open_topic(self, out: Outgoing) -> Outgoing:
        """A ticket's first card in topics mode opens its topic (charged like a message)."""
        if (
            self.topics is None
            or not self.topics.enabled
            or not out.is_new_card
            or out.thread_id is not None
            or out.ticket_id is None
        ):
            return out
        self.budget.record(counts_for_group=True)
        thread = await self.topics.create(out.ticket_id)
        return replace(out, thread_id=thread)

    async def _after(self, out: Outgoing, sent: TgMessage | None) -> None:
        topics_on = self.topics is not None and self.topics.enabled
        if out.op == TelegramOp.CARD and out.ticket_id is not None and topics_on:
            assert self.topics is not None
            await self.topics.sync(out.ticket_id)
        if out.op == TelegramOp.BOARD and sent is not None:
            try:
                await self.bot.pin_chat_message(
                    out.chat_id, sent.message_id, disable_notification=True
                )
            except TelegramError as error:
                log.warning("the queue board could not be pinned: %s", error)

    def _topic_gone(self, session: Session, out: Outgoing) -> None:
        assert out.ticket_id is not None
        Topics.forget(session, out.ticket_id)
        item = session.get_one(OutboxItem, out.item_id)
        item.attempts += 1
        if out.op != TelegramOp.CARD:
            enqueue_telegram(
                session,
                TelegramOp.CARD,
                ticket_id=out.ticket_id,
                payload={},
                importance=Importance.PROMPT,
                now=self.clock.now(),
            )
            item.next_attempt_at = self.clock.now() + dt.timedelta(seconds=1)
        log.info("topic of ticket %d is gone; making it anew", out.ticket_id)

    def _prepare_group_op(self, session: Session, item: OutboxItem) -> Outgoing | None:
        payload, op = item.payload, item.kind
        if op == TelegramOp.BOARD:
            text = board.render(session, self.clock.now(), self.timezone)
            fingerprint = cards.fingerprint(text, [])
            current = board.current(session, self.chat_id)
            return Outgoing(
                item.id,
                op,
                self.chat_id,
                text,
                edit_message_id=current.message_id if current else None,
                fingerprint=fingerprint,
                skip=current is not None and current.rendered_hash == fingerprint,
            )
        chat_id = int(payload.get("chat_id", self.chat_id))
        message_id = payload.get("message_id")
        if not isinstance(message_id, int):
            self._finish(item, OutboxStatus.FAILED, "no message id")
            return None
        return Outgoing(
            item.id,
            op,
            chat_id,
            "",
            edit_message_id=message_id,
            reaction=str(payload.get("emoji") or "👍") if op == TelegramOp.REACTION else None,
        )

    def _point_to_new_card(
        self, session: Session, out: Outgoing, old_message_id: int, new_message_id: int
    ) -> None:
        """/tiket posted the card anew: the old one says where it went, without buttons."""
        ticket = session.get(Ticket, out.ticket_id)
        number = ticket.number if ticket is not None else ""
        enqueue_telegram(
            session,
            TelegramOp.MESSAGE,
            ticket_id=None,
            payload={
                "chat_id": out.chat_id,
                "edit_message_id": old_message_id,
                "text": texts.card_moved(cards.ticket_link(number, out.chat_id, new_message_id)),
            },
            importance=Importance.CARD_EDIT,
            now=self.clock.now(),
        )
