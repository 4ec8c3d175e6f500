"""Canned answers: the database's templates, seeded from the domain data, ranked by use.

Fields in a body are written `{nama}`, `{nomor_tiket}`, `{kode_tender}`, `{petugas}`,
`{lpse}`; an unknown field, or one without a value for the ticket, blocks the send with a
message that names it (a letter never goes out with a hole in it).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lpse_helpdesk.bridge.salutation import clean_name
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.models import AnswerTemplate, ReplyStep, Ticket

__all__ = [
    "FIELDS",
    "STEP_FOR_ACTION",
    "STEP_LABELS",
    "FillError",
    "all_for",
    "fill",
    "ranked",
    "seed_defaults",
]

TOP = 3
FIELDS: Mapping[str, str] = {
    "nama": "nama pengguna",
    "nomor_tiket": "nomor tiket",
    "kode_tender": "kode tender",
    "petugas": "nama resmi petugas (/nama)",
    "lpse": "nama LPSE",
}
STEP_FOR_ACTION: Mapping[Action, ReplyStep] = {
    Action.REQUEST_DATA: ReplyStep.DATA_REQUEST,
    Action.RESOLVE: ReplyStep.SOLUTION,
    Action.ESCALATE: ReplyStep.ESCALATION,
}
STEP_LABELS: Mapping[ReplyStep, str] = {
    ReplyStep.DATA_REQUEST: "permintaan data",
    ReplyStep.SOLUTION: "solusi",
    ReplyStep.ESCALATION: "catatan eskalasi",
}
_FIELD = re.compile(r"\{([^{}\s]*)\}")


class FillError(Exception):
    """A template that cannot be used as it is; `message` is for staff (plain text)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def seed_defaults(session: Session, domain: DomainConfig, now: dt.datetime) -> None:
    """Copy the domain data's templates in, once each (a deleted default stays deleted)."""
    known = set(
        session.scalars(select(AnswerTemplate.code).where(AnswerTemplate.code.is_not(None)))
    )
    for answer in domain.answer_templates:
        if answer.code in known:
            continue
        try:
            with session.begin_nested():  # another process may seed at the same moment
                session.add(
                    AnswerTemplate(
                        code=answer.code,
                        title=answer.title,
                        body=answer.body,
                        step=ReplyStep(answer.step),
                        categories=list(answer.categories),
                        uses=0,
                        deleted=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            continue


def all_for(session: Session, step: ReplyStep) -> list[AnswerTemplate]:
    return list(
        session.scalars(
            select(AnswerTemplate)
            .where(AnswerTemplate.step == step, AnswerTemplate.deleted.is_(False))
            .order_by(AnswerTemplate.uses.desc(), AnswerTemplate.title)
        )
    )


def fits(template: AnswerTemplate, category: str | None) -> bool:
    return not template.categories or (category is not None and category in template.categories)


def ranked(
    session: Session, step: ReplyStep, category: str | None
) -> tuple[list[AnswerTemplate], bool]:
    """The top templates for a ticket's category (by use) and whether there are more."""
    candidates = all_for(session, step)
    fitting = [t for t in candidates if fits(t, category)]
    # Templates for this very category before the general ones, then by use.
    fitting.sort(key=lambda t: (0 if t.categories else 1, -t.uses, t.title))
    top = fitting[:TOP]
    return top, len(candidates) > len(top)


def count_use(session: Session, template_id: int) -> None:
    session.execute(
        update(AnswerTemplate)
        .where(AnswerTemplate.id == template_id)
        .values(uses=AnswerTemplate.uses + 1)
    )


def field_values(ticket: Ticket, lpse_name: str, officer: str | None) -> dict[str, str]:
    return {
        "nama": clean_name(ticket.requester_name),
        "nomor_tiket": ticket.number,
        "kode_tender": ", ".join(ticket.tender_codes),
        "petugas": officer or "",
        "lpse": lpse_name,
    }


def unknown_fields(body: str) -> list[str]:
    return sorted({name for name in _FIELD.findall(body) if name not in FIELDS})


def fill(body: str, values: Mapping[str, str]) -> str:
    """The body with its fields filled; FillError names an unknown or empty field."""
    unknown = unknown_fields(body)
    if unknown:
        names = ", ".join("{" + name + "}" for name in unknown)
        known = ", ".join("{" + name + "}" for name in FIELDS)
        raise FillError(
            f"Templat memuat kolom yang tidak dikenal: {names}. Kolom yang ada: {known}."
        )
    empty = sorted({name for name in _FIELD.findall(body) if not values.get(name, "").strip()})
    if empty:
        what = ", ".join(f"{{{name}}} ({FIELDS[name]})" for name in empty)
        raise FillError(f"Kolom {what} belum ada isinya untuk tiket ini; e-mail tidak dikirim.")
    return _FIELD.sub(lambda match: values[match.group(1)], body)


@dataclass(frozen=True)
class TemplateInput:
    """What a supervisor typed for /templat tambah or ubah."""

    step: ReplyStep | None
    title: str
    categories: list[str]
    body: str
