"""IDLE against a real Dovecot: a mail that lands between the last command of a sync and
IDLE (after a reconnect too) ends the wait at once instead of after IDLE's 29 minutes.

Dovecot checks the mailbox as IDLE begins and writes "+ idling" and the announcement of
such a mail in one go, so both reach the client in one read: the announcement then sits in
imaplib's read buffer, not in the socket. These tests put a mail in exactly that moment;
they do not depend on timing (no sleeps): the mail is appended, and acknowledged by the
server, before IDLE is sent.
"""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import AsyncIterator
from functools import partial

import pytest
from sqlalchemy import select

from lpse_helpdesk.bridge.inbound import MailIntakeService
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import Message, Ticket
from lpse_helpdesk.timekeeping.clock import FixedClock
from tests.intake_support import intake_service
from tests.mailmaker import make_mail
from tests.servers.dovecot import DovecotServer
from tests.servers.dovecot import ImapAccount as DovecotAccount
from tests.test_intake_imap import _count, _flags, _wait

pytestmark = pytest.mark.dovecot

#: Long enough that a wait for it is a failure: IDLE must return on the server's word.
LONG_IDLE = 600.0


@pytest.fixture
async def service(
    imap_account: DovecotAccount, intake: Intake, db: Database, clock: FixedClock
) -> AsyncIterator[MailIntakeService]:
    svc = intake_service(imap_account, intake, db, clock, idle_seconds=LONG_IDLE)
    try:
        yield svc
    finally:
        await svc.stop()


async def test_a_mail_that_lands_just_before_idle_ends_it_at_once(
    imap_account: DovecotAccount, service: MailIntakeService
) -> None:
    session = service.session
    await service._imap(session.connect)
    assert await service._imap(lambda: session.uids_after(0)) == []
    await service._imap(lambda: session.idle(0.1))  # what the login left (SELECT's EXISTS)
    for i in range(3):
        uid = imap_account.append(make_mail(subject=f"Tepat sebelum IDLE {i}"))
        # Returns at once on the announcement; without it, after LONG_IDLE with [].
        responses = await asyncio.wait_for(
            service._imap(lambda: session.idle(LONG_IDLE)), LONG_IDLE / 10
        )
        assert any(line.endswith(b"EXISTS") for line in responses), responses
        assert await service._imap(partial(session.uids_after, uid - 1)) == [uid]
    # IDLE was ended cleanly each time: the session still works and still idles.
    assert await service._imap(lambda: session.idle(0.1)) == []
    assert len(await service._imap(lambda: session.uids_after(0))) == 3


async def test_a_connection_lost_before_idle_raises(
    imap_account: DovecotAccount, service: MailIntakeService
) -> None:
    session = service.session
    await service._imap(session.connect)
    await service._imap(lambda: session.idle(0.1))
    imap_account.drop_connections(hard=True)
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        await service._imap(lambda: session.idle(LONG_IDLE))


async def test_a_mail_between_the_sync_after_a_restart_and_idle_is_not_left_waiting(
    dovecot_server: DovecotServer,
    imap_account: DovecotAccount,
    service: MailIntakeService,
    db: Database,
) -> None:
    """Dovecot restarts; the service reconnects and syncs; the mail lands right before its
    first IDLE on the new connection (the moment the flaky full-suite run hit)."""
    real_idle = service.session.idle
    connections: list[object] = []  # each connection IDLE ran on, in order
    appended: list[int] = []

    def idle_with_a_mail_landing_first(timeout: float) -> list[bytes]:
        mailbox = service.session.box
        if not connections or connections[-1] is not mailbox:
            connections.append(mailbox)
        pending = mailbox.client.untagged_responses
        if len(connections) == 2 and not appended and "EXISTS" not in pending:
            # After the sync on the new connection, before its IDLE: nothing else tells
            # the session about this mail but the server's announcement as IDLE begins.
            appended.append(imap_account.append(make_mail(subject="Sesudah pulih")))
        return real_idle(timeout)

    service.session.idle = idle_with_a_mail_landing_first  # type: ignore[method-assign]
    imap_account.append(make_mail(subject="Sebelum gangguan", sender="a@vendor.co.id"))
    await service.start()
    await _wait(lambda: _count(db, Ticket) == 1 and len(connections) == 1, 30)
    dovecot_server.restart()
    await _wait(lambda: _count(db, Ticket) == 2, 30)
    assert len(connections) == 2 and len(appended) == 1
    uids = db.run_sync(lambda s: sorted(u or 0 for u in s.scalars(select(Message.uid))))
    assert len(uids) == 2 and uids[1] == appended[0]  # each mail once
    await _wait(lambda: all("\\Seen" in f for f in _flags(imap_account).values()), 30)
