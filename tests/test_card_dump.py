"""docs/cards.md shows what staff see: generated from the real card code, kept true here."""

from __future__ import annotations

from pathlib import Path

from lpse_helpdesk.bot import card_dump
from lpse_helpdesk.domain.model import DomainConfig

DOC = Path(__file__).parents[1] / "docs" / "cards.md"


def test_the_card_dump_in_docs_is_current(domain: DomainConfig) -> None:
    assert DOC.read_text(encoding="utf-8") == card_dump.render_all(domain), (
        "regenerate: python -m lpse_helpdesk.bot.card_dump > docs/cards.md"
    )


def test_every_card_fits_a_phone_screen(domain: DomainConfig) -> None:
    text = card_dump.render_all(domain)
    for block in text.split("```text")[1:]:
        card, _, _ = block.partition("\n\n  [")
        lines = card.strip().splitlines()
        assert len(lines) <= 9, lines  # state, priority+deadline, handler, sender, subject, ...
        assert lines[0].split(" ", 1)[1].startswith("LPSE-2026-00042 · ")
        rows = block.split("⋯ Lainnya:")[0].count("\n  [")
        assert rows <= 3, block
