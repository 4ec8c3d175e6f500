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


def make_bounce(address: str, original_id: str | None) -> bytes:
    """A DSN from a mailer-daemon: the mail to `address` failed for good; `original_id`, when
    given, is the Message-ID of the returned mail (in its text/rfc822-headers part)."""
    headers = f"Message-ID: <{original_id}>\r\nSubject: x\r\n\r\n" if original_id else "\r\n"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        "To: helpdesk@lpse.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <bounce.{address}.{original_id}@mx.example.net>\r\n"
        "Return-Path: <>\r\n"
        f"X-Failed-Recipients: {address}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers + "--B--\r\n"
    ).encode()
