"""A Telegram Bot API server on 127.0.0.1 for tests that drive python-telegram-bot for real.

PTB talks to it through its own request stack (httpx), configured with ``base_url`` and
``base_file_url``; nothing in PTB is patched. The server keeps the state Telegram would
keep (chats, messages, files, the update queue, callback queries, commands, members),
validates requests the way Telegram does and answers with Telegram's error shapes, applies
Telegram's flood limits, and lets a test inject user messages and button presses and
inspect what the bot did.

URL layout (as on api.telegram.org)::

    POST/GET {base_url}/bot{token}/{method}        Bot API methods
    GET      {base_url}/file/bot{token}/{file_path}  file downloads

so ``TELEGRAM_API_URL=server.base_url`` gives PTB ``base_url=f"{base_url}/bot"`` and
``base_file_url=f"{base_url}/file/bot"``.

Everything is guarded by one lock; HTTP requests are served by a ``ThreadingHTTPServer``
in a background thread. The injection and inspection helpers are plain, quick,
thread-safe calls that may be used from async tests; only :meth:`BotApiServer.wait_for`
blocks (use :meth:`BotApiServer.wait_for_async` inside an event loop).

Forum groups (:meth:`BotApiServer.forum`) have topics: createForumTopic and its edit, close,
reopen and delete; a message sent to a deleted topic fails with "message thread not found",
as after a person deletes the topic (:meth:`BotApiServer.delete_topic`). The server also
keeps reactions, pinned messages, ``disable_notification`` (``SentMessage.silent``) and the
bot's descriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import itertools
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.servers._proc import LOCALHOST

__all__ = [
    "DEFAULT_TOKEN",
    "AnsweredCallback",
    "ApiCall",
    "ApiError",
    "BotApiServer",
    "RateLimits",
    "SentMessage",
    "UploadedFile",
    "parse_html",
]

T = TypeVar("T")
JSON = dict[str, Any]
MemberStatus = Literal["creator", "administrator", "member", "restricted", "left", "kicked"]

DEFAULT_TOKEN = "123456789:AAH-test-token-for-lpse-helpdesk-00000"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_LONG_POLL = 50.0

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
# Update types Telegram leaves out unless allowed_updates names them.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Form fields that are plain strings; every other field is JSON-decoded when it parses
# (PTB sends ints, bools and objects JSON-encoded, and strings as they are).
STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "data",
        "language_code",
        "file_id",
        "business_connection_id",
        "message_effect_id",
        "title",
        "name",
        "description",
        "short_description",
        "secret_token",
        "ip_address",
        "emoji",
        "action",
    }
)


# -- errors --------------------------------------------------------------------------


class ApiError(Exception):
    """A Telegram error answer: ``{"ok": false, "error_code", "description"[, "parameters"]}``."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    @classmethod
    def bad_request(cls, reason: str) -> ApiError:
        return cls(400, f"Bad Request: {reason}")

    @classmethod
    def flood(cls, retry_after: int) -> ApiError:
        retry_after = max(1, retry_after)
        return cls(
            429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
        )

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


NOT_FOUND = ApiError(404, "Not Found")
UNAUTHORIZED = ApiError(401, "Unauthorized")


# -- HTML entity parsing (the subset of tdlib's parse_html that Telegram documents) -----------

SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "tg-emoji": "custom_emoji",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "a": "text_link",
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:#[xX]([0-9a-fA-F]{1,6})|#([0-9]{1,7})|([a-zA-Z]{2,4}));")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.\-]*")


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    match = _ENTITY_RE.match(text, pos)
    if match is None:
        return None
    hex_code, dec_code, name = match.groups()
    if name is not None:
        char = NAMED_ENTITIES.get(name)
        return (char, match.end()) if char is not None else None
    code = int(hex_code, 16) if hex_code is not None else int(dec_code)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def parse_html(text: str, *, strict_ampersand: bool = True) -> tuple[str, list[JSON]]:
    """Parse Telegram HTML into (plain text, entities); raise :class:`ApiError` like Telegram.

    Error texts and byte offsets follow tdlib. ``strict_ampersand=False`` is Telegram's own
    behaviour: an ``&`` that starts no known entity stays a literal ``&``. The default
    (strict) rejects it, because text that was not escaped is a bug in the bot even when
    Telegram happens to show it.
    """

    def offset(pos: int) -> int:
        return len(text[:pos].encode("utf-8"))

    def fail(reason: str) -> ApiError:
        return ApiError.bad_request(f"can't parse entities: {reason}")

    out: list[str] = []
    u16 = 0
    stack: list[tuple[str, str | None, int]] = []
    entities: list[JSON] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "&":
            decoded = _decode_entity(text, i)
            if decoded is not None:
                out.append(decoded[0])
                u16 += _u16(decoded[0])
                i = decoded[1]
                continue
            if strict_ampersand:
                raise fail(
                    f'Character "&" must be escaped as "&amp;" at byte offset {offset(i)}'
                    " (test server: stricter than Telegram)"
                )
        if char != "<":
            out.append(char)
            u16 += _u16(char)
            i += 1
            continue
        begin = i
        i += 1
        if i < n and text[i] == "/":
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {offset(begin)}")
            i += 1
            name_start = i
            while i < n and not text[i].isspace() and text[i] != ">":
                i += 1
            end_name = text[name_start:i].lower()
            while i < n and text[i].isspace():
                i += 1
            if i >= n or text[i] != ">":
                raise fail(f"Unclosed end tag at byte offset {offset(begin)}")
            i += 1
            open_tag, open_argument, start = stack.pop()
            if end_name and end_name != open_tag:
                raise fail(
                    f'Unmatched end tag at byte offset {offset(begin)}, expected "</{open_tag}>", '
                    f'found "</{end_name}>"'
                )
            if u16 > start:
                entities.append(_entity(open_tag, open_argument, start, u16 - start, entities))
            continue
        name_start = i
        while i < n and not text[i].isspace() and text[i] != ">":
            i += 1
        if i >= n:
            raise fail(f"Unclosed start tag at byte offset {offset(begin)}")
        tag = text[name_start:i].lower()
        if tag not in SUPPORTED_TAGS:
            raise fail(f'Unsupported start tag "{tag}" at byte offset {offset(begin)}')
        attributes: dict[str, str] = {}
        while True:
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise fail(f'Unclosed start tag "{tag}" at byte offset {offset(begin)}')
            if text[i] == ">":
                i += 1
                break
            attr_start = i
            while i < n and not text[i].isspace() and text[i] not in "=>/\"'":
                i += 1
            attr = text[attr_start:i].lower()
            if not attr:
                raise fail(
                    f'Empty attribute name in the tag "{tag}" at byte offset {offset(begin)}'
                )
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise fail(f'Unclosed start tag "{tag}" at byte offset {offset(begin)}')
            if text[i] != "=":
                attributes[attr] = ""
                continue
            i += 1
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise fail(f'Unclosed start tag "{tag}" at byte offset {offset(begin)}')
            if text[i] in "\"'":
                quote = text[i]
                i += 1
                value: list[str] = []
                while i < n and text[i] != quote:
                    decoded = _decode_entity(text, i) if text[i] == "&" else None
                    if decoded is not None:
                        value.append(decoded[0])
                        i = decoded[1]
                    else:
                        value.append(text[i])
                        i += 1
                if i >= n:
                    raise fail(f"Unclosed start tag at byte offset {offset(begin)}")
                i += 1
                attributes[attr] = "".join(value)
            else:
                match = _NAME_TOKEN.match(text, i)
                end = match.end() if match else i
                if end >= n or (not text[end].isspace() and text[end] != ">"):
                    raise fail(f"Unexpected end of name token at byte offset {offset(end)}")
                attributes[attr] = text[i:end].lower()
                i = end
        argument: str | None = None
        if tag == "a":
            argument = attributes.get("href")
        elif tag == "span":
            if attributes.get("class") != "tg-spoiler":
                raise fail(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {offset(begin)}'
                )
        elif tag == "code":
            argument = attributes.get("class", "").removeprefix("language-") or None
        elif tag == "tg-emoji":
            argument = attributes.get("emoji-id", "")
            if not argument.isdigit():
                raise fail("Invalid custom emoji identifier specified")
        elif tag == "blockquote" and "expandable" in attributes:
            argument = "expandable"
        stack.append((tag, argument, u16))
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    plain = "".join(out)
    # Telegram trims surrounding whitespace; keep entities inside the trimmed text.
    lead = _u16(plain) - _u16(plain.lstrip())
    plain = plain.strip()
    size = _u16(plain)
    trimmed: list[JSON] = []
    for entity in entities:
        start = max(0, entity["offset"] - lead)
        end = min(size, entity["offset"] - lead + entity["length"])
        if end > start:
            trimmed.append({**entity, "offset": start, "length": end - start})
    trimmed.sort(key=lambda e: (e["offset"], -e["length"]))
    return plain, trimmed


