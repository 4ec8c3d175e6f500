"""Small builder of realistic test mails (the corpus has the odd ones)."""

from __future__ import annotations

import email.utils
import itertools
from email.message import EmailMessage

_counter = itertools.count(1)


def make_mail(
    *,
    sender: str = "Siti Vendor <siti@vendor.co.id>",
    to: str = "Helpdesk LPSE <helpdesk@lpse.test>",
    subject: str = "Gagal upload penawaran",
    body: str = "Selamat siang, kami gagal unggah penawaran. Kode tender: 12345678.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = email.utils.format_datetime(email.utils.localtime())
    mail["Message-ID"] = message_id or f"<test.{next(_counter)}.{id(mail)}@vendor.co.id>"
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = references
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    if attachment:
        name, data = attachment
        mail.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return mail.as_bytes()
