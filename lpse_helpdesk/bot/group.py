"""The helpdesk group as the bot knows it now: its chat id and what the bot may do there.

Telegram changes a group under the bot's feet: a basic group becomes a supergroup with a new
chat id (an admin turned on topics, a public link, some admin rights), the bot is removed or
its rights are reduced. `GroupState` is the one live answer shared by the dispatcher, the
access checks and the interactions; the `telegram_state` table keeps it across restarts and
between processes on the same database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import TelegramState

MIGRATED = "migrated:"  # + old chat id -> {"to": new chat id, "at": iso time}
MEMBERSHIP = "membership:"  # + chat id -> Membership fields
CONFLICT_ALERT = "conflict_alert"  # {"at": iso time} of the last "two pollers" alert


@dataclass(frozen=True)
class Membership:
    """The bot's own standing in a chat (from my_chat_member or getChatMember)."""

    status: str = "member"  # creator, administrator, member, restricted, left, kicked
    can_send: bool = True
    can_pin: bool = False
    can_manage_topics: bool = False

    @property
    def present(self) -> bool:
        return self.status not in ("left", "kicked")

    @property
    def usable(self) -> bool:
        """Messages can go to the group."""
        return self.present and self.can_send

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "can_send": self.can_send,
            "can_pin": self.can_pin,
            "can_manage_topics": self.can_manage_topics,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Membership:
        return cls(
            status=str(value.get("status", "member")),
            can_send=bool(value.get("can_send", True)),
            can_pin=bool(value.get("can_pin", False)),
            can_manage_topics=bool(value.get("can_manage_topics", False)),
        )


@dataclass
class GroupState:
    """The live group: `current` chat id, the ids it had before, the bot's membership.

    `held` is why group messages wait (None: they go out). Listeners hear a chat id change.
    """

    configured: int  # HELPDESK_CHAT_ID
    current: int
    previous: set[int] = field(default_factory=set)
    membership: Membership = field(default_factory=Membership)
    held: str | None = None
    listeners: list[Callable[[int, int], None]] = field(default_factory=list)

    @classmethod
    def of(cls, chat_id: int) -> GroupState:
        return cls(configured=chat_id, current=chat_id)

    @property
    def overridden(self) -> bool:
        """The database's chat id wins over HELPDESK_CHAT_ID."""
        return self.current != self.configured

    def is_group(self, chat_id: int) -> bool:
        return chat_id == self.current

    def adopt(self, stored: GroupState) -> None:
        """Take what the database knows (at start-up), telling listeners of a new id."""
        self.previous |= stored.previous
        self.membership = stored.membership
        self.held = stored.held
        self.move_to(stored.current)

    def move_to(self, new_chat_id: int) -> None:
        old = self.current
        if new_chat_id == old:
            return
        self.previous.add(old)
        self.current = new_chat_id
        for listener in self.listeners:
            listener(old, new_chat_id)


# --- the database side (call in a database thread) -----------------------------------------


def _put(session: Session, key: str, value: dict[str, Any], now: dt.datetime) -> None:
    row = session.get(TelegramState, key)
    if row is None:
        session.add(TelegramState(key=key, value=value, updated_at=now))
    else:
        row.value = value
        row.updated_at = now


def _get(session: Session, key: str) -> dict[str, Any] | None:
    row = session.get(TelegramState, key)
    return dict(row.value) if row is not None else None


def follow_migrations(session: Session, chat_id: int) -> tuple[int, list[int], str | None]:
    """(current chat id, the ids it went through, when it last moved) from a configured id."""
    seen: list[int] = []
    at: str | None = None
    current = chat_id
    while len(seen) < 10:
        moved = _get(session, f"{MIGRATED}{current}")
        if moved is None or not isinstance(moved.get("to"), int):
            break
        seen.append(current)
        current, at = int(moved["to"]), str(moved.get("at", ""))
    return current, seen, at


def load(session: Session, configured: int) -> GroupState:
    current, previous, _ = follow_migrations(session, configured)
    state = GroupState(configured=configured, current=current, previous=set(previous))
    stored = _get(session, f"{MEMBERSHIP}{current}")
    if stored is not None:
        state.membership = Membership.from_json(stored)
        state.held = stored.get("held")
    return state


def record_migration(session: Session, old: int, new: int, now: dt.datetime) -> bool:
    """Store old -> new; False when it was known already (another process, a replay)."""
    known = _get(session, f"{MIGRATED}{old}")
    if known is not None and known.get("to") == new:
        return False
    _put(session, f"{MIGRATED}{old}", {"to": new, "at": now.isoformat()}, now)
    return True


def record_membership(
    session: Session, chat_id: int, membership: Membership, held: str | None, now: dt.datetime
) -> None:
    _put(session, f"{MEMBERSHIP}{chat_id}", {**membership.as_json(), "held": held}, now)


def claim_hourly(session: Session, key: str, now: dt.datetime, every: dt.timedelta) -> bool:
    """True (and remember now) when `key` was last claimed more than `every` ago."""
    last = _get(session, key)
    if last is not None:
        try:
            at = dt.datetime.fromisoformat(str(last.get("at")))
        except ValueError:
            at = None
        if at is not None and now - at < every:
            return False
    _put(session, key, {"at": now.isoformat()}, now)
    return True
