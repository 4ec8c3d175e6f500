"""The ORM classes: tickets, messages, attachments, audit, cards, outbox, SLA, mailbox.

The schema itself (columns, types, indexes, constraints) is defined once, as Core tables,
in `storage/tables.py`; each class here is mapped onto its table (``__table__``) and
declares its attributes' Python types (``Mapped[...]``) for the type checker. The enums
stored in columns live there too and are imported from here as before.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage import tables
from lpse_helpdesk.storage.tables import (
    NAMING,
    Channel,
    Direction,
    MessageKind,
    OutboxChannel,
    OutboxStatus,
    PreviewStatus,
    PromptStatus,
    ReplyStep,
)

__all__ = [
    "NAMING",
    "AnswerTemplate",
    "Attachment",
    "AuditEvent",
    "Base",
    "Channel",
    "Direction",
    "FailedMail",
    "FlaggedAddress",
    "InstanceStatus",
    "MailPreview",
    "MailboxState",
    "Message",
    "MessageKind",
    "OutboxChannel",
    "OutboxItem",
    "OutboxStatus",
    "PreviewStatus",
    "PromptStatus",
    "ReplyAttachment",
    "ReplyStep",
    "SlaClock",
    "StaffName",
    "TelegramBoard",
    "TelegramCard",
    "TelegramPrompt",
    "TelegramState",
    "TelegramTopic",
    "Ticket",
    "TicketCounter",
]


class Base(DeclarativeBase):
    metadata = tables.metadata


class TicketCounter(Base):
    """The last sequence number used for ticket numbers, per year."""

    __table__ = tables.ticket_counters
    year: Mapped[int]
    last: Mapped[int]


class Ticket(Base):
    __table__ = tables.tickets

    id: Mapped[int]
    number: Mapped[str]
    requester_name: Mapped[str]
    requester_email: Mapped[str]
    subject: Mapped[str]
    problem_text: Mapped[str]
    category: Mapped[str | None]
    suggested_category: Mapped[str | None]
    priority: Mapped[str | None]
    suggested_priority: Mapped[str | None]
    state: Mapped[State]
    solution: Mapped[str | None]
    remarks: Mapped[str | None]
    tender_codes: Mapped[list[str]]
    phone_numbers: Mapped[list[str]]
    linked_ticket_id: Mapped[int | None]
    reopen_count: Mapped[int]
    # The officer who said "Saya tangani" (Telegram user id and display name).
    handler_id: Mapped[str | None]
    handler_name: Mapped[str | None]

    received_at: Mapped[dt.datetime]
    priority_set_at: Mapped[dt.datetime | None]
    data_requested_at: Mapped[dt.datetime | None]
    phone_confirmed_at: Mapped[dt.datetime | None]
    data_received_at: Mapped[dt.datetime | None]
    analysis_started_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    escalated_at: Mapped[dt.datetime | None]
    lkpp_answered_at: Mapped[dt.datetime | None]
    reopened_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]
    masked_at: Mapped[dt.datetime | None]
    erase_requested_at: Mapped[dt.datetime | None]

    version: Mapped[int]
    __mapper_args__ = {"version_id_col": tables.tickets.c.version}  # noqa: RUF012 - SQLAlchemy's API

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", lazy="raise"
    )


class Message(Base):
    """Every mail in and out, with its raw bytes."""

    __table__ = tables.messages

    id: Mapped[int]
    ticket_id: Mapped[int | None]
    direction: Mapped[Direction]
    kind: Mapped[MessageKind]
    message_id: Mapped[str]
    in_reply_to: Mapped[str | None]
    references: Mapped[list[str]]
    from_address: Mapped[str]
    from_name: Mapped[str]
    to_addresses: Mapped[list[str]]
    subject: Mapped[str]
    text: Mapped[str]
    #: The text without quoted history; "" when nothing was stripped (read `stripped_text or
    #: text`): most mails quote nothing, and a second copy of their text doubled the rows.
    stripped_text: Mapped[str]
    raw: Mapped[bytes]
    size: Mapped[int]
    at: Mapped[dt.datetime]
    mailbox: Mapped[str | None]
    uid: Mapped[int | None]
    uidvalidity: Mapped[int | None]
    note: Mapped[str | None]
    #: Incoming mail: sha256 of the Message-ID and the content (bridge/dedup.py); else None.
    dedup_key: Mapped[str | None]
    #: History brought in by `lpse-helpdesk import`: left on the server as it is.
    imported: Mapped[bool]

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages", lazy="raise")


class Attachment(Base):
    __table__ = tables.attachments

    id: Mapped[int]
    message_id: Mapped[int]
    filename: Mapped[str]
    content_type: Mapped[str]
    size: Mapped[int]
    inline: Mapped[bool]
    content_id: Mapped[str | None]
    # The bytes stay inside the raw mail (messages.raw); `part_index` finds them again.
    part_index: Mapped[int | None]
    omitted_reason: Mapped[str | None]


class AuditEvent(Base):
    __table__ = tables.audit_events

    id: Mapped[int]
    ticket_id: Mapped[int | None]
    at: Mapped[dt.datetime]
    channel: Mapped[Channel]
    actor_id: Mapped[str | None]
    actor_name: Mapped[str | None]
    action: Mapped[str]
    from_state: Mapped[str | None]
    to_state: Mapped[str | None]
    detail: Mapped[dict[str, Any]]


class TelegramCard(Base):
    """Where a ticket's card lives in the group, so edits survive restarts."""

    __table__ = tables.telegram_cards

    ticket_id: Mapped[int]
    chat_id: Mapped[int]
    message_id: Mapped[int]
    rendered_hash: Mapped[str | None]
    updated_at: Mapped[dt.datetime]


