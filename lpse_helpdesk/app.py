"""`lpse-helpdesk run`: every piece of the service in one asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lpse_helpdesk.bot.service import BotSettings, TelegramService
from lpse_helpdesk.bridge.imap_client import ImapAccount
from lpse_helpdesk.bridge.inbound import IntakeOptions, MailIntakeService
from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.bridge.oauth2 import OAuth2Config, TokenSource
from lpse_helpdesk.bridge.outbound import MailSenderService, SenderOptions, SmtpAccount
from lpse_helpdesk.config.settings import MailAuth, Settings
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.reports.delivery import RecapDelivery, RecapOptions
from lpse_helpdesk.reports.lines import Signers
from lpse_helpdesk.reports.monthly_job import MonthlyRecapService
from lpse_helpdesk.sla.monitor import SlaMonitor
from lpse_helpdesk.sla.scheduler import SlaScheduler
from lpse_helpdesk.storage.db import Database, upgrade
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import Clock, SystemClock
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.tickets import Workflow

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


def build_services(
    settings: Settings, domain: DomainConfig, clock: Clock | None = None
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
    return Services(settings, domain, clock, db, calendar, workflow, oauth2_source(settings))


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
    settings = services.settings
    account = ImapAccount(
        host=settings.IMAP_HOST,
        port=settings.IMAP_PORT,
        user=settings.IMAP_USER,
        password=settings.IMAP_PASSWORD.get_secret_value() if settings.IMAP_PASSWORD else "",
        security=settings.IMAP_SECURITY,
        folder=settings.IMAP_FOLDER,
        timeout=settings.IMAP_TIMEOUT,
        oauth2=services.oauth2 if settings.IMAP_AUTH is MailAuth.XOAUTH2 else None,
    )
    intake = Intake(services.workflow, services.domain, intake_config(settings))
    options = IntakeOptions(
        poll_seconds=settings.IMAP_POLL_SECONDS,
        idle_seconds=settings.IMAP_IDLE_SECONDS,
        processed_folder=settings.IMAP_PROCESSED_FOLDER,
        quarantine_folder=settings.IMAP_QUARANTINE_FOLDER,
    )
    return MailIntakeService(account, intake, services.db, services.clock, options)


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
    settings = services.settings
    options = RecapOptions(
        lpse_name=settings.LPSE_NAME,
        timezone=settings.timezone,
        mask_email=settings.REKAP_MASK_EMAIL,
        signers=Signers(settings.REKAP_CITY, settings.REKAP_HEAD_TITLE, settings.REKAP_HEAD_NAME),
    )
    return RecapDelivery(services.domain, services.clock, options)


def monthly_recap(services: Services) -> Piece:
    settings = services.settings
    return MonthlyRecapService(
        services.db,
        services.clock,
        recap_delivery(services),
        frozenset(settings.SUPERVISOR_IDS),
        settings.timezone,
    )


def telegram_bot(services: Services) -> Piece:
    settings = services.settings
    bot_settings = BotSettings(
        token=settings.TELEGRAM_BOT_TOKEN.get_secret_value(),
        api_url=settings.TELEGRAM_API_URL,
        chat_id=settings.HELPDESK_CHAT_ID,
        staff_ids=frozenset(settings.STAFF_IDS),
        supervisor_ids=frozenset(settings.SUPERVISOR_IDS),
        ticket_prefix=settings.TICKET_PREFIX,
        remind_ratio=settings.SLA_REMIND_RATIO,
        topics=settings.TELEGRAM_TOPICS.value,
        letterhead=sender_options(settings).letterhead,
        reply_attachment_bytes=settings.REPLY_ATTACHMENT_MAX_MB * 1024 * 1024,
        template_dir=settings.TEMPLATE_DIR,
    )
    return TelegramService(
        bot_settings,
        services.db,
        services.clock,
        services.workflow,
        services.domain,
        recap=recap_delivery(services),
    )


def sla_scheduler(services: Services) -> Piece:
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
    return SlaScheduler(monitor, scan_seconds=settings.SLA_SCAN_SECONDS)


def piece_factories(settings: Settings | None = None) -> list[PieceFactory]:
    """The pieces `run` starts, in order; they are stopped in reverse order."""
    pieces: list[PieceFactory] = [telegram_bot, mail_sender, mail_intake, sla_scheduler]
    if settings is None or settings.REKAP_MONTHLY:
        pieces.append(monthly_recap)
    return pieces


async def serve(
    services: Services,
    factories: list[PieceFactory] | None = None,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then stop every piece cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    await asyncio.to_thread(upgrade, services.db.engine)
    log.info("started database (%s)", services.db.engine.dialect.name)
    started: list[Piece] = []
    try:
        chosen = piece_factories(services.settings) if factories is None else factories
        for factory in chosen:
            piece = factory(services)
            await piece.start()
            started.append(piece)
            log.info("started %s", piece.name)
        log.info("lpse-helpdesk is running; stop with Ctrl+C or SIGTERM")
        await stop.wait()
        log.info("stopping")
    finally:
        for piece in reversed(started):
            try:
                await piece.stop()
                log.info("stopped %s", piece.name)
            except Exception:
                log.exception("error while stopping %s", piece.name)
        await asyncio.to_thread(services.db.close)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        log.info("stopped")
