"""Every corpus mail parses, and parsing, hygiene, quotes, tags and suggestions agree with the
expectations kept next to it in ``tests/corpus/build.py``."""

from __future__ import annotations

import pytest

from lpse_helpdesk.bridge.facts import phone_numbers, tender_codes
from lpse_helpdesk.bridge.hygiene import MailClassKind, classify
from lpse_helpdesk.bridge.parsing import ParsedMail, parse_mail
from lpse_helpdesk.bridge.suggest import suggest
from lpse_helpdesk.bridge.tags import find_ticket_number
from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.domain.model import DomainConfig
from tests.corpus import OWN_ADDRESSES, PREFIX, CorpusMail, build

CORPUS = build()


@pytest.fixture(scope="module")
def domain() -> DomainConfig:
    return load_domain()


def _parse(mail: CorpusMail) -> ParsedMail:
    if mail.max_bytes is not None:
        return parse_mail(mail.raw, max_bytes=mail.max_bytes)
    return parse_mail(mail.raw)


def test_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 40
    kinds = {mail.expect.kind for mail in CORPUS}
    assert kinds == {kind.value for kind in MailClassKind}


@pytest.mark.parametrize("mail", CORPUS, ids=[mail.name for mail in CORPUS])
def test_corpus_mail(mail: CorpusMail, domain: DomainConfig) -> None:
    expect = mail.expect
    parsed = _parse(mail)
    verdict = classify(parsed, own_addresses=OWN_ADDRESSES)

    assert verdict.kind == expect.kind, verdict.reason
    assert verdict.reason
    assert parsed.requester_address == expect.requester
    assert parsed.has_message_id is expect.has_message_id
    assert parsed.message_id
    assert parsed.size == len(mail.raw)
    if expect.subject is not None:
        assert parsed.subject == expect.subject
    assert find_ticket_number(parsed.subject, PREFIX) == expect.ticket

    for part in expect.stripped_has:
        assert part in parsed.stripped_text
    for part in expect.stripped_lacks:
        assert part not in parsed.stripped_text
    if parsed.text.strip():
        assert parsed.stripped_text.strip()

    suggestion = suggest(parsed.subject, parsed.stripped_text, domain)
    assert suggestion.category == expect.category, suggestion.matched
    if expect.priority is not None:
        assert suggestion.priority == expect.priority

    names = tuple(a.filename for a in parsed.attachments)
    assert names == expect.attachments
    assert tuple(a.filename for a in parsed.attachments if a.inline) == expect.inline
    for attachment in parsed.attachments:
        if expect.omitted:
            assert attachment.payload is None and attachment.omitted_reason
        else:
            assert attachment.payload is not None and attachment.omitted_reason is None
            assert attachment.size == len(attachment.payload)
    for wanted in expect.defects_has:
        assert any(wanted in defect for defect in parsed.defects), parsed.defects

    if expect.kind == "bounce":
        for message_id in expect.bounced_ids:
            assert message_id in verdict.bounced_message_ids
        assert verdict.failed_recipients == expect.failed
        assert verdict.transient is expect.transient
    else:
        assert verdict.bounced_message_ids == ()
    if expect.tender_codes is not None:
        assert tender_codes(parsed.stripped_text) == expect.tender_codes
    if expect.phones is not None:
        found = phone_numbers(parsed.stripped_text)
        assert found[: len(expect.phones)] == expect.phones


@pytest.mark.parametrize("mail", CORPUS, ids=[mail.name for mail in CORPUS])
def test_corpus_mail_is_deterministic(mail: CorpusMail) -> None:
    assert _parse(mail) == _parse(mail)


def test_clean_corpus_mails_have_no_defects() -> None:
    clean = [
        "gmail_id_new_urgent",
        "gmail_id_reply_wrapped_attribution",
        "outlook_id_reply_header_block",
        "pdf_and_xlsx",
        "inline_cid_image",
        "bounce_gmail",
        "forwarded_gmail_id",
    ]
    by_name = {mail.name: mail for mail in CORPUS}
    for name in clean:
        assert _parse(by_name[name]).defects == (), name