class TelegramTopic(Base):
    """The forum topic a ticket lives in (topics mode), so its messages stay together."""

    __table__ = tables.telegram_topics

    ticket_id: Mapped[int]
    chat_id: Mapped[int]
    thread_id: Mapped[int]
    name: Mapped[str]
    closed: Mapped[bool]
    updated_at: Mapped[dt.datetime]


class TelegramBoard(Base):
    """The pinned queue board of a group: one message, edited in place."""

    __table__ = tables.telegram_boards

    chat_id: Mapped[int]
    message_id: Mapped[int]
    rendered_hash: Mapped[str | None]
    updated_at: Mapped[dt.datetime]


class OutboxItem(Base):
    """A mail or Telegram operation written with the change that causes it."""

    __table__ = tables.outbox

    id: Mapped[int]
    channel: Mapped[OutboxChannel]
    kind: Mapped[str]
    ticket_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]]
    recipient: Mapped[str | None]
    message_id: Mapped[str | None]
    importance: Mapped[int]
    status: Mapped[OutboxStatus]
    attempts: Mapped[int]
    next_attempt_at: Mapped[dt.datetime]
    last_error: Mapped[str | None]
    dedup_key: Mapped[str | None]
    created_at: Mapped[dt.datetime]
    done_at: Mapped[dt.datetime | None]
    #: The instance sending it, until `lease_until` (then another may take it over).
    claimed_by: Mapped[str | None]
    lease_until: Mapped[dt.datetime | None]


class SlaClock(Base):
    """One run of an SOP step's clock on a ticket; met/missed is kept when it stops."""

    __table__ = tables.sla_clocks

    id: Mapped[int]
    ticket_id: Mapped[int]
    step: Mapped[SopStep]
    started_at: Mapped[dt.datetime]
    budget_minutes: Mapped[float]
    deadline_at: Mapped[dt.datetime | None]
    paused_at: Mapped[dt.datetime | None]
    used_minutes: Mapped[float]
    resumed_at: Mapped[dt.datetime | None]
    stopped_at: Mapped[dt.datetime | None]
    business_minutes: Mapped[float | None]
    met: Mapped[bool | None]
    reminded_at: Mapped[dt.datetime | None]
    breach_alerted_at: Mapped[dt.datetime | None]


