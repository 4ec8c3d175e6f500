"""The one place that wires the bot: the PTB application, its handlers, the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.orm import Session
from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BotCommandScopeChatMember,
    BotCommandScopeDefault,
    Update,
)
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from lpse_helpdesk.bot import board, bounce_flags, texts
from lpse_helpdesk.bot import group as group_store
from lpse_helpdesk.bot.access import Access
from lpse_helpdesk.bot.cards import Urgency
from lpse_helpdesk.bot.dispatcher import TelegramDispatcher
from lpse_helpdesk.bot.group import GroupState
from lpse_helpdesk.bot.handlers import Handlers
from lpse_helpdesk.bot.interactions import Interactions
from lpse_helpdesk.bot.membership import membership_of
from lpse_helpdesk.bot.polling import PollingGuard
from lpse_helpdesk.bot.ratelimit import Limits
from lpse_helpdesk.bot.replies import Replies, is_reply_press
from lpse_helpdesk.bot.reply_handlers import ReplyHandlers
from lpse_helpdesk.bot.staff_commands import StaffCommands
from lpse_helpdesk.bot.topics import Topics
from lpse_helpdesk.bridge.letters import Letterhead
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.reports.delivery import RecapDelivery
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.tickets import Workflow

log = logging.getLogger(__name__)

#: The command menu per scope: staff commands in the helpdesk group, /rekap added for
#: supervisors (in their private chat and in the group), a short list in other chats.
STAFF_COMMANDS = [
    ("antrian", "Tiket terbuka, yang perlu tindakan dulu"),
    ("tiket", "Tampilkan kartu tiket: /tiket <nomor>"),
    ("cari", "Cari tiket: /cari <kata atau e-mail>"),
    ("saya", "Tiket yang pernah saya tangani"),
    ("nama", "Nama resmi untuk tanda tangan surat"),
    ("templat", "Templat jawaban: daftar, tambah, ubah, hapus"),
    ("batal", "Batalkan isian yang sedang diminta"),
    ("bantuan", "Panduan singkat bot helpdesk"),
]
SUPERVISOR_COMMANDS = [("rekap", "Rekap penanganan: /rekap [periode]")]
PRIVATE_COMMANDS = [("bantuan", "Tentang bot ini")]


@dataclass(frozen=True)
class BotSettings:
    token: str
    api_url: str  # TELEGRAM_API_URL
    chat_id: int
    staff_ids: frozenset[int]
    supervisor_ids: frozenset[int]
    ticket_prefix: str
    limits: Limits = field(default_factory=Limits)
    remind_ratio: float = 0.8  # SLA_REMIND_RATIO: when a card's deadline turns "soon"
    poll_timeout: int = 30
    topics: str = "auto"  # TELEGRAM_TOPICS: auto | on | off
    #: False: updates are taken only after `start_receiving()` (the instance holding the role).
    receive_updates: bool = True
    webhook_url: str | None = None  # TELEGRAM_WEBHOOK_URL: updates pushed instead of polled
    webhook_listen: str = "127.0.0.1:8443"  # TELEGRAM_WEBHOOK_LISTEN
    webhook_secret: str | None = None  # TELEGRAM_WEBHOOK_SECRET, checked on every request
    #: The letters' sender side, for previews (None: the defaults of HELPDESK_* settings).
    letterhead: Letterhead | None = None
    reply_attachment_bytes: int = 5 * 1024 * 1024  # REPLY_ATTACHMENT_MAX_MB
    template_dir: Path | None = None


ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]


def build_application(
    settings: BotSettings,
    handlers: Handlers,
    replies: ReplyHandlers | None = None,
    commands: StaffCommands | None = None,
    watch: GroupWatch | None = None,
) -> Application:  # type: ignore[type-arg]
    """Every handler the bot answers, in order; reading this tells what the bot does."""
    builder = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(f"{settings.api_url}/bot")
        .base_file_url(f"{settings.api_url}/file/bot")
    )
    if watch is not None:
        builder = builder.get_updates_request(watch.polling.request(settings.poll_timeout + 10))
    else:
        builder = builder.get_updates_read_timeout(settings.poll_timeout + 10)
    application = builder.build()
    if watch is not None:
        # The group changing under the bot: first, so nothing else handles these updates.
        application.add_handler(TypeHandler(Update, watch.on_any), group=-2)
        application.add_handler(
            MessageHandler(filters.StatusUpdate.MIGRATE, watch.on_migrate), group=-1
        )
        application.add_handler(
            ChatMemberHandler(watch.on_my_member, ChatMemberHandler.MY_CHAT_MEMBER), group=-1
        )
    if replies is not None:
        # Preview, canned answers, LKPP relay, reopen after thanks (bot/replies.py).
        application.add_handler(CallbackQueryHandler(replies.on_press, pattern=is_reply_press))
    # Before the card buttons: the bounce notice's "clear flag" button (bot/bounce_flags.py).
    application.add_handler(bounce_flags.clear_flag_handler(handlers.db, handlers.access))
    application.add_handler(CallbackQueryHandler(handlers.on_press))
    application.add_handler(CommandHandler("start", handlers.start))
    application.add_handler(CommandHandler("bantuan", handlers.help))
    application.add_handler(CommandHandler("help", handlers.help))
    application.add_handler(CommandHandler("batal", handlers.cancel))
    application.add_handler(CommandHandler("tiket", handlers.ticket))
    application.add_handler(CommandHandler("antrian", handlers.queue))
    application.add_handler(CommandHandler("cari", handlers.search))
    application.add_handler(CommandHandler("saya", handlers.mine))
    application.add_handler(CommandHandler("rekap", handlers.rekap))
    if commands is not None:
        application.add_handler(CommandHandler("nama", commands.nama))
        application.add_handler(CommandHandler("templat", commands.templat))
    application.add_handler(
        MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND, handlers.on_reply)
    )
    if replies is not None:
        # Photos and files for the mail; anything else a question cannot use is answered.
        application.add_handler(
            MessageHandler(filters.REPLY & ~filters.TEXT & ~filters.COMMAND, replies.on_media_reply)
        )
    application.add_handler(
        MessageHandler(filters.StatusUpdate.NEW_CHAT_MEMBERS, handlers.on_new_members)
    )
    application.add_error_handler(handlers.on_error)
    return application


class GroupWatch:
    """Updates about the group itself: it became a supergroup, the bot's membership changed."""

    def __init__(self, group: GroupState, polling: PollingGuard) -> None:
        self.group = group
        self.polling = polling
        self.dispatcher: TelegramDispatcher | None = None
        self._checked: set[int] = set()  # unknown group chats already asked about

    async def on_any(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A group the bot does not know writes: has the helpdesk group become it? (When the
        service messages were missed, presses from the new supergroup would be refused.)"""
        chat = update.effective_chat
        if chat is None or chat.type == "private" or self.dispatcher is None:
            return
        if self.group.is_group(chat.id) or chat.id in self._checked:
            return
        self._checked.add(chat.id)
        await self.dispatcher.check_migrated(chat.id)

    async def on_migrate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or self.dispatcher is None:
            return
        if message.migrate_to_chat_id:  # posted in the old group
            await self.dispatcher.migrate(message.chat_id, int(message.migrate_to_chat_id))
        elif message.migrate_from_chat_id:  # posted in the new supergroup
            await self.dispatcher.migrate(int(message.migrate_from_chat_id), message.chat_id)

    async def on_my_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is None or self.dispatcher is None:
            return
        if not self.group.is_group(change.chat.id):
            log.info(
                "the bot's status in chat %s is now %s (not the helpdesk group)",
                change.chat.id,
                change.new_chat_member.status,
            )
            return
        await self.dispatcher.set_membership(membership_of(change.new_chat_member))


class TelegramService:
    """Piece: long polling plus the outbox dispatcher; retries while Telegram is unreachable."""

    name = "telegram bot"

    def __init__(
        self,
        settings: BotSettings,
        db: Database,
        clock: Clock,
        workflow: Workflow,
        domain: DomainConfig,
        *,
        recap: RecapDelivery | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.group = GroupState.of(settings.chat_id)
        self.group.listeners.append(self._group_moved)
        self.polling = PollingGuard(db, clock, self.group)
        self.watch = GroupWatch(self.group, self.polling)
        access = Access(self.group, settings.staff_ids, settings.supervisor_ids)
        letterhead = settings.letterhead or Letterhead(
            helpdesk_address="helpdesk@localhost.localdomain",
            helpdesk_name="Helpdesk LPSE",
            lpse_name="LPSE",
            timezone=workflow.timezone,
        )
        self.replies = Replies(
            workflow, settings.chat_id, letterhead, Renderer(settings.template_dir)
        )
        self.interactions = Interactions(workflow, domain, settings.chat_id, self.replies)
        self.handlers = Handlers(
            db,
            self.interactions,
            access,
            wake=self._wake,
            ticket_prefix=settings.ticket_prefix,
            recap=recap,
        )
        self.reply_handlers = ReplyHandlers(
            db,
            self.interactions,
            self.replies,
            access,
            wake=self._wake,
            max_bytes=settings.reply_attachment_bytes,
        )
        self.commands = StaffCommands(db, self.interactions, access, domain, wake=self._wake)
        self.application = build_application(
            settings, self.handlers, self.reply_handlers, self.commands, self.watch
        )
        self.db = db
        self.clock = clock
        self.topics = Topics(self.application.bot, db, clock, settings.chat_id, settings.topics)
        self.handlers.topics = self.topics
        self.dispatcher = TelegramDispatcher(
            self.application.bot,
            db,
            clock,
            domain,
            workflow.timezone,
            settings.chat_id,
            limits=settings.limits,
            urgency=Urgency(workflow.calendar, settings.remind_ratio),
            group=self.group,
            supervisor_ids=settings.supervisor_ids,
            calendar=workflow.calendar,
            topics=self.topics,
        )
        self.watch.dispatcher = self.dispatcher
        self.polling.wake = self._wake
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self._receiving = settings.receive_updates
        self._updates_lock = asyncio.Lock()

    def _wake(self) -> None:
        self.dispatcher.wake()

    def _group_moved(self, old: int, new: int) -> None:
        self.interactions.chat_id = new
        self.replies.chat_id = new

    async def _load_group(self) -> None:
        """What the database knows about the group; it wins over HELPDESK_CHAT_ID."""
        configured = self.settings.chat_id
        stored = await self.db.run(lambda s: group_store.load(s, configured))
        self.group.adopt(stored)
        if self.group.overridden:
            log.warning(
                "HELPDESK_CHAT_ID=%s was converted by Telegram into supergroup %s; using %s "
                "(stored in the database). Update HELPDESK_CHAT_ID=%s in .env.",
                configured,
                self.group.current,
                self.group.current,
                self.group.current,
            )
        if self.group.held is not None:
            log.warning(
                "the bot could not write to the helpdesk group %s when last seen (%s); "
                "group messages wait until it can",
                self.group.current,
                self.group.held,
            )

    async def start(self) -> None:
        self._stopping.clear()
        self.polling.closing = False
        self._task = asyncio.create_task(self._connect(), name="telegram-connect")

    async def _connect(self) -> None:
        await self._load_group()
        delay = 2.0
        while not self._stopping.is_set():
            try:
                await self.application.initialize()
                break
            except InvalidToken:
                log.error("Telegram rejected TELEGRAM_BOT_TOKEN; the bot stays off")
                return
            except TelegramError as error:
                log.warning(
                    "Telegram unreachable (%s); retrying in %.0f s", type(error).__name__, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 300.0)
        if self._stopping.is_set():
            return
        await self._publish_commands()
        await self._prepare_group()
        await self.application.start()
        if self._receiving:
            await self._start_updates()
        await self.dispatcher.start()
        log.info("telegram bot @%s connected", self.application.bot.username)
        self.ready.set()

    async def start_receiving(self) -> None:
        """Take updates from now on (at once, or as soon as Telegram is reachable)."""
        self._receiving = True
        if self.application.running:
            await self._start_updates()

    async def stop_receiving(self) -> None:
        self._receiving = False
        async with self._updates_lock:
            updater = self.application.updater
            if updater is not None and updater.running:
                self.polling.closing = True
                await updater.stop()

    async def _start_updates(self) -> None:
        async with self._updates_lock:
            updater = self.application.updater
            assert updater is not None
            if updater.running or not self._receiving:
                return
            self.polling.closing = False
            allowed = ALLOWED_UPDATES
            url = self.settings.webhook_url
            if url:
                host, _, port = self.settings.webhook_listen.rpartition(":")
                await updater.start_webhook(
                    listen=host or "127.0.0.1",
                    port=int(port),
                    url_path=urlsplit(url).path.lstrip("/"),
                    webhook_url=url,
                    secret_token=self.settings.webhook_secret,
                    allowed_updates=allowed,
                )
                log.info("telegram updates by webhook on %s", self.settings.webhook_listen)
            else:
                await updater.start_polling(
                    timeout=self.settings.poll_timeout,
                    allowed_updates=allowed,
                    error_callback=self.polling.on_error,
                )
                log.info("telegram updates by long polling")

    async def _publish_commands(self) -> None:
        bot = self.application.bot

        def listed(pairs: list[tuple[str, str]]) -> list[BotCommand]:
            return [BotCommand(name, description) for name, description in pairs]

        group = BotCommandScopeChat(self.settings.chat_id)
        try:
            await bot.set_my_commands(listed(PRIVATE_COMMANDS), scope=BotCommandScopeDefault())
            await bot.set_my_commands(
                listed(PRIVATE_COMMANDS), scope=BotCommandScopeAllGroupChats()
            )
            await bot.set_my_commands(listed(STAFF_COMMANDS), scope=group)
            for supervisor in sorted(self.settings.supervisor_ids):
                await bot.set_my_commands(
                    listed(SUPERVISOR_COMMANDS + PRIVATE_COMMANDS),
                    scope=BotCommandScopeChat(supervisor),
                )
                await bot.set_my_commands(
                    listed(STAFF_COMMANDS + SUPERVISOR_COMMANDS),
                    scope=BotCommandScopeChatMember(self.settings.chat_id, supervisor),
                )
            await bot.set_my_description(texts.BOT_DESCRIPTION)
            await bot.set_my_short_description(texts.BOT_SHORT_DESCRIPTION)
        except TelegramError as error:
            log.warning("could not publish the command menus: %s", error)

    async def _prepare_group(self) -> None:
        """Topics mode, and the queue board drawn once at start (then with every change)."""
        await self.topics.detect()
        missing = self.topics.missing_rights or self.topics.not_forum
        reason = "no_rights" if self.topics.missing_rights else "not_forum"
        supervisors = sorted(self.settings.supervisor_ids)
        chat_id = self.settings.chat_id

        def work(session: Session) -> None:
            now = self.clock.now()
            board.request(session, now)
            if not missing:
                return
            day = now.date().isoformat()
            enqueue_telegram(
                session,
                TelegramOp.ALERT,
                ticket_id=None,
                payload={"alert": "no_topics", "reason": reason},
                importance=Importance.SLA_ALERT,
                now=now,
                dedup_key=f"no-topics:{chat_id}:{day}",
            )
            for supervisor in supervisors:
                enqueue_telegram(
                    session,
                    TelegramOp.MESSAGE,
                    ticket_id=None,
                    payload={"chat_id": supervisor, "text": texts.no_topics(reason)},
                    importance=Importance.SLA_ALERT,
                    now=now,
                    dedup_key=f"no-topics:{supervisor}:{day}",
                )

        await self.db.run(work)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        if not self.ready.is_set():
            with contextlib.suppress(Exception):
                await self.application.shutdown()
            return
        await self.dispatcher.stop()
        self.polling.closing = True
        if self.application.updater is not None and self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
