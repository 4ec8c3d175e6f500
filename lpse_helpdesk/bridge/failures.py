"""Whose fault is a failure: the database's or connection's (retry, never quarantine) or the
mail's (count toward its quarantine)?

A mail is quarantined only for what it causes itself. "database is locked", a lost
connection to PostgreSQL, a full disk or a pool timeout say nothing about the mail: the
intake stops, waits and tries the same mail again.
"""

from __future__ import annotations

import errno

from sqlalchemy import exc

__all__ = ["DatabaseUnavailable", "is_duplicate_race", "is_transient"]

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.ENOMEM}
_DEDUP_CONSTRAINT = "uq_messages_dedup_key"


class DatabaseUnavailable(Exception):
    """The database (or the disk under it) failed; the mail is not to blame."""


def is_transient(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailable):
            return True
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(
            current,
            exc.OperationalError | exc.InterfaceError | exc.TimeoutError | exc.DisconnectionError,
        ):
            return True
        if isinstance(current, exc.IntegrityError) and not _is_dedup(current):
            # e.g. two processes drew the same ticket number at once: trying again works.
            return True
        if isinstance(current, OSError) and current.errno in _TRANSIENT_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


def is_duplicate_race(error: BaseException) -> bool:
    """The unique dedup key refused the mail: another process stored it a moment ago."""
    return isinstance(error, exc.IntegrityError) and _is_dedup(error)


def _is_dedup(error: exc.IntegrityError) -> bool:
    text = str(error.orig)
    return _DEDUP_CONSTRAINT in text or "messages.dedup_key" in text
