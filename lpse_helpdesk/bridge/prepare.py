"""What the intake learns from a mail without the database: parsed, classified, suggested.

Kept light (no SQLAlchemy, no Telegram) so that a helper process can import it quickly and
prepare a backlog on the second core while the database thread stores the previous batch.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from lpse_helpdesk.bridge import facts
from lpse_helpdesk.bridge.hygiene import MailClass, classify
from lpse_helpdesk.bridge.parsing import ParsedMail, parse_mail
from lpse_helpdesk.bridge.suggest import Suggestion, suggest
from lpse_helpdesk.domain.model import DomainConfig


@dataclass(frozen=True)
class Prepared:
    """A parsed mail with its class, suggestion and facts; picklable."""

    raw: bytes
    mail: ParsedMail
    kind: MailClass
    suggestion: Suggestion
    tender_codes: tuple[str, ...]
    phone_numbers: tuple[str, ...]


def prepare(
    raw: bytes, max_bytes: int, own_addresses: Collection[str], domain: DomainConfig
) -> Prepared:
    mail = parse_mail(raw, max_bytes=max_bytes)
    text = mail.stripped_text or mail.text
    # tender_codes(f"{subject}\n{text}") and phone_numbers(text) in one pass
    tender_codes, phone_numbers = facts.card_facts(mail.subject, mail.text)
    return Prepared(
        raw=raw,
        mail=mail,
        kind=classify(mail, own_addresses=own_addresses),
        suggestion=suggest(mail.subject, text, domain),
        tender_codes=tender_codes,
        phone_numbers=phone_numbers,
    )


def prepare_many(
    raws: list[bytes], max_bytes: int, own_addresses: frozenset[str], domain: DomainConfig
) -> list[Prepared]:
    """For the helper process: what goes back to the parent leaves out the bytes it has
    already (the raw mail) or does not need (attachment contents stay in the raw mail; the
    HTML was read into the text, which is kept)."""
    return [_light(prepare(raw, max_bytes, own_addresses, domain)) for raw in raws]


def prepare_light(
    raw: bytes, max_bytes: int, own_addresses: frozenset[str], domain: DomainConfig
) -> Prepared:
    """One mail for the parsing process (see ``prepare_many``)."""
    return _light(prepare(raw, max_bytes, own_addresses, domain))


def _light(prepared: Prepared) -> Prepared:
    attachments = tuple(replace(a, payload=None) for a in prepared.mail.attachments)
    mail = replace(prepared.mail, attachments=attachments, html=None)
    return replace(prepared, raw=b"", mail=mail)


def with_raw(prepared: Prepared, raw: bytes) -> Prepared:
    return replace(prepared, raw=raw)
