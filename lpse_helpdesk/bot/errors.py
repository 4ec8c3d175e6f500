"""What a Telegram error means for the item that caused it, decided by name in one place.

Telegram tells its errors apart only by their description; these are the ones a helpdesk
group meets in the field. Anything not named here is `UNKNOWN`: retried a few times, then
failed with an alert naming the ticket, never dropped silently.
"""

from __future__ import annotations

import enum

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)


class Kind(enum.StrEnum):
    DONE = "done"  # "message is not modified": what we wanted is already shown
    CARD_GONE = "card_gone"  # the message to edit was deleted: post the card again
    REPLY_GONE = "reply_gone"  # the message to answer was deleted: send without the reply
    THREAD_GONE = "thread_gone"  # the ticket's forum topic was deleted: recreate it
    MIGRATED = "migrated"  # the group became a supergroup with a new chat id
    HOLD = "hold"  # the bot cannot write to the group (removed, no rights, no such chat)
    PRIVATE_REFUSED = "private_refused"  # a person blocked or never started the bot
    RETRY_AFTER = "retry_after"  # flood control: wait as told
    MAYBE_SENT = "maybe_sent"  # timed out: it may have been delivered; retry
    TRANSIENT = "transient"  # Telegram unreachable or 5xx: everything waits
    CONFLICT = "conflict"  # 409: another process polls with the same token
    UNKNOWN = "unknown"


_CARD_GONE = ("message to edit not found", "message_id_invalid", "message can't be edited")
_REPLY_GONE = ("message to be replied not found", "replied message not found")
_THREAD_GONE = ("message thread not found", "topic_deleted", "topic_id_invalid", "topic_closed")
_HOLD = (
    "not enough rights",
    "have no rights",
    "need administrator rights",
    "chat_write_forbidden",
    "chat_restricted",
    "chat not found",
    "bot was kicked",
    "bot is not a member",
    "not a member of",
    "group chat was deactivated",
    "chat_admin_required",
)
_MIGRATED = ("group chat was upgraded to a supergroup",)


def classify(error: TelegramError, *, to_group: bool, is_edit: bool = False) -> Kind:
    """The kind of `error` for a call to the helpdesk group (`to_group`) or a private chat."""
    if isinstance(error, ChatMigrated):
        return Kind.MIGRATED
    if isinstance(error, RetryAfter):
        return Kind.RETRY_AFTER
    if isinstance(error, Conflict):
        return Kind.CONFLICT
    if isinstance(error, TimedOut):
        return Kind.MAYBE_SENT
    text = str(error).lower()
    if isinstance(error, BadRequest):
        if "not modified" in text:
            return Kind.DONE
        if any(name in text for name in _CARD_GONE) and is_edit:
            return Kind.CARD_GONE
        if any(name in text for name in _REPLY_GONE):
            return Kind.REPLY_GONE
        if any(name in text for name in _THREAD_GONE):
            return Kind.THREAD_GONE
        if any(name in text for name in _MIGRATED):
            return Kind.MIGRATED
        if any(name in text for name in _HOLD):
            return Kind.HOLD if to_group else Kind.PRIVATE_REFUSED
        return Kind.UNKNOWN
    if isinstance(error, Forbidden):
        return Kind.HOLD if to_group else Kind.PRIVATE_REFUSED
    if isinstance(error, NetworkError):
        return Kind.TRANSIENT  # includes 5xx answers, which PTB raises as NetworkError
    return Kind.UNKNOWN
