"""Mail parsing in a child process that is killed when one mail takes too long.

Parsing reads hostile text (MIME structure, headers, quoted history, signatures). Every
regex of ours runs in linear time, but the standard library's mail parser and whatever is
found next may not: a mail must never hold up the service. So the intake hands raw mails to
this worker; each mail's result must come back within ``budget`` seconds (``MAIL_PARSE_SECONDS``)
or the child is killed, the mail is reported as over budget (the caller quarantines it), and a
fresh child carries on with the mails after it. The database thread, button presses, the
outboxes and the SLA scans never wait behind a parse: they are not in this process.

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

from lpse_helpdesk.bridge.prepare import Prepared, prepare_light
from lpse_helpdesk.domain.model import DomainConfig

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
class _Job:
    raws: list[bytes]
    max_bytes: int
    own_addresses: frozenset[str]
    domain: DomainConfig


def serve_mails(conn: Connection) -> None:
    """The child's loop: one result (or error text) per mail, in order."""
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        for raw in job.raws:
            try:
                result: object = prepare_light(raw, job.max_bytes, job.own_addresses, job.domain)
            except Exception as error:  # a parser bug: the mail is to blame, not the service
                result = f"{type(error).__name__}: {error}"[:500]
            conn.send(result)


class ParseWorker:
    """One child process preparing mails; restarted after a kill or a crash."""

    def __init__(
        self,
        max_bytes: int,
        own_addresses: frozenset[str],
        domain: DomainConfig,
        budget: float = 20.0,
        *,
        serve: Callable[[Connection], None] | None = None,
    ) -> None:
        """`serve`: the child's loop (a module-level function); tests wrap `serve_mails`."""
        self.max_bytes = max_bytes
        self.own_addresses = own_addresses
        self.domain = domain
        self.budget = budget
        self._serve = serve or serve_mails
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._ready = False
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
        process = context.Process(
            target=self._serve, args=(child,), name="lpse-mail-parser", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self._ready = False

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
            outcomes: list[WorkerOutcome] = []
            while len(outcomes) < len(raws):
                outcomes.extend(self._run(list(raws[len(outcomes) :])))
            return outcomes

    def _run(self, raws: list[bytes]) -> list[WorkerOutcome]:
        """Results for a prefix of `raws` (at least one): stops at the first kill or crash."""
        self._ensure_started()
        conn = self._wait_ready()
        conn.send(_Job(raws, self.max_bytes, self.own_addresses, self.domain))
        results: list[WorkerOutcome] = []
        for _ in raws:
            started = time.monotonic()
            try:
                arrived = conn.poll(self.budget)
            except (EOFError, OSError):
                arrived = True
            if not arrived:
                elapsed = time.monotonic() - started
                log.warning("a mail's parsing exceeded %.0f s; stopping it", elapsed)
                self.kills += 1
                self._discard()
                results.append(OverBudget(self.budget))
                return results
            try:
                result = conn.recv()
            except (EOFError, OSError):
                log.warning("the mail parsing process died on a mail; starting a new one")
                self._discard()
                results.append(ParseFailed("the parsing process died on this mail"))
                return results
            if isinstance(result, Prepared):
                results.append(result)
            else:
                results.append(ParseFailed(str(result)))
        return results
