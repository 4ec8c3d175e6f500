"""Compose the e-mails the SOP calls for, one per MailKind, ready for SMTP.

Pure: no database, no network, no clock (the date and the Message-ID are given, so that a retry
of an outbox row sends exactly the same mail).
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from email.header import Header
from email.headerregistry import (
    Address,
    BaseHeader,
    HeaderRegistry,
    UniqueAddressHeader,
    UnstructuredHeader,
)
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from functools import cache

from lpse_helpdesk.bridge.salutation import clean_name, salutation
from lpse_helpdesk.bridge.tags import TICKET_HEADER, add_tag, format_tag, strip_reply_prefixes
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.sop.machine import MailKind

__all__ = [
    "AUTOMATIC_KINDS",
    "MAX_REFERENCES",
    "TICKET_HEADER",
    "MailContext",
    "StaffAttachment",
    "compose",
    "lkpp_fields",
    "make_message_id",
    "normalize_message_id",
    "subject_for",
    "thread_references",
]

#: Mails nobody wrote by hand: marked as automatic replies (RFC 3834).
AUTOMATIC_KINDS: frozenset[MailKind] = frozenset(
    {
        MailKind.ACKNOWLEDGEMENT,
        MailKind.ESCALATION_NOTICE,
        MailKind.ATTACHMENT_TOO_LARGE,
        MailKind.UNREADABLE_MAIL,
    }
)
#: At most this many Message-IDs in References: the first one and the most recent ones.
MAX_REFERENCES = 20

_NEEDS_STAFF_TEXT = frozenset({MailKind.DATA_REQUEST, MailKind.SOLUTION, MailKind.LKPP_FORWARD})
_NO_SUBJECT = "(tanpa subjek)"
# Printable ASCII without < > space; possessive, so a long id without its end is read once
# (the '@' is checked afterwards: inside the pattern it made the match quadratic).
_MESSAGE_ID = re.compile(r"<?([!-;=?-~]++)>?")
_TICKET_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MailContext:
    """Everything the templates may show. Texts are plain text; times are already formatted."""

    ticket_number: str  # "LPSE-2026-00042"
    requester_name: str  # may be "" (the greeting then says "Pengguna SPSE")
    requester_address: str
    subject: str  # the user's original subject, as received
    problem_text: str  # the user's problem (quoted history stripped)
    lpse_name: str  # "LPSE Kabupaten Contoh"
    helpdesk_name: str  # HELPDESK_NAME
    helpdesk_address: str  # HELPDESK_EMAIL
    received_at_local: str  # "Senin, 4 Mei 2026 pukul 09.15 WIB"
    category_label: str | None = None
    priority_label: str | None = None
    tender_codes: tuple[str, ...] = ()
    staff_text: str | None = None  # the staff's mail body; for lkpp_forward, the analysis note
    staff_name: str | None = None  # the officer's official name, above the signature
    staff_position: str | None = None  # the officer's position, under the name
    requester_organization: str | None = None  # company or agency, for LKPP
    requester_phone: str | None = None  # for LKPP, when the helpdesk chooses to share it
    helpdesk_phone: str | None = None  # in the signature
    application: str | None = None  # e.g. "SPSE 4.5", for LKPP
    attachment_names: tuple[str, ...] = ()  # the user's attachments, listed for LKPP
    lkpp_answer_text: str | None = None  # lkpp_answer_relay: LKPP's answer (quotes stripped)
    attachment_limit: str | None = None  # attachment_too_large: "10 MB"
    oversized_attachments: tuple[str, ...] = ()  # attachment_too_large: file names
    helpdesk_hours: str | None = None  # service hours, in the signature
    staff_attachment_names: tuple[str, ...] = ()  # the officer's files attached to the mail
    escalated_at_local: str | None = None  # escalation_notice: when it was forwarded
    service_times: tuple[str, ...] = ()  # acknowledgement: "tinggi 4 jam kerja", ...


@dataclasses.dataclass(frozen=True)
class StaffAttachment:
    """A photo or file an officer attached to the mail."""

    filename: str
    content_type: str
    data: bytes


def lkpp_fields(ctx: MailContext) -> list[tuple[str, str]]:
    """The forward's fields as LPSE Support asks for them; empty ones are left out."""
    fields = [
        ("Judul", _topic(ctx) or _NO_SUBJECT),
        ("LPSE", ctx.lpse_name),
        ("Nomor tiket", ctx.ticket_number),
        ("Tipe", "Permasalahan"),
        ("Aplikasi", ctx.application or ""),
        ("Kategori", ctx.category_label if ctx.category_label not in (None, "-") else ""),
        ("Prioritas", ctx.priority_label if ctx.priority_label not in (None, "-") else ""),
        ("Kode tender", ", ".join(ctx.tender_codes)),
        ("Nama pengguna", clean_name(ctx.requester_name)),
        ("Instansi", ctx.requester_organization or ""),
        ("E-mail pengguna", ctx.requester_address),
        ("Telepon pengguna", ctx.requester_phone or ""),
        ("Diterima", ctx.received_at_local),
        ("Lampiran pengguna", ", ".join(ctx.attachment_names)),
    ]
    return [(label, value) for label, value in fields if value and value.strip()]