class MailboxState(Base):
    """IMAP sync position per folder."""

    __table__ = tables.mailbox_state

    folder: Mapped[str]
    uidvalidity: Mapped[int | None]
    last_uid: Mapped[int]
    updated_at: Mapped[dt.datetime]
    #: While a first sync (or a rescan after a UIDVALIDITY change) runs: mail that arrived
    #: before this time is left on the server for ``lpse-helpdesk import``.
    skip_before: Mapped[dt.datetime | None]


class FailedMail(Base):
    """A mail that could not be processed: retried, then quarantined, never dropped."""

    __table__ = tables.failed_mails

    id: Mapped[int]
    folder: Mapped[str]
    uidvalidity: Mapped[int]
    uid: Mapped[int]
    message_id: Mapped[str | None]
    raw: Mapped[bytes]
    failures: Mapped[int]
    last_error: Mapped[str]
    quarantined: Mapped[bool]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class FlaggedAddress(Base):
    """An address whose mail bounced: shown on the card; automatic mail to it stops."""

    __table__ = tables.flagged_addresses

    address: Mapped[str]
    reason: Mapped[str]
    permanent: Mapped[bool]
    ticket_id: Mapped[int | None]
    flagged_at: Mapped[dt.datetime]


class TelegramPrompt(Base):
    """A ForceReply question waiting for a staff member's typed text; survives restarts."""

    __table__ = tables.telegram_prompts

    id: Mapped[int]
    chat_id: Mapped[int]
    message_id: Mapped[int | None]
    user_id: Mapped[int]
    user_name: Mapped[str]
    ticket_id: Mapped[int]
    action: Mapped[str]
    status: Mapped[PromptStatus]
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class AnswerTemplate(Base):
    """A canned answer staff start from: shipped defaults (by `code`) or a supervisor's own."""

    __table__ = tables.answer_templates

    id: Mapped[int]
    code: Mapped[str | None]
    title: Mapped[str]
    body: Mapped[str]
    step: Mapped[ReplyStep]
    categories: Mapped[list[str]]
    uses: Mapped[int]
    deleted: Mapped[bool]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class StaffName(Base):
    """A staff member's official name and position, for the signature of letters."""

    __table__ = tables.staff_names

    user_id: Mapped[int]
    official_name: Mapped[str]
    position: Mapped[str]
    updated_at: Mapped[dt.datetime]


class MailPreview(Base):
    """A mail shown to staff before it is sent; nothing is mailed before Kirim."""

    __table__ = tables.mail_previews

    id: Mapped[int]
    chat_id: Mapped[int]
    user_id: Mapped[int]
    user_name: Mapped[str]
    ticket_id: Mapped[int]
    action: Mapped[str]
    text: Mapped[str]
    template_id: Mapped[int | None]
    prompt_id: Mapped[int | None]
    status: Mapped[PreviewStatus]
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class ReplyAttachment(Base):
    """A photo or file an officer sent with a reply; attached to the mail it becomes."""

    __table__ = tables.reply_attachments

    id: Mapped[int]
    prompt_id: Mapped[int]
    filename: Mapped[str]
    content_type: Mapped[str]
    size: Mapped[int]
    data: Mapped[bytes]
    created_at: Mapped[dt.datetime]


class InstanceStatus(Base):
    """What one running instance last reported about one of its pieces (for `status`)."""

    __table__ = tables.instance_status

    instance: Mapped[str]
    component: Mapped[str]
    detail: Mapped[dict[str, Any]]
    updated_at: Mapped[dt.datetime]


class TelegramState(Base):
    """What the bot learned about its group that must outlive a restart (key/value).

    Keys: ``migrated:<old chat id>`` (the supergroup a group became), ``membership:<chat id>``
    (the bot's own status and rights there), ``conflict_alert`` (the last "two processes"
    alert). Shared by every process on the same database.
    """

    __table__ = tables.telegram_state

    key: Mapped[str]
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[dt.datetime]
