"""Mail parsing in a child process that is killed when one mail takes too long.

Parsing reads hostile text (MIME structure, headers, quoted history, signatures). Every
regex of ours runs in linear time, but the standard library's mail parser and whatever is
found next may not: a mail must never hold up the service. So the intake hands raw mails to
this worker; each mail must be parsed within ``budget`` seconds (``MAIL_PARSE_SECONDS``) or
the child is killed, the mail is reported as over budget (the caller quarantines it), and a
fresh child carries on with the mails after it. The database thread, button presses, the
outboxes and the SLA scans never wait behind a parse: they are not in this process.

A batch of mails goes to the child in one message and its results come back in one: a
message per mail costs the receiving process more than unpickling the results. The budget
stays per mail: before each mail the child writes the mail's index and the time it began
into memory shared with the parent, which checks it whenever the budget of the mail in
progress runs out. When a child is killed (or dies) on a mail, the results of the mails
before it in the batch die with it; a fresh child parses those again.

``prepare`` blocks; call it from a thread of its own (never the event loop, the database
thread or the IMAP thread).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, TypeAlias

from lpse_helpdesk.bridge.prepare import Prepared, prepare_light
from lpse_helpdesk.domain.model import DomainConfig

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import SynchronizedArray

__all__ = ["OverBudget", "ParseFailed", "ParseWorker", "WorkerOutcome"]

log = logging.getLogger(__name__)

#: How long a fresh child may take to import the parser (not part of any mail's budget).
START_SECONDS = 60.0


@dataclass(frozen=True)
class OverBudget:
    """The mail's parsing took longer than the budget; the child was killed."""

    seconds: float

    @property
    def reason(self) -> str:
        return f"parsing took longer than {self.seconds:g} s (MAIL_PARSE_SECONDS); stopped"


@dataclass(frozen=True)
class ParseFailed:
    """The parser raised or its process died on this mail."""

    reason: str


WorkerOutcome = Prepared | OverBudget | ParseFailed


@dataclass(frozen=True)
class _Settings:
    max_bytes: int
    own_addresses: frozenset[str]
    domain: DomainConfig


@dataclass(frozen=True)
class _Job:
    raws: list[bytes]
    settings: _Settings | None  # sent to a fresh child once, then kept


#: The shared progress: the index in its batch of the mail being parsed (-1: none yet) and
#: the ``time.monotonic()`` (one clock for all processes of the machine) when it began.
Progress: TypeAlias = "SynchronizedArray[float]"


def serve_mails(conn: Connection, progress: Progress) -> None:
    """The child's loop: per batch, one list with a result (or error text) per mail."""
    conn.send("ready")
    settings: _Settings | None = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        settings = job.settings or settings
        assert settings is not None
        results: list[object] = []
        for index, raw in enumerate(job.raws):
            with progress.get_lock():
                progress[0], progress[1] = index, time.monotonic()
            try:
                result: object = prepare_light(
                    raw, settings.max_bytes, settings.own_addresses, settings.domain
                )
            except Exception as error:  # a parser bug: the mail is to blame, not the service
                result = f"{type(error).__name__}: {error}"[:500]
            results.append(result)
        conn.send(results)


class ParseWorker:
    """One child process preparing mails; restarted after a kill or a crash."""

    def __init__(
        self,
        max_bytes: int,
        own_addresses: frozenset[str],
        domain: DomainConfig,
        budget: float = 20.0,
        *,
        serve: Callable[[Connection, Progress], None] | None = None,
    ) -> None:
        """`serve`: the child's loop (a module-level function); tests wrap `serve_mails`."""
        self.max_bytes = max_bytes
        self.own_addresses = own_addresses
        self.domain = domain
        self.budget = budget
        self._serve = serve or serve_mails
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._progress: Progress | None = None
        self._lock = threading.Lock()
        self._ready = False
        self._configured = False  # the fresh child has its settings
        self.kills = 0  # children killed over budget (for logs and tests)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, *, wait: bool = False) -> None:
        """Start the child now (it imports the parser in the background; with `wait`,
        return once it is ready)."""
        with self._lock:
            self._ensure_started()
            if wait:
                self._wait_ready()

    def _ensure_started(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._discard()
        # spawn, not fork: the parent has threads (database, IMAP, Telegram).
        context = get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        progress = context.Array("d", [-1.0, 0.0])
        process = context.Process(
            target=self._serve, args=(child, progress), name="lpse-mail-parser", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn, self._progress = process, parent, progress
        self._ready = self._configured = False

    def _wait_ready(self) -> Connection:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the mail parsing process is not running")
        if not self._ready:
            if not conn.poll(START_SECONDS):
                self._discard()
                raise RuntimeError("the mail parsing process did not start")
            if conn.recv() != "ready":
                self._discard()
                raise RuntimeError("the mail parsing process sent something unexpected")
            self._ready = True
        return conn

    def _discard(self) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
            with contextlib.suppress(ValueError):
                process.close()

    def close(self) -> None:
        with self._lock:
            conn = self._conn
            if conn is not None:
                with contextlib.suppress(OSError, BrokenPipeError):
                    conn.send(None)
            process = self._process
            if process is not None:
                process.join(2)
            self._discard()

    # --- work ------------------------------------------------------------------------------

    def prepare(self, raws: Sequence[bytes]) -> list[WorkerOutcome]:
        """Prepare each mail; one outcome per mail, in order. Blocking."""
        with self._lock:
            return self._prepare(list(raws))

    def _prepare(self, raws: list[bytes]) -> list[WorkerOutcome]:
        outcomes: list[WorkerOutcome] = []
        while len(outcomes) < len(raws):
            outcomes.extend(self._run(raws[len(outcomes) :]))
        return outcomes

    def _run(self, raws: list[bytes]) -> list[WorkerOutcome]:
        """Results for a prefix of `raws` (at least one): up to the mail of the first kill
        or crash, whose outcome says so."""
        self._ensure_started()
        conn = self._wait_ready()
        progress = self._progress
        assert progress is not None
        with progress.get_lock():
            progress[0], progress[1] = -1.0, time.monotonic()
        settings = None
        if not self._configured:
            settings = _Settings(self.max_bytes, self.own_addresses, self.domain)
        conn.send(_Job(raws, settings))
        self._configured = True
        while True:
            with progress.get_lock():
                index, began = int(progress[0]), progress[1]
            spent = time.monotonic() - began
            if index >= 0 and spent > self.budget:
                log.warning("a mail's parsing exceeded %.0f s; stopping it", spent)
                self.kills += 1
                self._discard()
                return self._before(raws, index, OverBudget(self.budget))
            try:
                arrived = conn.poll(max(0.01, self.budget - spent))
            except (EOFError, OSError):
                arrived = True
            if not arrived:
                continue
            try:
                results = conn.recv()
            except (EOFError, OSError):
                with progress.get_lock():
                    index = max(0, int(progress[0]))
                log.warning("the mail parsing process died on a mail; starting a new one")
                self._discard()
                return self._before(
                    raws, index, ParseFailed("the parsing process died on this mail")
                )
            return [r if isinstance(r, Prepared) else ParseFailed(str(r)) for r in results]

    def _before(self, raws: list[bytes], index: int, outcome: WorkerOutcome) -> list[WorkerOutcome]:
        """The outcomes of the mails before the one at `index` (their results were lost
        with the child: a fresh one parses them again), then that mail's."""
        return [*self._prepare(raws[:index]), outcome]
