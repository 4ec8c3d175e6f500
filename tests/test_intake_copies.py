"""Copies of a stored mail (the same Message-ID and content: sent to two addresses of the
helpdesk, or the whole folder again after a UIDVALIDITY change) get no row in messages. A
start still finishes their marking (bridge/copies.py keeps their UIDs): a crash between the
commit and the \\Seen, or a move the server refused, does not leave them in the folder."""

from __future__ import annotations

from typing import Any

import pytest

from lpse_helpdesk.bridge.inbound import MailIntakeService
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.timekeeping.clock import FixedClock
from tests.intake_support import connected, intake_service
from tests.mailmaker import make_mail
from tests.servers.dovecot import ImapAccount as DovecotAccount
from tests.test_intake_imap import _flags

pytestmark = pytest.mark.dovecot


async def test_a_duplicate_copy_left_by_a_refused_folder_is_moved_on_the_next_start(
    imap_account: DovecotAccount, intake: Intake, database: Database, clock: FixedClock
) -> None:
    db = database  # on SQLite and on PostgreSQL
    raw = make_mail(subject="Dikirim dua kali", message_id="<dua.kali@vendor.co.id>")
    first = imap_account.append(raw)
    copy = imap_account.append(raw)  # e.g. To: and Cc: two aliases of the helpdesk
    async with connected(imap_account, intake, db, clock, processed_folder="~Diproses") as refused:
        report = await refused.sync_once()
        assert report.outcomes == {"opened": 1, "duplicate": 1}
        assert set(_flags(imap_account)) == {first, copy}  # the move was refused

    async with connected(imap_account, intake, db, clock, processed_folder="Diproses") as fixed:
        await fixed._remark_committed()  # what a start does first
        await fixed.sync_once()
        assert set(_flags(imap_account)) == set()
        assert len(_flags(imap_account, "Diproses")) == 2


async def test_a_duplicate_copy_committed_before_a_crash_is_marked_on_the_next_start(
    imap_account: DovecotAccount,
    intake: Intake,
    database: Database,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = database  # on SQLite and on PostgreSQL
    raw = make_mail(subject="Dikirim dua kali", message_id="<dua.kali.2@vendor.co.id>")
    first = imap_account.append(raw)
    copy = imap_account.append(raw)
    crashed = intake_service(imap_account, intake, db, clock)

    async def crash_before_marking(self: MailIntakeService, *args: Any, **kw: Any) -> None:
        return None  # committed, then the process died before STORE \Seen

    with monkeypatch.context() as patch:
        patch.setattr(MailIntakeService, "_mark", crash_before_marking)
        try:
            await crashed._imap(crashed.session.connect)
            report = await crashed.sync_once()
            assert report.outcomes == {"opened": 1, "duplicate": 1}
        finally:
            await crashed.stop()
    assert all("\\Seen" not in f for f in _flags(imap_account).values())

    async with connected(imap_account, intake, db, clock) as restarted:
        await restarted._remark_committed()
        await restarted.sync_once()
        flags = _flags(imap_account)
        assert "\\Seen" in flags[first]
        assert "\\Seen" in flags[copy]


async def test_after_a_uidvalidity_change_a_refused_move_is_done_on_the_next_start(
    imap_account: DovecotAccount, intake: Intake, database: Database, clock: FixedClock
) -> None:
    """After a renumbering every rescanned mail is a copy of its row under the old
    UIDVALIDITY: none has a row under the new one, and the next start still moves them."""
    db = database  # on SQLite and on PostgreSQL
    for i in range(3):
        imap_account.append(make_mail(subject=f"Baru {i}", sender=f"b{i}@vendor.co.id"))
    async with connected(imap_account, intake, db, clock, processed_folder="~Diproses") as refused:
        assert (await refused.sync_once()).outcomes == {"opened": 3}
    imap_account.bump_uidvalidity()
    async with connected(imap_account, intake, db, clock, processed_folder="~Diproses") as refused:
        assert (await refused.sync_once()).outcomes == {"duplicate": 3}  # the rescan
    assert len(_flags(imap_account)) == 3

    async with connected(imap_account, intake, db, clock, processed_folder="Diproses") as fixed:
        await fixed._remark_committed()
        await fixed.sync_once()
        assert len(_flags(imap_account)) == 0