# --- Message-IDs and threading headers ------------------------------------------------------


def make_message_id(domain: str) -> str:
    """A new random Message-ID ``<hex@domain>``; ``domain`` is the helpdesk address's domain."""
    ascii_domain = _ascii_domain(domain)
    return f"<lpse.{secrets.token_hex(16)}@{ascii_domain}>"


@cache
def _ascii_domain(domain: str) -> str:
    cleaned = domain.strip().rstrip(".").lower()
    try:
        cleaned = cleaned.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{domain!r} is not a domain name") from None
    if not _DOMAIN.fullmatch(cleaned):
        raise ValueError(f"{domain!r} is not a domain name")
    return cleaned


def normalize_message_id(value: str) -> str | None:
    """``value`` as ``<id@host>``, or None when it is not a usable Message-ID."""
    match = _MESSAGE_ID.fullmatch(value.strip())
    if match is None or "@" not in match.group(1)[1:-1]:
        return None
    return f"<{match.group(1)}>"


def thread_references(references: Sequence[str], in_reply_to: str | None) -> list[str]:
    """The References of a reply (RFC 5322 3.6.4): the thread's ids, then the parent's id.

    Unusable ids are dropped and duplicates removed; the parent comes last. Longer chains keep
    the first id (the thread's root) and the most recent ones, at most MAX_REFERENCES in all.
    """
    parent = normalize_message_id(in_reply_to) if in_reply_to else None
    ids: list[str] = []
    for reference in references:
        normalized = normalize_message_id(reference)
        if normalized and normalized != parent and normalized not in ids:
            ids.append(normalized)
    if parent:
        ids.append(parent)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return ids


class _MessageIdListHeader(UnstructuredHeader, BaseHeader):
    """In-Reply-To / References: folded between ids, never inside one.

    The default policy folds long unstructured headers with RFC 2047 encoded words, which turns
    a long Message-ID (Outlook's are ~90 characters) into something no client can match.
    """

    max_count = 1

    def fold(self, *, policy: Policy) -> str:
        linesep = policy.linesep
        limit = policy.max_line_length or 998
        lines: list[str] = []
        line = f"{self.name}:"
        for index, message_id in enumerate(str(self).split()):
            if index and len(line) + 1 + len(message_id) > limit:
                lines.append(line)
                line = ""
            line += f" {message_id}"
        lines.append(line)
        return linesep.join(lines) + linesep


class _AddressHeader(UniqueAddressHeader, BaseHeader):  # type: ignore[misc]  # typeshed: init
    """From / To, written as `email.utils.formataddr` writes them, never folded inside.

    Python 3.11's folder drops the quotes of a display name it has to fold: a Pokja member's
    "Muhammad Ridwan Saputra, S.Kom. (Pokja Pemilihan ...)" then reads as two addresses, one
    without a domain (reply-all breaks). A line may be up to 998 characters (RFC 5322 2.1.1);
    a non-ASCII name becomes encoded words, folded between them."""

    def fold(self, *, policy: Policy) -> str:
        rendered = ", ".join(
            email.utils.formataddr((address.display_name, address.addr_spec), charset="utf-8")
            for address in self.addresses
        )
        return f"{self.name}: " + rendered.replace("\n", policy.linesep) + policy.linesep


class _SubjectHeader(UnstructuredHeader, BaseHeader):
    """Subject, folded as RFC 2047 encoded words that keep every character and space.

    The default folder mixes plain and encoded words around typographic quotes and dashes,
    and loses or doubles the spaces between them."""

    max_count = 1

    def fold(self, *, policy: Policy) -> str:
        text = str(self)
        if text.isascii() and len(self.name) + 2 + len(text) <= (policy.max_line_length or 998):
            return f"{self.name}: {text}{policy.linesep}"
        header = Header(text, "utf-8", header_name=self.name)
        return f"{self.name}: {header.encode(linesep=policy.linesep)}{policy.linesep}"


@cache
def _policy() -> EmailPolicy[EmailMessage]:
    registry = HeaderRegistry()
    registry.map_to_type("in-reply-to", _MessageIdListHeader)
    registry.map_to_type("references", _MessageIdListHeader)
    registry.map_to_type("from", _AddressHeader)
    registry.map_to_type("to", _AddressHeader)
    registry.map_to_type("subject", _SubjectHeader)
    return email.policy.default.clone(header_factory=registry)


# --- Subjects -------------------------------------------------------------------------------


