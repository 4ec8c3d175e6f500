"""`lpse-helpdesk run`: every piece of the service in one asyncio process.

Start-up, spawn to the first IMAP sync: `run` spawns the mail parsing process before it
imports this module (the child's start-up runs beside ours); this module imports at its top
only what the mail intake needs, the intake is started before the other pieces, and the
other pieces' modules (the Telegram stack, SMTP, the scheduler, the recap: a third of the
imports) are imported in a thread meanwhile (PRELOADS), while the intake waits on the
network. So the first sync waits neither for them nor for the parsing process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lpse_helpdesk.bridge.imap_client import ImapAccount
from lpse_helpdesk.bridge.inbound import IntakeOptions, MailIntakeService
from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.bridge.oauth2 import OAuth2Config, TokenSource
from lpse_helpdesk.config.check import redact_url
from lpse_helpdesk.config.settings import MailAuth, Settings
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.ops.roles import (
    MONTHLY_RECAP,
    RETENTION,
    SLA_SCANNER,
    TELEGRAM_UPDATES,
    Roles,
    Together,
    imap_role,
)
from lpse_helpdesk.ops.runtime import Heartbeat, Runtime
from lpse_helpdesk.ops.single import SqliteInstanceLock, sqlite_file
from lpse_helpdesk.storage.db import Database, upgrade
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import Clock, SystemClock
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.outbox import this_instance
from lpse_helpdesk.workflow.tickets import Workflow

if TYPE_CHECKING:
    from lpse_helpdesk.bot.service import TelegramService
    from lpse_helpdesk.bridge.outbound import SenderOptions
    from lpse_helpdesk.bridge.parse_worker import ParseWorker
    from lpse_helpdesk.reports.delivery import RecapDelivery

log = logging.getLogger("lpse_helpdesk")


class Piece(Protocol):
    """A long-running part of the service (mail intake, mail sender, bot, scheduler)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Services:
    """What the pieces share; built once in `build_services`, nothing at import time."""

    settings: Settings
    domain: DomainConfig
    clock: Clock
    db: Database
    calendar: BusinessCalendar
    workflow: Workflow
    #: OAuth2 access tokens, shared by IMAP and SMTP (None without xoauth2).
    oauth2: TokenSource | None = None
    #: This instance: its roles and what it reports to `status` (made on first use).
    runtime: Runtime | None = None
    #: A mail parsing process `run` started early (see `early_parse_worker`): the first
    #: mail intake takes it over; `serve` closes it if none did.
    parse_worker: ParseWorker | None = None

    def instance(self) -> Runtime:
        if self.runtime is None:
            name = this_instance()
            self.runtime = Runtime(name, self.clock.now(), Roles(self.settings.DATABASE_URL, name))
        return self.runtime


def build_services(
    settings: Settings,
    domain: DomainConfig,
    clock: Clock | None = None,
    *,
    parse_worker: ParseWorker | None = None,
) -> Services:
    clock = clock or SystemClock()
    db = Database.from_url(settings.DATABASE_URL)
    calendar = BusinessCalendar(domain.working_hours, settings.timezone)
    planner = OutboxMailPlanner(
        domain,
        Addresses(helpdesk=settings.HELPDESK_EMAIL, lkpp=settings.LKPP_HELPDESK_EMAIL),
        auto_mail_per_hour=settings.AUTO_MAIL_PER_HOUR,
        staff_names=settings.staff_names,
    )
    workflow = Workflow(
        domain,
        calendar,
        clock,
        planner,
        ticket_prefix=settings.TICKET_PREFIX,
        timezone=settings.timezone,
    )
    services = Services(settings, domain, clock, db, calendar, workflow, oauth2_source(settings))
    services.parse_worker = parse_worker
    return services


