"""Start-up of a command: no cyclic garbage collection while it imports its libraries.

Importing the libraries of a command (pydantic, SQLAlchemy and the models, the Telegram
stack) creates a few hundred thousand long-lived objects, and the collector, triggered by
every 700 allocations, scans them again and again: about a third of the import time on a
small machine. `lpse-helpdesk` therefore starts with the collector off; once a command has
made what it keeps for its whole life, `started()` moves those objects out of the
collector's sight (`gc.freeze`) and turns it back on, so later collections (and the one at
exit) stay as short as they would be in a small program.
"""

from __future__ import annotations

import gc

__all__ = ["begin", "started"]

_paused = False


def begin() -> None:
    """Pause the collector for the start-up (from the command's entry point only)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def started() -> None:
    """The start-up is over: freeze what it made and collect garbage again. Idempotent."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
