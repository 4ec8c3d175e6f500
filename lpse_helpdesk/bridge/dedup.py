"""The dedup key of an incoming mail: its Message-ID together with a digest of its content.

Some senders (ticketing tools, scanners, badly configured web forms) put one constant
Message-ID on every mail; dropping each later mail as a duplicate of the first would lose
them silently. The same mail fetched again, or delivered twice over two routes, has the same
id, sender, date, subject, text and attachments, so the key ignores routing headers
(Received, DKIM, Delivered-To) and the raw bytes. ``messages.dedup_key`` is unique: the
database refuses the second copy, also when two processes ingest it at the same moment.
"""

from __future__ import annotations

import hashlib

from lpse_helpdesk.bridge.parsing import ParsedMail

__all__ = ["dedup_key"]


def dedup_key(mail: ParsedMail) -> str:
    digest = hashlib.sha256()
    date = mail.date.isoformat() if mail.date is not None else ""
    parts = [mail.message_id, mail.from_address, date, mail.subject, mail.text]
    parts += [f"{a.filename}:{a.content_type}:{a.size}" for a in mail.attachments]
    for part in parts:
        data = part.encode("utf-8", errors="surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
