"""The recap for the people who sign it: the PDF's signature block and the summary's
per-officer counts, previous period, oldest open tickets and canned answers used."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.reports.lines import RecapContext, Signers
from lpse_helpdesk.reports.pdf import signature_rows
from lpse_helpdesk.reports.period import Period
from lpse_helpdesk.reports.summary import compute_summary, summary_text
from lpse_helpdesk.sop.machine import Action
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import AnswerTemplate, ReplyStep, StaffName
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.actors import Actor
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import WIB
from tests.reports_support import LPSE, november, open_ticket, wib

NOW = wib(2026, 12, 1, 8, 0)
RINA = Actor.telegram(2002, "rina 🌸")
BUDI = Actor.telegram(1001, "Budi")


def test_signature_block_as_offices_lay_it_out(domain: DomainConfig) -> None:
    signers = Signers(city="Contoh", head_title="Kepala Bagian PBJ", head_name="Ir. Sutrisno")
    context = RecapContext(november(), domain, LPSE, NOW, signers=signers)
    rows = signature_rows(context)
    assert rows[0] == ["Mengetahui,", "Contoh, 1 Desember 2026"]
    assert rows[1] == ["Kepala Bagian PBJ", "Dibuat oleh,"]
    assert rows[4][0] == "Ir. Sutrisno" and rows[4][1].startswith("(....")
    plain = signature_rows(RecapContext(november(), domain, LPSE, NOW))
    assert plain[0] == ["Mengetahui,", "1 Desember 2026"] and plain[1][0] == "Kepala LPSE"


def test_summary_for_the_people_who_sign_it(
    db: Database, workflow: Workflow, clock: FixedClock, domain: DomainConfig
) -> None:
    october = open_ticket(db, workflow, clock, wib(2026, 10, 20, 9))
    db.run_sync(lambda s: workflow.act(s, october, Action.SET_PRIORITY, BUDI, priority="rendah"))
    first = open_ticket(db, workflow, clock, wib(2026, 11, 24, 9))
    second = open_ticket(db, workflow, clock, wib(2026, 11, 24, 10), subject="Lupa sandi")
    third = open_ticket(db, workflow, clock, wib(2026, 11, 25, 9), subject="Jadwal")

    def setup(session: Session) -> int:
        session.add(StaffName(user_id=2002, official_name="Rina Lestari, S.Kom.", updated_at=NOW))
        template = AnswerTemplate(
            title="Lupa kata sandi",
            body="Silakan reset.",
            step=ReplyStep.SOLUTION,
            categories=[],
            uses=1,
            deleted=False,
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(template)
        session.flush()
        return template.id

    template_id = db.run_sync(setup)
    clock.set(wib(2026, 11, 24, 9, 3))
    db.run_sync(lambda s: workflow.act(s, first, Action.SET_PRIORITY, RINA, priority="tinggi"))
    db.run_sync(
        lambda s: workflow.act(
            s, first, Action.RESOLVE, RINA, text="Sudah.", mail_extras={"template": template_id}
        )
    )
    clock.set(wib(2026, 11, 24, 11, 0))  # 60 minutes: the priority step (5 minutes) missed
    db.run_sync(lambda s: workflow.act(s, second, Action.SET_PRIORITY, BUDI, priority="rendah"))
    clock.set(NOW)
    with Session(db.engine) as session:
        summary = compute_summary(session, november(), domain, now=NOW)
    officers = {o.name: (o.tickets, o.breaches) for o in summary.officers}
    assert officers == {"Rina Lestari, S.Kom.": (1, 0), "Budi": (1, 1)}
    assert summary.previous is not None
    assert summary.previous.period == Period(dt.date(2026, 10, 1), dt.date(2026, 10, 31), WIB)
    assert summary.previous.received == 1
    assert [t.number for t in summary.oldest_open] == [
        "LPSE-2026-00001",  # October's ticket, still open
        "LPSE-2026-00003",
        "LPSE-2026-00004",
    ]
    assert summary.templates_used == (("Lupa kata sandi", 1),)
    text = summary_text(summary, domain, LPSE).splitlines()
    assert "Diterima: 3 (periode sebelumnya 1)" in text
    assert "• Rina Lestari, S.Kom.: 1 / 0" in text and "• Budi: 1 / 1" in text
    assert "• Lupa kata sandi: 1×" in text
    assert "• LPSE-2026-00001 (sejak 20/10/2026): Gagal unggah penawaran" in text
    assert third
