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

The child is a plain ``python -c`` subprocess, not a multiprocessing one: multiprocessing's
spawn also starts its resource tracker, a third process of about 12 MiB that the service
does not need. The two processes talk over a socket pair with multiprocessing's `Connection`
(pickled messages) and share the progress through a small memory-mapped file.

``prepare`` blocks; call it from a thread of its own (never the event loop, the database
thread or the IMAP thread).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import logging
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

from lpse_helpdesk.bridge.prepare import Prepared, prepare_light
from lpse_helpdesk.domain.model import DomainConfig

__all__ = ["OverBudget", "ParseFailed", "ParseWorker", "Progress", "WorkerOutcome"]

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


class Progress:
    """Shared by the parent and the child: the index in its batch of the mail being parsed
    (-1: none yet) and the ``time.monotonic()`` (one clock for all processes of the machine)
    when it began. Only one side writes at a time (the parent before it sends a batch, the
    child while it parses it); a sequence number, odd while a write is under way, lets the
    reader take only a pair that was written together."""

    _LAYOUT = struct.Struct("=qqd")  # sequence, index, began

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, self._LAYOUT.size)

    @classmethod
    def create(cls) -> Progress:
        """A new, unlinked file to share (memfd where the system has it)."""
        try:
            fd = os.memfd_create("lpse-parse-progress")
        except (AttributeError, OSError):  # not Linux, or a sandbox that forbids it
            with tempfile.TemporaryFile() as file:
                fd = os.dup(file.fileno())
        os.ftruncate(fd, cls._LAYOUT.size)
        progress = cls(fd)
        progress.set(-1, 0.0)
        return progress

    def set(self, index: int, began: float) -> None:
        sequence = self._LAYOUT.unpack_from(self._map)[0]
        struct.pack_into("=q", self._map, 0, sequence + 1)
        self._LAYOUT.pack_into(self._map, 0, sequence + 1, index, began)
        struct.pack_into("=q", self._map, 0, sequence + 2)

    def get(self) -> tuple[int, float]:
        """The pair last written. A write cut short (its writer was killed in the middle)
        leaves the sequence odd for good: after a moment the pair is taken as it is."""
        give_up = 0.0
        while True:
            sequence, index, began = self._LAYOUT.unpack_from(self._map)
            if sequence % 2 == 0 and struct.unpack_from("=q", self._map)[0] == sequence:
                return index, began
            now = time.monotonic()
            if not give_up:
                give_up = now + 0.05  # a live writer needs microseconds
            elif now > give_up:
                return index, began
            time.sleep(0.001)

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


class _Child:
    """The parsing process (a `subprocess.Popen`), as the worker uses it."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)


_LIVE: set[_Child] = set()  # killed when the interpreter exits, as multiprocessing's daemons


@atexit.register
def _kill_live_children() -> None:
    for child in list(_LIVE):
        child.kill()
        child.join(5)


#: Run with ``python -P`` (no working directory on sys.path): the child takes the parent's
#: sys.path before it imports anything of ours, so it runs the parent's code (the installed
#: package, or the checkout the parent runs from), never a same-named module lying in the
#: directory it was started in. Then: CONN_FD PROGRESS_FD SERVE PARENT_PID.
_CHILD_CODE = (
    "import json, sys; sys.path[:] = json.loads(sys.argv.pop(1)); "
    "from lpse_helpdesk.bridge.parse_worker import child_main; child_main()"
)


def child_main() -> None:
    """The parsing process's entry (see _CHILD_CODE)."""
    conn_fd, progress_fd, serve_name, parent = sys.argv[1:5]
    # `systemctl stop` signals every process of the unit, and Ctrl+C the whole process
    # group: the parent ends this process itself (close(), or a kill once over budget), so
    # that a signal meant for the service never cuts a mail's parsing short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(int(parent))
    module, _, name = serve_name.partition(":")
    serve = getattr(importlib.import_module(module), name)
    serve(Connection(int(conn_fd)), Progress(int(progress_fd)))


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent dies, even in the middle of a
    parse that never returns to read the socket (an idle child sees EOF and ends anyway).
    The kernel's "parent" is the thread that started the child: the worker is started by
    the service's long-lived threads (the main thread, the parsing thread)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


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
            progress.set(index, time.monotonic())
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
        self._process: _Child | None = None
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
        # A new interpreter, not a fork: the parent has threads (database, IMAP, Telegram).
        parent, child = socket.socketpair()
        progress = Progress.create()
        serve = f"{self._serve.__module__}:{self._serve.__qualname__}"
        try:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    "-c",
                    _CHILD_CODE,
                    json.dumps(sys.path),
                    str(child.fileno()),
                    str(progress.fd),
                    serve,
                    str(os.getpid()),
                ],
                pass_fds=(child.fileno(), progress.fd),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            progress.close()
            raise
        finally:
            child.close()
        process = _Child(popen)
        _LIVE.add(process)
        self._process, self._progress = process, progress
        self._conn = Connection(parent.detach())
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
        process, conn, progress = self._process, self._conn, self._progress
        self._process, self._conn, self._progress = None, None, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
            _LIVE.discard(process)
        if progress is not None:
            progress.close()

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
        progress.set(-1, time.monotonic())
        settings = None
        if not self._configured:
            settings = _Settings(self.max_bytes, self.own_addresses, self.domain)
        conn.send(_Job(raws, settings))
        self._configured = True
        while True:
            index, began = progress.get()
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
                index = max(0, progress.get()[0])
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
