"""A recording SMTP server (aiosmtpd in its own thread) that can be told to refuse mail."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from aiosmtpd.controller import Controller

from tests.servers._proc import LOCALHOST, free_port

__all__ = ["ReceivedMessage", "RecordingHandler", "SmtpServer", "free_port"]

Stage = Literal["RCPT", "DATA"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One envelope as the server saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    reply: str


class RecordingHandler:
    """aiosmtpd handler: keeps every envelope; answers with queued replies first.

    It runs in the controller's thread; every shared field is guarded by a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queued: dict[Stage, deque[str]] = {"RCPT": deque(), "DATA": deque()}
        self.messages: list[ReceivedMessage] = []
        self.rejected: list[ReceivedMessage] = []

    def queue_reply(self, reply: str, count: int = 1, stage: Stage = "DATA") -> None:
        """Answer the next ``count`` commands of ``stage`` with ``reply``."""
        with self._lock:
            self._queued[stage].extend([reply] * count)

    def _next_reply(self, stage: Stage) -> str | None:
        with self._lock:
            queue = self._queued[stage]
            return queue.popleft() if queue else None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._next_reply("RCPT")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self._next_reply("DATA") or "250 2.0.0 OK: queued"
        content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        message = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=bytes(content or b""),
            reply=reply,
        )
        with self._lock:
            (self.messages if reply.startswith("2") else self.rejected).append(message)
            self._lock.notify_all()
        return reply

    def snapshot(self) -> tuple[list[ReceivedMessage], list[ReceivedMessage]]:
        """Copies of (accepted, rejected) messages."""
        with self._lock:
            return list(self.messages), list(self.rejected)

    def wait_for(self, count: int, timeout: float) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages were accepted; return a copy of them."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(
                    f"{len(self.messages)} of {count} messages arrived within {timeout} s"
                )
            return list(self.messages)


class SmtpServer:
    """aiosmtpd ``Controller`` on a free 127.0.0.1 port with a :class:`RecordingHandler`."""

    def __init__(self, host: str = LOCALHOST) -> None:
        self.host = host
        self.port = 0
        self.handler = RecordingHandler()
        self._controller: Controller | None = None

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Accepted messages, oldest first (a snapshot)."""
        return self.handler.snapshot()[0]

    @property
    def rejected(self) -> list[ReceivedMessage]:
        """Messages refused at DATA by a queued reply (a snapshot)."""
        return self.handler.snapshot()[1]

    def fail_next(self, reply: str, count: int = 1, stage: Stage = "DATA") -> None:
        """Answer the next ``count`` messages (``stage="DATA"``) or recipients
        (``stage="RCPT"``) with ``reply``, e.g. ``"451 4.3.0 try later"``."""
        self.handler.queue_reply(reply, count, stage)

    def wait_for_messages(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until ``count`` messages were accepted (raise TimeoutError otherwise)."""
        return self.handler.wait_for(count, timeout)

    def start(self) -> None:
        """Start the controller thread on a free port (port=0 is not supported by aiosmtpd)."""
        if self._controller is not None:
            raise RuntimeError("SMTP server is already started")
        for attempt in range(3):
            self.port = free_port(self.host)
            controller = Controller(
                self.handler, hostname=self.host, port=self.port, ready_timeout=5.0
            )
            try:
                controller.start()
            except OSError:
                controller.loop.close()
                if attempt == 2:
                    raise
                continue
            self._controller = controller
            return

    def stop(self) -> None:
        """Stop the controller and join its thread. Safe to call twice."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
