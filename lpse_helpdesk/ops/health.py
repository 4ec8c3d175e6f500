"""Opt-in HTTP server (METRICS_ADDRESS): /healthz, /readyz and Prometheus /metrics.

It runs in a thread of its own, so a scrape reading the database never blocks the event
loop; every answer is small and carries no personal data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lpse_helpdesk.ops import metrics
from lpse_helpdesk.ops.runtime import Runtime
from lpse_helpdesk.ops.status import IMAP_GRACE, OUTBOX_STUCK, Figures, read_figures
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import Clock

log = logging.getLogger(__name__)


def readiness(runtime: Runtime, figures: Figures | None, now: dt.datetime) -> list[str]:
    """Why this instance is not ready (empty: ready); `status` degrades on the same."""
    if figures is None:
        return ["database unreachable"]
    problems = []
    for folder, view in runtime.imap().items():
        if not view.get("connected"):
            lost = view.get("lost_since")
            if lost is None or now - dt.datetime.fromisoformat(lost) > IMAP_GRACE:
                problems.append(f"IMAP {folder}: connection lost")
    if runtime.telegram is not None and runtime.telegram_error is not None:
        problems.append("Telegram unreachable")
    for channel, overdue in figures.outbox_overdue_seconds.items():
        if overdue > OUTBOX_STUCK.total_seconds():
            problems.append(f"outbox {channel}: not draining")
    return problems


class HealthServer:
    """Piece: the HTTP endpoints on HOST:PORT."""

    name = "health and metrics server"

    def __init__(self, address: str, runtime: Runtime, db: Database, clock: Clock) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.runtime = runtime
        self.db = db
        self.clock = clock
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._collector = metrics.DatabaseCollector(self._database_figures)

    def _figures(self) -> Figures | None:
        now = self.clock.now()
        try:
            return self.db.run_sync(lambda session: read_figures(session, now))
        except Exception as error:
            log.warning("health check: database unreadable (%s)", type(error).__name__)
            return None

    def _database_figures(self) -> metrics.DatabaseFigures:
        figures = self._figures() or Figures()
        return metrics.DatabaseFigures(
            figures.tickets_by_state,
            figures.outbox_depth,
            figures.outbox_oldest_seconds,
            figures.breaches_by_step,
        )

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for a GET of `path`."""
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/readyz":
            problems = readiness(self.runtime, self._figures(), self.clock.now())
            body = "\n".join(problems or ["ready"]) + "\n"
            return (503 if problems else 200), "text/plain; charset=utf-8", body.encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(metrics.metrics().registry)
        return 404, "text/plain; charset=utf-8", b"not found\n"

    async def start(self) -> None:
        answer = self.answer
        handler = _handler(answer)
        try:
            self._server = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as error:
            log.error("METRICS_ADDRESS: cannot listen on %s:%s (%s)", self.host, self.port, error)
            return
        self._server.daemon_threads = True
        metrics.metrics().registry.register(self._collector)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-http", daemon=True
        )
        self._thread.start()
        self.port = self._server.server_address[1]
        log.info("health and metrics on http://%s:%s/", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        metrics.metrics().registry.unregister(self._collector)


def _handler(answer: Callable[[str], tuple[int, str, bytes]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, content_type, body = answer(self.path.split("?", 1)[0])
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # scrapes every few seconds would flood the log

    return Handler
