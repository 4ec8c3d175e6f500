"""Wake the senders the moment a commit queued work for them, here and in other instances.

A session that flushes new outbox rows (or SLA clocks) remembers their topics; when its
transaction commits, every subscriber of those topics is called on its own event loop
(``loop.call_soon_threadsafe``: the commit happens on a database worker thread). On
PostgreSQL the commit also carries a ``NOTIFY lpse_wake`` per topic (sent by the server only
when the transaction commits), and :class:`NotifyListener` turns the notifications other
instances send into the same wake-ups. The senders keep a slow poll as a safety net, so a
lost notification (a listener reconnecting) delays work by seconds, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from lpse_helpdesk.storage.db import Database, normalise_url
from lpse_helpdesk.storage.models import OutboxItem, SlaClock

log = logging.getLogger(__name__)

#: The PostgreSQL notification channel; the payload is the topic.
NOTIFY_CHANNEL = "lpse_wake"
#: Topics: the outbox channels ("mail", "telegram") and SLA clock changes.
SLA_TOPIC = "sla"
_PENDING = "lpse_wake_topics"  # key in Session.info


def topic_of(item: OutboxItem) -> str:
    return str(item.channel.value)


def wake_after_commit(session: Session, *topics: str) -> None:
    """Ask for a wake-up of `topics` when this session's transaction commits.

    New outbox rows and SLA clocks added through the ORM are noticed by themselves; this is
    for work queued by other means (e.g. a bulk INSERT).
    """
    session.info.setdefault(_PENDING, set()).update(topics)


class Waker:
    """The subscribers of one database (one per process; two in a test of two instances)."""

    def __init__(self, sessions: sessionmaker[Session], *, postgresql: bool) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, tuple[str, asyncio.AbstractEventLoop, Callable[[], None]]] = {}
        self._next = 0
        self.postgresql = postgresql
        self.notifications_sent = 0
        event.listen(sessions, "after_flush", self._after_flush)
        event.listen(sessions, "before_commit", self._before_commit)
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", self._after_rollback)

    # --- subscribing (on an event loop) -----------------------------------------------------

    def subscribe(self, topic: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` on the running loop after each commit that queued `topic` work;
        returns the function that unsubscribes."""
        loop = asyncio.get_running_loop()
        with self._lock:
            key = self._next
            self._next += 1
            self._subscribers[key] = (topic, loop, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def wake(self, topics: Iterable[str]) -> None:
        """Call the subscribers of `topics` (from any thread)."""
        wanted = set(topics)
        with self._lock:
            targets = [(loop, cb) for t, loop, cb in self._subscribers.values() if t in wanted]
        for loop, callback in targets:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nothing to wake
                loop.call_soon_threadsafe(callback)

    # --- session events (database threads) --------------------------------------------------

    def _after_flush(self, session: Session, _context: Any) -> None:
        topics: set[str] | None = None
        for obj in session.new:
            if isinstance(obj, OutboxItem):
                topic = topic_of(obj)
            elif isinstance(obj, SlaClock):
                topic = SLA_TOPIC
            else:
                continue
            if topics is None:
                topics = session.info.setdefault(_PENDING, set())
            topics.add(topic)
        if any(isinstance(obj, SlaClock) for obj in session.dirty):
            session.info.setdefault(_PENDING, set()).add(SLA_TOPIC)

    def _before_commit(self, session: Session) -> None:
        if not self.postgresql:
            return
        if session.new or session.dirty:
            session.flush()  # rows still to be flushed may add topics
        topics = session.info.get(_PENDING)
        if topics:
            # Delivered by the server when (and only if) this transaction commits.
            for topic in sorted(topics):
                session.execute(
                    text("SELECT pg_notify(:channel, :topic)"),
                    {"channel": NOTIFY_CHANNEL, "topic": topic},
                )
            self.notifications_sent += len(topics)

    def _after_commit(self, session: Session) -> None:
        topics = session.info.pop(_PENDING, None)
        if topics:
            self.wake(topics)

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_PENDING, None)


_wakers: weakref.WeakKeyDictionary[Database, Waker] = weakref.WeakKeyDictionary()
_wakers_lock = threading.Lock()


def waker_for(db: Database) -> Waker:
    """The waker of `db`, made (and hooked onto its sessions) on first use."""
    with _wakers_lock:
        waker = _wakers.get(db)
        if waker is None:
            waker = Waker(db.sessions, postgresql=db.engine.dialect.name == "postgresql")
            _wakers[db] = waker
        return waker


class NotifyListener:
    """Piece (PostgreSQL only): LISTEN on a dedicated connection; wake this instance's
    subscribers when another instance committed work. Reconnects with a backoff."""

    name = "PostgreSQL wake-up listener"

    def __init__(self, db: Database, *, backoff_cap: float = 30.0) -> None:
        self.db = db
        self.waker = waker_for(db)
        self.backoff_cap = backoff_cap
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listen")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _conninfo(self) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(normalise_url(self.db.engine.url.render_as_string(hide_password=False)))
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _run(self) -> None:
        import psycopg

        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo(), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    failures = 0
                    self.connected.set()
                    # Whatever was committed while not listening: look once.
                    self.waker.wake(["mail", "telegram", SLA_TOPIC])
                    async for notify in conn.notifies():
                        self.received += 1
                        self.waker.wake([notify.payload])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.connected.clear()
                failures += 1
                delay = min(self.backoff_cap, 0.5 * 2 ** (failures - 1))
                log.warning(
                    "wake-up listener lost PostgreSQL (%s); senders poll meanwhile",
                    type(error).__name__,
                )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
