"""Everything staff read is Indonesian an LPSE writes: no code words, one term per thing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from lpse_helpdesk.bot import access, card_dump, service, texts
from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.sla import texts as sla_texts
from lpse_helpdesk.storage.db import Database
from tests.conftest import WIB

#: Internal words, identifiers and English that staff must not see, and terms replaced by
#: the one the helpdesk uses ("isian", "Mutu Baku Waktu", "percakapan ini", "langkah N SOP").
CODE_WORDS = re.compile(
    r"\b(bounce|smtp|imap|solution|payload|none|null|error|exception|ticket_id|chat_id|"
    r"kind|notice|alert|sla_\w+|[a-z]+_[a-z_]+|[A-Z]+_[A-Z_]+|pertanyaan|chat ini|"
    r"kepatuhan sla|sop langkah|deadline|reply|button|callback)\b",
    re.IGNORECASE,
)
ALLOWED = {"tg://user"}  # a mention's link target, not text


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _visible(html: str) -> str:
    text = re.sub(r"<[^>]+>", " ", html)
    for allowed in ALLOWED:
        text = text.replace(allowed, "")
    return text


NOTICES: list[dict[str, Any]] = [
    {"notice": "bounce", "addresses": ["a@b.id"]},
    {"notice": "bounce", "addresses": ["a@b.id"], "transient": True},
    {"notice": "mail_failed", "kind": "solution", "recipient": "a@b.id", "error": "550 x"},
    {
        "notice": "sla_reminder",
        "step": "set_priority",
        "deadline": "2026-11-24T02:05:00+00:00",
    },
    {
        "notice": "sla_breach",
        "step": "resolve",
        "deadline": "2026-11-24T02:05:00+00:00",
        "last_actor": None,
    },
    {"notice": "something_new"},
]
ALERTS: list[dict[str, Any]] = [
    {"alert": "imap_down", "error": "AUTHENTICATIONFAILED", "host": "imap.x"},
    {"alert": "imap_restored"},
    {"alert": "smtp_login"},
    {"alert": "quarantined", "uid": 7, "failed_mail": 1},
    {"alert": "flood", "address": "a@b.id"},
    {"alert": "no_topics"},
    {"alert": "no_topics", "reason": "not_forum"},
    {"alert": "sla_summary", "date": "2026-11-24", "overdue": [], "due_today": [], "open": 2},
    {
        "alert": "sla_scan",
        "breaches": [
            {"ticket": 5, "step": "resolve", "deadline": "2026-11-24T02:05:00+00:00"},
        ],
        "reminders": [
            {"ticket": 6, "step": "analyse", "deadline": "2026-11-24T03:05:00+00:00"},
        ],
    },
    {"alert": "something_new"},
]


def _all_texts(db: Database, domain: DomainConfig) -> list[str]:
    found = [
        value
        for module in (texts, access)
        for name, value in vars(module).items()
        if name.isupper()
        for value in _strings(value)
        if name != "MAIL_KINDS" or value in texts.MAIL_KINDS.values()
    ]
    found += [d for _, d in service.STAFF_COMMANDS + service.SUPERVISOR_COMMANDS]
    found += [d for _, d in service.PRIVATE_COMMANDS]
    found += [
        texts.welcome_member("Rina"),
        texts.prompt_text("resolve", "LPSE-2026-00001", 1, "Budi"),
        texts.prompt_for_other("Budi"),
        texts.prompt_expired(15, "teks"),
        texts.refused_with_text("Tiket sudah ditutup.", "teks"),
        texts.take_over_question("Budi"),
        texts.taken("Budi"),
        texts.taken(None),
        texts.queue_heading(0, 3),
        texts.priority_already("Tinggi"),
        texts.full_text_message("LPSE-2026-00001", "isi"),
        texts.card_moved("00001"),
        texts.card_is_here("00001"),
    ]
    found += [texts.mail_kind(kind) for kind in (*texts.MAIL_KINDS, "unknown_kind")]

    def notice(payload: dict[str, Any]) -> str:
        return db.run_sync(lambda s: texts.notice_text(s, "LPSE-1", "Perihal", payload, WIB))

    def alert(payload: dict[str, Any]) -> str:
        return db.run_sync(lambda s: texts.alert_text(s, payload, WIB))

    for payload in NOTICES:
        found.append(notice(payload))
    for payload in ALERTS:
        found.append(alert(payload))
    dump = card_dump.render_all(domain)  # the cards and their buttons, not the doc's prose
    found += [block.split("```")[0] for block in dump.split("```text")[1:]]
    found.append(sla_texts.deadline_badge(card_dump.NOW, card_dump.RECEIVED, WIB))
    return found


def test_no_staff_visible_text_contains_a_code_word(db: Database, domain: DomainConfig) -> None:
    for text in _all_texts(db, domain):
        words = CODE_WORDS.findall(_visible(text))
        assert not words, (words, text)


@pytest.mark.parametrize("label", [c.button_label for c in load_domain().categories])
def test_category_buttons_fit_a_phone(label: str) -> None:
    assert 1 <= len(label) <= 16