def oauth2_source(settings: Settings) -> TokenSource | None:
    """The token source when IMAP_AUTH or SMTP_AUTH is xoauth2; no network call here."""
    if MailAuth.XOAUTH2 not in (settings.IMAP_AUTH, settings.SMTP_AUTH):
        return None
    if not (
        settings.OAUTH2_TOKEN_URL and settings.OAUTH2_CLIENT_ID and settings.OAUTH2_REFRESH_TOKEN
    ):
        raise ValueError("OAUTH2_TOKEN_URL, OAUTH2_CLIENT_ID and OAUTH2_REFRESH_TOKEN are needed")
    secret = settings.OAUTH2_CLIENT_SECRET
    config = OAuth2Config(
        token_url=settings.OAUTH2_TOKEN_URL,
        client_id=settings.OAUTH2_CLIENT_ID,
        client_secret=secret.get_secret_value() if secret else None,
        refresh_token=settings.OAUTH2_REFRESH_TOKEN.get_secret_value(),
        scope=settings.OAUTH2_SCOPE,
    )
    return TokenSource(config)


PieceFactory = Callable[[Services], Piece]


def mail_intake(services: Services) -> Piece:
    """The IMAP reader of IMAP_FOLDER, run by the one instance holding its role."""
    runtime = services.instance()
    folder = services.settings.IMAP_FOLDER
    gate = runtime.roles.gate(imap_role(folder), lambda: _mail_intake(services))
    runtime.intakes[folder] = lambda: _intake_view(gate.piece)
    return gate


def _intake_view(piece: object) -> dict[str, Any] | None:
    if not isinstance(piece, MailIntakeService):
        return None
    return {
        "connected": piece.connected,
        "mode": "idle" if piece.session.supports_idle else "polling",
        "lost_since": piece.lost_since.isoformat() if piece.lost_since else None,
        "last_sync_at": piece.last_sync_at.isoformat() if piece.last_sync_at else None,
    }


def imap_account(services: Services) -> ImapAccount:
    settings = services.settings
    return ImapAccount(
        host=settings.IMAP_HOST,
        port=settings.IMAP_PORT,
        user=settings.IMAP_USER,
        password=settings.IMAP_PASSWORD.get_secret_value() if settings.IMAP_PASSWORD else "",
        security=settings.IMAP_SECURITY,
        folder=settings.IMAP_FOLDER,
        timeout=settings.IMAP_TIMEOUT,
        oauth2=services.oauth2 if settings.IMAP_AUTH is MailAuth.XOAUTH2 else None,
    )


def _mail_intake(services: Services) -> MailIntakeService:
    settings = services.settings
    account = imap_account(services)
    intake = Intake(services.workflow, services.domain, intake_config(settings))
    options = IntakeOptions(
        poll_seconds=settings.IMAP_POLL_SECONDS,
        idle_seconds=settings.IMAP_IDLE_SECONDS,
        processed_folder=settings.IMAP_PROCESSED_FOLDER,
        quarantine_folder=settings.IMAP_QUARANTINE_FOLDER,
        backfill_days=settings.IMAP_BACKFILL_DAYS,
        parse_seconds=settings.MAIL_PARSE_SECONDS,
        max_bytes=settings.MAIL_MAX_BYTES,
    )
    service = MailIntakeService(account, intake, services.db, services.clock, options)
    early, services.parse_worker = services.parse_worker, None
    if early is not None:
        if _same_job(early, service.worker):
            service.worker = early  # not started yet, the service's own one is dropped unused
        else:  # pragma: no cover (early_parse_worker follows MailIntakeService)
            early.close()
    return service


def _same_job(early: ParseWorker, own: ParseWorker) -> bool:
    return (early.max_bytes, early.own_addresses, early.domain, early.budget) == (
        own.max_bytes,
        own.own_addresses,
        own.domain,
        own.budget,
    )


def intake_config(settings: Settings) -> IntakeConfig:
    return IntakeConfig(
        helpdesk_addresses=frozenset({settings.HELPDESK_EMAIL.lower()}),
        lkpp_address=settings.LKPP_HELPDESK_EMAIL,
        ticket_prefix=settings.TICKET_PREFIX,
        max_bytes=settings.MAIL_MAX_BYTES,
        reopen_days=settings.REOPEN_DAYS,
        new_tickets_per_sender_per_hour=settings.NEW_TICKETS_PER_SENDER_PER_HOUR,
        send_acknowledgement=settings.SEND_ACKNOWLEDGEMENT,
    )


