"""Put a recap in the Telegram outbox: the summary message and the file, for one chat."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.reports.export import report_filename, write_report
from lpse_helpdesk.reports.lines import RecapContext, Signers
from lpse_helpdesk.reports.pdf import TooManyTickets
from lpse_helpdesk.reports.period import USAGE as PERIOD_USAGE
from lpse_helpdesk.reports.period import PeriodError, RekapRequest, ReportFormat, parse_rekap_args
from lpse_helpdesk.reports.summary import compute_summary, summary_html
from lpse_helpdesk.timekeeping.clock import Clock
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram


@dataclass(frozen=True)
class RecapOptions:
    lpse_name: str
    timezone: ZoneInfo
    mask_email: bool = False
    signers: Signers = field(default_factory=Signers)


class RecapDelivery:
    def __init__(self, domain: DomainConfig, clock: Clock, options: RecapOptions) -> None:
        self.domain = domain
        self.clock = clock
        self.options = options

    def parse(self, args: list[str]) -> RekapRequest:
        return parse_rekap_args(args, now=self.clock.now(), timezone=self.options.timezone)

    def usage(self, error: PeriodError) -> str:
        return f"{escape(error.message)}\n\n<pre>{escape(PERIOD_USAGE)}</pre>"

    def queue(
        self,
        session: Session,
        request: RekapRequest,
        chat_id: int,
        *,
        reply_to: int | None = None,
        dedup_key: str | None = None,
    ) -> None:
        """The summary and the file, both through the outbox (never lost, rate-limited)."""
        now = self.clock.now()
        context = RecapContext(
            period=request.period,
            domain=self.domain,
            lpse_name=self.options.lpse_name,
            generated_at=now,
            mask_email=self.options.mask_email,
            signers=self.options.signers,
        )
        summary = compute_summary(session, request.period, self.domain, now=now)
        text = summary_html(summary, self.domain, self.options.lpse_name)
        buffer = io.BytesIO()
        try:
            write_report(session, request.format, context, buffer)
        except TooManyTickets as error:
            text += f"\n\n⚠️ {escape(error.message)}"
            buffer = io.BytesIO()
            request = RekapRequest(ReportFormat.XLSX, request.period)
            write_report(session, ReportFormat.XLSX, context, buffer)
        enqueue_telegram(
            session,
            TelegramOp.MESSAGE,
            ticket_id=None,
            payload={"chat_id": chat_id, "text": text, "reply_to": reply_to},
            importance=Importance.PROMPT,
            now=now,
            dedup_key=f"{dedup_key}:summary" if dedup_key else None,
        )
        enqueue_telegram(
            session,
            TelegramOp.DOCUMENT,
            ticket_id=None,
            payload={
                "chat_id": chat_id,
                "filename": report_filename(request.format, request.period),
                "content_hex": buffer.getvalue().hex(),
                "caption": f"Rekap {escape(request.period.label)}",
                "reply_to": reply_to,
            },
            importance=Importance.PROMPT,
            now=now,
            dedup_key=f"{dedup_key}:file" if dedup_key else None,
        )
