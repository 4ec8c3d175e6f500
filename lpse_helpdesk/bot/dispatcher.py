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
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
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
from telegram.error import ChatMigrated, RetryAfter, TelegramError

from lpse_helpdesk.bot import board, bounce_flags, cards, quiet, texts
from lpse_helpdesk.bot.errors import Kind, classify
from lpse_helpdesk.bot.group import GroupState, Membership, record_membership
from lpse_helpdesk.bot.interactions import attachment_bytes
from lpse_helpdesk.bot.membership import (
    held_text,
    hold_reason,
    lost_rights,
    membership_of,
    released_text,
    rights_text,
)
from lpse_helpdesk.bot.migration import apply_migration
from lpse_helpdesk.bot.prompt_copies import MAYBE_DELIVERED
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
from lpse_helpdesk.workflow.outbox import (
    Importance,
    TelegramOp,
    claim_due,
    earliest_pending,
    enqueue_telegram,
    renew_claim,
)
from lpse_helpdesk.workflow.worker import PollingWorker

log = logging.getLogger(__name__)

DIGEST_CHARS = 3900  # characters of a digest message (Telegram allows 4096)
#: Group messages per minute kept for digests, prompts, notices and alerts: a new ticket's
#: own card never takes the last ones, so a burst is announced at once (within
#: RESERVE_DIGEST_DELAY when only the reserve is left).
RESERVE = 3
#: Once only the reserve is left, a digest waits until its oldest ticket has waited this
#: long: each of the reserve's few messages then lists every ticket that came meanwhile, and
#: the reserve lasts until the minute's window frees messages again.
RESERVE_DIGEST_DELAY = dt.timedelta(seconds=60 / (RESERVE + 1))
#: Commits wake the dispatcher; this poll is only the safety net.
SAFETY_POLL_SECONDS = 5.0
#: How soon to look again when due rows wait (rate budget, pacing of a burst).
BUDGET_POLL_SECONDS = 0.5
#: An error Telegram does not explain is retried this many times (after 10 s, 30 s, 90 s),
#: then the item fails and the group is told which ticket it was for.
UNKNOWN_RETRIES = 3
#: Telegram unreachable or answering 5xx: everything waits, first 1 s, doubling up to this.
OUTAGE_MAX_PAUSE = 15.0
#: While the bot cannot write to the group, ask Telegram this often whether it can again.
HOLD_PROBE_SECONDS = 30.0
#: While held with nothing for private chats, look at the queue this often (not every poll).
HELD_ROUND_SECONDS = 3.0


