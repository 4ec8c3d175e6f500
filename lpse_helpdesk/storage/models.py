"""The database schema: tickets, messages, attachments, audit, cards, outbox, SLA, mailbox."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings: adding a state later needs no ALTER TYPE on PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class MessageKind(enum.StrEnum):
    USER = "user"  # from the requester or someone on the thread
    LKPP = "lkpp"  # from Helpdesk LKPP
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    HELPDESK = "helpdesk"  # our own mail out


class Channel(enum.StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"
    SYSTEM = "system"
    CLI = "cli"


class OutboxChannel(enum.StrEnum):
    MAIL = "mail"
    TELEGRAM = "telegram"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # permanent failure or retries exhausted; staff were told
    CANCELLED = "cancelled"  # refused by a rule (loop, cap), kept for the record


class TicketCounter(Base):
    """The last sequence number used for ticket numbers, per year."""

    __tablename__ = "ticket_counters"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    requester_name: Mapped[str] = mapped_column(String(255), default="")
    requester_email: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    problem_text: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str | None] = mapped_column(String(64))
    suggested_category: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str | None] = mapped_column(String(32))
    suggested_priority: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[State] = mapped_column(
        _enum(State, "ticket_state"), default=State.NEW, index=True
    )
    solution: Mapped[str | None] = mapped_column(Text)
    remarks: Mapped[str | None] = mapped_column(Text)
    tender_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone_numbers: Mapped[list[str]] = mapped_column(JSON, default=list)
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    # The officer who said "Saya tangani" (Telegram user id and display name).
    handler_id: Mapped[str | None] = mapped_column(String(64))
    handler_name: Mapped[str | None] = mapped_column(String(255))

    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    priority_set_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    data_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    phone_confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    data_received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    analysis_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lkpp_answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reopened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    masked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # personal data masked

    version: Mapped[int] = mapped_column(Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", lazy="raise"
    )


class Message(Base):
    """Every mail in and out, with its raw bytes."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_message_id", "message_id"),
        # One row per incoming mail: the same Message-ID with the same content is a duplicate
        # even when two processes ingest it at once; a reused id with new content is not.
        UniqueConstraint("dedup_key", name="uq_messages_dedup_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "message_direction"))
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind, "message_kind"))
    message_id: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(255), default="")
    to_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    #: The text without quoted history; "" when nothing was stripped (read `stripped_text or
    #: text`): most mails quote nothing, and a second copy of their text doubled the rows.
    stripped_text: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    mailbox: Mapped[str | None] = mapped_column(String(255))  # folder it came from
    uid: Mapped[int | None] = mapped_column(BigInteger)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)  # the UID's numbering
    note: Mapped[str | None] = mapped_column(Text)  # e.g. why it did not open a ticket
    #: Incoming mail: sha256 of the Message-ID and the content (bridge/dedup.py); else None.
    dedup_key: Mapped[str | None] = mapped_column(String(64))

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages", lazy="raise")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(998))
    # The bytes stay inside the raw mail (messages.raw); `part_index` finds them again.
    part_index: Mapped[int | None] = mapped_column(Integer)
    omitted_reason: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "audit_channel"))
    actor_id: Mapped[str | None] = mapped_column(String(64))  # Telegram user id, address...
    actor_name: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TelegramCard(Base):
    """Where a ticket's card lives in the group, so edits survive restarts."""

    __tablename__ = "telegram_cards"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    rendered_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TelegramTopic(Base):
    """The forum topic a ticket lives in (topics mode), so its messages stay together."""

    __tablename__ = "telegram_topics"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(128))  # as last set on Telegram
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TelegramBoard(Base):
    """The pinned queue board of a group: one message, edited in place."""

    __tablename__ = "telegram_boards"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger)
    rendered_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OutboxItem(Base):
    """A mail or Telegram operation written with the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "channel", "next_attempt_at"),
        Index("ix_outbox_recipient", "recipient", "created_at"),  # the hourly cap
        Index("ix_outbox_message_id", "message_id"),  # threading replies to our mail
        UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[OutboxChannel] = mapped_column(_enum(OutboxChannel, "outbox_channel"))
    kind: Mapped[str] = mapped_column(String(64))  # MailKind, or a Telegram operation
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recipient: Mapped[str | None] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(998))  # fixed when written
    importance: Mapped[int] = mapped_column(Integer, default=50)  # lower goes first
    status: Mapped[OutboxStatus] = mapped_column(
        _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The instance sending it, until `lease_until` (then another may take it over).
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SlaClock(Base):
    """One run of an SOP step's clock on a ticket; met/missed is kept when it stops."""

    __tablename__ = "sla_clocks"
    __table_args__ = (Index("ix_sla_clocks_open", "stopped_at", "deadline_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    step: Mapped[SopStep] = mapped_column(_enum(SopStep, "sop_step"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    budget_minutes: Mapped[float] = mapped_column(Float)  # business minutes allowed
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # None while paused
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    used_minutes: Mapped[float] = mapped_column(Float, default=0.0)  # before the last resume
    resumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    business_minutes: Mapped[float | None] = mapped_column(Float)
    met: Mapped[bool | None] = mapped_column(Boolean)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    breach_alerted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MailboxState(Base):
    """IMAP sync position per folder."""

    __tablename__ = "mailbox_state"

    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: While a first sync (or a rescan after a UIDVALIDITY change) runs: mail that arrived
    #: before this time is left on the server for ``lpse-helpdesk import``.
    skip_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class FailedMail(Base):
    """A mail that could not be processed: retried, then quarantined, never dropped."""

    __tablename__ = "failed_mails"
    __table_args__ = (UniqueConstraint("folder", "uidvalidity", "uid", name="uq_failed_mails_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class FlaggedAddress(Base):
    """An address whose mail bounced: shown on the card; automatic mail to it stops."""

    __tablename__ = "flagged_addresses"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    permanent: Mapped[bool] = mapped_column(Boolean, default=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    flagged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PromptStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for the staff member's reply
    DONE = "done"
    CANCELLED = "cancelled"  # /batal
    EXPIRED = "expired"


class TelegramPrompt(Base):
    """A ForceReply question waiting for a staff member's typed text; survives restarts."""

    __tablename__ = "telegram_prompts"
    __table_args__ = (Index("ix_telegram_prompts_message", "chat_id", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)  # set once the prompt is posted
    user_id: Mapped[int] = mapped_column(BigInteger)
    user_name: Mapped[str] = mapped_column(String(255), default="")
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[PromptStatus] = mapped_column(
        _enum(PromptStatus, "prompt_status"), default=PromptStatus.PENDING
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ReplyStep(enum.StrEnum):
    """The SOP step a canned answer is written for."""

    DATA_REQUEST = "data_request"
    SOLUTION = "solution"
    ESCALATION = "escalation"  # the analysis note forwarded to Helpdesk LKPP


class AnswerTemplate(Base):
    """A canned answer staff start from: shipped defaults (by `code`) or a supervisor's own."""

    __tablename__ = "answer_templates"
    __table_args__ = (UniqueConstraint("code", name="uq_answer_templates_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(64))  # the default's code; None: own
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    step: Mapped[ReplyStep] = mapped_column(_enum(ReplyStep, "reply_step"))
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every category
    uses: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)  # kept for the audit trail
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class StaffName(Base):
    """A staff member's official name and position, for the signature of letters."""

    __tablename__ = "staff_names"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    official_name: Mapped[str] = mapped_column(String(255))
    position: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PreviewStatus(enum.StrEnum):
    PENDING = "pending"  # shown, waiting for Kirim / Ubah / Batal
    SENT = "sent"
    EDITED = "edited"  # replaced by a new text (Ubah)
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class MailPreview(Base):
    """A mail shown to staff before it is sent; nothing is mailed before Kirim."""

    __tablename__ = "mail_previews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    user_name: Mapped[str] = mapped_column(String(255), default="")
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("answer_templates.id"))
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("telegram_prompts.id"))
    status: Mapped[PreviewStatus] = mapped_column(
        _enum(PreviewStatus, "preview_status"), default=PreviewStatus.PENDING
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ReplyAttachment(Base):
    """A photo or file an officer sent with a reply; attached to the mail it becomes."""

    __tablename__ = "reply_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("telegram_prompts.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class InstanceStatus(Base):
    """What one running instance last reported about one of its pieces (for `status`)."""

    __tablename__ = "instance_status"

    instance: Mapped[str] = mapped_column(String(128), primary_key=True)
    component: Mapped[str] = mapped_column(String(32), primary_key=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TelegramState(Base):
    """What the bot learned about its group that must outlive a restart (key/value).

    Keys: ``migrated:<old chat id>`` (the supergroup a group became), ``membership:<chat id>``
    (the bot's own status and rights there), ``conflict_alert`` (the last "two processes"
    alert). Shared by every process on the same database.
    """

    __tablename__ = "telegram_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
