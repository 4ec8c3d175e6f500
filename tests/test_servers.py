"""The real-server fixtures work: Dovecot, PostgreSQL and the recording SMTP server."""

from __future__ import annotations

import contextlib
import imaplib
import smtplib
import socket
import time
from email.message import EmailMessage

import aiosmtplib
import pytest
import sqlalchemy as sa
from imap_tools import MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from tests.servers.dovecot import DovecotServer, ImapAccount
from tests.servers.smtp import SmtpServer

RAW = (
    b"From: Budi <budi@example.test>\r\nTo: helpdesk@lpse.test\r\n"
    b"Subject: Lupa password\r\n\r\nTolong reset.\r\n"
)


def _login(account: ImapAccount) -> MailBoxUnencrypted:
    return MailBoxUnencrypted(account.host, account.port).login(account.user, account.password)


def _close(mailbox: MailBoxUnencrypted) -> None:
    """Close the socket of a session the server already ended."""
    with contextlib.suppress(OSError):
        mailbox.client.shutdown()


def _read_until_eof(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server still sends; socket.timeout if it does not close."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


# -- Dovecot -------------------------------------------------------------------------


@pytest.mark.dovecot
def test_imap_login_append_fetch(imap_account: ImapAccount) -> None:
    uid = imap_account.append(RAW, flags=["\\Flagged"])
    with _login(imap_account) as mailbox:
        messages = list(mailbox.fetch(mark_seen=False))
    assert [m.uid for m in messages] == [str(uid)]
    assert messages[0].subject == "Lupa password"
    assert "\\Flagged" in messages[0].flags


@pytest.mark.dovecot
def test_each_test_gets_an_empty_mailbox(imap_account: ImapAccount) -> None:
    with _login(imap_account) as mailbox:
        assert mailbox.folder.status("INBOX")["MESSAGES"] == 0


@pytest.mark.dovecot
def test_idle_sees_append_from_another_connection(imap_account: ImapAccount) -> None:
    with _login(imap_account) as mailbox:
        mailbox.idle.start()  # type: ignore[no-untyped-call]
        imap_account.append(RAW)
        responses = mailbox.idle.poll(timeout=5)
        mailbox.idle.stop()  # type: ignore[no-untyped-call]
    assert any(line.endswith(b"EXISTS") for line in responses), responses


@pytest.mark.dovecot
def test_bump_uidvalidity_changes_uidvalidity(imap_account: ImapAccount) -> None:
    imap_account.append(RAW)
    mailbox = _login(imap_account)
    before = mailbox.folder.status("INBOX")["UIDVALIDITY"]
    new = imap_account.bump_uidvalidity()
    assert new != before
    # A session with the folder selected is thrown out on its next command ...
    with pytest.raises(imaplib.IMAP4.abort, match="inconsistent"):
        mailbox.client.noop()
    _close(mailbox)
    # ... and a new one sees the new UIDVALIDITY.
    with _login(imap_account) as fresh:
        assert fresh.folder.status("INBOX")["UIDVALIDITY"] == new


@pytest.mark.dovecot
@pytest.mark.parametrize("hard", [False, True], ids=["kick", "kill"])
def test_drop_connections_ends_idle(imap_account: ImapAccount, hard: bool) -> None:
    mailbox = _login(imap_account)
    mailbox.idle.start()  # type: ignore[no-untyped-call]
    imap_account.drop_connections(hard=hard)
    rest = _read_until_eof(mailbox.client.sock)
    _close(mailbox)
    if hard:
        assert rest == b""
    else:
        assert rest.startswith(b"* BYE")
    with _login(imap_account) as again:  # the server itself is still up
        assert again.folder.status("INBOX")["MESSAGES"] == 0


@pytest.mark.dovecot
def test_failed_logins_are_not_delayed(imap_account: ImapAccount) -> None:
    started = time.monotonic()
    for _ in range(2):
        mailbox = MailBoxUnencrypted(imap_account.host, imap_account.port)
        with pytest.raises(MailboxLoginError):
            mailbox.login(imap_account.user, "wrong")
        _close(mailbox)
    assert time.monotonic() - started < 2.5  # Dovecot's auth penalty would add 2 s


@pytest.mark.dovecot
def test_restart_keeps_port_and_mail(
    dovecot_server: DovecotServer, imap_account: ImapAccount
) -> None:
    imap_account.append(RAW)
    old = _login(imap_account)
    dovecot_server.restart()
    with pytest.raises(imaplib.IMAP4.abort):
        old.client.noop()
    _close(old)
    with _login(imap_account) as mailbox:
        assert mailbox.folder.status("INBOX")["MESSAGES"] == 1


# -- PostgreSQL ----------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_select_1(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            tables = conn.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert postgres_url.endswith("/" + name)
    assert tables == 0


# -- SMTP ----------------------------------------------------------------------------


def _message(to: str = "budi@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "helpdesk@lpse.test"
    msg["To"] = to
    msg["Subject"] = "Tiket #1"
    msg.set_content("Sudah kami tangani.")
    return msg


def test_smtp_records_messages(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.send_message(_message())
    [received] = smtp_server.wait_for_messages(1)
    assert received.mail_from == "helpdesk@lpse.test"
    assert received.rcpt_tos == ("budi@example.test",)
    assert b"Subject: Tiket #1" in received.content


def test_smtp_temporary_failure_then_success(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("451 4.3.0 try later")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            client.send_message(_message())
        assert excinfo.value.smtp_code == 451
        client.send_message(_message())
    assert len(smtp_server.rejected) == 1
    assert len(smtp_server.messages) == 1


def test_smtp_unknown_recipient(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("550 5.1.1 no such user", stage="RCPT")
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo,
    ):
        client.send_message(_message("nobody@example.test"))
    assert excinfo.value.recipients["nobody@example.test"][0] == 550
    assert smtp_server.messages == []


def test_smtp_permanent_failure_at_data(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("550 5.1.1 no such user", count=2)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as excinfo:
                client.send_message(_message())
            assert excinfo.value.smtp_code == 550
        client.send_message(_message())
    assert len(smtp_server.messages) == 1


async def test_smtp_from_async_code(smtp_server: SmtpServer) -> None:
    await aiosmtplib.send(_message(), hostname=smtp_server.host, port=smtp_server.port)
    assert smtp_server.messages[0].rcpt_tos == ("budi@example.test",)


def test_refused_port(refused_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", refused_port), timeout=5).close()
