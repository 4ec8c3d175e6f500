"""What a press or a typed reply does, in one database transaction each; no Telegram calls.

Every press is checked against the database (ticket exists, version current, action allowed
by the SOP machine) before anything changes. The result says what to answer on the phone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot import cards, texts
from lpse_helpdesk.bot.callback_data import Button, Press
from lpse_helpdesk.bot.prompts import PROMPT_MINUTES, open_prompt
from lpse_helpdesk.bot.replies import MAIL_TEXT_ACTIONS, Answer, Replies
from lpse_helpdesk.bridge.parsing import parse_mail
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import Action, ActionNotAllowed
from lpse_helpdesk.storage.models import (
    Attachment,
    Direction,
    MailPreview,
    Message,
    PreviewStatus,
    PromptStatus,
    TelegramCard,
    TelegramPrompt,
    Ticket,
)
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.outbox import Importance, TelegramOp, enqueue_telegram
from lpse_helpdesk.workflow.tickets import Refused, StaleTicket, Workflow

TEXT_BUTTONS: dict[Button, Action] = {
    Button.REQUEST_DATA: Action.REQUEST_DATA,
    Button.RESOLVE: Action.RESOLVE,
    Button.ESCALATE: Action.ESCALATE,
    Button.NOTE: Action.ADD_NOTE,
}
DIRECT_BUTTONS: dict[Button, Action] = {
    Button.PHONE: Action.CONFIRM_PHONE,
    Button.ANALYSE: Action.START_ANALYSIS,
    Button.CLOSE: Action.CLOSE,
}
#: Presses that change the ticket at once: they must match the version the card showed.
#: The others only open a menu or a prompt; the typed reply is checked when it arrives.
CHANGING_BUTTONS = frozenset(
    {
        Button.PRIORITY,
        Button.PRIORITY_CONFIRM,
        Button.CATEGORY,
        Button.NO_ANSWER,
        Button.TAKE,
        Button.TAKE_CONFIRM,
        *DIRECT_BUTTONS,
    }
)


@dataclass
class PressResult:
    """What to do on the phone: the callback answer, and maybe a keyboard to show now."""

    answer: str
    alert: bool = False
    keyboard: cards.Keyboard | None = None
    queued: bool = False  # something was put in the outbox: wake the dispatcher


@dataclass
class ReplyResult:
    handled: bool
    queued: bool = False
    notes: list[str] = field(default_factory=list)


PressHandler = Callable[[Session, Ticket, Press, Actor, int], PressResult]


class Interactions:
    def __init__(
        self,
        workflow: Workflow,
        domain: DomainConfig,
        chat_id: int,
        replies: Replies | None = None,
    ) -> None:
        self.workflow = workflow
        self.domain = domain
        self.chat_id = chat_id
        #: Mails staff write go through canned answers and a preview (bot/replies.py).
        self.replies = replies

    @property
    def now(self) -> dt.datetime:
        return self.workflow.clock.now()

    # --- presses ---------------------------------------------------------------------------

    def press(self, session: Session, press: Press, actor: Actor, user_id: int) -> PressResult:
        ticket = session.get(Ticket, press.ticket_id)
        if ticket is None:
            return PressResult("Tiket tidak ditemukan.", alert=True)
        try:
            return self._press(session, ticket, press, actor, user_id)
        except (Refused, ActionNotAllowed) as refusal:
            # The card may be out of date: show the truth.
            self.refresh_card(session, ticket.id)
            return PressResult(refusal.message, alert=True, queued=True)

    def _press(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        button = press.button
        if button in (Button.FULL_TEXT, Button.ATTACHMENTS):
            result = (
                self._full_text(session, ticket)
                if button is Button.FULL_TEXT
                else self._attachments(session, ticket)
            )
            # Pressed behind "⋯ Lainnya": the card shows its main buttons again.
            result.keyboard = cards.render_keyboard(self._card(session, ticket), self.domain)
            return result
        if button in CHANGING_BUTTONS and press.version != ticket.version:
            # Someone (staff, or a mail) changed the ticket since this card was drawn.
            raise StaleTicket
        handler = self._handlers.get(button)
        if handler is not None:
            return handler(session, ticket, press, actor, user_id)
        action = TEXT_BUTTONS[button]
        self._require(ticket, action)
        return self._ask(session, ticket, action, actor, user_id)

    def _ask(
        self, session: Session, ticket: Ticket, action: Action, actor: Actor, user_id: int
    ) -> PressResult:
        """The text for a mail: canned answers and a preview when the replies flow is on."""
        if self.replies is not None and action in MAIL_TEXT_ACTIONS:
            return _press_result(self.replies.start(session, ticket, action, actor, user_id))
        return self._ask_text(session, ticket, action, actor, user_id)

    # One function per button, so that other flows can hook into exactly one of them.

    @property
    def _handlers(self) -> dict[Button, PressHandler]:
        return {
            Button.PRIORITY: self.on_priority,
            Button.PRIORITY_CONFIRM: self.on_priority_confirm,
            Button.PRIORITY_MENU: self.on_priority_menu,
            Button.CATEGORY: self.on_category,
            Button.CATEGORY_MENU: self.on_category_menu,
            Button.PHONE: self.on_direct,
            Button.ANALYSE: self.on_direct,
            Button.CLOSE: self.on_direct,
            Button.NO_ANSWER: self.on_no_answer,
            Button.TAKE: self.on_take,
            Button.TAKE_CONFIRM: self.on_take_confirm,
            Button.CLOSE_ASK: self.on_close_ask,
            Button.MORE: self.on_more,
            Button.BACK: self.on_back,
            Button.REQUEST_DATA: self.on_request_data,
            Button.RESOLVE: self.on_resolve,
        }

    def _card(self, session: Session, ticket: Ticket) -> cards.CardData:
        card = cards.load_card(session, ticket.id)
        assert card is not None
        return card

    def on_priority(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        if ticket.priority is not None:
            # It restarts the resolution clock: ask first.
            code = press.arg or ""
            self._require(ticket, Action.SET_PRIORITY)
            if code == ticket.priority:
                return PressResult(texts.priority_already(self.domain.priority_label(code)))
            card = self._card(session, ticket)
            return PressResult(
                texts.PRIORITY_CONFIRM.format(label=self.domain.priority_label(code)),
                keyboard=cards.priority_confirm_keyboard(card, self.domain, code),
            )
        return self.on_priority_confirm(session, ticket, press, actor, user_id)

    def on_priority_confirm(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        if press.arg is not None and press.arg == ticket.priority:
            return PressResult(texts.priority_already(self.domain.priority_label(press.arg)))
        self.workflow.act(
            session,
            ticket.id,
            Action.SET_PRIORITY,
            actor,
            expected_version=press.version,
            priority=press.arg,
        )
        return PressResult(f"Prioritas: {self.domain.priority_label(press.arg)}", queued=True)

    def on_priority_menu(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        self._require(ticket, Action.SET_PRIORITY)
        card = self._card(session, ticket)
        return PressResult(texts.PRIORITY_MENU, keyboard=cards.priority_keyboard(card, self.domain))

    def on_category(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        category = self._category(press.arg)
        self.workflow.act(
            session,
            ticket.id,
            Action.SET_CATEGORY,
            actor,
            expected_version=press.version,
            category=category,
        )
        return PressResult(f"Kategori: {self.domain.category_label(category)}", queued=True)

    def on_category_menu(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        self._require(ticket, Action.SET_CATEGORY)
        card = self._card(session, ticket)
        return PressResult(texts.CATEGORY_MENU, keyboard=cards.category_keyboard(card, self.domain))

    def on_direct(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        action = DIRECT_BUTTONS[press.button]
        self.workflow.act(session, ticket.id, action, actor, expected_version=press.version)
        return PressResult(texts.DONE_ANSWERS[action.value], queued=True)

    def on_no_answer(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        self.workflow.record_phone_unanswered(
            session, ticket.id, actor, expected_version=press.version
        )
        return PressResult(texts.PHONE_UNANSWERED, queued=True)

    def on_take(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        if ticket.handler_id is not None and ticket.handler_id != actor.id:
            card = self._card(session, ticket)
            return PressResult(
                texts.take_over_question(ticket.handler_name or "petugas lain"),
                keyboard=cards.take_confirm_keyboard(card),
            )
        return self.on_take_confirm(session, ticket, press, actor, user_id)

    def on_take_confirm(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        previous = self.workflow.take(session, ticket.id, actor, expected_version=press.version)
        return PressResult(texts.taken(previous), queued=True)

    def on_close_ask(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        self._require(ticket, Action.CLOSE)
        return PressResult(
            texts.CLOSE_QUESTION, keyboard=cards.close_keyboard(self._card(session, ticket))
        )

    def on_more(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        card = self._card(session, ticket)
        return PressResult("", keyboard=cards.more_keyboard(card, self.domain))

    def on_back(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        card = self._card(session, ticket)
        return PressResult("", keyboard=cards.render_keyboard(card, self.domain))

    def on_request_data(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        """ "📨 Minta Data": ask for the request's text."""
        self._require(ticket, Action.REQUEST_DATA)
        return self._ask(session, ticket, Action.REQUEST_DATA, actor, user_id)

    def on_resolve(
        self, session: Session, ticket: Ticket, press: Press, actor: Actor, user_id: int
    ) -> PressResult:
        """ "✅ Kirim Solusi": ask for the solution's text."""
        self._require(ticket, Action.RESOLVE)
        return self._ask(session, ticket, Action.RESOLVE, actor, user_id)

    def _require(self, ticket: Ticket, action: Action) -> None:
        if not machine.allowed(ticket.state, action):
            raise ActionNotAllowed(
                ticket.state, action, machine.refusal_message(ticket.state, action)
            )

    def _category(self, arg: str | None) -> str:
        try:
            return self.domain.categories[int(arg or "")].code
        except (ValueError, IndexError):
            raise Refused("Kategori ini sudah tidak ada; buka menu kategori lagi.") from None

    def _ask_text(
        self, session: Session, ticket: Ticket, action: Action, actor: Actor, user_id: int
    ) -> PressResult:
        open_prompt(
            session,
            chat_id=self.chat_id,
            user_id=user_id,
            actor=actor,
            ticket_id=ticket.id,
            action=action,
            now=self.now,
        )
        return PressResult(texts.ASK_ANSWER, queued=True)

    def _full_text(self, session: Session, ticket: Ticket) -> PressResult:
        messages = session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        ).all()
        parts = [f"Tiket {ticket.number}\nSubjek: {ticket.subject}\n"]
        for message in messages:
            arrow = "Masuk dari" if message.direction is Direction.IN else "Keluar ke"
            who = (
                message.from_address
                if message.direction is Direction.IN
                else ", ".join(message.to_addresses)
            )
            stamp = message.at.astimezone(self.workflow.timezone).strftime("%d/%m/%Y %H.%M")
            body = message.text or message.stripped_text
            parts.append(f"=== {stamp} · {arrow} {who}\nSubjek: {message.subject}\n\n{body}\n")
        content = "\n".join(parts)
        if len(content) <= texts.FULL_TEXT_CHARS:
            # Readable on a phone without another app: a collapsed quote, in the card's place.
            enqueue_telegram(
                session,
                TelegramOp.MESSAGE,
                ticket_id=ticket.id,
                payload={
                    "chat_id": self.chat_id,
                    "text": texts.full_text_message(ticket.number, content),
                    "reply_to": self._card_message(session, ticket.id),
                    "silent": True,
                },
                importance=Importance.PROMPT,
                now=self.now,
            )
            return PressResult(texts.FULL_TEXT_SENT, queued=True)
        self._document(
            session, ticket, f"{ticket.number}.txt", content.encode("utf-8"), "📄 Teks lengkap"
        )
        return PressResult(texts.FULL_TEXT_FILE, queued=True)

    def _attachments(self, session: Session, ticket: Ticket) -> PressResult:
        rows = session.execute(
            select(Attachment, Message.id)
            .join(Message, Attachment.message_id == Message.id)
            .where(Message.ticket_id == ticket.id, Attachment.inline.is_(False))
            .order_by(Attachment.id)
        ).all()
        sent, omitted = 0, []
        for attachment, message_pk in rows:
            if attachment.omitted_reason:
                omitted.append(attachment.filename)
                continue
            enqueue_telegram(
                session,
                TelegramOp.DOCUMENT,
                ticket_id=ticket.id,
                payload={
                    "message_pk": message_pk,
                    "part_index": attachment.part_index,
                    "filename": attachment.filename,
                    "caption": f"📎 {escape(ticket.number)}",
                    "reply_to": self._card_message(session, ticket.id),
                },
                importance=Importance.PROMPT,
                now=self.now,
            )
            sent += 1
        answer = f"{sent} lampiran dikirim." if sent else "Tidak ada lampiran yang tersimpan."
        if omitted:
            answer += f" {len(omitted)} lampiran terlalu besar, tetap ada di kotak surat."
        return PressResult(answer, queued=bool(sent))

    def _document(
        self, session: Session, ticket: Ticket, filename: str, content: bytes, caption: str
    ) -> None:
        enqueue_telegram(
            session,
            TelegramOp.DOCUMENT,
            ticket_id=ticket.id,
            payload={
                "filename": filename,
                "content_hex": content.hex(),
                "caption": f"{caption} — {escape(ticket.number)}",
                "reply_to": self._card_message(session, ticket.id),
            },
            importance=Importance.PROMPT,
            now=self.now,
        )

    @staticmethod
    def _card_message(session: Session, ticket_id: int) -> int | None:
        card = session.get(TelegramCard, ticket_id)
        return card.message_id if card else None

    def refresh_card(self, session: Session, ticket_id: int) -> None:
        enqueue_telegram(
            session,
            TelegramOp.CARD,
            ticket_id=ticket_id,
            payload={},
            importance=Importance.NOTICE,
            now=self.now,
        )

    # --- typed replies ---------------------------------------------------------------------

    def reply(
        self,
        session: Session,
        chat_id: int,
        reply_to: int,
        user_id: int,
        text: str,
        actor: Actor,
        message_id: int,
    ) -> ReplyResult:
        prompt = self.find_prompt(session, chat_id, reply_to)
        if prompt is None:
            return ReplyResult(handled=False)
        if not self.usable_prompt(session, prompt, chat_id, user_id, message_id, text):
            return ReplyResult(handled=True, queued=True)
        action = Action(prompt.action)
        if self.replies is not None and action in MAIL_TEXT_ACTIONS:
            self.replies.on_text(session, prompt, text, actor)  # a preview, not the mail
            return ReplyResult(handled=True, queued=True)
        try:
            self.workflow.act(session, prompt.ticket_id, action, actor, text=text)
        except (Refused, ActionNotAllowed) as refusal:
            prompt.status = PromptStatus.CANCELLED
            self.say(
                session,
                chat_id,
                message_id,
                texts.refused_with_text(refusal.message, text),
            )
            self.refresh_card(session, prompt.ticket_id)
            return ReplyResult(handled=True, queued=True)
        prompt.status = PromptStatus.DONE
        # No "sent" message: the question disappears, the answer gets a reaction, and the
        # card (edited by the action) shows what was done, when, and by whom.
        if prompt.message_id is not None:
            self.delete(session, chat_id, prompt.message_id)
        self.react(session, chat_id, message_id, texts.DONE_REACTION)
        return ReplyResult(handled=True, queued=True)

    @staticmethod
    def find_prompt(session: Session, chat_id: int, reply_to: int) -> TelegramPrompt | None:
        return session.scalars(
            select(TelegramPrompt).where(
                TelegramPrompt.chat_id == chat_id, TelegramPrompt.message_id == reply_to
            )
        ).first()

    def usable_prompt(
        self,
        session: Session,
        prompt: TelegramPrompt,
        chat_id: int,
        user_id: int,
        message_id: int,
        text: str = "",
    ) -> bool:
        """Whether this reply answers `prompt`; when not, the staff member was told why."""
        if prompt.user_id != user_id:
            self.say(
                session,
                chat_id,
                message_id,
                texts.prompt_for_other(prompt.user_name),
            )
            return False
        if prompt.status is not PromptStatus.PENDING:
            self.say(session, chat_id, message_id, texts.PROMPT_GONE)
            return False
        if prompt.expires_at <= self.now:
            prompt.status = PromptStatus.EXPIRED
            given = f" Teks Anda:\n<code>{escape(text[:3000])}</code>" if text else ""
            self.say(
                session,
                chat_id,
                message_id,
                f"⌛ Waktu {PROMPT_MINUTES} menit sudah habis; tekan tombolnya lagi.{given}",
            )
            return False
        return True

    def cancel(self, session: Session, chat_id: int, user_id: int, message_id: int) -> int:
        prompts = session.scalars(
            select(TelegramPrompt).where(
                TelegramPrompt.chat_id == chat_id,
                TelegramPrompt.user_id == user_id,
                TelegramPrompt.status == PromptStatus.PENDING,
            )
        ).all()
        for prompt in prompts:
            prompt.status = PromptStatus.CANCELLED
        previews = session.scalars(
            select(MailPreview).where(
                MailPreview.chat_id == chat_id,
                MailPreview.user_id == user_id,
                MailPreview.status == PreviewStatus.PENDING,
            )
        ).all()
        for preview in previews:
            preview.status = PreviewStatus.CANCELLED  # nothing is mailed
        cancelled = len(prompts) + len(previews)
        self.say(
            session,
            chat_id,
            message_id,
            texts.CANCELLED if cancelled else texts.NOTHING_TO_CANCEL,
        )
        for prompt in prompts:
            if prompt.message_id is not None:
                self.delete(session, chat_id, prompt.message_id)
        return cancelled

    def say(
        self,
        session: Session,
        chat_id: int,
        reply_to: int | None,
        text: str,
        importance: Importance = Importance.PROMPT,
        *,
        thread_id: int | None = None,
        keyboard: cards.Keyboard | None = None,
    ) -> None:
        """A ready-made HTML text, through the outbox (charged to the chat it goes to).

        It answers someone who is looking at the screen: it never rings.
        """
        payload: dict[str, object] = {
            "chat_id": chat_id,
            "text": text,
            "reply_to": reply_to,
            "silent": True,
        }
        if thread_id is not None:
            payload["thread_id"] = thread_id
        if keyboard is not None:
            payload["keyboard"] = [[list(button) for button in row] for row in keyboard]
        enqueue_telegram(
            session,
            TelegramOp.MESSAGE,
            ticket_id=None,
            payload=payload,
            importance=importance,
            now=self.now,
        )

    def delete(self, session: Session, chat_id: int, message_id: int) -> None:
        enqueue_telegram(
            session,
            TelegramOp.DELETE,
            ticket_id=None,
            payload={"chat_id": chat_id, "message_id": message_id},
            importance=Importance.CARD_EDIT,
            now=self.now,
        )

    def react(self, session: Session, chat_id: int, message_id: int, emoji: str) -> None:
        enqueue_telegram(
            session,
            TelegramOp.REACTION,
            ticket_id=None,
            payload={"chat_id": chat_id, "message_id": message_id, "emoji": emoji},
            importance=Importance.PROMPT,
            now=self.now,
        )


def _press_result(answer: Answer) -> PressResult:
    return PressResult(answer.text, alert=answer.alert, queued=answer.queued)


def attachment_bytes(session: Session, message_pk: int, part_index: int) -> bytes | None:
    """An attachment's bytes, taken again from the stored raw mail."""
    message = session.get(Message, message_pk)
    if message is None:
        return None
    attachments = parse_mail(message.raw).attachments
    if 0 <= part_index < len(attachments):
        return attachments[part_index].payload
    return None
