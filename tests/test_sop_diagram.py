"""The committed diagram is the table's: regenerate it when the table changes."""

from pathlib import Path

from lpse_helpdesk.sop.diagram import BEGIN, END, mermaid

DOC = Path(__file__).parents[1] / "docs" / "sop-state-machine.md"


def test_committed_diagram_matches_the_table() -> None:
    text = DOC.read_text("utf-8")
    committed = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert committed == mermaid(), (
        "docs/sop-state-machine.md is out of date: run "
        "`python -m lpse_helpdesk.sop.diagram` and paste its output"
    )
