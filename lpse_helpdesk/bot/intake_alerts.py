"""Group alerts of the mail intake on a real mailbox: history left for import, a refused
folder, a mail stopped over its parsing budget, an import done. Indonesian, HTML-escaped."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import FailedMail

__all__ = ["INTAKE_ALERTS", "intake_alert_text"]

INTAKE_ALERTS = frozenset({"backfill_skipped", "folder_refused", "mail_quarantined", "import_done"})


def _day(value: object, timezone: ZoneInfo) -> str:
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return "?"
    return when.astimezone(timezone).strftime("%d-%m-%Y")


def intake_alert_text(session: Session, payload: dict[str, Any], timezone: ZoneInfo) -> str:
    kind = payload.get("alert")
    if kind == "backfill_skipped":
        since = _day(payload.get("since"), timezone)
        return (
            f"📥 Kotak surat {escape(str(payload.get('folder')))} dibaca pertama kali: "
            f"<b>{int(payload.get('count') or 0)} e-mail lama</b> (sebelum {since}, paling lama "
            f"{_day(payload.get('oldest'), timezone)}) tidak dijadikan tiket dan dibiarkan di "
            "server tanpa diubah. Bila perlu, administrator dapat mengimpornya sebagai arsip "
            "(tanpa tanda terima dan tanpa tenggat) dengan:\n"
            f"<code>lpse-helpdesk import --since YYYY-MM-DD</code>"
        )
    if kind == "folder_refused":
        return (
            f"⚠️ Server IMAP menolak folder <b>{escape(str(payload.get('folder')))}</b>: "
            f"<code>{escape(str(payload.get('cause'))[:300])}</code>\n"
            "E-mail tetap diproses dan ditandai sudah dibaca; pemindahan dicoba lagi nanti. "
            "Periksa nama folder atau hak akses kotak surat."
        )
    if kind == "mail_quarantined":
        failed = session.get(FailedMail, payload.get("failed_mail"))
        reason = f": <code>{escape(failed.last_error[:200])}</code>" if failed else ""
        return (
            f"⚠️ Satu e-mail masuk (UID {escape(str(payload.get('uid')))}) <b>terlalu lama "
            f"dibaca</b> dan dikarantina{reason}.\nE-mail berikutnya tetap diproses. Isinya "
            "tersimpan; administrator dapat memprosesnya ulang dengan "
            "<code>lpse-helpdesk quarantine retry ID</code>."
        )
    if kind == "import_done":
        return (
            f"📚 Impor arsip e-mail selesai: <b>{int(payload.get('tickets') or 0)} tiket</b> dari "
            f"{int(payload.get('mails') or 0)} e-mail ({_day(payload.get('since'), timezone)} s.d. "
            f"{_day(payload.get('until'), timezone)}). Tanpa tanda terima ke pengirim dan tanpa "
            "tenggat SOP."
        )
    return f"ℹ️ {escape(str(kind))}"
