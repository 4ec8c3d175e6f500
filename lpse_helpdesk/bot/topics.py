"""One forum topic per ticket, when the helpdesk group has topics.

The topic is named after the ticket ("00042 · Budi Santoso · Upload penawaran gagal"), with
the state in front once it is done (✅ resolved, 🔒 closed), and is closed with the ticket and
reopened with it. What the dispatcher needs: `thread_of` (where a ticket's messages go),
`create` (before a ticket's first card), `sync` (after its card changed) and `forget` (when
Telegram says the topic is gone: a person deleted it; the next message recreates it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session
from telegram import Bot
from telegram.error import BadRequest, TelegramError

from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import TelegramCard, TelegramTopic, Ticket
from lpse_helpdesk.timekeeping.clock import Clock

log = logging.getLogger(__name__)

NAME_CHARS = 128  # Telegram's limit for a topic name
STATE_PREFIX = {State.RESOLVED: "✅ ", State.CLOSED: "🔒 "}
DONE_STATES = frozenset(STATE_PREFIX)


def topic_name(number: str, requester: str, subject: str, state: State) -> str:
    """'00042 · Budi Santoso · Upload penawaran gagal', cut to Telegram's 128 characters."""
    sequence = number.rsplit("-", 1)[-1]
    parts = [sequence]
    who = " ".join(requester.split())[:40]
    if who:
        parts.append(who)
    parts.append(" ".join(subject.split()) or "(tanpa perihal)")
    name = STATE_PREFIX.get(state, "") + " · ".join(parts)
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class Wanted:
    name: str
    closed: bool


def wanted(ticket: Ticket) -> Wanted:
    name = topic_name(
        ticket.number, ticket.requester_name or ticket.requester_email, ticket.subject, ticket.state
    )
    return Wanted(name, ticket.state in DONE_STATES)


class Topics:
    """Topics of the helpdesk group; `enabled` is decided once at start (`detect`)."""

    def __init__(self, bot: Bot, db: Database, clock: Clock, chat_id: int, mode: str) -> None:
        self.bot = bot
        self.db = db
        self.clock = clock
        self.chat_id = chat_id
        self.mode = mode  # auto | on | off
        self.enabled = False
        self.missing_rights = False  # a forum group, but the bot may not manage topics
        self.not_forum = False  # topics asked for ("on"), but the group has none

    async def detect(self) -> bool:
        """Topics mode on when the group is a forum and the bot may manage its topics."""
        if self.mode == "off":
            self.enabled = False
            return False
        try:
            chat = await self.bot.get_chat(self.chat_id)
            if not chat.is_forum:
                if self.mode == "on":
                    log.error("TELEGRAM_TOPICS=on, but the helpdesk group has no topics")
                    self.not_forum = True
                self.enabled = False
                return False
            member = await self.bot.get_chat_member(self.chat_id, self.bot.id)
        except TelegramError as error:
            log.warning("could not tell whether the group has topics: %s", error)
            self.enabled = False
            return False
        allowed = member.status == "creator" or bool(getattr(member, "can_manage_topics", False))
        self.missing_rights = not allowed
        if not allowed:
            log.warning("the helpdesk group has topics, but the bot lacks can_manage_topics")
        self.enabled = allowed
        return allowed

    # --- database thread -------------------------------------------------------------------

    @staticmethod
    def thread_of(session: Session, ticket_id: int | None) -> int | None:
        if ticket_id is None:
            return None
        topic = session.get(TelegramTopic, ticket_id)
        return int(topic.thread_id) if topic is not None else None

    @staticmethod
    def forget(session: Session, ticket_id: int) -> None:
        """The topic is gone, and with it the card in it: both are made anew."""
        for model in (TelegramTopic, TelegramCard):
            row = session.get(model, ticket_id)
            if row is not None:
                session.delete(row)

    def _wanted(self, session: Session, ticket_id: int) -> Wanted | None:
        ticket = session.get(Ticket, ticket_id)
        return wanted(ticket) if ticket is not None else None

    def _store(self, session: Session, ticket_id: int, thread_id: int, want: Wanted) -> None:
        topic = session.get(TelegramTopic, ticket_id)
        now = self.clock.now()
        if topic is None:
            session.add(
                TelegramTopic(
                    ticket_id=ticket_id,
                    chat_id=self.chat_id,
                    thread_id=thread_id,
                    name=want.name,
                    closed=False,
                    updated_at=now,
                )
            )
        else:
            topic.thread_id, topic.name, topic.updated_at = thread_id, want.name, now

    def _current(self, session: Session, ticket_id: int) -> tuple[int, str, bool] | None:
        topic = session.get(TelegramTopic, ticket_id)
        return (int(topic.thread_id), topic.name, topic.closed) if topic is not None else None

    def _mark(self, session: Session, ticket_id: int, name: str, closed: bool) -> None:
        topic = session.get(TelegramTopic, ticket_id)
        if topic is not None:
            topic.name, topic.closed, topic.updated_at = name, closed, self.clock.now()

    # --- Telegram calls --------------------------------------------------------------------

    async def create(self, ticket_id: int) -> int | None:
        """A new topic for the ticket (its card follows in it); RetryAfter propagates."""
        want = await self.db.run(lambda s: self._wanted(s, ticket_id))
        if want is None:
            return None
        topic = await self.bot.create_forum_topic(self.chat_id, want.name)
        thread_id = topic.message_thread_id
        await self.db.run(lambda s: self._store(s, ticket_id, thread_id, want))
        log.info("topic %d created for ticket %d", thread_id, ticket_id)
        return thread_id

    async def sync(self, ticket_id: int) -> None:
        """Name and open/closed as the ticket's state says; quiet when nothing changes."""
        current = await self.db.run(lambda s: self._current(s, ticket_id))
        want = await self.db.run(lambda s: self._wanted(s, ticket_id))
        if current is None or want is None:
            return
        thread_id, name, closed = current
        try:
            if want.name != name:
                await self._quietly(self.bot.edit_forum_topic(self.chat_id, thread_id, want.name))
            if want.closed and not closed:
                await self._quietly(self.bot.close_forum_topic(self.chat_id, thread_id))
            elif closed and not want.closed:
                await self._quietly(self.bot.reopen_forum_topic(self.chat_id, thread_id))
        except BadRequest as error:
            if "thread not found" in str(error).lower():
                await self.db.run(lambda s: self.forget(s, ticket_id))
                return
            log.warning("topic of ticket %d not updated: %s", ticket_id, error)
            return
        await self.db.run(lambda s: self._mark(s, ticket_id, want.name, want.closed))

    @staticmethod
    async def _quietly(call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except BadRequest as error:
            if "not_modified" not in str(error).lower().replace(" ", "_"):
                raise


def is_thread_gone(error: Exception) -> bool:
    return isinstance(error, BadRequest) and "thread not found" in str(error).lower()
