"""Sending through a real SMTP server (aiosmtpd on 127.0.0.1) and classifying its failures."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from lpse_helpdesk.bridge.compose import TICKET_HEADER, MailContext, compose
from lpse_helpdesk.bridge.smtp_send import (
    AuthenticationFailure,
    PermanentFailure,
    TemporaryFailure,
    backoff_seconds,
    send,
)
from lpse_helpdesk.bridge.templating import Renderer
from lpse_helpdesk.sop.machine import MailKind
from tests.servers._proc import LOCALHOST, free_port
from tests.servers.smtp import RecordingHandler, SmtpServer

HELPDESK = "helpdesk@lpse.contoh.go.id"
USER = "siti@cv-maju.co.id"
PASSWORD = "rahasia-Sangat-1234"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def auth_smtp() -> Iterator[tuple[str, int]]:
    """An SMTP server that accepts AUTH PLAIN/LOGIN without TLS and refuses every login."""

    def refuse(*_: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    port = free_port()
    controller = Controller(
        RecordingHandler(),
        hostname=LOCALHOST,
        port=port,
        authenticator=refuse,
        auth_require_tls=False,
        ready_timeout=5.0,
    )
    controller.start()
    try:
        yield LOCALHOST, port
    finally:
        controller.stop()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, LOCALHOST, 0)
    port: int = server.sockets[0].getsockname()[1]
    async with server:
        yield port
        for writer in writers:
            writer.close()


def _mail() -> EmailMessage:
    ctx = MailContext(
        ticket_number="LPSE-2026-00042",
        requester_name="Siti Ñoño",
        requester_address=USER,
        subject="Lupa password",
        problem_text="Saya lupa password.",
        lpse_name="LPSE Kabupaten Contoh",
        helpdesk_name="Helpdesk LPSE Kabupaten Contoh",
        helpdesk_address=HELPDESK,
        received_at_local="Senin, 4 Mei 2026 pukul 09.15 WIB",
    )
    return compose(
        MailKind.ACKNOWLEDGEMENT,
        ctx,
        to=USER,
        message_id="<lpse.1@lpse.contoh.go.id>",
        in_reply_to="<user.1@cv-maju.co.id>",
        references=(),
        date=datetime(2026, 5, 4, 2, 16, tzinfo=UTC),
        renderer=Renderer(),
    )


async def _send(port: int, **changes: Any) -> None:
    arguments: dict[str, Any] = {
        "host": LOCALHOST,
        "port": port,
        "security": "plain",
        "username": None,
        "password": None,
        "timeout": 5.0,
        "sender": HELPDESK,
        "recipients": [USER],
    }
    arguments.update(changes)
    await send(_mail(), **arguments)


async def test_delivered_and_recorded(smtp: SmtpServer) -> None:
    await _send(smtp.port)
    [received] = smtp.wait_for_messages(1)
    assert received.mail_from == HELPDESK
    assert received.rcpt_tos == (USER,)
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    assert parsed["Message-ID"] == "<lpse.1@lpse.contoh.go.id>"
    assert parsed[TICKET_HEADER] == "LPSE-2026-00042"
    assert parsed["Subject"] == "Re: [LPSE-2026-00042] Lupa password"
    assert parsed["To"] == USER


async def test_451_at_data_is_temporary(smtp: SmtpServer) -> None:
    smtp.fail_next("451 4.3.0 Try again later")
    with pytest.raises(TemporaryFailure) as excinfo:
        await _send(smtp.port)
    assert excinfo.value.code == 451
    assert "451" in excinfo.value.reason and "DATA" in excinfo.value.reason
    assert smtp.messages == []
    await _send(smtp.port)  # the retry goes through
    assert len(smtp.wait_for_messages(1)) == 1


async def test_451_at_rcpt_is_temporary(smtp: SmtpServer) -> None:
    smtp.fail_next("451 4.7.1 Greylisted, try again", stage="RCPT")
    with pytest.raises(TemporaryFailure) as excinfo:
        await _send(smtp.port)
    assert excinfo.value.code == 451
    assert not isinstance(excinfo.value, PermanentFailure)


async def test_550_recipient_refused_is_permanent(smtp: SmtpServer) -> None:
    smtp.fail_next("550 5.1.1 No such user", stage="RCPT")
    with pytest.raises(PermanentFailure) as excinfo:
        await _send(smtp.port)
    assert excinfo.value.code == 550
    assert excinfo.value.reason.startswith("all recipients refused at RCPT TO: 550")
    assert smtp.messages == []


async def test_550_at_data_is_permanent(smtp: SmtpServer) -> None:
    smtp.fail_next("554 5.7.1 Message rejected as spam")
    with pytest.raises(PermanentFailure) as excinfo:
        await _send(smtp.port)
    assert excinfo.value.code == 554
    assert "554" in excinfo.value.reason


async def test_one_refused_recipient_of_two_still_sends(smtp: SmtpServer) -> None:
    smtp.fail_next("550 5.1.1 No such user", stage="RCPT")
    await _send(smtp.port, recipients=["nobody@cv-maju.co.id", USER])
    [received] = smtp.wait_for_messages(1)
    assert received.rcpt_tos == (USER,)


async def test_connection_refused_is_temporary() -> None:
    with pytest.raises(TemporaryFailure) as excinfo:
        await _send(free_port())
    assert excinfo.value.code is None
    assert "connect" in excinfo.value.reason.lower()


async def test_silent_server_times_out(silent_server: int) -> None:
    with pytest.raises(TemporaryFailure) as excinfo:
        await _send(silent_server, timeout=0.3)
    assert excinfo.value.reason.startswith("timeout")


async def test_refused_login_is_temporary_and_hides_the_password(
    auth_smtp: tuple[str, int],
) -> None:
    host, port = auth_smtp
    with pytest.raises(AuthenticationFailure) as excinfo:
        await _send(port, host=host, username="helpdesk", password=PASSWORD)
    assert isinstance(excinfo.value, TemporaryFailure)
    assert excinfo.value.code == 535
    assert PASSWORD not in excinfo.value.reason
    assert PASSWORD not in repr(excinfo.value.args)


async def test_starttls_required_but_not_offered_is_temporary(smtp: SmtpServer) -> None:
    with pytest.raises(TemporaryFailure, match=r"(?i)starttls"):
        await _send(smtp.port, security="starttls")
    assert smtp.messages == []


async def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="security"):
        await _send(1, security="tls")
    with pytest.raises(ValueError, match="recipient"):
        await _send(1, recipients=[])


# --- back-off -------------------------------------------------------------------------------


def test_backoff_doubles_to_an_hour() -> None:
    assert [backoff_seconds(n) for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert backoff_seconds(0) == 30
    assert backoff_seconds(10_000) == 3600


def test_backoff_jitter_stays_close_and_under_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 20):
        plain = backoff_seconds(attempt)
        jittered = backoff_seconds(attempt, rng=rng)
        assert 0.9 * plain <= jittered <= min(3600, 1.1 * plain)
