"""Two `lpse-helpdesk run` processes on one PostgreSQL, one mailbox and one bot token.

Real peers throughout: Dovecot, aiosmtpd, the Bot API test server and PostgreSQL; the
instances are real processes, and the role holder is killed with SIGKILL.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from lpse_helpdesk.bot.callback_data import decode
from lpse_helpdesk.ops.roles import TELEGRAM_UPDATES, imap_role
from lpse_helpdesk.ops.status import role_holders
from lpse_helpdesk.storage.db import Database, upgrade
from lpse_helpdesk.storage.models import InstanceStatus, TelegramCard, Ticket
from lpse_helpdesk.workflow.outbox import LEASE
from tests.mailmaker import make_mail
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp import SmtpServer
from tests.servers.telegram import BotApiServer

pytestmark = [pytest.mark.dovecot]
GROUP = -1001234567890
T = TypeVar("T")


def wait(predicate: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def env_for(
    tmp_path: Path, url: str, imap: ImapAccount, smtp: SmtpServer, telegram: BotApiServer
) -> Path:
    values = {
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_API_URL": telegram.base_url,
        "HELPDESK_CHAT_ID": str(GROUP),
        "SUPERVISOR_IDS": "777",
        "IMAP_HOST": imap.host,
        "IMAP_PORT": str(imap.port),
        "IMAP_USER": imap.user,
        "IMAP_PASSWORD": imap.password,
        "IMAP_SECURITY": "plain",
        "IMAP_POLL_SECONDS": "5",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_SECURITY": "plain",
        "HELPDESK_EMAIL": "helpdesk@lpse.test",
        "LKPP_HELPDESK_EMAIL": "helpdesk@lkpp.test",
        "DATABASE_URL": url,
        "SLA_SCAN_SECONDS": "5",
        "LOG_LEVEL": "INFO",
    }
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), "utf-8")
    return path


class Instances:
    def __init__(self, tmp_path: Path, env_file: Path) -> None:
        self.tmp_path = tmp_path
        self.env_file = env_file
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["PTB_TIMEDELTA"] = "true"
        log = (self.tmp_path / f"instance{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "lpse_helpdesk", "--env-file", str(self.env_file), "run"],
            cwd=self.tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            p.read_text("utf-8", "replace")[-4000:] for p in sorted(self.tmp_path.glob("*.log"))
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def instances(
    tmp_path: Path,
    postgres_url: str,
    imap_account: ImapAccount,
    smtp_server: SmtpServer,
    telegram_server: BotApiServer,
) -> Iterator[Instances]:
    telegram_server.group(GROUP)
    running = Instances(
        tmp_path, env_for(tmp_path, postgres_url, imap_account, smtp_server, telegram_server)
    )
    try:
        yield running
    finally:
        running.stop()


def cards_per_ticket(telegram: BotApiServer, numbers: list[str]) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for message in telegram.messages(GROUP):
        # A card's buttons are card presses; a canned-answer offer below it is no card.
        is_card = any(decode(data) is not None for data in message.callback_data)
        if is_card and message.text:
            for number in numbers:
                if number in message.text:
                    counts[number] += 1
    return {number: counts[number] for number in numbers}


def announced(telegram: BotApiServer, numbers: list[str]) -> bool:
    """Every ticket shown in the group: its card, or a line of a new-ticket digest."""
    texts = [m.text or "" for m in telegram.messages(GROUP)]
    return all(any(number in text for text in texts) for number in numbers)


def assert_announced_once(telegram: BotApiServer, numbers: list[str]) -> None:
    """At most one card per ticket, and no ticket listed by two digests (two instances)."""
    assert max(cards_per_ticket(telegram, numbers).values()) <= 1
    digests: collections.Counter[str] = collections.Counter()
    for message in telegram.messages(GROUP):
        if not message.buttons and "tiket baru" in (message.text or ""):
            digests.update(n for n in numbers if n in (message.text or ""))
    assert max(digests.values(), default=0) <= 1, digests


def test_two_instances_share_the_work_and_take_over_from_a_killed_holder(
    instances: Instances,
    postgres_url: str,
    imap_account: ImapAccount,
    smtp_server: SmtpServer,
    telegram_server: BotApiServer,
) -> None:
    db = Database.from_url(postgres_url)
    upgrade(db.engine)  # both instances then find the schema in place
    try:
        first, second = instances.start(), instances.start()
        staff = telegram_server.user(1001, "Budi")

        def numbers() -> list[str]:
            return db.run_sync(lambda s: list(s.scalars(select(Ticket.number))))

        def holders() -> dict[str, str | None]:
            return role_holders(db.engine, [imap_role("INBOX"), TELEGRAM_UPDATES], {})

        wait(lambda: all(holders().values()), 60, "both roles held" + instances.logs())

        def live() -> int | None:
            return db.run_sync(lambda s: s.scalar(select(func.count()).select_from(InstanceStatus)))

        wait(lambda: live() == 2, 30, "both instances report")
        time.sleep(2)  # each has seen the other: they split the group's message budget
        for index in range(30):
            imap_account.append(
                make_mail(
                    sender=f"Pengguna {index} <user{index}@vendor.co.id>",
                    subject=f"Kendala nomor {index}",
                    message_id=f"<first-{index}@vendor.co.id>",
                )
            )
        wait(lambda: len(numbers()) == 30, 120, "30 tickets\n" + instances.logs())
        batch = numbers()
        wait(lambda: announced(telegram_server, batch), 120, "30 tickets announced")
        assert_announced_once(telegram_server, batch)

        def cards() -> int | None:
            return db.run_sync(lambda s: s.scalar(select(func.count()).select_from(TelegramCard)))

        wait(cards, 60, "a first card")

        def press_first_card() -> None:
            card = db.run_sync(
                lambda s: s.scalars(select(TelegramCard).order_by(TelegramCard.ticket_id)).first()
            )
            assert card is not None
            message = telegram_server.message(GROUP, card.message_id)
            data = message.buttons[0]["callback_data"]
            query = telegram_server.press(GROUP, card.message_id, staff, data)
            wait(lambda: telegram_server.answered_callbacks.get(query), 60, "press answered")

        press_first_card()

        # Kill -9 the instance reading the mailbox; the other takes the role over.
        reader = holders()[imap_role("INBOX")]
        assert reader is not None
        victim = first if reader.endswith(f":{first.pid}") else second
        survivor = second if victim is first else first
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        for index in range(10):
            imap_account.append(
                make_mail(
                    sender=f"Penyedia {index} <late{index}@vendor.co.id>",
                    subject=f"Kendala susulan {index}",
                    message_id=f"<late-{index}@vendor.co.id>",
                )
            )
        wait(lambda: len(numbers()) == 40, 60, "10 more tickets\n" + instances.logs())
        late = [n for n in numbers() if n not in batch]
        wait(lambda: announced(telegram_server, late), 60, "the 10 announced")
        assert all(h and h.endswith(f":{survivor.pid}") for h in holders().values())
        press_first_card()

        assert_announced_once(telegram_server, numbers())
        # Each sender got one acknowledgement: one mail, and not lost. A mail the killed
        # instance had claimed but not sent waits out its lease first.
        wait(
            lambda: len(smtp_server.messages) >= 40,
            LEASE.total_seconds() + 60,
            "40 acknowledgements",
        )
        time.sleep(3)  # a duplicate would show up now
        mails: dict[str, set[str]] = collections.defaultdict(set)
        for received in smtp_server.messages:
            message_id = str(message_from_bytes(received.content)["Message-ID"])
            for recipient in received.rcpt_tos:
                if "vendor.co.id" in recipient:
                    mails[recipient].add(message_id)
        assert len(mails) == 40 and all(len(ids) == 1 for ids in mails.values()), mails
        # The only resend allowed is the one a kill -9 can cause between the SMTP server's
        # acceptance and the commit that records it (at least once, the same Message-ID):
        # the sender sends one mail at a time, so at most one.
        assert len(smtp_server.messages) - 40 <= 1
    finally:
        db.close()
