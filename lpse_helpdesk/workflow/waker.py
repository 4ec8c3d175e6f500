"""Wake the senders the moment a commit queued work for them, here and in other instances.

A session that queues outbox rows or changes an SLA deadline (the outbox's enqueue
functions and the SLA keeper call `wake_after_commit`) remembers the topics; when its
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

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from lpse_helpdesk.storage.db import Database, normalise_url

log = logging.getLogger(__name__)

#: The PostgreSQL notification channel; the payload is the topic.
NOTIFY_CHANNEL = "lpse_wake"
#: Topics: the outbox channels ("mail", "telegram") and SLA clock changes.
SLA_TOPIC = "sla"
_PENDING = "lpse_wake_topics"  # key in Session.info
_install_lock = threading.Lock()
_installed = False


def wake_after_commit(session: Session, *topics: str) -> None:
    """Wake the senders of `topics` when this session's transaction commits.

    The outbox's enqueue functions call it, and the SLA keeper whenever a deadline changes.
    """
    _install()
    session.info.setdefault(_PENDING, set()).update(topics)


class Waker:
    """The subscribers of one database engine (one per process; two in a test of two)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, tuple[str, asyncio.AbstractEventLoop, Callable[[], None]]] = {}
        self._next = 0

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


_wakers: weakref.WeakKeyDictionary[Engine, Waker] = weakref.WeakKeyDictionary()


def waker_for(db: Database) -> Waker:
    """The waker of `db`'s engine, made on first use."""
    _install()
    with _install_lock:
        waker = _wakers.get(db.engine)
        if waker is None:
            waker = _wakers[db.engine] = Waker()
            _wakers[db.batch_engine] = waker  # the same database, for batches
        return waker


# --- session events (database threads), for every session of the process ------------------


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
        _installed = True


def _engine(session: Session) -> Engine | None:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


# A savepoint's commit or rollback fires these events too: only the outermost counts (a mail
# rolled back to its savepoint leaves the other mails' wake-ups in place).


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    engine = _engine(session)
    if engine is None or engine.dialect.name != "postgresql":
        return
    topics = session.info.get(_PENDING)
    if topics:
        # Delivered by the server when (and only if) this transaction commits.
        for topic in sorted(topics):
            session.execute(
                text("SELECT pg_notify(:channel, :topic)"),
                {"channel": NOTIFY_CHANNEL, "topic": topic},
            )


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    topics = session.info.pop(_PENDING, None)
    if topics:
        engine = _engine(session)
        waker = _wakers.get(engine) if engine is not None else None
        if waker is not None:
            waker.wake(topics)


def _after_rollback(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)


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