def _entity(tag: str, argument: str | None, start: int, length: int, done: list[JSON]) -> JSON:
    kind = TAG_ENTITY[tag]
    if tag == "pre" and done and done[-1]["type"] == "code" and done[-1]["offset"] == start:
        inner = done.pop()  # <pre><code class="language-x"> is one pre entity with a language
        entity: JSON = {"type": "pre", "offset": start, "length": length}
        if "language" in inner:
            entity["language"] = inner["language"]
        return entity
    entity = {"type": kind, "offset": start, "length": length}
    if tag == "a" and argument:
        entity["url"] = argument
    elif tag == "code" and argument:
        entity["language"] = argument
    elif tag == "tg-emoji" and argument:
        entity["custom_emoji_id"] = argument
    elif tag == "blockquote" and argument:
        entity["type"] = "expandable_blockquote"
    return entity


# -- records -------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """A multipart file part as the server received it."""

    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class ApiCall:
    """One HTTP request to a Bot API method, with the decoded parameters and the answer."""

    method: str
    params: JSON
    files: dict[str, UploadedFile]
    time: float  # time.monotonic() when the request arrived
    status: int
    response: JSON

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass(frozen=True)
class AnsweredCallback:
    """What the bot passed to answerCallbackQuery."""

    text: str | None
    show_alert: bool
    url: str | None
    time: float


@dataclass(frozen=True)
class SentMessage:
    """The current state of a message the bot sent (a snapshot)."""

    chat_id: int
    message_id: int
    method: str  # sendMessage, sendDocument or sendPhoto
    text: str | None  # as the bot sent it, markup included
    plain_text: str | None  # as the user sees it (entities parsed, trimmed)
    caption: str | None
    parse_mode: str | None
    entities: tuple[JSON, ...]
    reply_markup: JSON | None
    reply_to_message_id: int | None
    edit_count: int
    deleted: bool
    document: bytes | None
    filename: str | None
    mime_type: str | None
    photo: bytes | None
    sent_at: float  # time.monotonic()
    versions: tuple[str, ...]  # earlier texts or captions, oldest first
    message_thread_id: int | None = None  # the forum topic it is in
    silent: bool = False  # sent with disable_notification
    reactions: tuple[str, ...] = ()  # emoji the bot set on it
    pinned: bool = False

    @property
    def buttons(self) -> list[JSON]:
        """Every inline keyboard button, row by row."""
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard", [])
        return [dict(button) for row in rows for button in row]

    @property
    def callback_data(self) -> list[str]:
        return [b["callback_data"] for b in self.buttons if "callback_data" in b]


@dataclass
class RateLimits:
    """Telegram's flood limits. Change fields on ``server.limits`` at any time."""

    enabled: bool = True
    group_per_minute: int = 20  # messages per group chat per 60 s (Telegram: about 20)
    global_per_second: int = 30  # messages per second overall (Telegram: about 30)
    chat_per_second: int | None = None  # e.g. 1: Telegram's "about one message per second"
    count_edits: bool = False  # whether edits count against the limits like sends


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes | None
    filename: str | None
    mime_type: str | None


@dataclass
class _Message:
    chat: JSON
    message_id: int
    sender: JSON
    date: int
    by_bot: bool
    method: str
    text: str | None = None
    plain_text: str | None = None
    entities: list[JSON] = field(default_factory=list)
    caption: str | None = None
    plain_caption: str | None = None
    caption_entities: list[JSON] = field(default_factory=list)
    parse_mode: str | None = None
    reply_markup: JSON | None = None
    reply_to_message_id: int | None = None
    document: _File | None = None
    photo: _File | None = None
    edit_count: int = 0
    edit_date: int | None = None
    deleted: bool = False
    sent_at: float = 0.0
    versions: list[str] = field(default_factory=list)
    message_thread_id: int | None = None
    silent: bool = False
    reactions: list[str] = field(default_factory=list)
    new_chat_members: list[JSON] = field(default_factory=list)

    @property
    def chat_id(self) -> int:
        chat_id: int = self.chat["id"]
        return chat_id


@dataclass
class ForumTopic:
    """A forum topic as the server keeps it (see ``BotApiServer.topics``)."""

    chat_id: int
    message_thread_id: int
    name: str
    icon_color: int
    closed: bool = False
    deleted: bool = False
    edits: int = 0


class _Stopping(Exception):
    """The server is shutting down; end a long poll."""


SEND_METHODS = frozenset({"sendmessage", "senddocument", "sendphoto"})
ANONYMOUS_ADMIN = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}


@dataclass
class _FieldConditions:
    """What happens to a group in the field (see BotApiServer.migrate and the methods after)."""

    migrated: dict[int, int] = field(default_factory=dict)  # old chat id -> new
    bot_rights: dict[int, JSON] = field(default_factory=dict)  # chat id -> can_send, ...
    outage_until: float = 0.0
    outage_error: ApiError | None = None
    conflict_until: float = 0.0
    slow: dict[str, deque[float]] = field(default_factory=dict)  # method -> answer delays


# -- the server ----------------------------------------------------------------------