@dataclass(frozen=True)
class DigestRow:
    item_id: int
    number: str
    name: str
    email: str
    subject: str
    created: dt.datetime


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
    def is_edit(self) -> bool:
        """Edits, deletions and reactions are no new messages (the group's budget)."""
        return self.edit_message_id is not None

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
        poll_seconds: float = SAFETY_POLL_SECONDS,
        batch: int = 40,
        urgency: cards.Urgency | None = None,
        group: GroupState | None = None,
        supervisor_ids: frozenset[int] = frozenset(),
        calendar: BusinessCalendar | None = None,
        topics: Topics | None = None,
    ) -> None:
        super().__init__()
        self.bot = bot
        self.db = db
        self.clock = clock
        self.domain = domain
        self.timezone = timezone
        self.group = group or GroupState.of(chat_id)
        self.supervisor_ids = supervisor_ids
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
        self._pause_until = 0.0  # time.monotonic(): Telegram unreachable, nothing goes out
        self._outage_since: float | None = None
        self._outage_pause = 0.0
        self._next_probe = 0.0
        self._next_new_card = 0.0
        self._held_idle_until = 0.0
        self._next_due: dt.datetime | None = None  # the next pending row's due time
        self._pending_new: int | None = None  # new cards waiting, as of the last claim
        #: Forum topics (the group-experience issue) plug in here: called in a database
        #: thread when Telegram answers "message thread not found" for an item; it should
        #: recreate the ticket's topic and re-aim the item. Without topics the item is sent
        #: to the plain group.
        self.recreate_topic: Callable[[Session, Outgoing], None] = (
            self._topic_gone if topics is not None else self._send_without_topic
        )

    @property
    def chat_id(self) -> int:
        """The helpdesk group's current chat id (it changes when the group is migrated)."""
        return self.group.current

    async def work_once(self) -> bool:
        return await self.dispatch_once()

    def wake_source(self) -> tuple[Database, str]:
        return self.db, OutboxChannel.TELEGRAM.value

    def seconds_until_due(self) -> float | None:
        now = time.monotonic()
        if self._pause_until > now:
            return self._pause_until - now
        if self.group.held is not None and self._held_idle_until > now:
            return self._held_idle_until - now
        if self._next_due is None:
            return None
        seconds = (self._next_due - self.clock.now()).total_seconds()
        # Already due but not sent: it waits for the rate budget or the pacing of a burst.
        return seconds if seconds > 0 else min(BUDGET_POLL_SECONDS, self.poll_seconds)

    # --- one round -------------------------------------------------------------------------

    async def dispatch_once(self) -> bool:
        """Send what is due and fits the budget; True when something was done."""
        if time.monotonic() < self._pause_until:
            return False  # Telegram is unreachable: everything waits, in order
        if self.group.held is not None:
            await self._probe_group()
        held = self.group.held is not None
        if held and time.monotonic() < self._held_idle_until:
            return False
        # New cards are not even fetched while they must wait: they would fill the batch and
        # hold back edits, notices and alerts. The digest decides after the fetch, so that it
        # has seen every new card this round may send.
        pacing = time.monotonic() < self._next_new_card
        new_cards = not held and not pacing and self.budget.available(self.chat_id) > RESERVE
        ids = await self.db.run(partial(self._due_ids, new_cards=new_cards))
        burst = await self._digest_if_needed(self._pending_new) if not held else False
        progressed = False
        for item_id in ids:
            if self.stopping or time.monotonic() < self._pause_until:
                break
            outgoing = await self.db.run(partial(self._prepare, item_id=item_id))
            if outgoing is None:
                progressed = True
                continue
            if outgoing.skip:
                await self.db.run(partial(self._done, out=outgoing, sent=None))
                progressed = True
                continue
            if self.group.held is not None and outgoing.chat_id == self.chat_id:
                continue  # waits (not failed) until the bot can write to the group again
            if outgoing.is_new_card and self.budget.available(self.chat_id) <= RESERVE:
                continue  # the card waits; its ticket is listed in a digest
            if outgoing.is_new_card and burst and time.monotonic() < self._next_new_card:
                continue  # in a burst, cards are spread over the minute (see _pace_cards)
            wait = self.budget.wait_time(outgoing.chat_id, edit=outgoing.is_edit)
            if wait > 0:
                if wait > BUDGET_POLL_SECONDS * 2:
                    if self.budget.wait_time(0, edit=True) <= BUDGET_POLL_SECONDS * 2:
                        continue  # only this chat's window is full: other chats may go
                    break  # the rest waits for budget; look again soon
                await asyncio.sleep(wait)
            if not await self._send(outgoing):
                break
            if outgoing.is_new_card and burst:
                self._pace_cards()
            progressed = True
        if held and not progressed:
            self._held_idle_until = time.monotonic() + HELD_ROUND_SECONDS
        return progressed

    def _pace_cards(self) -> None:
        """In a burst, one new card per 1/limit of a minute instead of all at once: the
        minute's window then frees a message every few seconds, so the tickets of the next
        wave are named in a digest at once instead of waiting for the window to empty."""
        limit = self.budget.limits.group_per_minute
        self._next_new_card = time.monotonic() + 60.0 / max(limit, 1)

    def _due_ids(self, session: Session, new_cards: bool = True) -> list[int]:
        where = []
        if not new_cards:
            has_card = exists().where(TelegramCard.ticket_id == OutboxItem.ticket_id)
            where.append((OutboxItem.kind != TelegramOp.CARD.value) | has_card)
        now = self.clock.now()
        ids = claim_due(session, OutboxChannel.TELEGRAM, now=now, limit=self.batch, where=where)
        # When to look again if this round sends nothing: now (the claimed rows wait for
        # budget), or when the next pending row falls due.
        next_due = now if ids else earliest_pending(session, OutboxChannel.TELEGRAM, now=now)
        self._next_due = as_utc(next_due) if next_due is not None else None
        # What the digest decides on, counted in this same job (one database round trip less
        # between a commit and its card).
        self._pending_new = self._pending_new_cards(session) if self.digests else None
        return ids

    # --- preparing (database thread) -------------------------------------------------------

    def _prepare(self, session: Session, item_id: int) -> Outgoing | None:
        if not renew_claim(session, item_id, now=self.clock.now()):
            return None  # sent already, or taken over by another instance after our lease
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
            keyboard = keyboard or bounce_flags.keyboard(item.id, item.payload)
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
                keyboard=[[(str(b[0]), str(b[1])) for b in row] for row in keyboard]
                if keyboard
                else None,
                reply_to=payload.get("reply_to"),
                edit_message_id=payload.get("edit_message_id"),
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
        """Make the call; False when sending must pause (flood, outage, group on hold)."""
        self.budget.record(out.chat_id, edit=out.is_edit)
        try:
            out = await self._open_topic(out)
            sent = await self._call(out)
        except TelegramError as error:
            return await self._refused(out, error)
        self._reachable()
        self.sent += 1
        metrics.sent("telegram")
        await self.db.run(lambda s: self._done(s, out, sent))
        await self._after(out, sent)
        return True

    async def _refused(self, out: Outgoing, error: TelegramError) -> bool:
        """Act on an error by its kind; True when the round may go on."""
        if out.op in _NOT_MESSAGES and "not found" in str(error).lower():
            await self.db.run(lambda s: self._done(s, out, None))  # already gone: fine
            return True
        kind = classify(error, to_group=out.chat_id == self.chat_id, is_edit=out.is_edit)
        if kind is not Kind.TRANSIENT and kind is not Kind.MAYBE_SENT:
            self._reachable()
        if kind is Kind.RETRY_AFTER:
            assert isinstance(error, RetryAfter)
            seconds = retry_seconds(error)
            self.retry_after_received += 1
            metrics.retry_after()
            log.warning("telegram asks to wait %.0f s", seconds)
            self.budget.block(seconds)
            await self.db.run(lambda s: self._postpone(s, out.item_id, seconds, "RetryAfter"))
            return False
        if kind is Kind.DONE:
            await self.db.run(lambda s: self._done(s, out, None))
            return True
        if kind is Kind.CARD_GONE:
            # A person deleted the card: post it again; notices then reply to the new one.
            log.info("card of ticket %s was deleted in the group; posting it again", out.ticket_id)
            await self.db.run(lambda s: self._forget_card(s, out))
            return True
        if kind is Kind.REPLY_GONE and out.reply_to is not None:
            await self.db.run(lambda s: self._drop_reply(s, out))
            return True
        if kind is Kind.THREAD_GONE:
            log.warning("%s #%s: the ticket's topic is gone; recreating", out.op, out.item_id)
            await self.db.run(lambda s: self.recreate_topic(s, out))
            return True
        if kind is Kind.MIGRATED:
            new_id = error.new_chat_id if isinstance(error, ChatMigrated) else None
            if new_id is not None:
                await self.migrate(out.chat_id, int(new_id))
                if out.is_edit:  # a card left in the old chat: post it in the new one
                    await self.db.run(lambda s: self._forget_card(s, out))
                return True
            kind = Kind.HOLD
        if kind is Kind.HOLD:
            text = str(error).lower()
            reason = "removed" if "kicked" in text or "not a member" in text else ""
            reason = reason or ("no_chat" if "chat not found" in text else "cannot_send")
            await self.db.run(lambda s: self._attempted(s, out.item_id, str(error)))
            await self.hold(reason, str(error))
            return True  # private chats may still go
        if kind is Kind.PRIVATE_REFUSED:
            # A person who blocked or never started the bot (e.g. a supervisor's private chat).
            metrics.failed("telegram")
            log.warning(
                "telegram refuses %s #%s to %s: %s", out.op, out.item_id, out.chat_id, error
            )
            reason = f"{type(error).__name__}: {error}"
            await self.db.run(lambda s: self._failed(s, out.item_id, reason))
            return True
        if kind is Kind.MAYBE_SENT or kind is Kind.TRANSIENT:
            maybe = kind is Kind.MAYBE_SENT
            await self.db.run(
                lambda s: self._attempted(s, out.item_id, type(error).__name__, maybe)
            )
            self._unreachable(error)
            return False
        # UNKNOWN (and CONFLICT on a send, which should not happen): retry, then fail loudly.
        log.error("telegram refused %s #%s: %s", out.op, out.item_id, error)
        await self.db.run(lambda s: self._unknown(s, out, f"{type(error).__name__}: {error}"))
        return True

    # --- Telegram unreachable ----------------------------------------------------------------

    def _unreachable(self, error: TelegramError) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            self._outage_pause = 1.0
            log.warning(
                "Telegram unreachable (%s: %s); everything waits and goes out once it answers",
                type(error).__name__,
                str(error)[:200],
            )
        else:
            self._outage_pause = min(self._outage_pause * 2, OUTAGE_MAX_PAUSE)
        self._pause_until = now + self._outage_pause

    def _reachable(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "Telegram answers again after %.0f s; sending what waited",
                time.monotonic() - self._outage_since,
            )
        self._outage_since = None
        self._pause_until = 0.0

    # --- the group changes -------------------------------------------------------------------

    async def migrate(self, old: int, new: int) -> None:
        """The group `old` is now the supergroup `new` (from an error or a service message)."""
        if old != self.chat_id and old not in self.group.previous:
            log.info("chat %s moved to %s; not the helpdesk group, ignored", old, new)
            return
        now = self.clock.now()
        supervisors = self.supervisor_ids
        await self.db.run(lambda s: apply_migration(s, old, new, now, supervisors))
        if old == self.chat_id:
            self.group.move_to(new)
        self.wake()

    async def check_migrated(self, chat_id: int) -> bool:
        """Ask Telegram whether the helpdesk group now lives at `chat_id` (and move there)."""
        try:
            await self.bot.get_chat(self.chat_id)
        except ChatMigrated as error:
            new_id = int(error.new_chat_id)
            await self.migrate(self.chat_id, new_id)
            return new_id == chat_id
        except TelegramError as error:
            log.debug("could not check the helpdesk group: %s", error)
        return False

    async def set_membership(self, membership: Membership) -> None:
        """The bot's own standing in the group changed (a my_chat_member update)."""
        before = self.group.membership
        self.group.membership = membership
        reason = hold_reason(membership)
        if reason is not None:
            await self.hold(reason, f"status {membership.status}")
            return
        lost = lost_rights(before, membership)
        if lost:
            log.warning("the bot lost rights in the helpdesk group: %s", ", ".join(lost))
            text = rights_text(self.chat_id, lost)
            await self.db.run(lambda s: self._tell_supervisors(s, text))
        if self.group.held is not None:
            await self.release()
        else:
            await self.db.run(partial(self._record_membership))
        self.wake()

    async def hold(self, reason: str, detail: str) -> None:
        """Group messages wait (never fail) until the bot can write there again."""
        if self.group.held is not None:
            return
        self.group.held = reason
        self._next_probe = time.monotonic() + HOLD_PROBE_SECONDS
        waiting = await self.db.run(self._pending_count)
        log.error(
            "cannot write to the helpdesk group %s (%s); %d Telegram items wait. What to do: "
            "add the bot to the group again and make it an admin (send, pin, manage topics)",
            self.chat_id,
            detail,
            waiting,
        )
        text = held_text(self.chat_id, reason, waiting)

        def work(session: Session) -> None:
            self._tell_supervisors(session, text)
            self._record_membership(session)

        await self.db.run(work)
        self.wake()

    async def release(self) -> None:
        if self.group.held is None:
            return
        self.group.held = None
        self._held_idle_until = 0.0
        waiting = await self.db.run(self._pending_count)
        log.warning("the bot can write to the helpdesk group again; %d items go out", waiting)
        text = released_text(waiting)

        def work(session: Session) -> None:
            self._record_membership(session)
            self._tell_supervisors(session, text)
            self._say(session, self.chat_id, text, Importance.PROMPT)

        await self.db.run(work)
        self.wake()

    async def _probe_group(self) -> None:
        """While held: ask Telegram now and then whether the bot may write again."""
        if time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + HOLD_PROBE_SECONDS
        try:
            member = await self.bot.get_chat_member(self.chat_id, self.bot.id)
        except ChatMigrated as error:
            await self.migrate(self.chat_id, int(error.new_chat_id))
            return
        except TelegramError as error:
            log.debug("the helpdesk group is still out of reach: %s", error)
            return
        membership = membership_of(member)
        if membership.usable:
            self.group.membership = membership
            await self.release()

    def _record_membership(self, session: Session) -> None:
        state = self.group
        record_membership(session, state.current, state.membership, state.held, self.clock.now())

    def _pending_count(self, session: Session) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxItem)
                .where(
                    OutboxItem.channel == OutboxChannel.TELEGRAM,
                    OutboxItem.status == OutboxStatus.PENDING,
                )
            )
            or 0
        )

    def _say(self, session: Session, chat_id: int, text: str, importance: Importance) -> None:
        enqueue_telegram(
            session,
            TelegramOp.MESSAGE,
            ticket_id=None,
            payload={"chat_id": chat_id, "text": text, "reply_to": None},
            importance=importance,
            now=self.clock.now(),
        )

    def _tell_supervisors(self, session: Session, text: str) -> None:
        for user_id in sorted(self.supervisor_ids):
            self._say(session, user_id, text, Importance.PROMPT)

    def _send_without_topic(self, session: Session, out: Outgoing) -> None:
        """Without forum topics: send the item to the plain group."""
        item = session.get_one(OutboxItem, out.item_id)
        if "message_thread_id" not in item.payload:
            self._unknown(session, out, "message thread not found")
            return
        item.attempts += 1
        item.payload = {
            key: value for key, value in item.payload.items() if key != "message_thread_id"
        }

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

    def _attempted(
        self, session: Session, item_id: int, error: str, maybe_delivered: bool = False
    ) -> None:
        """Counted, kept in its place in the queue (not postponed)."""
        item = session.get_one(OutboxItem, item_id)
        item.attempts += 1
        item.last_error = error[:2000]
        if maybe_delivered and item.kind == TelegramOp.PROMPT:
            item.payload = {**item.payload, MAYBE_DELIVERED: True}

    def _unknown(self, session: Session, out: Outgoing, error: str) -> None:
        """Retried UNKNOWN_RETRIES times; then failed, and the group is told which ticket."""
        item = session.get_one(OutboxItem, out.item_id)
        failures = int(item.payload.get("unknown_errors", 0)) + 1
        item.payload = {**item.payload, "unknown_errors": failures}
        if failures <= UNKNOWN_RETRIES:
            self._postpone(session, out.item_id, 10 * 3 ** (failures - 1), error)
            return
        self._failed(session, out.item_id, error)
        metrics.failed("telegram")
        if item.payload.get("failure_alert"):
            log.error("the failure alert #%s could not be sent either: %s", item.id, error)
            return
        ticket = session.get(Ticket, item.ticket_id) if item.ticket_id is not None else None
        if ticket is not None:
            sender = ticket.requester_name or ticket.requester_email
            what = (
                f"untuk tiket <b>{escape(ticket.number)}</b> ({escape(sender[:60])} — "
                f"{escape(ticket.subject[:80])})"
            )
            hint = f" Tampilkan kartunya dengan /tiket {escape(ticket.number)}."
        else:
            what, hint = f"({escape(item.kind)})", ""
        text = (
            f"⚠️ Sebuah pesan Telegram {what} gagal dikirim setelah {failures} percobaan: "
            f"<code>{escape(error[:300])}</code>.{hint}"
        )
        log.error("telegram item #%s (%s) failed for good: %s", item.id, item.kind, error)
        enqueue_telegram(
            session,
            TelegramOp.MESSAGE,
            ticket_id=item.ticket_id,
            payload={"chat_id": self.chat_id, "text": text, "failure_alert": True},
            importance=Importance.SLA_ALERT,
            now=self.clock.now(),
        )

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

    async def _digest_if_needed(self, pending_new: int | None = None) -> bool:
        """Name waiting new tickets in digests when their cards cannot all go within the
        minute; True while such a burst lasts (new cards then go paced)."""
        if not self.digests:
            return False
        budget = self.budget.available(self.chat_id)
        if pending_new is None:
            pending_new = await self.db.run(self._pending_new_cards)
        if pending_new <= budget - RESERVE:
            return False  # the cards themselves fit within the minute
        waiting = await self.db.run(self._undigested_new_tickets)
        if not waiting:
            return True
        if budget <= RESERVE:
            oldest = min(row.created for row in waiting)
            if self.clock.now() - oldest < RESERVE_DIGEST_DELAY:
                return True  # the reserve's next message will list more tickets at once
        # All of them, in as few messages as the budget allows now (the reserve included:
        # it is kept for this). Pages that do not fit now go in the next rounds, as the
        # minute's window frees messages; new cards wait for the digest, never the reverse.
        for ids, text in self._digest_pages(waiting, pending_new, max(budget, 1)):
            if self.budget.wait_time(self.chat_id) > 0:
                return True
            self.budget.record(self.chat_id)
            try:
                await self.bot.send_message(
                    self.chat_id,
                    text,
                    parse_mode=ParseMode.HTML,
                    disable_web_page_preview=True,
                    disable_notification=not self._working_hours(),
                )
            except TelegramError as error:
                await self._digest_refused(error)
                return True
            self._reachable()
            self.sent += 1
            await self.db.run(partial(self._mark_digested, item_ids=ids))
        return True

    async def _digest_refused(self, error: TelegramError) -> None:
        kind = classify(error, to_group=True)
        if kind is Kind.RETRY_AFTER:
            assert isinstance(error, RetryAfter)
            self.retry_after_received += 1
            self.budget.block(retry_seconds(error))
        elif kind is Kind.MIGRATED and isinstance(error, ChatMigrated):
            await self.migrate(self.chat_id, int(error.new_chat_id))
        elif kind is Kind.HOLD or kind is Kind.MIGRATED:
            await self.hold("cannot_send", str(error))
        elif kind is Kind.TRANSIENT or kind is Kind.MAYBE_SENT:
            self._unreachable(error)
        else:
            log.warning("digest not sent: %s", error)

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

    def _undigested_new_tickets(self, session: Session) -> list[DigestRow]:
        rows = []
        for item in self._new_card_items(session):
            if item.payload.get("digested") or item.ticket_id is None:
                continue
            ticket = session.get(Ticket, item.ticket_id)
            if ticket is not None:
                rows.append(
                    DigestRow(
                        item.id,
                        ticket.number,
                        ticket.requester_name,
                        ticket.requester_email,
                        ticket.subject,
                        as_utc(item.created_at),
                    )
                )
        return rows

    def _mark_digested(self, session: Session, item_ids: list[int]) -> None:
        for item in session.scalars(select(OutboxItem).where(OutboxItem.id.in_(item_ids))):
            item.payload = {**item.payload, "digested": True}

    @staticmethod
    def _digest_pages(
        rows: list[DigestRow], pending: int, most: int
    ) -> list[tuple[list[int], str]]:
        """(outbox ids, text) of digest messages naming every row with its number, sender
        (name and address) and subject: full lines when they fit in `most` messages, else
        with shorter names and subjects. The sender is never dropped; pages beyond `most`
        go out later."""
        header = f"📬 <b>{pending} tiket baru</b> menunggu kartunya (dikirim bertahap):"
        footer = "Gunakan /tiket &lt;nomor&gt; untuk menampilkan satu kartu lebih dulu."
        room = DIGEST_CHARS - len(header) - len(footer) - 2

        def cut(text: str, size: int) -> str:
            text = " ".join(text.split())
            return text if len(text) <= size else text[: size - 1].rstrip() + "…"

        def line(
            row: DigestRow, name_size: int, mail_size: int, subject_size: int
        ) -> tuple[str, int]:
            name, address = cut(row.name, name_size), cut(row.email, mail_size)
            subject = cut(row.subject, subject_size) or "(tanpa subjek)"
            sender = f"{name} <{address}>" if name else address
            html = f"• <b>{escape(row.number)}</b> — {escape(sender)}: {escape(subject)}"
            return html, len(f"• {row.number} — {sender}: {subject}")

        styles = ((40, 64, 60), (24, 64, 32), (16, 64, 16))  # the address stays whole
        pages: list[tuple[list[int], list[str]]] = []
        for sizes in styles:
            pages = []
            used = room
            for row in rows:
                html, size = line(row, *sizes)
                size += 1
                if used + size > room:
                    pages.append(([], []))
                    used = 0
                pages[-1][0].append(row.item_id)
                pages[-1][1].append(html)
                used += size
            if len(pages) <= most:
                break
        return [(ids, "\n".join([header, *parts, footer])) for ids, parts in pages]

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
        self.budget.record(self.chat_id, edit=False)
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
        """The dispatcher's `recreate_topic` in topics mode: a new topic (and card) on the
        next message for the ticket; a message of no ticket goes to the General topic."""
        item = session.get_one(OutboxItem, out.item_id)
        item.attempts += 1
        if out.ticket_id is None:
            item.payload = {k: v for k, v in item.payload.items() if k != "thread_id"}
            return
        Topics.forget(session, out.ticket_id)
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
