"""Flagged addresses: mail to them was refused for good (a bounce, or a 5xx at RCPT TO).

A flag shows on the ticket's card and stops automatic mail to the address; staff lift it
with the notice's button (bot/bounce_flags.py), and a new mail from the address lifts it
too (bridge/intake.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import FlaggedAddress

__all__ = ["flag_address"]


def flag_address(
    session: Session, address: str, reason: str, ticket_id: int | None, now: dt.datetime
) -> None:
    """Flag `address` (lowercased) unless it is flagged already."""
    address = address.lower()
    if session.get(FlaggedAddress, address) is None:
        session.add(
            FlaggedAddress(
                address=address,
                reason=reason[:500],
                permanent=True,
                ticket_id=ticket_id,
                flagged_at=now,
            )
        )