class BotApiServer:
    """A Telegram Bot API server on a free port of 127.0.0.1; see the module docstring.

    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "lpse_helpdesk_bot",
        bot_first_name: str = "Helpdesk LPSE",
        host: str = LOCALHOST,
        limits: RateLimits | None = None,
        strict_ampersand: bool = True,
        bot_status: MemberStatus = "administrator",
        privacy_mode: bool = False,
    ) -> None:
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
            raise ValueError(f"not a Telegram bot token: {token!r}")
        self.token = token
        self.host = host
        self.port = 0
        self.limits = limits if limits is not None else RateLimits()
        self.strict_ampersand = strict_ampersand
        self.bot: JSON = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": not privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.bot_status: MemberStatus = bot_status
        self.privacy_mode = privacy_mode
        self._cond = threading.Condition(threading.RLock())
        self._calls: list[ApiCall] = []
        self._users: dict[int, JSON] = {}
        self._chats: dict[int, JSON] = {}
        self._members: dict[tuple[int, int], MemberStatus] = {}
        self._messages: dict[tuple[int, int], _Message] = {}
        self._next_message_id: dict[int, int] = {}
        self._files: dict[str, _File] = {}
        self._files_by_path: dict[str, _File] = {}
        self._updates: deque[JSON] = deque()
        self._next_update_id = 700_000_001
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._webhook_url = ""
        self._callbacks: dict[str, JSON] = {}  # id -> the callback query, until answered
        self._answered: dict[str, AnsweredCallback] = {}
        self._commands: dict[str, list[JSON]] = {}
        self._forced: dict[str, deque[ApiError]] = {}
        self._group_sends: dict[int, deque[float]] = {}
        self._all_sends: deque[float] = deque()
        self._sent_times: dict[int, list[float]] = {}
        self._ids = itertools.count(1)
        self.too_many_requests = 0
        self._stopping = False
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._field = _FieldConditions()  # migration, membership, outages, 409, slow answers
        # Forum topics, reactions, pinning, descriptions (see "forum topics" below).
        self.bot_can_manage_topics = True
        self._topics: dict[tuple[int, int], ForumTopic] = {}
        self._pinned: dict[int, list[int]] = {}
        self._descriptions: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> BotApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for the app's TELEGRAM_API_URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def bot_base_url(self) -> str:
        """PTB's ``base_url``: ``{base_url}/bot`` (PTB appends the token)."""
        return f"{self.base_url}/bot"

    @property
    def bot_base_file_url(self) -> str:
        """PTB's ``base_file_url``: ``{base_url}/file/bot``."""
        return f"{self.base_url}/file/bot"

    @property
    def bot_id(self) -> int:
        bot_id: int = self.bot["id"]
        return bot_id

    @property
    def bot_username(self) -> str:
        username: str = self.bot["username"]
        return username

    def start(self) -> None:
        """Listen on a free port and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("Bot API server is already started")
        self._stopping = False
        httpd = _Httpd((self.host, 0), _Handler)
        httpd.api = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"bot-api-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """End long polls, close client connections, stop and join every thread. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        httpd.shutdown()
        with self._cond:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()  # joins the request threads (daemon_threads is False)
        if thread is not None:
            thread.join(5)
        self._httpd = None
        self._thread = None

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- test set-up -------------------------------------------------------------------

    def user(
        self,
        id: int,
        first_name: str,
        username: str | None = None,
        *,
        last_name: str | None = None,
        language_code: str | None = "id",
    ) -> JSON:
        """A Telegram user (a dict as in the Bot API), remembered by the server."""
        user: JSON = {"id": id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        with self._cond:
            self._users[id] = user
        return dict(user)

    def group(self, chat_id: int, title: str = "Helpdesk LPSE") -> JSON:
        """Register a supergroup (``chat_id`` negative, e.g. -1001234567890) the bot is in."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        with self._cond:
            chat = self._chats.setdefault(chat_id, {"id": chat_id, "type": "supergroup"})
            chat["title"] = title
            return dict(chat)

    def forum(self, chat_id: int, title: str = "Helpdesk LPSE") -> JSON:
        """Register a supergroup with topics (``is_forum``)."""
        self.group(chat_id, title)
        with self._cond:
            self._chats[chat_id]["is_forum"] = True
            return dict(self._chats[chat_id])

    def topics(self, chat_id: int) -> list[ForumTopic]:
        """The topics of a forum group, oldest first (copies)."""
        with self._cond:
            found = [t for (cid, _), t in sorted(self._topics.items()) if cid == chat_id]
            return [dataclasses.replace(t) for t in found]

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """A person deletes a topic: it and every message in it are gone."""
        with self._cond:
            topic = self._topics[(chat_id, thread_id)]
            topic.deleted = True
            for (cid, _), message in self._messages.items():
                if cid == chat_id and message.message_thread_id == thread_id:
                    message.deleted = True

    def pinned(self, chat_id: int) -> list[int]:
        """Message ids pinned in a chat, oldest pin first."""
        with self._cond:
            return list(self._pinned.get(chat_id, []))

    def reactions(self, chat_id: int, message_id: int) -> list[str]:
        """The bot's reaction on any message (a user's too)."""
        with self._cond:
            message = self._messages.get((chat_id, message_id))
            return list(message.reactions) if message is not None else []

    def descriptions(self) -> dict[str, str]:
        with self._cond:
            return dict(self._descriptions)

    def member_joins(self, chat_id: int, user: JSON) -> JSON:
        """A person joins the group: a service message with ``new_chat_members``."""
        with self._cond:
            chat = self._chat_for(chat_id, user)
            message = self._new_message(chat, user, by_bot=False, method="user")
            message.new_chat_members = [dict(user)]
            return self._enqueue({"message": self._message_json(message)})

    def set_member_status(self, chat_id: int, user_id: int, status: MemberStatus) -> None:
        """What getChatMember answers for ``user_id`` in ``chat_id``.

        Without it, known users are "member" and the bot is ``bot_status``. Setting the
        bot's own status to "left" or "kicked" makes sends to that group fail with 403.
        """
        with self._cond:
            self._members[(chat_id, user_id)] = status

    def flood_next(self, method: str, count: int = 1, retry_after: int = 5) -> None:
        """Answer the next ``count`` calls of ``method`` with 429 and ``retry_after``."""
        self.fail_next(method, ApiError.flood(retry_after), count)

    def fail_next(self, method: str, error: ApiError, count: int = 1) -> None:
        """Answer the next ``count`` calls of ``method`` with ``error`` (any code)."""
        with self._cond:
            self._forced.setdefault(method.lower(), deque()).extend([error] * count)

    # -- injecting what users do ------------------------------------------------------

    def send_text(
        self,
        chat_id: int,
        from_user: JSON,
        text: str,
        reply_to_message_id: int | None = None,
        *,
        entities: list[JSON] | None = None,
        message_thread_id: int | None = None,
    ) -> JSON:
        """A user writes ``text`` in ``chat_id``; returns the queued update.

        A negative ``chat_id`` is a supergroup (registered on first use); a positive one
        is the private chat with ``from_user`` (its id must be the user's). A leading
        ``/command`` or ``/command@bot`` gets its ``bot_command`` entity. With
        ``privacy_mode``, a group message that is no command, no reply to the bot and no
        @mention is stored but not queued (the returned update_id is None), as Telegram
        does for bots with privacy mode on.
        """
        with self._cond:
            chat = self._chat_for(chat_id, from_user)
            message = self._new_message(chat, from_user, by_bot=False, method="user")
            message.text = message.plain_text = text
            message.entities = list(entities) if entities is not None else _command_entity(text)
            if reply_to_message_id is not None:
                if self._live_message(chat_id, reply_to_message_id) is None:
                    raise KeyError(f"no message {reply_to_message_id} in chat {chat_id}")
                message.reply_to_message_id = reply_to_message_id
                if message_thread_id is None:
                    message_thread_id = self._messages[
                        (chat_id, reply_to_message_id)
                    ].message_thread_id
            message.message_thread_id = message_thread_id
            return self._deliver(message)

    def send_private(self, from_user: JSON, text: str) -> JSON:
        """A user writes to the bot in their private chat."""
        return self.send_text(int(from_user["id"]), from_user, text)

    def reply_to(self, chat_id: int, message_id: int, from_user: JSON, text: str) -> JSON:
        """A user answers message ``message_id`` (Telegram's "Reply")."""
        return self.send_text(chat_id, from_user, text, reply_to_message_id=message_id)

    def send_user_document(
        self,
        chat_id: int,
        from_user: JSON,
        content: bytes,
        filename: str,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
        reply_to_message_id: int | None = None,
    ) -> JSON:
        """A user posts a file (maybe as a reply); the bot can getFile and download it."""
        with self._cond:
            chat = self._chat_for(chat_id, from_user)
            message = self._new_message(chat, from_user, by_bot=False, method="user")
            message.document = self._store_file(content, filename, mime_type, "documents")
            message.caption = message.plain_caption = caption
            self._reply_link(message, chat_id, reply_to_message_id)
            return self._deliver(message)

    def send_user_photo(
        self,
        chat_id: int,
        from_user: JSON,
        content: bytes,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSON:
        """A user posts a photo (maybe as a reply); Telegram gives photos no file name."""
        with self._cond:
            chat = self._chat_for(chat_id, from_user)
            message = self._new_message(chat, from_user, by_bot=False, method="user")
            message.photo = self._store_file(content, None, "image/jpeg", "photos")
            message.caption = message.plain_caption = caption
            self._reply_link(message, chat_id, reply_to_message_id)
            return self._deliver(message)

    def send_user_sticker_reply(
        self, chat_id: int, from_user: JSON, reply_to_message_id: int
    ) -> JSON:
        """A reply with no text, photo or file (a sticker, as far as the bot can tell)."""
        with self._cond:
            chat = self._chat_for(chat_id, from_user)
            message = self._new_message(chat, from_user, by_bot=False, method="user")
            self._reply_link(message, chat_id, reply_to_message_id)
            return self._deliver(message)

    def _reply_link(self, message: Any, chat_id: int, reply_to_message_id: int | None) -> None:
        if reply_to_message_id is not None:
            if self._live_message(chat_id, reply_to_message_id) is None:
                raise KeyError(f"no message {reply_to_message_id} in chat {chat_id}")
            message.reply_to_message_id = reply_to_message_id
            message.message_thread_id = self._messages[
                (chat_id, reply_to_message_id)
            ].message_thread_id

    def press(
        self,
        chat_id: int,
        message_id: int,
        from_user: JSON,
        data: str,
        *,
        check_button: bool = True,
    ) -> str:
        """A user presses an inline button with ``data`` on a bot message; returns the
        callback query id. ``check_button=False`` allows data the keyboard no longer shows
        (a stale client)."""
        with self._cond:
            message = self._live_message(chat_id, message_id)
            if message is None or not message.by_bot:
                raise KeyError(f"the bot has no message {message_id} in chat {chat_id}")
            if check_button:
                shown = [
                    button.get("callback_data")
                    for row in (message.reply_markup or {}).get("inline_keyboard", [])
                    for button in row
                ]
                if data not in shown:
                    raise ValueError(f"message {message_id} has no button {data!r}: {shown}")
            self._users.setdefault(int(from_user["id"]), dict(from_user))
            query_id = str(4_200_000_000_000_000_000 + next(self._ids))
            query: JSON = {
                "id": query_id,
                "from": dict(from_user),
                "message": self._message_json(message),
                "chat_instance": str(abs(chat_id) * 7 + 1_000_000_000_000),
                "data": data,
            }
            self._callbacks[query_id] = query
            self._enqueue({"callback_query": query})
            return query_id

    # -- inspecting what the bot did -------------------------------------------------------

    @property
    def calls(self) -> list[ApiCall]:
        """Every API request so far, oldest first (a copy)."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[ApiCall]:
        """The requests to one method (case-insensitive)."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def messages(self, chat_id: int, *, include_deleted: bool = True) -> list[SentMessage]:
        """The current state of every message the bot sent to ``chat_id``, oldest first."""
        with self._cond:
            found = sorted(
                (m for (cid, _), m in self._messages.items() if cid == chat_id and m.by_bot),
                key=lambda m: m.message_id,
            )
            pinned = frozenset(self._pinned.get(chat_id, []))
            return [_snapshot(m, pinned) for m in found if include_deleted or not m.deleted]

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        """One bot message (KeyError when the bot sent no such message)."""
        with self._cond:
            found = self._messages.get((chat_id, message_id))
            if found is None or not found.by_bot:
                raise KeyError(f"the bot sent no message {message_id} to chat {chat_id}")
            return _snapshot(found, frozenset(self._pinned.get(chat_id, [])))

    @property
    def answered_callbacks(self) -> dict[str, AnsweredCallback]:
        """Callback query id -> the answer the bot gave (a copy)."""
        with self._cond:
            return dict(self._answered)

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by an offset."""
        with self._cond:
            return len(self._updates)

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """The command list set with setMyCommands for a scope and language."""
        with self._cond:
            return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    def sent_times(self, chat_id: int) -> list[float]:
        """``time.monotonic()`` of every accepted send (and counted edit) to ``chat_id``."""
        with self._cond:
            return list(self._sent_times.get(chat_id, []))

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return it (TimeoutError otherwise).

        Blocking: not inside an event loop that also runs the bot (use wait_for_async).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self._cond.wait(min(remaining, 0.05))

    async def wait_for_async(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Like :meth:`wait_for`, polling every 10 ms without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    # -- field conditions: migration, membership, outages, 409, slow answers (#11) -------

    def basic_group(self, chat_id: int, title: str = "Helpdesk LPSE") -> JSON:
        """Register a basic group (type "group"), the kind Telegram migrates to a supergroup."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        with self._cond:
            chat = self._chats.setdefault(chat_id, {"id": chat_id, "type": "group"})
            chat.update(type="group", title=title)
            return dict(chat)

    def migrate(
        self, old_chat_id: int, new_chat_id: int, *, announce: bool = True, by: JSON | None = None
    ) -> None:
        """Telegram turns group ``old_chat_id`` into supergroup ``new_chat_id``.

        From now on every call naming the old id answers 400 "group chat was upgraded to a
        supergroup chat" with ``parameters.migrate_to_chat_id`` (PTB raises ChatMigrated).
        With ``announce``, the two service messages are queued as Telegram sends them: one
        in the old chat with ``migrate_to_chat_id``, one in the new with
        ``migrate_from_chat_id``. The bot keeps its status in the new chat.
        """
        with self._cond:
            old = self._chats.get(old_chat_id) or self.basic_group(old_chat_id)
            new = {"id": new_chat_id, "type": "supergroup", "title": old.get("title", "")}
            self._chats[new_chat_id] = new
            self._field.migrated[old_chat_id] = new_chat_id
            status = self._members.get((old_chat_id, self.bot_id))
            if status is not None:
                self._members[(new_chat_id, self.bot_id)] = status
            if old_chat_id in self._field.bot_rights:
                self._field.bot_rights[new_chat_id] = self._field.bot_rights[old_chat_id]
            if not announce:
                return
            admin = dict(by) if by else dict(ANONYMOUS_ADMIN)
            when = int(time.time())
            for chat, key, other in ((old, "migrate_to_chat_id", new_chat_id),
                                     (new, "migrate_from_chat_id", old_chat_id)):  # fmt: skip
                chat_id = int(chat["id"])
                message_id = self._next_message_id.get(chat_id, 1)
                self._next_message_id[chat_id] = message_id + 1
                self._enqueue(
                    {
                        "message": {
                            "message_id": message_id,
                            "from": admin,
                            "chat": dict(chat),
                            "date": when,
                            key: other,
                        }
                    }
                )

    def set_bot_membership(
        self,
        chat_id: int,
        status: MemberStatus,
        *,
        can_send: bool = True,
        can_pin: bool | None = None,
        can_manage_topics: bool | None = None,
        by: JSON | None = None,
    ) -> JSON:
        """The bot's status in a group changes; queues the ``my_chat_member`` update.

        "left"/"kicked": sends answer 403. "restricted" with ``can_send=False``: sends
        answer 400 "not enough rights to send text messages to the chat". Rights default to
        what the status gives (an administrator may pin and manage topics).
        """
        with self._cond:
            chat = self._chats.get(chat_id) or self.group(chat_id)
            before = self._members.get((chat_id, self.bot_id), self.bot_status)
            old_rights = self._field.bot_rights.get(chat_id, {})
            admin = status in ("administrator", "creator")
            rights = {
                "can_send": can_send and status not in ("left", "kicked"),
                "can_pin": admin if can_pin is None else can_pin,
                "can_manage_topics": admin if can_manage_topics is None else can_manage_topics,
            }
            self._members[(chat_id, self.bot_id)] = status
            self._field.bot_rights[chat_id] = rights
            actor = dict(by) if by else next(iter(self._users.values()), self._bot_user())
            update = {
                "my_chat_member": {
                    "chat": dict(chat),
                    "from": actor,
                    "date": int(time.time()),
                    "old_chat_member": self._bot_member(before, old_rights),
                    "new_chat_member": self._bot_member(status, rights),
                }
            }
            return self._enqueue(update)

    def _bot_member(self, status: MemberStatus, rights: JSON) -> JSON:
        body = _member_json(self._bot_user(), status)
        if status == "restricted":
            body["can_send_messages"] = bool(rights.get("can_send", False))
            body["can_pin_messages"] = bool(rights.get("can_pin", False))
            body["can_manage_topics"] = bool(rights.get("can_manage_topics", False))
        elif status == "administrator":
            body["can_pin_messages"] = bool(rights.get("can_pin", True))
            body["can_manage_topics"] = bool(rights.get("can_manage_topics", True))
        return body

    def outage(self, seconds: float, status: int = 502, description: str = "Bad Gateway") -> None:
        """For ``seconds``, every method (getUpdates too) answers ``status`` (a 5xx window)."""
        with self._cond:
            self._field.outage_until = time.monotonic() + seconds
            self._field.outage_error = ApiError(status, description)
            self._poll_generation += 1  # a long poll in progress ends too
            self._cond.notify_all()

    def conflict(self, seconds: float) -> None:
        """For ``seconds``, getUpdates answers 409 "terminated by other getUpdates request",
        as when a second process polls with the same token; the current long poll ends so."""
        with self._cond:
            self._field.conflict_until = time.monotonic() + seconds
            self._poll_generation += 1
            self._cond.notify_all()

    def answer_late(self, method: str, seconds: float, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` are carried out, but answered only after
        ``seconds`` (the client times out not knowing whether its call took effect)."""
        with self._cond:
            self._field.slow.setdefault(method.lower(), deque()).extend([seconds] * count)

    def user_deletes(self, chat_id: int, message_id: int) -> None:
        """A person deletes a bot message in the group (e.g. a card)."""
        with self._cond:
            message = self._live_message(chat_id, message_id)
            if message is None:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            message.deleted = True

    def _field_check(self, name: str, params: JSON) -> None:
        field_ = self._field
        now = time.monotonic()
        if field_.outage_until > now and field_.outage_error is not None:
            raise field_.outage_error
        if name == "getupdates" and field_.conflict_until > now:
            raise ApiError(409, CONFLICT_OTHER_POLL)
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            return
        if chat_id in field_.migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": field_.migrated[chat_id]},
            )
        rights = field_.bot_rights.get(chat_id, {})
        status = self._members.get((chat_id, self.bot_id), self.bot_status)
        if name in SEND_METHODS and status == "restricted" and not rights.get("can_send", True):
            raise ApiError.bad_request("not enough rights to send text messages to the chat")

    # -- request handling (server threads) -----------------------------------------------

    def handle(self, method: str, params: JSON, files: dict[str, UploadedFile]) -> tuple[int, JSON]:
        """Run one API method; returns (HTTP status, JSON body) and records the call."""
        arrived = time.monotonic()
        try:
            result = self._dispatch(method, params, files)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as error:
            status, body = error.code, error.body()
        except _Stopping:
            status, body = 200, {"ok": True, "result": []}
        with self._cond:
            if status == HTTPStatus.TOO_MANY_REQUESTS:
                self.too_many_requests += 1
            self._calls.append(ApiCall(method, params, files, arrived, status, body))
            self._cond.notify_all()
            delays = self._field.slow.get(method.lower())
            delay = delays.popleft() if delays else 0.0
        if delay:
            time.sleep(delay)  # done, but the answer comes too late: the client times out
        return status, body

    def file_content(self, token: str, file_path: str) -> bytes | None:
        """Bytes served at ``/file/bot{token}/{file_path}``."""
        if token != self.token:
            return None
        with self._cond:
            stored = self._files_by_path.get(file_path)
            return stored.content if stored is not None else None

    def _dispatch(self, method: str, params: JSON, files: dict[str, UploadedFile]) -> Any:
        name = method.lower()
        handler = _METHODS.get(name)
        if handler is None:
            raise NOT_FOUND
        with self._cond:
            forced = self._forced.get(name)
            if forced:
                raise forced.popleft()
            self._field_check(name, params)
        if name == "getupdates":
            return self._get_updates(params)
        with self._cond:
            return handler(self, params, files)

    # -- helpers (call with the lock held) -------------------------------------------------

    def _chat_for(self, chat_id: int, from_user: JSON) -> JSON:
        self._users.setdefault(int(from_user["id"]), dict(from_user))
        if chat_id < 0:
            if chat_id not in self._chats:
                self.group(chat_id)
            return self._chats[chat_id]
        if chat_id != from_user["id"]:
            raise ValueError("a private chat's id is the user's id")
        chat: JSON = {"id": chat_id, "type": "private", "first_name": from_user["first_name"]}
        for key in ("last_name", "username"):
            if key in from_user:
                chat[key] = from_user[key]
        self._chats[chat_id] = chat
        return chat

    def _new_message(self, chat: JSON, sender: JSON, *, by_bot: bool, method: str) -> _Message:
        chat_id = int(chat["id"])
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        message = _Message(
            chat=chat,
            message_id=message_id,
            sender=dict(sender),
            date=int(time.time()),
            by_bot=by_bot,
            method=method,
            sent_at=time.monotonic(),
        )
        self._messages[(chat_id, message_id)] = message
        return message

    def _live_message(self, chat_id: int, message_id: int) -> _Message | None:
        message = self._messages.get((chat_id, message_id))
        return None if message is None or message.deleted else message

    def _message_json(self, message: _Message, *, nested: bool = True) -> JSON:
        body: JSON = {
            "message_id": message.message_id,
            "from": dict(message.sender),
            "chat": dict(message.chat),
            "date": message.date,
        }
        if message.edit_date is not None:
            body["edit_date"] = message.edit_date
        if message.message_thread_id is not None:
            body["message_thread_id"] = message.message_thread_id
            body["is_topic_message"] = True
        if message.new_chat_members:
            body["new_chat_members"] = copy.deepcopy(message.new_chat_members)
        if message.plain_text is not None:
            body["text"] = message.plain_text
            if message.entities:
                body["entities"] = copy.deepcopy(message.entities)
        if message.document is not None:
            body["document"] = _document_json(message.document)
        if message.photo is not None:
            body["photo"] = [_photo_json(message.photo)]
        if message.plain_caption is not None:
            body["caption"] = message.plain_caption
            if message.caption_entities:
                body["caption_entities"] = copy.deepcopy(message.caption_entities)
        if message.reply_markup is not None and "inline_keyboard" in message.reply_markup:
            # Like Telegram: a Message carries only an inline keyboard, never ForceReply.
            body["reply_markup"] = copy.deepcopy(message.reply_markup)
        if nested and message.reply_to_message_id is not None:
            replied = self._messages.get((message.chat_id, message.reply_to_message_id))
            if replied is not None:
                body["reply_to_message"] = self._message_json(replied, nested=False)
        return body

    def _deliver(self, message: _Message) -> JSON:
        """Queue the update for a user's message, unless privacy mode hides it from the bot."""
        content: JSON = {"message": self._message_json(message)}
        if self.privacy_mode and message.chat["type"] != "private":
            text = message.plain_text or message.plain_caption or ""
            replied = (
                self._messages.get((message.chat_id, message.reply_to_message_id))
                if message.reply_to_message_id is not None
                else None
            )
            seen = (
                bool(_command_entity(text))
                or (replied is not None and replied.by_bot)
                or f"@{self.bot_username}".lower() in text.lower()
            )
            if not seen:
                return {"update_id": None, **content}
        return self._enqueue(content)

    def _enqueue(self, content: JSON) -> JSON:
        update = {"update_id": self._next_update_id, **content}
        self._next_update_id += 1
        self._updates.append(update)
        self._cond.notify_all()
        return copy.deepcopy(update)

    def _store_file(
        self, content: bytes | None, filename: str | None, mime_type: str | None, folder: str
    ) -> _File:
        number = next(self._ids)
        suffix = filename.rsplit(".", 1)[1] if filename and "." in filename else "bin"
        stored = _File(
            file_id=f"BQACAgUAAx0Test{number:08d}",
            file_unique_id=f"AgADTest{number:06d}",
            file_path=f"{folder}/file_{number}.{suffix}",
            content=content,
            filename=filename,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _target_chat(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError.bad_request("chat_id is empty")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise ApiError.bad_request("chat not found")
        chat = self._chats[chat_id]
        if chat["type"] != "private":
            status = self._members.get((chat_id, self.bot_id), self.bot_status)
            if status == "kicked":
                raise ApiError(403, f"Forbidden: bot was kicked from the {chat['type']} chat")
            if status == "left":
                raise ApiError(403, f"Forbidden: bot is not a member of the {chat['type']} chat")
        return chat

    def _flood_check(self, chat_id: int, *, edit: bool) -> None:
        limits = self.limits
        if not limits.enabled or (edit and not limits.count_edits):
            return
        now = time.monotonic()
        while self._all_sends and now - self._all_sends[0] >= 1.0:
            self._all_sends.popleft()
        if len(self._all_sends) >= limits.global_per_second:
            raise ApiError.flood(math.ceil(self._all_sends[0] + 1.0 - now))
        sent = self._sent_times.get(chat_id, [])
        if limits.chat_per_second and len(sent) >= limits.chat_per_second:
            oldest = sent[-limits.chat_per_second]
            if now - oldest < 1.0:
                raise ApiError.flood(math.ceil(oldest + 1.0 - now))
        if chat_id < 0:
            window = self._group_sends.setdefault(chat_id, deque())
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) >= limits.group_per_minute:
                raise ApiError.flood(math.ceil(window[0] + 60.0 - now))

    def _count_send(self, chat_id: int, *, edit: bool) -> None:
        if edit and not self.limits.count_edits:
            return
        now = time.monotonic()
        self._all_sends.append(now)
        self._sent_times.setdefault(chat_id, []).append(now)
        if chat_id < 0:
            self._group_sends.setdefault(chat_id, deque()).append(now)

    def _formatted(
        self, params: JSON, key: str, limit: int, *, required: bool
    ) -> tuple[str | None, str | None, list[JSON], str | None]:
        """(raw, plain, entities, parse_mode) of ``text`` or ``caption``, validated."""
        raw = params.get(key)
        if raw is None or raw == "":
            if required:
                raise ApiError.bad_request("message text is empty")
            return None, None, [], None
        raw = str(raw)
        parse_mode = params.get("parse_mode") or None
        if parse_mode is not None and str(parse_mode).lower() not in (
            "html",
            "markdown",
            "markdownv2",
        ):
            raise ApiError.bad_request(f"unsupported parse_mode {parse_mode!r}")
        if parse_mode is not None and str(parse_mode).lower() == "html":
            plain, entities = parse_html(raw, strict_ampersand=self.strict_ampersand)
        else:  # Markdown is not parsed: the text counts as it is
            plain = raw.strip()
            given = params.get("entities" if key == "text" else "caption_entities")
            entities = list(given) if isinstance(given, list) else []
        if not plain:
            if required:
                raise ApiError.bad_request("message text is empty")
            return None, None, [], None
        if len(plain) > limit:
            raise ApiError.bad_request(
                "message is too long" if key == "text" else "message caption is too long"
            )
        return raw, plain, entities, parse_mode

    def _reply_to(self, chat_id: int, params: JSON) -> int | None:
        reply = params.get("reply_parameters")
        allow = bool(params.get("allow_sending_without_reply"))
        message_id = params.get("reply_to_message_id")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply", allow))
        if message_id is None:
            return None
        if not isinstance(message_id, int) or self._live_message(chat_id, message_id) is None:
            if allow:
                return None
            raise ApiError.bad_request("message to be replied not found")
        return message_id

    def _editable(self, params: JSON) -> _Message:
        if params.get("inline_message_id"):
            raise ApiError.bad_request("MESSAGE_ID_INVALID")  # no inline mode here
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        message = (
            self._live_message(int(chat["id"]), message_id) if isinstance(message_id, int) else None
        )
        if message is None:
            raise ApiError.bad_request("message to edit not found")
        if not message.by_bot:
            raise ApiError.bad_request("message can't be edited")
        return message

    def _edited(self, message: _Message, previous: str | None) -> JSON:
        message.edit_count += 1
        message.edit_date = int(time.time())
        if previous is not None:
            message.versions.append(previous)
        self._count_send(message.chat_id, edit=True)
        return self._message_json(message)

    def _get_updates(self, params: JSON) -> list[JSON]:
        offset = _int(params.get("offset"), 0)
        limit = min(100, max(1, _int(params.get("limit"), 100)))
        timeout = min(MAX_LONG_POLL, max(0.0, _float(params.get("timeout"), 0.0)))
        allowed = params.get("allowed_updates")
        with self._cond:
            if self._webhook_url:
                raise ApiError(409, CONFLICT_WEBHOOK)
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()  # an older long poll ends with 409
            if isinstance(allowed, list):
                self._allowed_updates = frozenset(allowed) if allowed else None
            if offset > 0:
                while self._updates and self._updates[0]["update_id"] < offset:
                    self._updates.popleft()
            elif offset < 0:
                while len(self._updates) > -offset:
                    self._updates.popleft()
            deadline = time.monotonic() + timeout
            while True:
                if self._stopping:
                    raise _Stopping
                if generation != self._poll_generation:
                    raise ApiError(409, CONFLICT_OTHER_POLL)
                ready = [u for u in self._updates if self._deliverable(u)][:limit]
                remaining = deadline - time.monotonic()
                if ready or remaining <= 0:
                    return copy.deepcopy(ready)
                self._cond.wait(remaining)

    def _deliverable(self, update: JSON) -> bool:
        kind = next(key for key in update if key != "update_id")
        if self._allowed_updates is None:
            return kind not in OPT_IN_UPDATES
        return kind in self._allowed_updates

    # -- the methods ----------------------------------------------------------------------

    def _get_me(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        return {**self.bot, "can_read_all_group_messages": not self.privacy_mode}

    def _true(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        return True

    def _delete_webhook(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self._webhook_url = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _set_webhook(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self._webhook_url = str(params.get("url") or "")
        return True

    def _get_webhook_info(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        return {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _send_message(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat = self._target_chat(params)
        raw, plain, entities, parse_mode = self._formatted(params, "text", MAX_TEXT, required=True)
        markup = _check_markup(params.get("reply_markup"))
        reply_to = self._reply_to(int(chat["id"]), params)
        thread = self._thread_for(chat, params, reply_to)
        self._flood_check(int(chat["id"]), edit=False)
        message = self._new_message(chat, self.bot, by_bot=True, method="sendMessage")
        self._place(message, params, thread)
        message.text, message.plain_text, message.entities = raw, plain, entities
        message.parse_mode, message.reply_markup = parse_mode, markup
        message.reply_to_message_id = reply_to
        self._count_send(int(chat["id"]), edit=False)
        return self._message_json(message)

    def _send_file(
        self, params: JSON, files: dict[str, UploadedFile], kind: Literal["document", "photo"]
    ) -> JSON:
        chat = self._target_chat(params)
        given = params.get(kind)
        upload = files.get(kind)
        if isinstance(given, str) and given.startswith("attach://"):
            upload = files.get(given.removeprefix("attach://"))
        if upload is not None:
            folder = "documents" if kind == "document" else "photos"
            stored = self._store_file(upload.content, upload.filename, upload.content_type, folder)
        elif isinstance(given, str) and given in self._files:
            stored = self._files[given]
        elif isinstance(given, str) and given.startswith(("http://", "https://")):
            stored = self._store_file(None, given.rsplit("/", 1)[-1], None, "documents")
        elif not given:
            raise ApiError.bad_request(f"there is no {kind} in the request")
        else:
            raise ApiError.bad_request("wrong file identifier/HTTP URL specified")
        raw, plain, entities, parse_mode = self._formatted(
            params, "caption", MAX_CAPTION, required=False
        )
        markup = _check_markup(params.get("reply_markup"))
        reply_to = self._reply_to(int(chat["id"]), params)
        thread = self._thread_for(chat, params, reply_to)
        self._flood_check(int(chat["id"]), edit=False)
        method = "sendDocument" if kind == "document" else "sendPhoto"
        message = self._new_message(chat, self.bot, by_bot=True, method=method)
        self._place(message, params, thread)
        if kind == "document":
            message.document = stored
        else:
            message.photo = stored
        message.caption, message.plain_caption, message.caption_entities = raw, plain, entities
        message.parse_mode, message.reply_markup = parse_mode, markup
        message.reply_to_message_id = reply_to
        self._count_send(int(chat["id"]), edit=False)
        return self._message_json(message)

    def _send_document(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        return self._send_file(params, files, "document")

    def _send_photo(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        return self._send_file(params, files, "photo")

    def _edit_message_text(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        message = self._editable(params)
        if message.plain_text is None:
            raise ApiError.bad_request("there is no text in the message to edit")
        raw, plain, entities, parse_mode = self._formatted(params, "text", MAX_TEXT, required=True)
        # Telegram drops the inline keyboard when an edit does not repeat it.
        markup = _check_markup(params.get("reply_markup"))
        if (plain, entities, markup) == (
            message.plain_text,
            message.entities,
            message.reply_markup,
        ):
            raise ApiError.bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._flood_check(message.chat_id, edit=True)
        previous = message.text
        message.text, message.plain_text, message.entities = raw, plain, entities
        message.parse_mode, message.reply_markup = parse_mode, markup
        return self._edited(message, previous)

    def _edit_message_caption(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        message = self._editable(params)
        if message.document is None and message.photo is None:
            raise ApiError.bad_request("there is no caption in the message to edit")
        raw, plain, entities, parse_mode = self._formatted(
            params, "caption", MAX_CAPTION, required=False
        )
        markup = _check_markup(params.get("reply_markup"))
        current = (message.plain_caption, message.caption_entities, message.reply_markup)
        if (plain, entities, markup) == current:
            raise ApiError.bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._flood_check(message.chat_id, edit=True)
        previous = message.caption
        message.caption, message.plain_caption, message.caption_entities = raw, plain, entities
        message.parse_mode, message.reply_markup = parse_mode, markup
        return self._edited(message, previous)

    def _edit_message_reply_markup(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        message = self._editable(params)
        markup = _check_markup(params.get("reply_markup"))
        if markup == message.reply_markup:
            raise ApiError.bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._flood_check(message.chat_id, edit=True)
        message.reply_markup = markup
        return self._edited(message, None)

    def _delete_message(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        message = (
            self._live_message(int(chat["id"]), message_id) if isinstance(message_id, int) else None
        )
        if message is None:
            raise ApiError.bad_request("message to delete not found")
        message.deleted = True
        return True

    def _answer_callback_query(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._callbacks or query_id in self._answered:
            raise ApiError.bad_request(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise ApiError.bad_request("MESSAGE_TOO_LONG")
        self._answered[query_id] = AnsweredCallback(
            text=None if text is None else str(text),
            show_alert=bool(params.get("show_alert")),
            url=params.get("url"),
            time=time.monotonic(),
        )
        return True

    def _get_chat(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat = self._target_chat(params)
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _get_chat_member(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat = self._target_chat(params)
        user_id = params.get("user_id")
        if user_id == self.bot_id:
            user: JSON = self._bot_user()
            default: MemberStatus = self.bot_status
        elif isinstance(user_id, int) and user_id in self._users:
            user, default = dict(self._users[user_id]), "member"
        else:
            raise ApiError.bad_request("user not found")
        status = self._members.get((int(chat["id"]), int(user_id)), default)
        body = _member_json(user, status)
        if user_id == self.bot_id and status == "administrator" and chat.get("is_forum"):
            body["can_manage_topics"] = self.bot_can_manage_topics
        return body

    def _set_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError.bad_request("commands must be a list of at most 100 commands")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(name)):
                raise ApiError.bad_request("BOT_COMMAND_INVALID")
            description = str(command.get("description", ""))
            if not 1 <= len(description) <= 256:
                raise ApiError.bad_request("command description is invalid")
        key = _commands_key(params.get("scope"), str(params.get("language_code") or ""))
        self._commands[key] = [dict(c) for c in commands]
        return True

    def _get_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> list[JSON]:
        key = _commands_key(params.get("scope"), str(params.get("language_code") or ""))
        return copy.deepcopy(self._commands.get(key, []))

    def _delete_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        key = _commands_key(params.get("scope"), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    def _get_file(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise ApiError.bad_request("invalid file_id")
        body: JSON = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if stored.content is not None:
            body["file_size"] = len(stored.content)
            body["file_path"] = stored.file_path
        return body

    # -- forum topics, reactions, pinning, descriptions -------------------------------------

    def _thread_for(self, chat: JSON, params: JSON, reply_to: int | None) -> int | None:
        """The topic a new bot message goes to: the one asked for, else the replied one's."""
        if not chat.get("is_forum"):
            return None
        thread = params.get("message_thread_id")
        if thread is None and reply_to is not None:
            replied = self._messages.get((int(chat["id"]), reply_to))
            thread = replied.message_thread_id if replied is not None else None
        if thread is None:
            return None  # the General topic
        topic = self._topics.get((int(chat["id"]), _int(thread, 0)))
        if topic is None or topic.deleted:
            raise ApiError.bad_request("message thread not found")
        return topic.message_thread_id

    def _place(self, message: _Message, params: JSON, thread: int | None) -> None:
        message.message_thread_id = thread
        message.silent = bool(params.get("disable_notification"))

    def _forum(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        if not chat.get("is_forum"):
            raise ApiError.bad_request("the chat is not a forum")
        status = self._members.get((int(chat["id"]), self.bot_id), self.bot_status)
        if status != "creator" and (status != "administrator" or not self.bot_can_manage_topics):
            raise ApiError.bad_request("not enough rights to manage topics")
        return chat

    def _topic(self, params: JSON) -> ForumTopic:
        chat = self._forum(params)
        topic = self._topics.get((int(chat["id"]), _int(params.get("message_thread_id"), 0)))
        if topic is None or topic.deleted:
            raise ApiError.bad_request("message thread not found")
        return topic

    @staticmethod
    def _topic_name(params: JSON) -> str:
        name = str(params.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise ApiError.bad_request("TOPIC_TITLE_EMPTY" if not name else "topic name too long")
        return name

    def _create_forum_topic(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat = self._forum(params)
        name = self._topic_name(params)
        self._flood_check(int(chat["id"]), edit=False)  # it posts a service message
        self._count_send(int(chat["id"]), edit=False)
        service = self._new_message(chat, self.bot, by_bot=False, method="forumTopicCreated")
        topic = ForumTopic(int(chat["id"]), service.message_id, name, 7322096)
        service.message_thread_id = topic.message_thread_id
        self._topics[(topic.chat_id, topic.message_thread_id)] = topic
        return {"message_thread_id": topic.message_thread_id, "name": name, "icon_color": 7322096}

    def _edit_forum_topic(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        topic = self._topic(params)
        name = self._topic_name(params)
        if name == topic.name:
            raise ApiError.bad_request("TOPIC_NOT_MODIFIED")
        topic.name = name
        topic.edits += 1
        return True

    def _close_forum_topic(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        topic = self._topic(params)
        if topic.closed:
            raise ApiError.bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        return True

    def _reopen_forum_topic(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        topic = self._topic(params)
        if not topic.closed:
            raise ApiError.bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = False
        return True

    def _delete_forum_topic(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        topic = self._topic(params)
        self.delete_topic(topic.chat_id, topic.message_thread_id)
        return True

    def _set_message_reaction(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        message = (
            self._live_message(int(chat["id"]), message_id) if isinstance(message_id, int) else None
        )
        if message is None:
            raise ApiError.bad_request("message to react not found")
        reaction = params.get("reaction") or []
        if not isinstance(reaction, list):
            raise ApiError.bad_request("REACTION_INVALID")
        emoji = [str(r.get("emoji")) for r in reaction if isinstance(r, dict)]
        if any(r.get("type") != "emoji" for r in reaction if isinstance(r, dict)):
            raise ApiError.bad_request("REACTION_INVALID")
        message.reactions = emoji
        return True

    def _pin_chat_message(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if (
            not isinstance(message_id, int)
            or self._live_message(int(chat["id"]), message_id) is None
        ):
            raise ApiError.bad_request("message to pin not found")
        pinned = self._pinned.setdefault(int(chat["id"]), [])
        if message_id not in pinned:
            pinned.append(message_id)
        return True

    def _unpin_chat_message(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._target_chat(params)
        pinned = self._pinned.get(int(chat["id"]), [])
        message_id = params.get("message_id")
        if message_id is None and pinned:
            pinned.pop()
        elif message_id in pinned:
            pinned.remove(message_id)
        return True

    def _set_my_description(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        text = str(params.get("description") or "")
        if len(text) > 512:
            raise ApiError.bad_request("description is too long")
        self._descriptions["description"] = text
        return True

    def _set_my_short_description(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        text = str(params.get("short_description") or "")
        if len(text) > 120:
            raise ApiError.bad_request("short description is too long")
        self._descriptions["short_description"] = text
        return True

    def _get_my_description(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        return {"description": self._descriptions.get("description", "")}

    def _bot_user(self) -> JSON:
        return {key: self.bot[key] for key in ("id", "is_bot", "first_name", "username")}


_Method = Callable[[BotApiServer, JSON, dict[str, UploadedFile]], Any]
_METHODS: dict[str, _Method] = {
    "getme": BotApiServer._get_me,
    "getupdates": BotApiServer._true,  # handled by _get_updates, outside the lock
    "deletewebhook": BotApiServer._delete_webhook,
    "setwebhook": BotApiServer._set_webhook,
    "getwebhookinfo": BotApiServer._get_webhook_info,
    "close": BotApiServer._true,
    "logout": BotApiServer._true,
    "sendmessage": BotApiServer._send_message,
    "senddocument": BotApiServer._send_document,
    "sendphoto": BotApiServer._send_photo,
    "sendchataction": BotApiServer._true,
    "editmessagetext": BotApiServer._edit_message_text,
    "editmessagecaption": BotApiServer._edit_message_caption,
    "editmessagereplymarkup": BotApiServer._edit_message_reply_markup,
    "deletemessage": BotApiServer._delete_message,
    "answercallbackquery": BotApiServer._answer_callback_query,
    "getchat": BotApiServer._get_chat,
    "getchatmember": BotApiServer._get_chat_member,
    "setmycommands": BotApiServer._set_my_commands,
    "getmycommands": BotApiServer._get_my_commands,
    "deletemycommands": BotApiServer._delete_my_commands,
    "getfile": BotApiServer._get_file,
    "createforumtopic": BotApiServer._create_forum_topic,
    "editforumtopic": BotApiServer._edit_forum_topic,
    "closeforumtopic": BotApiServer._close_forum_topic,
    "reopenforumtopic": BotApiServer._reopen_forum_topic,
    "deleteforumtopic": BotApiServer._delete_forum_topic,
    "setmessagereaction": BotApiServer._set_message_reaction,
    "pinchatmessage": BotApiServer._pin_chat_message,
    "unpinchatmessage": BotApiServer._unpin_chat_message,
    "setmydescription": BotApiServer._set_my_description,
    "setmyshortdescription": BotApiServer._set_my_short_description,
    "getmydescription": BotApiServer._get_my_description,
}


# -- pure helpers --------------------------------------------------------------------


def _int(value: object, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return default


def _float(value: object, default: float) -> float:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return float(str(value))
    except ValueError:
        return default


def _command_entity(text: str) -> list[JSON]:
    match = re.match(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?", text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": _u16(match.group())}]


def _check_markup(markup: object) -> JSON | None:
    """Validate reply_markup like Telegram; returns it normalised (or None)."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise ApiError.bad_request("can't parse reply keyboard markup JSON object")
    keyboard = markup.get("inline_keyboard")
    if keyboard is None:
        return dict(markup)  # reply keyboards, force_reply, remove_keyboard: accepted as is
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise ApiError.bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    actions = ("url", "callback_data", "switch_inline_query", "switch_inline_query_current_chat",
               "switch_inline_query_chosen_chat", "callback_game", "pay", "login_url",
               "web_app", "copy_text")  # fmt: skip
    for row in keyboard:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise ApiError.bad_request("can't parse inline keyboard button: Text is empty")
            if not any(key in button for key in actions):
                raise ApiError.bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA:
                raise ApiError.bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not re.match(r"(https?|tg)://\S+$", str(url)):
                raise ApiError.bad_request(
                    f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
                )
    return {"inline_keyboard": [[dict(button) for button in row] for row in keyboard]}


def _commands_key(scope: object, language_code: str) -> str:
    if not isinstance(scope, dict) or scope.get("type", "default") == "default":
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True) + "|" + language_code


def _document_json(stored: _File) -> JSON:
    body: JSON = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
    if stored.filename:
        body["file_name"] = stored.filename
    if stored.mime_type:
        body["mime_type"] = stored.mime_type
    if stored.content is not None:
        body["file_size"] = len(stored.content)
    return body


def _photo_json(stored: _File) -> JSON:
    body: JSON = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "width": 320,
        "height": 240,
    }
    if stored.content is not None:
        body["file_size"] = len(stored.content)
    return body


def _member_json(user: JSON, status: MemberStatus) -> JSON:
    body: JSON = {"status": status, "user": user}
    if status == "creator":
        body["is_anonymous"] = False
    elif status == "administrator":
        body.update(
            dict.fromkeys(
                (
                    "can_be_edited",
                    "is_anonymous",
                    "can_manage_video_chats",
                    "can_restrict_members",
                    "can_promote_members",
                    "can_post_stories",
                    "can_edit_stories",
                    "can_delete_stories",
                ),
                False,
            )
        )
        body.update(
            dict.fromkeys(
                ("can_manage_chat", "can_delete_messages", "can_change_info", "can_invite_users"),
                True,
            )
        )
        body["can_pin_messages"] = True
    elif status == "restricted":
        body["is_member"] = True
        body["until_date"] = 0
        body.update(
            dict.fromkeys(
                (
                    "can_send_messages",
                    "can_send_audios",
                    "can_send_documents",
                    "can_send_photos",
                    "can_send_videos",
                    "can_send_video_notes",
                    "can_send_voice_notes",
                    "can_send_polls",
                    "can_send_other_messages",
                    "can_add_web_page_previews",
                    "can_change_info",
                    "can_invite_users",
                    "can_pin_messages",
                    "can_manage_topics",
                ),
                False,
            )
        )
    elif status == "kicked":
        body["until_date"] = 0
    return body


def _snapshot(message: _Message, pinned: frozenset[int] = frozenset()) -> SentMessage:
    upload = message.document or message.photo
    return SentMessage(
        chat_id=message.chat_id,
        message_id=message.message_id,
        method=message.method,
        text=message.text,
        plain_text=message.plain_text,
        caption=message.caption,
        parse_mode=message.parse_mode,
        entities=tuple(copy.deepcopy(message.entities)),
        reply_markup=copy.deepcopy(message.reply_markup),
        reply_to_message_id=message.reply_to_message_id,
        edit_count=message.edit_count,
        deleted=message.deleted,
        document=message.document.content if message.document else None,
        filename=upload.filename if upload else None,
        mime_type=upload.mime_type if upload else None,
        photo=message.photo.content if message.photo else None,
        sent_at=message.sent_at,
        versions=tuple(message.versions),
        message_thread_id=message.message_thread_id,
        silent=message.silent,
        reactions=tuple(message.reactions),
        pinned=message.message_id in pinned,
    )


def decode_fields(fields: Iterable[tuple[str, str]]) -> JSON:
    """Form fields as PTB sends them -> typed parameters (JSON-decoded except strings)."""
    params: JSON = {}
    for name, value in fields:
        if name in STRING_FIELDS:
            params[name] = value
            continue
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    return params


def _header_params(value: str) -> dict[str, str]:
    """``form-data; name="x"; filename="y"`` -> {"name": "x", "filename": "y"}."""
    found: dict[str, str] = {}
    for match in re.finditer(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', value):
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        # httpx escapes '"' as %22 and control characters as %XX (the HTML5 form rules)
        found[match.group(1).lower()] = re.sub(
            r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), raw.replace("\\\\", "\\")
        )
    return found


def parse_multipart(body: bytes, content_type: str) -> tuple[JSON, dict[str, UploadedFile]]:
    """A multipart/form-data body -> (decoded parameters, files)."""
    boundary = _header_params(content_type).get("boundary")
    if not boundary:
        raise ApiError.bad_request("multipart boundary is missing")
    fields: list[tuple[str, str]] = []
    files: dict[str, UploadedFile] = {}
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break
        part = part.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, _, content = part.partition(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = _header_params(headers.get("content-disposition", ""))
        name = disposition.get("name", "")
        if "filename" in disposition:
            files[name] = UploadedFile(
                filename=disposition["filename"],
                content=content,
                content_type=headers.get("content-type", "application/octet-stream"),
            )
        else:
            fields.append((name, content.decode("utf-8")))
    return decode_fields(fields), files


# -- HTTP ----------------------------------------------------------------------------


class _Httpd(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the request threads: nothing leaks
    block_on_close = True
    api: BotApiServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects of Telegram
    server: _Httpd

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add about 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.api._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: every call is in server.calls

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        body = self._body()
        path = unquote(url.path)
        file_match = re.fullmatch(r"/file/bot([^/]+)/(.+)", path)
        if file_match:
            content = api.file_content(file_match.group(1), file_match.group(2))
            if content is None:
                self._send_json(404, NOT_FOUND.body())
            else:
                self._send(200, content, "application/octet-stream")
            return
        method_match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)/?", path)
        if method_match is None:
            self._send_json(404, NOT_FOUND.body())
            return
        token, method = method_match.groups()
        if token != api.token:
            self._send_json(
                401 if ":" in token else 404, (UNAUTHORIZED if ":" in token else NOT_FOUND).body()
            )
            return
        try:
            params = decode_fields(parse_qsl(url.query, keep_blank_values=True))
            files: dict[str, UploadedFile] = {}
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                form, files = parse_multipart(body, content_type)
                params.update(form)
            elif content_type.startswith("application/json") and body:
                params.update(json.loads(body))
            elif body:
                params.update(
                    decode_fields(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
                )
        except (ValueError, ApiError) as exc:
            self._send_json(400, ApiError.bad_request(f"can't parse request: {exc}").body())
            return
        status, answer = api.handle(method, params, files)
        self._send_json(status, answer)

    def _send_json(self, status: int, body: JSON) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (e.g. PTB cancelled a long poll)
            self.close_connection = True
