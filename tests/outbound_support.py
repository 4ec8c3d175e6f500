"""The real mail sender pointed at a test SMTP server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from lpse_helpdesk.bridge.outbound import MailSenderService, SenderOptions, SmtpAccount
from lpse_helpdesk.config.settings import Security
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.sla import SlaKeeper
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, WIB


def mail_sender(
    port: int, db: Database, clock: Clock, workflow: Workflow, **options: Any
) -> MailSenderService:
    """Plain SMTP, no login, a short timeout; `options` override SenderOptions."""
    account = SmtpAccount(
        host="127.0.0.1",
        port=port,
        security=Security.PLAIN,
        username=None,
        password=None,
        timeout=5,
    )
    defaults: dict[str, Any] = {
        "helpdesk_address": HELPDESK,
        "helpdesk_name": "Helpdesk LPSE Kota Contoh",
        "lpse_name": "LPSE Kota Contoh",
        "timezone": WIB,
    }
    sla = SlaKeeper(workflow.domain, workflow.calendar)
    return MailSenderService(account, db, clock, sla, SenderOptions(**{**defaults, **options}))
