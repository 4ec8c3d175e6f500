"""The pure parts of replies: salutations, thanks, template fields, official names, docs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from lpse_helpdesk.bot import canned
from lpse_helpdesk.bridge.compose import compose
from lpse_helpdesk.bridge.salutation import organisation, salutation
from lpse_helpdesk.bridge.sample_letters import render_all, sample_context
from lpse_helpdesk.bridge.templating import Renderer, text_to_html
from lpse_helpdesk.bridge.thanks import is_thanks_only
from lpse_helpdesk.config.check import check_config
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sop.machine import MailKind
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import OutboxItem
from lpse_helpdesk.workflow.signatures import OfficialName, parse_official, parse_staff_names
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import make_intake
from tests.mailmaker import make_mail

DOC = Path(__file__).parents[1] / "docs" / "letters.md"


@pytest.mark.parametrize(
    ("display_name", "greeting"),
    [
        ("PT. MAJU JAYA", "PT Maju Jaya"),
        ("CV. SUMBER REJEKI ABADI", "CV Sumber Rejeki Abadi"),
        ("PT MAJU JAYA TBK", "PT Maju Jaya Tbk"),
        ("Pokja Pemilihan 3 UKPBJ", "Pokja Pemilihan 3 UKPBJ"),
        ("BUDI SANTOSO", "Bapak/Ibu Budi Santoso"),
        ("budi santoso", "Bapak/Ibu Budi Santoso"),
        ("Bpk. AHMAD FAUZI, S.KOM.", "Bapak Ahmad Fauzi, S.Kom."),
        ("Ibu Rina", "Ibu Rina"),
        ("Yth. Bapak Joko", "Bapak Joko"),
        ('"Siti Aminah"', "Bapak/Ibu Siti Aminah"),
        ("Siti Nurhaliza Ñoño", "Bapak/Ibu Siti Nurhaliza Ñoño"),
        ("Dr. Ir. Hendra Wijaya, M.T.", "Bapak/Ibu Dr. Ir. Hendra Wijaya, M.T."),
        ("siti.aminah", "Bapak/Ibu Siti Aminah"),
        ("Budi 🔥", "Bapak/Ibu Budi"),
        ("admin", "Bapak/Ibu Pengguna SPSE"),
        ("ADMIN", "Bapak/Ibu Pengguna SPSE"),
        ("Marketing", "Bapak/Ibu Pengguna SPSE"),
        ("info@vendor.co.id", "Bapak/Ibu Pengguna SPSE"),
        ("12345", "Bapak/Ibu Pengguna SPSE"),
        ("", "Bapak/Ibu Pengguna SPSE"),
        ("Muhammad Al-Fatih", "Bapak/Ibu Muhammad Al-Fatih"),
    ],
)
def test_salutation_from_real_looking_names(display_name: str, greeting: str) -> None:
    assert salutation(display_name) == greeting


def test_organisation_only_for_companies_and_offices() -> None:
    assert organisation("PT. MAJU JAYA") == "PT Maju Jaya"
    assert organisation("Dinas PUPR Kab. Contoh") == "Dinas PUPR Kab. Contoh"
    assert organisation("Budi Santoso") is None


@pytest.mark.parametrize(
    "text",
    [
        "Terima kasih, sudah bisa.",
        "terima kasih banyak pak, sudah berhasil upload",
        "Makasih, sudah beres 🙏",
        "Baik, terima kasih.\n\nSalam,\nSiti\nPT Maju Jaya\n0812 3456 7890",
        "Thanks, it works now.",
        "Thank you!",
        "Ok sudah bisa login, trims",
        "Terimakasih\n\n> Pada 24 Nov 2026 Helpdesk menulis:\n> masih gagal?",
    ],
)
def test_thanks_and_confirmations(text: str) -> None:
    assert is_thanks_only(text)


@pytest.mark.parametrize(
    "text",
    [
        "Masih gagal.",
        "Terima kasih, tapi masih gagal unggah.",
        "Sudah bisa login, tetapi dokumen tidak bisa diunggah.",
        "Terima kasih. Bagaimana cara mengubah jadwal?",
        "Terima kasih, apakah bisa dibantu untuk tender lain",
        "Thanks, but it still fails.",
        "Sudah saya coba, error lagi",
        "Mohon bantuannya kembali",
        "",
        "Baik pak " + "kata " * 60,  # a long reply carries more than thanks
    ],
)
def test_anything_else_reopens(text: str) -> None:
    assert not is_thanks_only(text)


def test_a_new_attachment_is_not_just_thanks() -> None:
    assert not is_thanks_only("Terima kasih, terlampir buktinya.", new_attachments=1)


def test_template_fields() -> None:
    values = {
        "nama": "Budi Santoso",
        "nomor_tiket": "LPSE-2026-00042",
        "kode_tender": "",
        "petugas": "Rina",
        "lpse": "LPSE Kabupaten Contoh",
    }
    assert canned.fill("Tiket {nomor_tiket} di {lpse}.", values) == (
        "Tiket LPSE-2026-00042 di LPSE Kabupaten Contoh."
    )
    with pytest.raises(canned.FillError, match=r"\{kode_tender\} \(kode tender\)"):
        canned.fill("Tender {kode_tender}.", values)
    with pytest.raises(canned.FillError, match=r"tidak dikenal: \{nama_pengguna\}"):
        canned.fill("Yth. {nama_pengguna}", values)


def test_official_names() -> None:
    assert parse_official("Budi Santoso, S.Kom. — Petugas Helpdesk") == OfficialName(
        "Budi Santoso, S.Kom.", "Petugas Helpdesk"
    )
    assert parse_official("Rina Lestari | Koordinator") == OfficialName(
        "Rina Lestari", "Koordinator"
    )
    assert parse_official("  Rina  ") == OfficialName("Rina")
    assert parse_official("<b>") is None
    assert parse_staff_names("1001=Budi Santoso, S.Kom. — Petugas; 1002=Rina") == {
        1001: OfficialName("Budi Santoso, S.Kom.", "Petugas"),
        1002: OfficialName("Rina"),
    }
    with pytest.raises(ValueError, match="'budi=Budi' is not id=Nama"):
        parse_staff_names("budi=Budi")


def test_a_wrong_staff_names_setting_is_one_line(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "TELEGRAM_BOT_TOKEN=1:x\nHELPDESK_CHAT_ID=-1\nIMAP_HOST=h\nIMAP_USER=u\n"
        "IMAP_PASSWORD=p\nSMTP_HOST=h\nHELPDESK_EMAIL=a@b.id\nLKPP_HELPDESK_EMAIL=c@d.id\n"
        "STAFF_NAMES=Budi Santoso\n",
        "utf-8",
    )
    report = check_config(env)
    assert any(p.startswith("STAFF_NAMES:") for p in report.problems), report.problems


def test_fields_become_a_table_in_html() -> None:
    html = text_to_html("Judul       : Gagal\nKode tender : 123\n\nTeks biasa: bukan tabel.")
    assert "<td" in html and ">Kode tender</td><td>: 123</td>" in html
    assert "<p>Teks biasa: bukan tabel.</p>" in html


def test_committed_letters_match_the_templates() -> None:
    assert DOC.read_text("utf-8") == render_all(), (
        "docs/letters.md is out of date: run "
        "`python -m lpse_helpdesk.bridge.sample_letters > docs/letters.md`"
    )


def test_every_default_template_fills_for_a_full_ticket(domain: object) -> None:
    from lpse_helpdesk.domain.loader import load_domain

    values = {name: "x" for name in canned.FIELDS}
    for answer in load_domain().answer_templates:
        assert canned.fill(answer.body, values)  # no unknown field in the shipped defaults


def test_readme_lists_the_default_canned_answers() -> None:
    from lpse_helpdesk.domain.loader import load_domain

    readme = (Path(__file__).parents[1] / "README.md").read_text("utf-8")
    missing = [a.title for a in load_domain().answer_templates if f"| {a.title} |" not in readme]
    assert missing == []


def test_a_phone_call_is_promised_only_with_a_number() -> None:
    def body(phone: str | None) -> str:
        ctx = dataclasses.replace(sample_context(MailKind.DATA_REQUEST), requester_phone=phone)
        message = compose(
            MailKind.DATA_REQUEST,
            ctx,
            to="budi@majujaya.co.id",
            message_id="<x@lpse.contoh.go.id>",
            in_reply_to=None,
            references=[],
            date=dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
            renderer=Renderer(),
        )
        part = message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    assert "menghubungi Bapak/Ibu melalui telepon di nomor 0812" in body("0812-3456-7890")
    without = body(None)
    assert "akan menghubungi" not in without and "cantumkan nomor telepon" in without


def test_the_acknowledgement_names_the_resolution_times(
    db: Database, workflow: Workflow, domain: DomainConfig
) -> None:
    intake = make_intake(workflow, domain)
    db.run_sync(lambda s: intake.ingest(s, make_mail()))
    query = select(OutboxItem).where(OutboxItem.kind == "acknowledgement")
    ack = db.run_sync(lambda s: s.scalars(query).one())
    times = ["tinggi 4 jam kerja", "menengah 1 hari kerja", "rendah 3 hari kerja"]
    assert ack.payload["service_times"] == times
