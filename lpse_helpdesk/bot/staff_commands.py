"""/nama (an officer's official name for letters) and /templat (canned answers, supervisors).

Both are stored in the database and audited with the Telegram id and display name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from html import escape

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import ContextTypes

from lpse_helpdesk.bot import canned
from lpse_helpdesk.bot.access import NOT_ALLOWED, NOT_SUPERVISOR, Access
from lpse_helpdesk.bot.interactions import Interactions
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import AnswerTemplate, AuditEvent, Channel, ReplyStep, StaffName
from lpse_helpdesk.workflow.outbox import Importance
from lpse_helpdesk.workflow.signatures import MAX_NAME, parse_official

Context = ContextTypes.DEFAULT_TYPE

NAMA_USAGE = (
    "Gunakan: <code>/nama Budi Santoso, S.Kom. — Petugas Helpdesk</code> (nama resmi, lalu "
    "jabatan setelah tanda —), atau <code>/nama hapus</code>."
)
TEMPLAT_USAGE = (
    "<b>Templat jawaban</b>\n"
    "/templat — daftar templat\n"
    "/templat &lt;nomor&gt; — isi satu templat\n"
    "Supervisor:\n"
    "<code>/templat tambah solusi | Judul | KATEGORI_1, KATEGORI_2</code>\n"
    "<i>isi templat di baris berikutnya</i>\n"
    "<code>/templat ubah &lt;nomor&gt; | Judul baru | KATEGORI</code> (isi baru di baris "
    "berikutnya; bagian yang dikosongkan tetap)\n"
    "<code>/templat hapus &lt;nomor&gt;</code>\n"
    "Langkah: <code>data</code>, <code>solusi</code>, <code>eskalasi</code>. Kategori kosong = "
    "semua kategori. Kolom: {nama} {nomor_tiket} {kode_tender} {petugas} {lpse}."
)
_STEP_WORDS = {
    "data": ReplyStep.DATA_REQUEST,
    "permintaan": ReplyStep.DATA_REQUEST,
    "data_request": ReplyStep.DATA_REQUEST,
    "solusi": ReplyStep.SOLUTION,
    "solution": ReplyStep.SOLUTION,
    "eskalasi": ReplyStep.ESCALATION,
    "escalation": ReplyStep.ESCALATION,
}
MAX_BODY = 3000


class Refusal(Exception):
    pass


def _command_text(update: Update) -> str:
    """The text after the command word (all lines), e.g. "tambah solusi | ...\\nisi"."""
    message = update.effective_message
    text = (message.text or "") if message is not None else ""
    first, _, rest = text.partition("\n")
    words = first.split(maxsplit=1)
    head = words[1] if len(words) > 1 else ""
    return head + ("\n" + rest if rest else "")


class StaffCommands:
    def __init__(
        self,
        db: Database,
        interactions: Interactions,
        access: Access,
        domain: DomainConfig,
        *,
        wake: Callable[[], None],
    ) -> None:
        self.db = db
        self.interactions = interactions
        self.access = access
        self.domain = domain
        self.wake = wake

    @property
    def now(self) -> dt.datetime:
        return self.interactions.workflow.clock.now()

    async def _say(self, update: Update, text: str) -> None:
        message = update.effective_message
        if message is None:
            return
        importance = Importance.PROMPT
        if text in (NOT_ALLOWED, NOT_SUPERVISOR):  # a refusal: rationed for non-staff
            if not self.access.may_answer(update):
                return
            if not self.access.known(update):
                importance = Importance.STRANGER
        chat_id, reply_to = message.chat_id, message.message_id
        await self.db.run(lambda s: self.interactions.say(s, chat_id, reply_to, text, importance))
        self.wake()

    def _audit(
        self, session: Session, update: Update, action: str, detail: dict[str, object]
    ) -> None:
        user = update.effective_user
        session.add(
            AuditEvent(
                ticket_id=None,
                at=self.now,
                channel=Channel.TELEGRAM,
                actor_id=str(user.id) if user else None,
                actor_name=(user.full_name[:255] if user else None),
                action=action,
                detail=detail,
            )
        )

    # --- /nama -------------------------------------------------------------------------------

    async def nama(self, update: Update, context: Context) -> None:
        user = update.effective_user
        if user is None:
            return
        if not self.access.is_staff(update):
            await self._say(update, NOT_ALLOWED)
            return
        argument = " ".join(_command_text(update).split())
        user_id = user.id

        def work(session: Session) -> str:
            current = session.get(StaffName, user_id)
            if not argument:
                if current is None:
                    return (
                        "Nama resmi Anda belum diatur; surat yang Anda tulis tidak memuat nama "
                        "pribadi.\n" + NAMA_USAGE
                    )
                line = current.official_name + (
                    f" — {current.position}" if current.position else ""
                )
                return f"Surat Anda ditandatangani: <b>{escape(line)}</b>\n{NAMA_USAGE}"
            if argument.lower() in ("hapus", "-"):
                if current is not None:
                    self._audit(
                        session, update, "official_name_cleared", {"was": current.official_name}
                    )
                    session.delete(current)
                return "Nama resmi dihapus; surat Anda tidak memuat nama pribadi."
            official = parse_official(argument)
            if official is None:
                return (
                    f"Nama tidak dapat dipakai (paling panjang {MAX_NAME} karakter).\n{NAMA_USAGE}"
                )
            if current is None:
                current = StaffName(user_id=user_id, official_name="", position="")
                session.add(current)
            previous = current.official_name
            current.official_name = official.name
            current.position = official.position
            current.updated_at = self.now
            self._audit(
                session,
                update,
                "official_name_set",
                {"name": official.name, "position": official.position, "was": previous},
            )
            return (
                f"✅ Surat yang Anda tulis kini ditandatangani:\n<b>{escape(official.name)}</b>"
                + (f"\n{escape(official.position)}" if official.position else "")
            )

        await self._say(update, await self.db.run(work))

    # --- /templat ------------------------------------------------------------------------

    async def templat(self, update: Update, context: Context) -> None:
        if not self.access.is_staff(update) and not self.access.is_supervisor(update):
            await self._say(update, NOT_ALLOWED)
            return
        text = _command_text(update)
        first, _, body = text.partition("\n")
        words = first.split(maxsplit=1)
        verb = words[0].lower() if words else ""
        rest = words[1] if len(words) > 1 else ""
        if verb in ("tambah", "ubah", "hapus") and not self.access.is_supervisor(update):
            await self._say(update, NOT_SUPERVISOR)
            return
        domain = self.domain

        def work(session: Session) -> str:
            canned.seed_defaults(session, domain, self.now)
            try:
                if verb in ("", "daftar", "list"):
                    return self._list(session)
                if verb.isdigit():
                    return self._show(session, int(verb))
                if verb == "tambah":
                    return self._add(session, update, rest, body)
                if verb == "ubah":
                    return self._edit(session, update, rest, body)
                if verb == "hapus":
                    return self._delete(session, update, rest)
            except Refusal as refusal:
                return f"{escape(str(refusal))}\n\n{TEMPLAT_USAGE}"
            return TEMPLAT_USAGE

        await self._say(update, await self.db.run(work))

    def _list(self, session: Session) -> str:
        lines = ["<b>Templat jawaban</b> (nomor — judul — dipakai):"]
        for step in ReplyStep:
            templates = canned.all_for(session, step)
            if not templates:
                continue
            lines.append(f"\n<b>{escape(canned.STEP_LABELS[step].capitalize())}</b>")
            for t in templates:
                fits = ", ".join(self.domain.category_label(c) for c in t.categories) or "semua"
                lines.append(f"#{t.id} — {escape(t.title)} — {t.uses}× <i>({escape(fits)})</i>")
        lines.append("\n/templat &lt;nomor&gt; untuk melihat isinya.")
        return "\n".join(lines)[:4000]

    def _get(self, session: Session, template_id: int) -> AnswerTemplate:
        template = session.get(AnswerTemplate, template_id)
        if template is None or template.deleted:
            raise Refusal(f"Templat #{template_id} tidak ditemukan.")
        return template

    def _show(self, session: Session, template_id: int) -> str:
        try:
            t = self._get(session, template_id)
        except Refusal as refusal:
            return escape(str(refusal))
        fits = ", ".join(t.categories) or "semua"
        return (
            f"<b>#{t.id} {escape(t.title)}</b>\nLangkah: {canned.STEP_LABELS[t.step]}\n"
            f"Kategori: {escape(fits)}\nDipakai: {t.uses}×\n<pre>{escape(t.body)}</pre>"
        )

    def _parts(self, rest: str) -> list[str]:
        return [part.strip() for part in rest.split("|")]

    def _categories(self, text: str) -> list[str]:
        if text.lower() in ("", "semua", "-"):
            return []
        codes = [c.strip().upper() for c in text.replace(";", ",").split(",") if c.strip()]
        known = {c.code for c in self.domain.categories}
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise Refusal(
                f"Kategori tidak dikenal: {', '.join(unknown)}. Kode yang ada: "
                + ", ".join(sorted(known))
            )
        return codes

    @staticmethod
    def _body(body: str) -> str:
        body = body.strip()
        if len(body) > MAX_BODY:
            raise Refusal(f"Isi templat paling panjang {MAX_BODY} karakter.")
        unknown = canned.unknown_fields(body)
        if unknown:
            raise Refusal(
                "Kolom tidak dikenal: "
                + ", ".join("{" + u + "}" for u in unknown)
                + ". Kolom yang ada: "
                + " ".join("{" + f + "}" for f in canned.FIELDS)
            )
        return body

    def _add(self, session: Session, update: Update, rest: str, body: str) -> str:
        parts = self._parts(rest)
        if len(parts) < 2:
            raise Refusal("Tulis langkah dan judulnya, dipisah tanda |.")
        step = _STEP_WORDS.get(parts[0].lower())
        if step is None:
            raise Refusal(f"Langkah '{parts[0]}' tidak dikenal (data, solusi, eskalasi).")
        title = parts[1][:120]
        if not title:
            raise Refusal("Judul templat tidak boleh kosong.")
        categories = self._categories(parts[2] if len(parts) > 2 else "")
        content = self._body(body)
        if not content:
            raise Refusal("Isi templat ditulis di baris berikutnya, di bawah perintah.")
        template = AnswerTemplate(
            code=None,
            title=title,
            body=content,
            step=step,
            categories=categories,
            uses=0,
            deleted=False,
            created_at=self.now,
            updated_at=self.now,
        )
        session.add(template)
        session.flush()
        self._audit(
            session,
            update,
            "template_added",
            {"template": template.id, "title": title, "step": step.value},
        )
        return f"✅ Templat #{template.id} “{escape(title)}” ditambahkan."

    def _edit(self, session: Session, update: Update, rest: str, body: str) -> str:
        parts = self._parts(rest)
        if not parts[0].isdigit():
            raise Refusal("Tulis nomor templat yang diubah.")
        template = self._get(session, int(parts[0]))
        before = {"title": template.title, "body": template.body, "categories": template.categories}
        if len(parts) > 1 and parts[1]:
            template.title = parts[1][:120]
        if len(parts) > 2:
            template.categories = self._categories(parts[2])
        if body.strip():
            template.body = self._body(body)
        template.updated_at = self.now
        self._audit(session, update, "template_edited", {"template": template.id, "before": before})
        return f"✅ Templat #{template.id} “{escape(template.title)}” diubah."

    def _delete(self, session: Session, update: Update, rest: str) -> str:
        if not rest.strip().isdigit():
            raise Refusal("Tulis nomor templat yang dihapus.")
        template = self._get(session, int(rest.strip()))
        template.deleted = True
        template.updated_at = self.now
        self._audit(
            session, update, "template_deleted", {"template": template.id, "title": template.title}
        )
        return f"🗑 Templat #{template.id} “{escape(template.title)}” dihapus."