def mail_sender(services: Services) -> Piece:
    from lpse_helpdesk.bridge.outbound import MailSenderService, SmtpAccount

    settings = services.settings
    account = SmtpAccount(
        host=settings.SMTP_HOST,
        port=settings.SMTP_PORT,
        security=settings.SMTP_SECURITY,
        username=settings.SMTP_USER,
        password=settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None,
        timeout=settings.SMTP_TIMEOUT,
        oauth2=services.oauth2 if settings.SMTP_AUTH is MailAuth.XOAUTH2 else None,
    )
    options = sender_options(settings)
    return MailSenderService(account, services.db, services.clock, services.workflow.sla, options)


def sender_options(settings: Settings) -> SenderOptions:
    from lpse_helpdesk.bridge.outbound import SenderOptions

    return SenderOptions(
        helpdesk_address=settings.HELPDESK_EMAIL,
        helpdesk_name=settings.HELPDESK_NAME,
        lpse_name=settings.LPSE_NAME,
        timezone=settings.timezone,
        helpdesk_phone=settings.HELPDESK_PHONE,
        template_dir=settings.TEMPLATE_DIR,
        retry_hours=settings.SMTP_RETRY_HOURS,
        max_bytes=settings.MAIL_MAX_BYTES,
        helpdesk_hours=settings.HELPDESK_HOURS,
        application=settings.SPSE_APPLICATION or None,
    )


def recap_delivery(services: Services) -> RecapDelivery:
    from lpse_helpdesk.reports.delivery import RecapDelivery, RecapOptions
    from lpse_helpdesk.reports.lines import Signers

    settings = services.settings
    options = RecapOptions(
        lpse_name=settings.LPSE_NAME,
        timezone=settings.timezone,
        mask_email=settings.REKAP_MASK_EMAIL,
        signers=Signers(settings.REKAP_CITY, settings.REKAP_HEAD_TITLE, settings.REKAP_HEAD_NAME),
    )
    return RecapDelivery(services.domain, services.clock, options)


def monthly_recap(services: Services) -> Piece:
    from lpse_helpdesk.reports.monthly_job import MonthlyRecapService

    settings = services.settings
    return services.instance().roles.gate(
        MONTHLY_RECAP,
        lambda: MonthlyRecapService(
            services.db,
            services.clock,
            recap_delivery(services),
            frozenset(settings.SUPERVISOR_IDS),
            settings.timezone,
        ),
    )


def telegram_bot(services: Services) -> Piece:
    from telegram.ext import CommandHandler

    from lpse_helpdesk.bot.access import Access
    from lpse_helpdesk.bot.service import BotSettings, TelegramService
    from lpse_helpdesk.ops.telegram_status import status_command

    settings = services.settings
    webhook = settings.TELEGRAM_WEBHOOK_URL is not None
    supervisors = frozenset(settings.SUPERVISOR_IDS)
    secret = settings.TELEGRAM_WEBHOOK_SECRET
    bot_settings = BotSettings(
        token=settings.TELEGRAM_BOT_TOKEN.get_secret_value(),
        api_url=settings.TELEGRAM_API_URL,
        chat_id=settings.HELPDESK_CHAT_ID,
        staff_ids=frozenset(settings.STAFF_IDS),
        supervisor_ids=frozenset(settings.SUPERVISOR_IDS),
        ticket_prefix=settings.TICKET_PREFIX,
        remind_ratio=settings.SLA_REMIND_RATIO,
        topics=settings.TELEGRAM_TOPICS.value,
        receive_updates=webhook,
        webhook_url=settings.TELEGRAM_WEBHOOK_URL,
        webhook_listen=settings.TELEGRAM_WEBHOOK_LISTEN,
        webhook_secret=secret.get_secret_value() if secret else None,
        letterhead=sender_options(settings).letterhead,
        reply_attachment_bytes=settings.REPLY_ATTACHMENT_MAX_MB * 1024 * 1024,
        template_dir=settings.TEMPLATE_DIR,
    )
    service = TelegramService(
        bot_settings,
        services.db,
        services.clock,
        services.workflow,
        services.domain,
        recap=recap_delivery(services),
    )
    service.application.add_handler(
        CommandHandler(
            "status",
            status_command(
                services.db,
                services.clock,
                Access(settings.HELPDESK_CHAT_ID, frozenset(settings.STAFF_IDS), supervisors),
                folders=[settings.IMAP_FOLDER],
                group_id=settings.HELPDESK_CHAT_ID,
                database_label=redact_url(settings.DATABASE_URL),
            ),
        )
    )
    runtime = services.instance()
    runtime.telegram = _BotProbe(service)
    # Telegram's per-group limit is the bot's, shared by every instance: each takes its part.
    group_limit = bot_settings.limits.group_per_minute
    runtime.instance_listeners.append(lambda live: _share_group_budget(service, group_limit, live))
    # Long polling: one instance at a time, or Telegram answers 409 to both. With a webhook
    # every instance takes the updates pushed to it; the role still keeps digests single.
    service.dispatcher.digests = False
    receiver = runtime.roles.gate(
        TELEGRAM_UPDATES, lambda: _UpdateReceiver(service, polls=not webhook)
    )
    return Together(service.name, service, receiver)


