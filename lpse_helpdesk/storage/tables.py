"""The database schema as SQLAlchemy Core tables: defined once, here, without the ORM.

`storage/models.py` maps its ORM classes onto these tables (``__table__``), and Alembic
compares the migrations with this metadata. Code that only reads rows (the recap, above all
`lpse-helpdesk rekap` from cron) queries these tables with SQLAlchemy Core and so never
imports the ORM, a good part of a second of start-up on a small machine.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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

metadata = MetaData(naming_convention=NAMING)


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


class PromptStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for the staff member's reply
    DONE = "done"
    CANCELLED = "cancelled"  # /batal
    EXPIRED = "expired"


class ReplyStep(enum.StrEnum):
    """The SOP step a canned answer is written for."""

    DATA_REQUEST = "data_request"
    SOLUTION = "solution"
    ESCALATION = "escalation"  # the analysis note forwarded to Helpdesk LKPP


class PreviewStatus(enum.StrEnum):
    PENDING = "pending"  # shown, waiting for Kirim / Ubah / Batal
    SENT = "sent"
    EDITED = "edited"  # replaced by a new text (Ubah)
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def _required(name: str, *args: Any, **kwargs: Any) -> Column[Any]:
    """A NOT NULL column (the ORM's ``Mapped[X]``); a plain `Column` is a nullable one."""
    return Column(name, *args, nullable=False, **kwargs)


ticket_counters = Table(
    "ticket_counters",
    metadata,
    # The last sequence number used for ticket numbers, per year.
    Column("year", Integer, primary_key=True, autoincrement=False),
    _required("last", Integer, default=0),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    _required("number", String(32), unique=True),
    _required("requester_name", String(255), default=""),
    _required("requester_email", String(320), index=True),
    _required("subject", Text, default=""),
    _required("problem_text", Text, default=""),
    Column("category", String(64)),
    Column("suggested_category", String(64)),
    Column("priority", String(32)),
    Column("suggested_priority", String(32)),
    _required("state", _enum(State, "ticket_state"), default=State.NEW, index=True),
    Column("solution", Text),
    Column("remarks", Text),
    _required("tender_codes", JSON, default=list),
    _required("phone_numbers", JSON, default=list),
    Column("linked_ticket_id", ForeignKey("tickets.id")),
    _required("reopen_count", Integer, default=0),
    # The officer who said "Saya tangani" (Telegram user id and display name).
    Column("handler_id", String(64)),
    Column("handler_name", String(255)),
    _required("received_at", UTCDateTime, index=True),
    Column("priority_set_at", UTCDateTime),
    Column("data_requested_at", UTCDateTime),
    Column("phone_confirmed_at", UTCDateTime),
    Column("data_received_at", UTCDateTime),
    Column("analysis_started_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("escalated_at", UTCDateTime),
    Column("lkpp_answered_at", UTCDateTime),
    Column("reopened_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    _required("updated_at", UTCDateTime),
    Column("masked_at", UTCDateTime),  # personal data masked
    # `data erase` asked for it; masking finishes once the ticket's outbox has gone out.
    Column("erase_requested_at", UTCDateTime),
    _required("version", Integer),  # the ORM's version counter (models.Ticket)
)

messages = Table(
    "messages",
    metadata,
    # Every mail in and out, with its raw bytes.
    Column("id", Integer, primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id"), index=True),
    _required("direction", _enum(Direction, "message_direction")),
    _required("kind", _enum(MessageKind, "message_kind")),
    _required("message_id", String(998)),
    Column("in_reply_to", String(998)),
    _required("references", JSON, default=list),
    _required("from_address", String(320), default=""),
    _required("from_name", String(255), default=""),
    _required("to_addresses", JSON, default=list),
    _required("subject", Text, default=""),
    _required("text", Text, default=""),
    _required("stripped_text", Text, default=""),
    _required("raw", LargeBinary),
    _required("size", Integer, default=0),
    _required("at", UTCDateTime),
    Column("mailbox", String(255)),  # folder it came from
    Column("uid", BigInteger),
    Column("uidvalidity", BigInteger),  # the UID's numbering
    Column("note", Text),  # e.g. why it did not open a ticket
    # Incoming mail: sha256 of the Message-ID and the content (bridge/dedup.py); else None.
    Column("dedup_key", String(64)),
    # History brought in by `lpse-helpdesk import`: left on the server as it is.
    _required("imported", Boolean, default=False),
    Index("ix_messages_message_id", "message_id"),
    # A start looks up the live mail stored from a folder (inbound.py `_remark_committed`),
    # from the index alone: the rows hold the raw mail, and the history may be long.
    Index("ix_messages_uid", "mailbox", "uidvalidity", "imported", "uid"),
    # One row per incoming mail: the same Message-ID with the same content is a duplicate
    # even when two processes ingest it at once; a reused id with new content is not.
    UniqueConstraint("dedup_key", name="uq_messages_dedup_key"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True),
    _required("message_id", ForeignKey("messages.id"), index=True),
    _required("filename", String(255), default=""),
    _required("content_type", String(255), default="application/octet-stream"),
    _required("size", Integer, default=0),
    _required("inline", Boolean, default=False),
    Column("content_id", String(998)),
    # The bytes stay inside the raw mail (messages.raw); `part_index` finds them again.
    Column("part_index", Integer),
    Column("omitted_reason", Text),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id"), index=True),
    _required("at", UTCDateTime, index=True),
    _required("channel", _enum(Channel, "audit_channel")),
    Column("actor_id", String(64)),  # Telegram user id, address...
    Column("actor_name", String(255)),
    _required("action", String(64)),
    Column("from_state", String(32)),
    Column("to_state", String(32)),
    _required("detail", JSON, default=dict),
)

telegram_cards = Table(
    "telegram_cards",
    metadata,
    # Where a ticket's card lives in the group, so edits survive restarts.
    Column("ticket_id", ForeignKey("tickets.id"), primary_key=True),
    _required("chat_id", BigInteger),
    _required("message_id", BigInteger),
    Column("rendered_hash", String(64)),
    _required("updated_at", UTCDateTime),
)

telegram_topics = Table(
    "telegram_topics",
    metadata,
    # The forum topic a ticket lives in (topics mode), so its messages stay together.
    Column("ticket_id", ForeignKey("tickets.id"), primary_key=True),
    _required("chat_id", BigInteger),
    _required("thread_id", BigInteger),
    _required("name", String(128)),  # as last set on Telegram
    _required("closed", Boolean, default=False),
    _required("updated_at", UTCDateTime),
)

telegram_boards = Table(
    "telegram_boards",
    metadata,
    # The pinned queue board of a group: one message, edited in place.
    Column("chat_id", BigInteger, primary_key=True),
    _required("message_id", BigInteger),
    Column("rendered_hash", String(64)),
    _required("updated_at", UTCDateTime),
)

outbox = Table(
    "outbox",
    metadata,
    # A mail or Telegram operation written with the change that causes it.
    Column("id", Integer, primary_key=True),
    _required("channel", _enum(OutboxChannel, "outbox_channel")),
    _required("kind", String(64)),  # MailKind, or a Telegram operation
    Column("ticket_id", ForeignKey("tickets.id"), index=True),
    _required("payload", JSON, default=dict),
    Column("recipient", String(320)),
    Column("message_id", String(998)),  # fixed when written
    _required("importance", Integer, default=50),  # lower goes first
    _required("status", _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING),
    _required("attempts", Integer, default=0),
    _required("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("dedup_key", String(255)),
    _required("created_at", UTCDateTime),
    Column("done_at", UTCDateTime),
    # The instance sending it, until `lease_until` (then another may take it over).
    Column("claimed_by", String(128)),
    Column("lease_until", UTCDateTime),
    Index("ix_outbox_due", "status", "channel", "next_attempt_at"),
    Index("ix_outbox_recipient", "recipient", "created_at"),  # the hourly cap
    Index("ix_outbox_message_id", "message_id"),  # threading replies to our mail
    UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
)

sla_clocks = Table(
    "sla_clocks",
    metadata,
    # One run of an SOP step's clock on a ticket; met/missed is kept when it stops.
    Column("id", Integer, primary_key=True),
    _required("ticket_id", ForeignKey("tickets.id"), index=True),
    _required("step", _enum(SopStep, "sop_step")),
    _required("started_at", UTCDateTime),
    _required("budget_minutes", Float),  # business minutes allowed
    Column("deadline_at", UTCDateTime),  # None while paused
    Column("paused_at", UTCDateTime),
    _required("used_minutes", Float, default=0.0),  # before the last resume
    Column("resumed_at", UTCDateTime),
    Column("stopped_at", UTCDateTime),
    Column("business_minutes", Float),
    Column("met", Boolean),
    Column("reminded_at", UTCDateTime),
    Column("breach_alerted_at", UTCDateTime),
    Index("ix_sla_clocks_open", "stopped_at", "deadline_at"),
)

mailbox_state = Table(
    "mailbox_state",
    metadata,
    # IMAP sync position per folder.
    Column("folder", String(255), primary_key=True),
    Column("uidvalidity", BigInteger),
    _required("last_uid", BigInteger, default=0),
    _required("updated_at", UTCDateTime),
    # While a first sync (or a rescan after a UIDVALIDITY change) runs: mail that arrived
    # before this time is left on the server for ``lpse-helpdesk import``.
    Column("skip_before", UTCDateTime),
)

handled_copies = Table(
    "handled_copies",
    metadata,
    # A mail the intake handled as a copy of one stored before (same Message-ID and content):
    # it has no row of its own in messages, so its UID is kept here, for a start to finish
    # its marking on the server (a crash before the \\Seen, a move the server refused).
    Column("folder", String(255), primary_key=True),
    Column("uidvalidity", BigInteger, primary_key=True, autoincrement=False),
    Column("uid", BigInteger, primary_key=True, autoincrement=False),
    _required("at", UTCDateTime),
)

failed_mails = Table(
    "failed_mails",
    metadata,
    # A mail that could not be processed: retried, then quarantined, never dropped.
    Column("id", Integer, primary_key=True),
    _required("folder", String(255)),
    _required("uidvalidity", BigInteger),
    _required("uid", BigInteger),
    Column("message_id", String(998)),
    _required("raw", LargeBinary),
    _required("failures", Integer, default=0),
    _required("last_error", Text, default=""),
    _required("quarantined", Boolean, default=False),
    _required("created_at", UTCDateTime),
    _required("updated_at", UTCDateTime),
    UniqueConstraint("folder", "uidvalidity", "uid", name="uq_failed_mails_uid"),
)

flagged_addresses = Table(
    "flagged_addresses",
    metadata,
    # An address whose mail bounced: shown on the card; automatic mail to it stops.
    Column("address", String(320), primary_key=True),
    _required("reason", Text, default=""),
    _required("permanent", Boolean, default=True),
    Column("ticket_id", ForeignKey("tickets.id")),
    _required("flagged_at", UTCDateTime),
)

telegram_prompts = Table(
    "telegram_prompts",
    metadata,
    # A ForceReply question waiting for a staff member's typed text; survives restarts.
    Column("id", Integer, primary_key=True),
    _required("chat_id", BigInteger),
    Column("message_id", BigInteger),  # set once the prompt is posted
    _required("user_id", BigInteger),
    _required("user_name", String(255), default=""),
    _required("ticket_id", ForeignKey("tickets.id"), index=True),
    _required("action", String(32)),
    _required("status", _enum(PromptStatus, "prompt_status"), default=PromptStatus.PENDING),
    _required("created_at", UTCDateTime),
    _required("expires_at", UTCDateTime),
    Index("ix_telegram_prompts_message", "chat_id", "message_id"),
)

answer_templates = Table(
    "answer_templates",
    metadata,
    # A canned answer staff start from: shipped defaults (by `code`) or a supervisor's own.
    Column("id", Integer, primary_key=True),
    Column("code", String(64)),  # the default's code; None: own
    _required("title", String(120)),
    _required("body", Text),
    _required("step", _enum(ReplyStep, "reply_step")),
    _required("categories", JSON, default=list),  # empty: every category
    _required("uses", Integer, default=0),
    _required("deleted", Boolean, default=False),  # kept for the audit trail
    _required("created_at", UTCDateTime),
    _required("updated_at", UTCDateTime),
    UniqueConstraint("code", name="uq_answer_templates_code"),
)

staff_names = Table(
    "staff_names",
    metadata,
    # A staff member's official name and position, for the signature of letters.
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    _required("official_name", String(255)),
    _required("position", String(255), default=""),
    _required("updated_at", UTCDateTime),
)

mail_previews = Table(
    "mail_previews",
    metadata,
    # A mail shown to staff before it is sent; nothing is mailed before Kirim.
    Column("id", Integer, primary_key=True),
    _required("chat_id", BigInteger),
    _required("user_id", BigInteger),
    _required("user_name", String(255), default=""),
    _required("ticket_id", ForeignKey("tickets.id"), index=True),
    _required("action", String(32)),
    _required("text", Text, default=""),
    Column("template_id", ForeignKey("answer_templates.id")),
    Column("prompt_id", ForeignKey("telegram_prompts.id")),
    _required("status", _enum(PreviewStatus, "preview_status"), default=PreviewStatus.PENDING),
    _required("created_at", UTCDateTime),
    _required("expires_at", UTCDateTime),
)

reply_attachments = Table(
    "reply_attachments",
    metadata,
    # A photo or file an officer sent with a reply; attached to the mail it becomes.
    Column("id", Integer, primary_key=True),
    _required("prompt_id", ForeignKey("telegram_prompts.id"), index=True),
    _required("filename", String(255)),
    _required("content_type", String(255), default="application/octet-stream"),
    _required("size", Integer, default=0),
    _required("data", LargeBinary),
    _required("created_at", UTCDateTime),
)

instance_status = Table(
    "instance_status",
    metadata,
    # What one running instance last reported about one of its pieces (for `status`).
    Column("instance", String(128), primary_key=True),
    Column("component", String(32), primary_key=True),
    _required("detail", JSON, default=dict),
    _required("updated_at", UTCDateTime),
)

telegram_state = Table(
    "telegram_state",
    metadata,
    # What the bot learned about its group that must outlive a restart (key/value); see
    # models.TelegramState for the keys.
    Column("key", String(64), primary_key=True),
    _required("value", JSON, default=dict),
    _required("updated_at", UTCDateTime),
)