def subject_for(kind: MailKind, ctx: MailContext) -> str:
    """``Re: [LPSE-2026-00042] <subject>``; for Helpdesk LKPP ``Eskalasi <LPSE>: ...``."""
    base = strip_reply_prefixes(" ".join(ctx.subject.split())) or _NO_SUBJECT
    if kind is MailKind.LKPP_FORWARD:
        lpse = _one_line(ctx.lpse_name)
        prefix = f"Eskalasi {lpse}:" if lpse else "Eskalasi:"
        return f"{prefix} {add_tag(base, ctx.ticket_number)}"
    return add_tag(f"Re: {base}", ctx.ticket_number)


def _topic(ctx: MailContext) -> str:
    """The user's subject as the body quotes it: no reply prefixes, no ticket tag."""
    topic = strip_reply_prefixes(" ".join(ctx.subject.split()))
    return " ".join(topic.replace(format_tag(ctx.ticket_number), " ").split())


# --- The mail -------------------------------------------------------------------------------


def compose(
    kind: MailKind,
    ctx: MailContext,
    *,
    to: str,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    date: datetime,
    renderer: Renderer,
    to_name: str | None = None,
    original: bytes | None = None,
    attachments: Sequence[StaffAttachment] = (),
) -> EmailMessage:
    """The mail of ``kind`` for ``ctx``, addressed to ``to`` (an addr-spec).

    ``original`` (the raw mail the user sent) is attached to the LKPP forward as message/rfc822;
    it is refused for other kinds. Raises ValueError on a mail that cannot be made: a missing
    staff text or LKPP answer, a bad Message-ID or address, a naive date.
    """
    _check(kind, ctx, date=date, original=original)
    own_id = normalize_message_id(message_id)
    if own_id is None:
        raise ValueError(f"invalid Message-ID {message_id!r}")
    subject = subject_for(kind, ctx)
    fields = lkpp_fields(ctx)
    variables = {
        **{field.name: getattr(ctx, field.name) for field in dataclasses.fields(ctx)},
        "salutation": salutation(ctx.requester_name),
        "to_lkpp": kind is MailKind.LKPP_FORWARD,
        "lkpp_fields": fields,
        "lkpp_label_width": max((len(label) for label, _ in fields), default=0),
        "kind": kind.value,
        "is_automatic": kind in AUTOMATIC_KINDS,
        "ticket_tag": format_tag(ctx.ticket_number),
        "topic": _topic(ctx),
    }
    body = renderer.render(f"{kind.value}.txt", variables, title=subject)

    message = EmailMessage(policy=_policy())
    message["From"] = _address(ctx.helpdesk_name, ctx.helpdesk_address)
    message["To"] = _address(to_name or "", to)
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = own_id
    parent = normalize_message_id(in_reply_to) if in_reply_to else None
    if parent:
        message["In-Reply-To"] = parent
    chain = thread_references(references, in_reply_to)
    if chain:
        message["References"] = " ".join(chain)
    message[TICKET_HEADER] = ctx.ticket_number
    if kind in AUTOMATIC_KINDS:
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"

    message.set_content(body.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(body.html, subtype="html", charset="utf-8", cte="quoted-printable")
    if original is not None:
        _attach_original(message, original, ctx.ticket_number)
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not maintype or not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    # Last: set_content and the move to multipart/mixed take the Content-* headers along.
    message["Content-Language"] = "id"
    return message


def _check(kind: MailKind, ctx: MailContext, *, date: datetime, original: bytes | None) -> None:
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date of a mail must be timezone-aware")
    if kind in _NEEDS_STAFF_TEXT and not (ctx.staff_text and ctx.staff_text.strip()):
        raise ValueError(f"a {kind.value} mail needs the staff text")
    if kind is MailKind.LKPP_ANSWER_RELAY and not (
        ctx.lkpp_answer_text and ctx.lkpp_answer_text.strip()
    ):
        raise ValueError("a lkpp_answer_relay mail needs LKPP's answer")
    if original is not None and kind is not MailKind.LKPP_FORWARD:
        raise ValueError("only the LKPP forward carries the original mail")
    if not _TICKET_NUMBER.fullmatch(ctx.ticket_number):
        raise ValueError(f"invalid ticket number {ctx.ticket_number!r}")


def _address(name: str, addr_spec: str) -> Address:
    addr_spec = addr_spec.strip()
    try:
        address = Address(display_name=_one_line(name), addr_spec=addr_spec)
    except (ValueError, IndexError):  # the parser raises IndexError on some malformed input
        raise ValueError(f"invalid address {addr_spec!r}") from None
    if not address.username or not address.domain:
        raise ValueError(f"invalid address {addr_spec!r}")
    return address


def _one_line(text: str) -> str:
    """Display names on one line: no CR/LF (header injection), no runs of whitespace."""
    return " ".join(text.split())


def _attach_original(message: EmailMessage, original: bytes, ticket_number: str) -> None:
    """Attach the user's raw mail as message/rfc822; its own attachments stay as they were."""
    parsed = email.message_from_bytes(original, policy=email.policy.default)
    message.add_attachment(parsed, filename=f"email-asli-{ticket_number}.eml")
