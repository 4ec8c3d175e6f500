"""Mails staff write, shown before they go: canned answers, preview, Kirim / Ubah / Batal.

Pressing "Minta Data", "✅ Kirim Solusi" or "Eskalasi" offers the canned answers that fit
the ticket (or, once LKPP has answered, to forward LKPP's answer); a chosen template or a
typed text becomes a preview of the mail exactly as it will go out, and nothing is mailed
before Kirim. One database transaction per step; no Telegram calls here (the outbox carries
every message). Each step is checked against the SOP machine through the workflow.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from html import escape

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lpse_helpdesk.bot import canned, texts
from lpse_helpdesk.bot.cards import Keyboard
from lpse_helpdesk.bot.prompts import open_prompt
from lpse_helpdesk.bridge.letters import Letterhead, preview
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import Action, ActionNotAllowed, MailKind, State
from lpse_helpdesk.storage.models import (
    AnswerTemplate,
    MailPreview,
    PreviewStatus,
    PromptStatus,
    ReplyAttachment,
    TelegramCard,
    TelegramPrompt,
    Ticket,
)
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.mail_plan import STAFF_MAILS
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.tickets import Refused, Workflow

__all__ = ["MAIL_TEXT_ACTIONS", "Answer", "Replies", "is_reply_press"]

#: The text buttons whose text becomes a mail: they go through the preview.
MAIL_TEXT_ACTIONS = frozenset({Action.REQUEST_DATA, Action.RESOLVE, Action.ESCALATE})
PREVIEW_MINUTES = 30
PREVIEW_BODY_CHARS = 2800  # Telegram allows 4096 characters per message
_ACTION_CODES = {Action.REQUEST_DATA: "d", Action.RESOLVE: "s", Action.ESCALATE: "e"}
_CODE_ACTIONS = {code: action for action, code in _ACTION_CODES.items()}
#: Callback data of these buttons: `x<op>:<id>[:<arg>[:<arg>]]`, handled here, not by cards.
_PRESS = re.compile(r"^x([kubtlwro]):(\d{1,12})(?::([a-z0-9]{1,12}))?(?::(\d{1,12}))?$")
DONE = {
    Action.REQUEST_DATA: (
        "📨 Permintaan data dikirim ke pengguna. Konfirmasikan lewat telepon, "
        "lalu tekan <b>📞 Sudah ditelepon</b>."
    ),
    Action.RESOLVE: "✅ Solusi dikirim ke pengguna.",
    Action.ESCALATE: "⬆️ Dieskalasi ke Helpdesk LKPP; pengguna diberi tahu.",
}
_WHAT = {
    Action.REQUEST_DATA: "permintaan data",
    Action.RESOLVE: "solusi",
    Action.ESCALATE: "catatan analisis untuk Helpdesk LKPP",
}


def is_reply_press(data: object) -> bool:
    return isinstance(data, str) and _PRESS.match(data) is not None


@dataclass
class Answer:
    """The callback answer (or nothing for typed replies) and whether the outbox grew."""

    text: str = ""
    alert: bool = False
    queued: bool = False
    #: Take the buttons off the pressed message (the preview was sent, edited, cancelled).
    clear_buttons: bool = False
    #: The pressed message served its purpose: remove it (few messages stay in the group).
    delete_message: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StaffFile:
    filename: str
    content_type: str
    data: bytes


class Replies:
    def __init__(
        self,
        workflow: Workflow,
        chat_id: int,
        letterhead: Letterhead,
        renderer: Renderer | None = None,
    ) -> None:
        self.workflow = workflow
        self.chat_id = chat_id
        self.letterhead = letterhead
        self.renderer = renderer or Renderer()

    @property
    def now(self) -> dt.datetime:
        return self.workflow.clock.now()

    # --- the first press: offer templates, the LKPP relay, or ask for the text ---------------

    def start(
        self, session: Session, ticket: Ticket, action: Action, actor: Actor, user_id: int
    ) -> Answer:
        self._require(ticket, action)
        if action is Action.RESOLVE and ticket.state is State.LKPP_ANSWERED:
            self._offer_relay(session, ticket)
            return Answer("Jawaban LKPP siap diteruskan; pilih pada pesan bot.", queued=True)
        canned.seed_defaults(session, self.workflow.domain, self.now)
        step = canned.STEP_FOR_ACTION[action]
        category = ticket.category or ticket.suggested_category
        top, more = canned.ranked(session, step, category)
        if not top and not more:
            return self.ask_text(session, ticket, action, actor, user_id)
        self._offer_templates(session, ticket, action, top, more)
        return Answer("Pilih templat atau tulis sendiri.", queued=True)

    def _offer_templates(
        self,
        session: Session,
        ticket: Ticket,
        action: Action,
        shown: list[AnswerTemplate],
        more: bool,
        *,
        everything: bool = False,
    ) -> None:
        code = _ACTION_CODES[action]
        rows: Keyboard = [[(f"📄 {t.title}"[:60], f"xt:{ticket.id}:{code}:{t.id}")] for t in shown]
        last = [("✍️ Tulis sendiri", f"xw:{ticket.id}:{code}")]
        if more and not everything:
            last.insert(0, ("📚 Lainnya", f"xl:{ticket.id}:{code}"))
        rows.append(last)
        label = canned.STEP_LABELS[canned.STEP_FOR_ACTION[action]]
        head = "Semua templat" if everything else "Templat"
        text = (
            f"<b>{escape(ticket.number)}</b> — {head} {escape(label)}"
            f"{'' if everything else ' yang paling sering dipakai untuk kategori ini'}:\n"
            "<i>Templat dibuka sebagai pratinjau dan dapat diubah sebelum dikirim.</i>"
        )
        self._message(session, ticket.id, text, rows)

    def _offer_relay(self, session: Session, ticket: Ticket) -> None:
        text = (
            f"📨 <b>{escape(ticket.number)}</b> — Helpdesk LKPP sudah menjawab. Jawabannya "
            "diteruskan kepada pengguna sebagai solusi; Anda dapat menambahkan keterangan."
        )
        rows: Keyboard = [
            [("📨 Teruskan jawaban LKPP", f"xr:{ticket.id}:p")],
            [("➕ Teruskan dengan tambahan", f"xr:{ticket.id}:a")],
        ]
        self._message(session, ticket.id, text, rows)

    def ask_text(
        self,
        session: Session,
        ticket: Ticket,
        action: Action,
        actor: Actor,
        user_id: int,
    ) -> Answer:
        """A ForceReply question for the text (the latest press wins)."""
        self._new_prompt(session, ticket.id, action, actor, user_id)
        return Answer("Silakan ketik teksnya sebagai balasan pesan bot.", queued=True)

    def _new_prompt(
        self, session: Session, ticket_id: int, action: Action, actor: Actor, user_id: int
    ) -> TelegramPrompt:
        return open_prompt(
            session,
            chat_id=self.chat_id,
            user_id=user_id,
            actor=actor,
            ticket_id=ticket_id,
            action=action,
            now=self.now,
        )

    # --- presses on our own buttons ------------------------------------------------------

    def press(self, session: Session, data: str, actor: Actor, user_id: int) -> Answer:
        match = _PRESS.match(data)
        if match is None:
            return Answer(texts.STALE_BUTTON, alert=True)
        op, first, arg, extra = match.groups()
        answer = self._press(session, op, first, arg, extra, actor, user_id)
        if not answer.alert and (op in "twlr" or answer.clear_buttons):
            # The offer or the preview was used: it goes; the card shows what was done.
            answer.delete_message, answer.clear_buttons = True, False
        return answer

    def _press(
        self,
        session: Session,
        op: str,
        first: str,
        arg: str | None,
        extra: str | None,
        actor: Actor,
        user_id: int,
    ) -> Answer:
        try:
            if op in "kub":
                return self._preview_press(session, op, int(first), actor, user_id)
            ticket = session.get(Ticket, int(first))
            if ticket is None:
                return Answer("Tiket tidak ditemukan.", alert=True)
            if op == "o":
                return self._reopen(session, ticket, actor)
            if op == "r":
                self._require(ticket, Action.RESOLVE)
                if ticket.state is not State.LKPP_ANSWERED:
                    return Answer("Tiket ini belum dijawab Helpdesk LKPP.", alert=True)
                if arg == "a":
                    return self.ask_text(session, ticket, Action.RESOLVE, actor, user_id)
                return self.show_preview(session, ticket, Action.RESOLVE, None, actor, user_id)
            action = _CODE_ACTIONS.get(arg or "")
            if action is None:
                return Answer(texts.STALE_BUTTON, alert=True)
            self._require(ticket, action)
            if op == "w":
                return self.ask_text(session, ticket, action, actor, user_id)
            if op == "l":
                templates = canned.all_for(session, canned.STEP_FOR_ACTION[action])
                self._offer_templates(session, ticket, action, templates, False, everything=True)
                return Answer("Semua templat ditampilkan.", queued=True)
            return self._use_template(session, ticket, action, int(extra or 0), actor, user_id)
        except (Refused, ActionNotAllowed) as refusal:
            return Answer(refusal.message, alert=True)

    def _use_template(
        self,
        session: Session,
        ticket: Ticket,
        action: Action,
        template_id: int,
        actor: Actor,
        user_id: int,
    ) -> Answer:
        template = session.get(AnswerTemplate, template_id)
        if template is None or template.deleted:
            return Answer("Templat ini sudah dihapus; pilih yang lain.", alert=True)
        signer = self.workflow.mail.signer(session, actor)
        values = canned.field_values(
            ticket, self.letterhead.lpse_name, signer.line() if signer else None
        )
        try:
            text = canned.fill(template.body, values)
        except canned.FillError as error:
            code = _ACTION_CODES[action]
            self._message(
                session,
                ticket.id,
                f"⚠️ <b>{escape(ticket.number)}</b> — templat “{escape(template.title)}”: "
                f"{escape(error.message)}",
                [[("✍️ Tulis sendiri", f"xw:{ticket.id}:{code}")]],
            )
            return Answer(error.message[:200], alert=True, queued=True)
        return self.show_preview(
            session, ticket, action, text, actor, user_id, template_id=template.id
        )

    def _reopen(self, session: Session, ticket: Ticket, actor: Actor) -> Answer:
        self.workflow.act(session, ticket.id, Action.REOPEN, actor)
        return Answer("🔁 Tiket dibuka kembali.", queued=True, clear_buttons=True)

    # --- the preview -----------------------------------------------------------------------

    def show_preview(
        self,
        session: Session,
        ticket: Ticket,
        action: Action,
        text: str | None,
        actor: Actor,
        user_id: int,
        *,
        template_id: int | None = None,
        prompt_id: int | None = None,
    ) -> Answer:
        """Render the mail as it will go out and offer Kirim / Ubah / Batal."""
        facts = machine.TicketFacts(
            state=ticket.state,
            priority=ticket.priority,
            phone_confirmed=ticket.phone_confirmed_at is not None,
            category=ticket.category,
        )
        outcome = machine.apply(facts, action)
        if machine.needs_text(ticket.state, action) and not (text and text.strip()):
            raise Refused("Teks tidak boleh kosong.")
        mails = [m for m in outcome.mails() if m.kind in STAFF_MAILS]
        if not mails:
            raise Refused("Aksi ini tidak mengirim e-mail.")
        effect = mails[0]
        attachment_ids = self._attachment_ids(session, prompt_id)
        planner = self.workflow.mail
        payload = planner.draft(
            session,
            ticket,
            effect,
            text=text,
            actor=actor,
            extras={"attachments": attachment_ids},
        )
        recipient = planner.recipient(ticket, effect)
        try:
            shown = preview(
                session,
                ticket,
                effect.kind,
                recipient,
                payload,
                self.letterhead,
                self.renderer,
                self.now,
            )
        except ValueError as error:
            raise Refused(f"E-mail belum dapat dibuat: {error}") from None
        for old in session.scalars(
            select(MailPreview).where(
                MailPreview.ticket_id == ticket.id,
                MailPreview.user_id == user_id,
                MailPreview.status == PreviewStatus.PENDING,
            )
        ):
            old.status = PreviewStatus.CANCELLED  # the latest preview wins
        row = MailPreview(
            chat_id=self.chat_id,
            user_id=user_id,
            user_name=actor.name or "",
            ticket_id=ticket.id,
            action=action.value,
            text=text or "",
            template_id=template_id,
            prompt_id=prompt_id,
            status=PreviewStatus.PENDING,
            created_at=self.now,
            expires_at=self.now + dt.timedelta(minutes=PREVIEW_MINUTES),
        )
        session.add(row)
        session.flush()
        body = shown.text
        if len(body) > PREVIEW_BODY_CHARS:
            body = (
                body[:PREVIEW_BODY_CHARS].rstrip()
                + "\n… (dipotong di pratinjau; e-mail berisi teks lengkap)"
            )
        lines = [
            f"👁 <b>Pratinjau e-mail</b> — tiket <b>{escape(ticket.number)}</b> "
            f"(oleh {escape(actor.name or 'petugas')})",
            f"<b>Kepada:</b> {escape(shown.recipient)}",
            f"<b>Subjek:</b> {escape(shown.subject)}",
            f"<blockquote expandable>{escape(body)}</blockquote>",
        ]
        if shown.attachment_names:
            lines.append("📎 " + escape(", ".join(shown.attachment_names)))
        if effect.kind is MailKind.LKPP_FORWARD:
            lines.append("Pengguna juga menerima pemberitahuan bahwa masalahnya diteruskan.")
        if not (payload.get("staff_name")):
            lines.append("<i>Tanpa nama petugas: atur nama resmi Anda dengan /nama.</i>")
        lines.append(
            "<i>Salam pembuka, penutup dan tanda tangan ditambahkan otomatis. "
            "Belum ada yang terkirim: tekan ✅ Kirim.</i>"
        )
        keyboard: Keyboard = [
            [
                ("✅ Kirim", f"xk:{row.id}"),
                ("✏️ Ubah", f"xu:{row.id}"),
                ("✖️ Batal", f"xb:{row.id}"),
            ]
        ]
        self._message(session, ticket.id, "\n".join(lines), keyboard)
        return Answer("Pratinjau ditampilkan; periksa lalu tekan Kirim.", queued=True)

    def _preview_press(
        self, session: Session, op: str, preview_id: int, actor: Actor, user_id: int
    ) -> Answer:
        row = session.get(MailPreview, preview_id)
        if row is None:
            return Answer("Pratinjau tidak ditemukan.", alert=True)
        if row.user_id != user_id:
            return Answer(
                f"Pratinjau ini milik {row.user_name or 'petugas lain'}; "
                "tekan tombol pada kartu untuk menulis sendiri.",
                alert=True,
            )
        if row.status is not PreviewStatus.PENDING:
            return Answer("Pratinjau ini sudah tidak berlaku.", alert=True, clear_buttons=True)
        if row.expires_at <= self.now:
            row.status = PreviewStatus.EXPIRED
            return Answer(
                f"Pratinjau sudah lewat {PREVIEW_MINUTES} menit; tekan tombol pada kartu lagi.",
                alert=True,
                clear_buttons=True,
            )
        target = {"k": PreviewStatus.SENT, "u": PreviewStatus.EDITED, "b": PreviewStatus.CANCELLED}
        # Claimed in the database: a double tap, or two processes, send once.
        claimed = session.execute(
            update(MailPreview)
            .where(MailPreview.id == row.id, MailPreview.status == PreviewStatus.PENDING)
            .values(status=target[op])
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 1) != 1:
            return Answer("Pratinjau ini sudah diproses.", alert=True, clear_buttons=True)
        session.refresh(row)
        action = Action(row.action)
        if op == "b":
            return Answer(
                "✖️ Dibatalkan; tidak ada e-mail yang dikirim.", queued=True, clear_buttons=True
            )
        if op == "u":
            prompt = self._new_prompt(session, row.ticket_id, action, actor, user_id)
            if row.prompt_id is not None:
                session.execute(
                    update(ReplyAttachment)
                    .where(ReplyAttachment.prompt_id == row.prompt_id)
                    .values(prompt_id=prompt.id)
                )
            if row.text:
                self._say(
                    session,
                    row.ticket_id,
                    "✏️ Teks sebelumnya (salin, ubah, lalu kirim sebagai balasan pesan "
                    f"bot):\n<code>{escape(row.text[:3000])}</code>",
                )
            return Answer(
                "Ketik teks yang baru sebagai balasan pesan bot.", queued=True, clear_buttons=True
            )
        signer = self.workflow.mail.signer(session, actor)
        extras: dict[str, object] = {
            "attachments": self._attachment_ids(session, row.prompt_id),
            "preview": row.id,
            "signed_as": signer.line() if signer else None,
        }
        if row.template_id is not None:
            extras["template"] = row.template_id
        try:
            self.workflow.act(
                session, row.ticket_id, action, actor, text=row.text or None, mail_extras=extras
            )
        except (Refused, ActionNotAllowed) as refusal:
            row.status = PreviewStatus.CANCELLED
            self._say(
                session,
                row.ticket_id,
                f"{escape(refusal.message)}\nTeks Anda (tidak dikirim):\n"
                f"<code>{escape(row.text[:3000])}</code>",
            )
            return Answer(refusal.message, alert=True, queued=True, clear_buttons=True)
        if row.template_id is not None:
            canned.count_use(session, row.template_id)
        # No "sent" message: the preview goes and the card shows the action, when, by whom.
        return Answer(DONE[action].split(".")[0] + ".", queued=True, clear_buttons=True)

    # --- typed replies and files ---------------------------------------------------------

    def on_text(self, session: Session, prompt: TelegramPrompt, text: str, actor: Actor) -> Answer:
        """The staff's text for a mail: shown as a preview, not sent."""
        ticket = session.get_one(Ticket, prompt.ticket_id)
        action = Action(prompt.action)
        try:
            answer = self.show_preview(
                session, ticket, action, text, actor, prompt.user_id, prompt_id=prompt.id
            )
        except (Refused, ActionNotAllowed) as refusal:
            prompt.status = PromptStatus.CANCELLED
            self._say(
                session,
                ticket.id,
                f"{escape(refusal.message)}\nTeks Anda (tidak dikirim):\n"
                f"<code>{escape(text[:3000])}</code>",
            )
            return Answer(refusal.message, queued=True)
        prompt.status = PromptStatus.DONE
        if prompt.message_id is not None:
            enqueue_telegram(  # the question was answered: the preview takes its place
                session,
                TelegramOp.DELETE,
                ticket_id=None,
                payload={"chat_id": prompt.chat_id, "message_id": prompt.message_id},
                importance=Importance.CARD_EDIT,
                now=self.now,
            )
        return answer

    def on_file(
        self,
        session: Session,
        prompt: TelegramPrompt,
        staff_file: StaffFile,
        caption: str | None,
        actor: Actor,
    ) -> Answer:
        """A photo or file sent as the reply: kept for the mail; a caption is its text."""
        action = Action(prompt.action)
        if action not in MAIL_TEXT_ACTIONS:
            self._say(
                session,
                prompt.ticket_id,
                "Lampiran hanya dapat dikirim bersama e-mail; catatan internal berupa teks.",
            )
            return Answer(queued=True)
        session.add(
            ReplyAttachment(
                prompt_id=prompt.id,
                filename=staff_file.filename,
                content_type=staff_file.content_type,
                size=len(staff_file.data),
                data=staff_file.data,
                created_at=self.now,
            )
        )
        session.flush()
        if caption and caption.strip():
            return self.on_text(session, prompt, caption, actor)
        self._say(
            session,
            prompt.ticket_id,
            f"📎 {escape(staff_file.filename)} disimpan sebagai lampiran. Sekarang balas "
            f"pesan bot yang sama dengan teks {_WHAT[action]}.",
        )
        return Answer(queued=True)

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _attachment_ids(session: Session, prompt_id: int | None) -> list[int]:
        if prompt_id is None:
            return []
        return list(
            session.scalars(
                select(ReplyAttachment.id)
                .where(ReplyAttachment.prompt_id == prompt_id)
                .order_by(ReplyAttachment.id)
            )
        )

    def _require(self, ticket: Ticket, action: Action) -> None:
        if not machine.allowed(ticket.state, action):
            raise ActionNotAllowed(
                ticket.state, action, machine.refusal_message(ticket.state, action)
            )

    def _card_message(self, session: Session, ticket_id: int) -> int | None:
        card = session.get(TelegramCard, ticket_id)
        return card.message_id if card else None

    def _message(
        self, session: Session, ticket_id: int, text: str, keyboard: Keyboard | None = None
    ) -> None:
        payload: dict[str, object] = {
            "chat_id": self.chat_id,
            "text": text,
            "reply_to": self._card_message(session, ticket_id),
            "silent": True,  # someone is looking at the screen
        }
        if keyboard:
            payload["keyboard"] = [[list(button) for button in row] for row in keyboard]
        enqueue_telegram(
            session,
            TelegramOp.MESSAGE,
            ticket_id=ticket_id,  # into the ticket's topic in a forum group
            payload=payload,
            importance=Importance.PROMPT,
            now=self.now,
        )

    def _say(self, session: Session, ticket_id: int, text: str) -> None:
        self._message(session, ticket_id, text)


def notice_keyboard(payload: dict[str, object], ticket_id: int | None) -> Keyboard | None:
    """Buttons under a card notice: "🔁 Buka kembali" under a recorded thanks."""
    if payload.get("notice") == "thanks" and ticket_id is not None:
        return [[("🔁 Buka kembali", f"xo:{ticket_id}")]]
    return None
