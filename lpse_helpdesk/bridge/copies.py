"""Copies of a stored mail that the intake handled, by their UID.

A copy (the same Message-ID and content as a mail stored before) gets no row of its own in
`messages`, which is where a start looks for what the intake handled but the server does not
show as handled yet (inbound.py `_remark_committed`). Its UID is kept here instead, so that
a crash between the commit and the \\Seen, or a move the server refused, does not leave the
copy in the folder for good.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from lpse_helpdesk.storage import tables

__all__ = ["copy_uids", "remember_copy"]


def remember_copy(
    session: Session, folder: str, uidvalidity: int, uid: int, at: dt.datetime
) -> None:
    """Keep the UID of a copy handled in this transaction (once: a retry may see it again)."""
    copies = tables.handled_copies.c
    known = session.execute(
        select(copies.uid).where(
            copies.folder == folder, copies.uidvalidity == uidvalidity, copies.uid == uid
        )
    ).first()
    if known is None:
        session.execute(
            insert(tables.handled_copies).values(
                folder=folder, uidvalidity=uidvalidity, uid=uid, at=at
            )
        )


def copy_uids(folder: str, uidvalidity: int, low: int, high: int) -> Select[int]:
    """The UIDs from `low` to `high` of the copies handled in `folder` (primary key order)."""
    copies = tables.handled_copies.c
    return select(copies.uid).where(
        copies.folder == folder,
        copies.uidvalidity == uidvalidity,
        copies.uid.between(low, high),
    )