def _share_group_budget(service: TelegramService, limit: int, instances: int) -> None:
    from lpse_helpdesk.bot.dispatcher import RESERVE

    # Never below what lets new cards through beside the dispatcher's reserve.
    service.dispatcher.budget.set_group_limit(max(RESERVE + 2, limit // max(instances, 1)))


class _UpdateReceiver:
    name = "telegram update receiver"

    def __init__(self, service: TelegramService, *, polls: bool) -> None:
        self.service = service
        self.polls = polls

    async def start(self) -> None:
        self.service.dispatcher.digests = True
        if self.polls:
            await self.service.start_receiving()

    async def stop(self) -> None:
        self.service.dispatcher.digests = False
        if self.polls:
            await self.service.stop_receiving()


class _BotProbe:
    def __init__(self, service: TelegramService) -> None:
        self.service = service

    async def probe(self) -> None:
        await self.service.application.bot.get_me()


def sla_scheduler(services: Services) -> Piece:
    from lpse_helpdesk.sla.monitor import SlaMonitor
    from lpse_helpdesk.sla.scheduler import SlaScheduler

    settings = services.settings
    monitor = SlaMonitor(
        services.db,
        services.clock,
        services.calendar,
        services.domain,
        remind_ratio=settings.SLA_REMIND_RATIO,
        summary_time=settings.SLA_SUMMARY_TIME,
        timezone=settings.timezone,
    )
    return services.instance().roles.gate(
        SLA_SCANNER, lambda: SlaScheduler(monitor, scan_seconds=settings.SLA_SCAN_SECONDS)
    )


def retention(services: Services) -> Piece:
    """RETENTION_DAYS: raw mails dropped and personal data masked on old closed tickets."""
    from lpse_helpdesk.ops.privacy import RetentionService

    days = services.settings.RETENTION_DAYS
    return services.instance().roles.gate(
        RETENTION, lambda: RetentionService(services.db, services.clock, days)
    )


def heartbeat(services: Services) -> Piece:
    return Heartbeat(services.instance(), services.db, services.clock)


def health_server(services: Services) -> Piece:
    from lpse_helpdesk.ops.health import HealthServer

    address = services.settings.METRICS_ADDRESS
    assert address is not None
    return HealthServer(address, services.instance(), services.db, services.clock)


def wake_listener(services: Services) -> Piece:
    """PostgreSQL: LISTEN for the wake-ups other instances' commits send."""
    from lpse_helpdesk.workflow.waker import NotifyListener

    return NotifyListener(services.db)


def _postgresql(settings: Settings) -> bool:
    return settings.DATABASE_URL.startswith(("postgresql", "postgres"))


def piece_factories(settings: Settings | None = None) -> list[PieceFactory]:
    """The pieces `run` runs; they are stopped in reverse order (started in this order too,
    but for those in STARTS_FIRST)."""
    pieces: list[PieceFactory] = []
    if settings is not None and _postgresql(settings):
        pieces.append(wake_listener)
    pieces += [telegram_bot, mail_sender, mail_intake, sla_scheduler]
    if settings is None or settings.REKAP_MONTHLY:
        pieces.append(monthly_recap)
    pieces += [retention, heartbeat]
    if settings is not None and settings.METRICS_ADDRESS:
        pieces.append(health_server)
    return pieces


#: Started before the other pieces (in this order): the first IMAP sync needs neither
#: Telegram nor SMTP. Stopping still goes by `piece_factories`, in reverse: intake first.
STARTS_FIRST: tuple[PieceFactory, ...] = (wake_listener, mail_intake)
_RECAP = ("lpse_helpdesk.reports.delivery", "lpse_helpdesk.reports.monthly_job")
#: The modules of each factory beyond those of the mail intake; `serve` imports them in
#: one thread, in start order, from its first moment (each factory waits for its own).
PRELOADS: dict[PieceFactory, tuple[str, ...]] = {
    telegram_bot: (
        "telegram.ext",
        "lpse_helpdesk.bot.service",
        "lpse_helpdesk.ops.telegram_status",
        "lpse_helpdesk.bridge.outbound",
        *_RECAP,
    ),
    mail_sender: ("lpse_helpdesk.bridge.outbound",),
    sla_scheduler: ("lpse_helpdesk.sla.monitor", "lpse_helpdesk.sla.scheduler"),
    monthly_recap: _RECAP,
    retention: ("lpse_helpdesk.ops.privacy",),
    health_server: ("lpse_helpdesk.ops.health",),
}


async def _preload(after: asyncio.Task[None] | None, modules: tuple[str, ...]) -> None:
    """Import `modules` in a thread once the preload before has ended (one at a time: the
    imports hold the interpreter lock, a second thread would only slow the first)."""
    if after is not None:
        with contextlib.suppress(Exception):  # its own factory reports it
            await after
    await asyncio.to_thread(_import_all, modules)


def _import_all(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


def start_order(factories: list[PieceFactory]) -> list[int]:
    """The indexes of `factories` in the order `serve` starts them."""
    first = [i for early in STARTS_FIRST for i, f in enumerate(factories) if f is early]
    return first + [i for i in range(len(factories)) if i not in first]


async def serve(
    services: Services,
    factories: list[PieceFactory] | None = None,
    *,
    stop: asyncio.Event | None = None,
    running: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then stop every piece cleanly.

    `running` is called once every piece has started (`run` ends its start-up there)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    chosen = piece_factories(services.settings) if factories is None else factories
    database_file = sqlite_file(services.settings.DATABASE_URL)
    guard = SqliteInstanceLock(database_file) if database_file is not None else None
    if guard is not None:
        guard.acquire()  # AnotherInstance: a second instance on one SQLite file
    preloads: dict[PieceFactory, asyncio.Task[None]] = {}
    last: asyncio.Task[None] | None = None
    for index in start_order(chosen):
        factory = chosen[index]
        if (modules := PRELOADS.get(factory)) is not None and factory not in preloads:
            last = preloads[factory] = asyncio.create_task(_preload(last, modules))
    started: dict[int, Piece] = {}
    try:
        await asyncio.to_thread(upgrade, services.db.engine)
        log.info("started database (%s)", services.db.engine.dialect.name)
        for index in start_order(chosen):
            preload = preloads.pop(chosen[index], None)
            if preload is not None:
                await preload
            piece = chosen[index](services)
            await piece.start()
            started[index] = piece
            log.info("started %s", piece.name)
        log.info("lpse-helpdesk is running; stop with Ctrl+C or SIGTERM")
        if running is not None:
            running()
        await stop.wait()
        log.info("stopping")
    finally:
        for preload in preloads.values():  # a start that failed: let the imports end first
            with contextlib.suppress(Exception):
                await preload
        for index in sorted(started, reverse=True):
            piece = started[index]
            try:
                await piece.stop()
                log.info("stopped %s", piece.name)
            except Exception:
                log.exception("error while stopping %s", piece.name)
        if services.parse_worker is not None:  # no mail intake took it over
            await asyncio.to_thread(services.parse_worker.close)
            services.parse_worker = None
        await asyncio.to_thread(services.db.close)
        if guard is not None:
            guard.release()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        log.info("stopped")
