"""The whole SOP through real peers: Dovecot -> card -> taps -> SMTP -> replies thread back."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from lpse_helpdesk import app
from lpse_helpdesk.config.settings import Security, Settings
from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.sop.machine import State
from lpse_helpdesk.storage.db import upgrade
from lpse_helpdesk.storage.models import TelegramCard, TelegramPrompt, Ticket
from tests.mailmaker import make_mail
from tests.servers.dovecot import ImapAccount as DovecotAccount
from tests.servers.smtp import SmtpServer
from tests.servers.telegram import BotApiServer

pytestmark = [pytest.mark.dovecot, pytest.mark.usefixtures("ptb_timedelta")]
GROUP = -1001234567890
USER = "siti@vendor.co.id"
LKPP = "helpdesk@lkpp.test"
T = TypeVar("T")


async def until(predicate: Callable[[], T | None], timeout: float = 20.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def parsed(server: SmtpServer) -> list[EmailMessage]:
    return [
        email.message_from_bytes(m.content, policy=email.policy.default) for m in server.messages
    ]


async def test_the_whole_sop(
    tmp_path: Path,
    imap_account: DovecotAccount,
    smtp_server: SmtpServer,
    telegram_server: BotApiServer,
) -> None:
    telegram_server.group(GROUP)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TELEGRAM_BOT_TOKEN=SecretStr(telegram_server.token),
        TELEGRAM_API_URL=telegram_server.base_url,
        HELPDESK_CHAT_ID=GROUP,
        SUPERVISOR_IDS=[777],
        IMAP_HOST=imap_account.host,
        IMAP_PORT=imap_account.port,
        IMAP_USER=imap_account.user,
        IMAP_PASSWORD=SecretStr(imap_account.password),
        IMAP_SECURITY=Security.PLAIN,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp_server.port,
        SMTP_SECURITY=Security.PLAIN,
        HELPDESK_EMAIL="helpdesk@lpse.test",
        HELPDESK_NAME="Helpdesk LPSE Kota Contoh",
        LPSE_NAME="LPSE Kota Contoh",
        LKPP_HELPDESK_EMAIL=LKPP,
        DATABASE_URL=f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
    )
    services = app.build_services(settings, load_domain())
    upgrade(services.db.engine)  # before the test looks at tables (run() does it too)
    stop = asyncio.Event()
    running = asyncio.create_task(app.serve(services, stop=stop))
    staff = telegram_server.user(1001, "Budi")
    db = services.db

    def ticket() -> Ticket | None:
        return db.run_sync(lambda s: s.scalars(select(Ticket)).first())

    def card() -> Any:
        found = db.run_sync(lambda s: s.scalars(select(TelegramCard)).first())
        return telegram_server.message(GROUP, found.message_id) if found else None

    async def press(word: str) -> None:
        current = await until(card)
        data = next(b["callback_data"] for b in current.buttons if word in b["text"])
        query = telegram_server.press(GROUP, current.message_id, staff, data)
        await until(lambda: telegram_server.answered_callbacks.get(query))

    async def answer_prompt(text: str) -> None:
        prompt = await until(
            lambda: next(
                (
                    m
                    for m in telegram_server.messages(GROUP)
                    if (m.reply_markup or {}).get("force_reply") and m.message_id not in answered
                ),
                None,
            )
        )
        answered.add(prompt.message_id)
        noted = select(TelegramPrompt.id).where(TelegramPrompt.message_id == prompt.message_id)
        await until(lambda: db.run_sync(lambda s: s.scalar(noted)) is not None)
        telegram_server.reply_to(GROUP, prompt.message_id, staff, text)

    answered: set[int] = set()

    async def press_newest(word: str) -> None:
        """A button on the newest bot message showing it (canned answers, the preview)."""

        def find() -> Any:
            for message in reversed(telegram_server.messages(GROUP, include_deleted=False)):
                data = next(
                    (b["callback_data"] for b in message.buttons if b["text"].endswith(word)),
                    None,
                )
                if data is not None and (message.message_id, word) not in pressed:
                    return message, data
            return None

        message, data = await until(find)
        pressed.add((message.message_id, word))
        query = telegram_server.press(GROUP, message.message_id, staff, data)
        await until(lambda: telegram_server.answered_callbacks.get(query))

    pressed: set[tuple[int, str]] = set()

    async def state_is(state: State) -> None:
        await until(lambda: (t := ticket()) is not None and t.state is state)

    async def mail_to(address: str, count: int) -> list[EmailMessage]:
        return await until(
            lambda: (
                [m for m in parsed(smtp_server) if address in str(m["To"])][count - 1 :]
                if len([m for m in parsed(smtp_server) if address in str(m["To"])]) >= count
                else None
            )
        )

    try:
        # 1. The user's mail arrives in the helpdesk mailbox: a card appears in the group.
        imap_account.append(
            make_mail(
                sender=f"Siti <{USER}>",
                message_id="<awal@vendor.co.id>",
                subject="Gagal upload penawaran",
            )
        )
        first = await until(card, timeout=30)
        assert "LPSE-2026-00001" in (first.text or "") or "-00001" in (first.text or "")
        ack = (await mail_to(USER, 1))[0]
        assert ack["Auto-Submitted"] == "auto-replied"

        # 2. Priority (SOP step 2), then a request for data (step 4) typed as a reply.
        await press("Tinggi")
        await state_is(State.PRIORITIZED)
        await until(lambda: any("Minta Data" in b["text"] for b in card().buttons))
        await press("Minta Data")
        await press_newest("Tulis sendiri")  # canned answers are offered first
        await answer_prompt("Mohon kirim tangkapan layar galatnya.")
        await press_newest("Kirim")  # nothing is mailed before the preview's Kirim
        await state_is(State.WAITING_FOR_DATA)
        request = (await mail_to(USER, 2))[0]
        assert "Mohon kirim tangkapan layar galatnya." in request.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert request["In-Reply-To"] == "<awal@vendor.co.id>"

        # 3. The user replies to that mail: it threads to the ticket as the data (steps 5-6).
        imap_account.append(
            make_mail(
                sender=f"Siti <{USER}>",
                subject=str(request["Subject"]),
                in_reply_to=str(request["Message-ID"]),
                body="Terlampir tangkapan layar.",
            )
        )
        await state_is(State.DATA_RECEIVED)
        await until(
            lambda: any("Data tambahan" in (m.text or "") for m in telegram_server.messages(GROUP))
        )

        # 4. Escalation to Helpdesk LKPP (step 10): the forward and the notice to the user.
        await until(lambda: any("Eskalasi" in b["text"] for b in card().buttons))
        await press("Eskalasi LKPP")
        await press_newest("Tulis sendiri")
        await answer_prompt("Galat di server SPSE pusat, mohon bantuan.")
        await press_newest("Kirim")
        await state_is(State.ESCALATED)
        forward = (await mail_to(LKPP, 1))[0]
        assert any(p.get_content_type() == "message/rfc822" for p in forward.iter_attachments())
        notice = (await mail_to(USER, 3))[0]
        assert "LKPP" in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]

        # 5. LKPP answers the forward: it threads back to the ticket.
        imap_account.append(
            make_mail(
                sender=f"Helpdesk LKPP <{LKPP}>",
                subject="RE: " + str(forward["Subject"]),
                in_reply_to=str(forward["Message-ID"]),
                body="Sudah kami perbaiki di pusat.",
            )
        )
        await state_is(State.LKPP_ANSWERED)

        # 6. The solution (step 9) relays LKPP's answer to the user.
        await until(lambda: any("Kirim Solusi" in b["text"] for b in card().buttons))
        await press("Kirim Solusi")
        await press_newest("Teruskan dengan tambahan")  # LKPP's answer is relayed
        await answer_prompt("Silakan unggah ulang penawaran Anda.")
        await press_newest("Kirim")
        await state_is(State.RESOLVED)
        solution = (await mail_to(USER, 4))[0]
        body = solution.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "Silakan unggah ulang penawaran Anda." in body
        assert "Sudah kami perbaiki di pusat." in body
        assert telegram_server.too_many_requests == 0
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
