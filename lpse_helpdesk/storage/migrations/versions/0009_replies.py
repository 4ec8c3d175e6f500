"""replies worth signing: canned answers, staff official names, mail previews

Revision ID: 0009_replies
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_replies"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answer_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_templates")),
        sa.UniqueConstraint("code", name="uq_answer_templates_code"),
    )
    op.create_table(
        "staff_names",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("official_name", sa.String(length=255), nullable=False),
        sa.Column("position", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_staff_names")),
    )
    op.create_table(
        "mail_previews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("prompt_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_mail_previews_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["answer_templates.id"],
            name=op.f("fk_mail_previews_template_id_answer_templates"),
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["telegram_prompts.id"],
            name=op.f("fk_mail_previews_prompt_id_telegram_prompts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_previews")),
    )
    op.create_index(
        op.f("ix_mail_previews_ticket_id"), "mail_previews", ["ticket_id"], unique=False
    )
    op.create_table(
        "reply_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["telegram_prompts.id"],
            name=op.f("fk_reply_attachments_prompt_id_telegram_prompts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_attachments")),
    )
    op.create_index(
        op.f("ix_reply_attachments_prompt_id"), "reply_attachments", ["prompt_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reply_attachments_prompt_id"), table_name="reply_attachments")
    op.drop_table("reply_attachments")
    op.drop_index(op.f("ix_mail_previews_ticket_id"), table_name="mail_previews")
    op.drop_table("mail_previews")
    op.drop_table("staff_names")
    op.drop_table("answer_templates")
