"""The real mail intake service pointed at a test Dovecot account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from lpse_helpdesk.bridge.imap_client import ImapAccount
from lpse_helpdesk.bridge.inbound import IntakeOptions, MailIntakeService
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.config.settings import Security
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import Clock
from tests.servers.dovecot import ImapAccount as DovecotAccount


def intake_service(
    account: DovecotAccount,
    intake: Intake,
    db: Database,
    clock: Clock,
    *,
    kind: type[MailIntakeService] = MailIntakeService,
    **options: Any,
) -> MailIntakeService:
    """Plain IMAP, a short timeout and quick reconnects; `options` override IntakeOptions."""
    imap = ImapAccount(
        host=account.host,
        port=account.port,
        user=account.user,
        password=account.password,
        security=Security.PLAIN,
        timeout=10,
    )
    defaults: dict[str, Any] = {"backoff_first": 0.05, "backoff_cap": 0.2, "poll_seconds": 5}
    return kind(imap, intake, db, clock, IntakeOptions(**{**defaults, **options}))


@asynccontextmanager
async def connected(
    account: DovecotAccount, intake: Intake, db: Database, clock: Clock, **options: Any
) -> AsyncIterator[MailIntakeService]:
    """`intake_service`, connected to the server, stopped at the end (as a run of it would)."""
    service = intake_service(account, intake, db, clock, **options)
    try:
        await service._imap(service.session.connect)
        yield service
    finally:
        await service.stop()
