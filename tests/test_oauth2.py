"""OAuth2 (XOAUTH2) logins against real peers: a token endpoint on 127.0.0.1, Dovecot with
``passdb oauth2`` checking tokens at that provider's introspection endpoint, and aiosmtpd with
an XOAUTH2 mechanism that asks the same provider. Nothing in the client libraries is mocked."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult
from imap_tools.errors import MailboxLoginError
from sqlalchemy import select

from lpse_helpdesk.bridge.imap_client import ImapAccount, ImapSession
from lpse_helpdesk.bridge.inbound import IntakeOptions, MailIntakeService
from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
from lpse_helpdesk.bridge.oauth2 import OAuth2Config, OAuth2Error, TokenSource, xoauth2_string
from lpse_helpdesk.bridge.outbound import MailSenderService, SenderOptions, SmtpAccount
from lpse_helpdesk.bridge.smtp_send import AuthenticationFailure, send
from lpse_helpdesk.config.settings import Security
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database
from lpse_helpdesk.storage.models import OutboxChannel, OutboxItem, OutboxStatus, Ticket
from lpse_helpdesk.timekeeping.clock import FixedClock
from lpse_helpdesk.workflow.sla import SlaKeeper
from lpse_helpdesk.workflow.tickets import Workflow
from tests.conftest import HELPDESK, LKPP, WIB
from tests.mailmaker import make_mail
from tests.servers import dovecot
from tests.servers._proc import LOCALHOST, free_port
from tests.servers.dovecot import DovecotServer
from tests.servers.dovecot import ImapAccount as DovecotAccount
from tests.servers.fixtures import unavailable
from tests.servers.oauth2 import OAuth2Server
from tests.servers.smtp import RecordingHandler, SmtpServer

CLIENT_ID = "lpse-helpdesk.apps.example"
CLIENT_SECRET = "GOCSPX-rahasia-klien-9876"
SCOPE = "https://mail.google.com/"
#: Loggers of our code and of the client libraries: none of them may print a secret.
CLIENT_LOGGERS = ("lpse_helpdesk", "httpx", "httpcore", "aiosmtplib", "imap_tools")


class ManualClock:
    """A monotonic clock for TokenSource that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def provider() -> Iterator[OAuth2Server]:
    with OAuth2Server() as server:
        yield server


def _config(provider: OAuth2Server, refresh_token: str, **changes: Any) -> OAuth2Config:
    values: dict[str, Any] = {
        "token_url": provider.token_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
        "scope": SCOPE,
    }
    values.update(changes)
    return OAuth2Config(**values)


def _source(
    provider: OAuth2Server, user: str = "helpdesk@lpse.test", **kwargs: Any
) -> tuple[TokenSource, str]:
    refresh = provider.add_grant(user, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    return TokenSource(_config(provider, refresh), timeout=5, **kwargs), refresh


def _secret_free(text: str, *secrets: str) -> None:
    for secret in (CLIENT_SECRET, *secrets):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode()[:16] not in text


def _client_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if r.name.startswith(CLIENT_LOGGERS)
    )


# -- TokenSource against the token endpoint ------------------------------------------------


def test_xoauth2_string() -> None:
    assert xoauth2_string("a@b.test", "tok") == "user=a@b.test\x01auth=Bearer tok\x01\x01"
    with pytest.raises(ValueError):
        xoauth2_string("a@b.test", "to\x01k")


def test_refresh_grant_is_sent_as_specified_and_the_token_cached(provider: OAuth2Server) -> None:
    clock = ManualClock()
    source, refresh = _source(provider, clock=clock)
    assert provider.requests() == []  # constructing asks nobody
    token = source.token()
    assert provider.user_of(token) == "helpdesk@lpse.test"
    assert source.token() == token and source.token() == token
    (request,) = provider.requests()
    assert request.fields == {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": SCOPE,
    }


def test_optional_secret_and_scope_are_left_out(provider: OAuth2Server) -> None:
    refresh = provider.add_grant("helpdesk@lpse.test", client_id=CLIENT_ID)
    config = _config(provider, refresh, client_secret=None, scope=None)
    TokenSource(config).token()
    assert set(provider.requests()[0].fields) == {"grant_type", "refresh_token", "client_id"}


def test_token_is_refreshed_shortly_before_it_expires(provider: OAuth2Server) -> None:
    clock = ManualClock()
    provider.expires_in = 3600
    source, _ = _source(provider, clock=clock, margin=120)
    first = source.token()
    clock.advance(3600 - 121)
    assert source.token() == first
    clock.advance(2)  # inside the margin: refreshed although not yet expired
    second = source.token()
    assert second != first and len(provider.requests()) == 2
    assert source.refreshes == 2


def test_short_lived_token_is_refreshed_at_half_its_life(provider: OAuth2Server) -> None:
    clock = ManualClock()
    provider.expires_in = 60
    source, _ = _source(provider, clock=clock, margin=120)
    first = source.token()
    clock.advance(29)
    assert source.token() == first
    clock.advance(2)
    assert source.token() != first


def test_invalidate_forces_a_refresh_but_spares_a_newer_token(provider: OAuth2Server) -> None:
    source, _ = _source(provider, clock=ManualClock())
    first = source.token()
    source.invalidate(first)
    second = source.token()
    assert second != first
    source.invalidate(first)  # stale news from another thread: the new token stays
    assert source.token() == second
    source.invalidate()
    assert source.token() not in (first, second)
    assert len(provider.requests()) == 3


def test_threads_share_one_refresh(provider: OAuth2Server) -> None:
    source, _ = _source(provider)
    tokens: list[str] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        tokens.append(source.token())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert len(provider.requests()) == 1


async def test_atoken_refreshes_off_the_loop_and_caches(provider: OAuth2Server) -> None:
    source, _ = _source(provider, clock=ManualClock())
    loop_thread = threading.get_ident()
    tokens = await asyncio.gather(*(source.atoken() for _ in range(5)))
    assert len(set(tokens)) == 1 and len(provider.requests()) == 1
    assert await source.atoken() == tokens[0]
    assert threading.get_ident() == loop_thread


async def test_atoken_does_not_block_the_loop_while_refreshing(provider: OAuth2Server) -> None:
    source, _ = _source(provider)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await source.atoken()
    task.cancel()
    assert ticks > 1


def test_rotated_refresh_token_is_used_and_reported(provider: OAuth2Server) -> None:
    provider.rotate_refresh_tokens = True
    stored: list[str] = []
    source, refresh = _source(provider, clock=ManualClock(), on_refresh_token=stored.append)
    source.token()
    assert len(stored) == 1 and stored[0] != refresh
    source.invalidate()
    source.token()
    requests = provider.requests()
    assert requests[1].fields["refresh_token"] == stored[0]
    assert len(stored) == 2
    assert stored[0] not in repr(source)


@pytest.mark.parametrize(
    ("error", "status", "reason", "refused"),
    [
        ("invalid_grant", 400, "token endpoint refused the refresh token (invalid_grant)", True),
        ("invalid_client", 401, "refused the client ID or secret (invalid_client)", True),
        ("invalid_scope", 400, "refused the scope (invalid_scope)", True),
        ("server_error", 503, "token endpoint failed (HTTP 503)", False),
        ("slow_down", 429, "token endpoint is rate limiting (HTTP 429)", False),
    ],
)
def test_refusals_are_explained_without_secrets(
    provider: OAuth2Server,
    caplog: pytest.LogCaptureFixture,
    error: str,
    status: int,
    reason: str,
    refused: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    source, refresh = _source(provider)
    # A careless provider echoing the request in its description must not leak it either.
    provider.refuse_next(error, status=status, description=f"bad token {refresh} {CLIENT_SECRET}")
    with pytest.raises(OAuth2Error) as caught:
        source.token()
    problem = caught.value
    assert reason in str(problem) and problem.refused is refused and problem.status == status
    assert isinstance(problem, ConnectionError)
    _secret_free(f"{problem} {problem.args} {problem.reason} {caplog.text}", refresh)
    assert reason in caplog.text
    # The failure is not cached: the next call asks again and succeeds.
    assert provider.user_of(source.token()) == "helpdesk@lpse.test"


def test_revoked_grant_is_a_refusal(provider: OAuth2Server) -> None:
    source, refresh = _source(provider)
    provider.revoke_grant(refresh)
    with pytest.raises(OAuth2Error, match=r"refused the refresh token \(invalid_grant\)"):
        source.token()


def test_microsoft_error_number_is_kept(provider: OAuth2Server) -> None:
    source, _ = _source(provider)
    provider.refuse_next(
        "invalid_grant",
        description="AADSTS700082: The refresh token has expired due to inactivity. Trace ID: x",
    )
    with pytest.raises(OAuth2Error) as caught:
        source.token()
    assert caught.value.reason == (
        "token endpoint refused the refresh token (invalid_grant, AADSTS700082)"
    )


def test_answer_without_access_token(provider: OAuth2Server) -> None:
    source, _ = _source(provider)
    provider.refuse_next("ignored", status=200)  # a 200 with {"error": ...} and no token
    with pytest.raises(OAuth2Error, match="without an access token") as caught:
        source.token()
    assert caught.value.refused


def test_unreachable_endpoint_is_worth_retrying() -> None:
    config = OAuth2Config(
        token_url=f"http://{LOCALHOST}:{free_port()}/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token="rt-never-sent",
    )
    with pytest.raises(OAuth2Error, match="token endpoint unreachable") as caught:
        TokenSource(config, timeout=2).token()
    assert not caught.value.refused
    _secret_free(str(caught.value), "rt-never-sent")


def test_config_checks_and_hides_secrets() -> None:
    def config(url: str, **changes: Any) -> OAuth2Config:
        values: dict[str, Any] = {
            "token_url": url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": "rt-secret-value",
        }
        values.update(changes)
        return OAuth2Config(**values)

    good = config("https://oauth2.googleapis.com/token")
    _secret_free(repr(good), "rt-secret-value")
    _secret_free(repr(TokenSource(good)), "rt-secret-value")
    config("http://localhost:8080/token")
    for url in (
        "http://oauth2.example.test/token",  # the secrets would travel in clear
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "oauth2.googleapis.com/token",
    ):
        with pytest.raises(ValueError):
            config(url)
    with pytest.raises(ValueError):
        config("https://oauth2.googleapis.com/token", refresh_token=" ")


# -- IMAP: Dovecot with passdb oauth2 ------------------------------------------------------


@pytest.fixture(scope="module")
def imap_provider() -> Iterator[OAuth2Server]:
    with OAuth2Server() as server:
        yield server


@pytest.fixture(scope="module")
def oauth2_dovecot(imap_provider: OAuth2Server) -> Iterator[DovecotServer]:
    if dovecot.dovecot_binary() is None:
        unavailable(f"Dovecot is not installed (Debian package {dovecot.DEBIAN_PACKAGE})")
    with DovecotServer(oauth2_introspection_url=imap_provider.introspection_url) as server:
        yield server


@pytest.fixture
def mailbox(oauth2_dovecot: DovecotServer) -> DovecotAccount:
    return oauth2_dovecot.add_user()


def _imap(account: DovecotAccount, source: TokenSource) -> ImapSession:
    return ImapSession(
        ImapAccount(
            host=account.host,
            port=account.port,
            user=account.user,
            password="",
            security=Security.PLAIN,
            timeout=10,
            oauth2=source,
        )
    )


@pytest.mark.dovecot
def test_imap_logs_in_with_a_token(
    imap_provider: OAuth2Server, mailbox: DovecotAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    uid = mailbox.append(make_mail())
    source, refresh = _source(imap_provider, mailbox.user)
    session = _imap(mailbox, source)
    session.connect()
    try:
        assert session.uids_after(0) == [uid]
        assert session.supports_idle
    finally:
        session.close()
    token = source.token()
    assert imap_provider.introspections.count(token) == 1  # Dovecot asked the provider
    _secret_free(_client_log(caplog), refresh, token)


@pytest.mark.dovecot
def test_imap_retries_once_with_a_fresh_token_when_refused(
    imap_provider: OAuth2Server, mailbox: DovecotAccount
) -> None:
    source, _ = _source(imap_provider, mailbox.user)
    first = source.token()
    imap_provider.revoke(first)  # revoked early: we still hold it as valid
    session = _imap(mailbox, source)
    session.connect()
    session.close()
    assert source.refreshes == 2 and source.token() != first


@pytest.mark.dovecot
def test_imap_fails_clearly_when_the_provider_refuses(
    imap_provider: OAuth2Server, mailbox: DovecotAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source, refresh = _source(imap_provider, mailbox.user)
    imap_provider.revoke_grant(refresh)
    session = _imap(mailbox, source)
    with pytest.raises(OAuth2Error) as caught:
        session.connect()
    assert str(caught.value) == "token endpoint refused the refresh token (invalid_grant)"
    assert caught.value.refused and session.mailbox is None
    _secret_free(_client_log(caplog), refresh)


@pytest.mark.dovecot
def test_imap_login_refused_after_the_retry_is_a_login_error(
    imap_provider: OAuth2Server, oauth2_dovecot: DovecotServer, mailbox: DovecotAccount
) -> None:
    # A token for another mailbox: the provider gives tokens, Dovecot refuses them both.
    other = oauth2_dovecot.add_user()
    source, _ = _source(imap_provider, other.user)
    with pytest.raises(MailboxLoginError, match="AUTHENTICATIONFAILED"):
        _imap(mailbox, source).connect()
    assert source.refreshes == 2


@pytest.mark.dovecot
def test_password_login_still_works_on_the_oauth2_server(
    imap_provider: OAuth2Server, mailbox: DovecotAccount
) -> None:
    session = ImapSession(
        ImapAccount(mailbox.host, mailbox.port, mailbox.user, mailbox.password, Security.PLAIN)
    )
    session.connect()
    session.close()
    # ... while a password is no bearer token.
    with pytest.raises(MailboxLoginError):
        _imap(mailbox, _StaticSource(mailbox.password)).connect()


class _StaticSource(TokenSource):
    """Always the same 'token' (for feeding something that is not a token)."""

    def __init__(self, value: str) -> None:
        super().__init__(
            OAuth2Config("https://unused.example.test/token", "c", None, "r"), clock=lambda: 0
        )
        self._value = value

    def token(self) -> str:
        return self._value


@pytest.mark.dovecot
async def test_intake_service_turns_mail_into_a_ticket_over_xoauth2(
    imap_provider: OAuth2Server,
    mailbox: DovecotAccount,
    workflow: Workflow,
    domain: DomainConfig,
    db: Database,
    clock: FixedClock,
) -> None:
    mailbox.append(make_mail())
    source, _ = _source(imap_provider, mailbox.user)
    account = _imap(mailbox, source).account
    intake = Intake(
        workflow, domain, IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    )
    service = MailIntakeService(account, intake, db, clock, IntakeOptions(poll_seconds=5))
    await service._imap(service.session.connect)
    try:
        report = await service.sync_once()
    finally:
        await service._imap(service.session.close)
    assert report.committed == 1
    assert db.run_sync(lambda s: s.scalars(select(Ticket)).one().requester_email) == (
        "siti@vendor.co.id"
    )


# -- SMTP: aiosmtpd with an XOAUTH2 mechanism ----------------------------------------------


class XOAuth2Handler(RecordingHandler):
    """Accepts AUTH XOAUTH2 with a token the provider vouches for, the way Gmail answers:
    a refusal is a 334 challenge holding a JSON error, then 535 after the client's empty line."""

    def __init__(self, provider: OAuth2Server) -> None:
        super().__init__()
        self.provider = provider
        self.logins: list[str] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        if len(args) > 1:
            blob: Any = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        if user and self.provider.user_of(token) == user:
            self.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        error = {"status": "400", "schemes": "Bearer", "scope": SCOPE}
        await server.challenge_auth(json.dumps(error))
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )


@pytest.fixture
def xoauth2_smtp(provider: OAuth2Server) -> Iterator[tuple[XOAuth2Handler, int]]:
    handler = XOAuth2Handler(provider)
    port = free_port()
    controller = Controller(
        handler,
        hostname=LOCALHOST,
        port=port,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN", "PLAIN"],
        ready_timeout=5.0,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def _send(port: int, user: str, token: str) -> None:
    message = email.message_from_bytes(make_mail(), policy=email.policy.default)
    await send(
        message,
        host=LOCALHOST,
        port=port,
        security="plain",
        username=user,
        password=None,
        timeout=5.0,
        sender=HELPDESK,
        recipients=["siti@vendor.co.id"],
        oauth2_token=token,
    )


async def test_smtp_sends_with_a_token(
    provider: OAuth2Server,
    xoauth2_smtp: tuple[XOAuth2Handler, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    handler, port = xoauth2_smtp
    source, refresh = _source(provider, HELPDESK)
    token = await source.atoken()
    await _send(port, HELPDESK, token)
    assert handler.logins == [HELPDESK]
    assert len(handler.messages) == 1
    _secret_free(_client_log(caplog), refresh, token)


async def test_smtp_rejected_token_is_an_authentication_failure(
    provider: OAuth2Server, xoauth2_smtp: tuple[XOAuth2Handler, int]
) -> None:
    handler, port = xoauth2_smtp
    source, _ = _source(provider, HELPDESK)
    token = await source.atoken()
    provider.revoke(token)
    with pytest.raises(AuthenticationFailure) as caught:
        await _send(port, HELPDESK, token)
    assert caught.value.code == 535 and "535 5.7.8" in caught.value.reason
    _secret_free(str(caught.value), token)
    assert handler.logins == [] and handler.messages == []


async def test_smtp_server_without_xoauth2(provider: OAuth2Server) -> None:
    with SmtpServer() as plain:  # no AUTH at all
        with pytest.raises(AuthenticationFailure, match="does not offer AUTH XOAUTH2") as caught:
            await _send(plain.port, HELPDESK, "at-anything")
        assert caught.value.code is None and plain.messages == []


# -- the mail sender service ---------------------------------------------------------------


def _sender(
    port: int, source: TokenSource, db: Database, clock: FixedClock, workflow: Workflow
) -> MailSenderService:
    account = SmtpAccount(
        host=LOCALHOST,
        port=port,
        security=Security.PLAIN,
        username=HELPDESK,
        password=None,
        timeout=5,
        oauth2=source,
    )
    options = SenderOptions(
        helpdesk_address=HELPDESK,
        helpdesk_name="Helpdesk LPSE Kota Contoh",
        lpse_name="LPSE Kota Contoh",
        timezone=WIB,
    )
    return MailSenderService(
        account, db, clock, SlaKeeper(workflow.domain, workflow.calendar), options
    )


def _open_ticket(db: Database, workflow: Workflow, domain: DomainConfig) -> None:
    intake = Intake(
        workflow, domain, IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP)
    )
    db.run_sync(lambda s: intake.ingest(s, make_mail()))


def _mail_items(db: Database) -> list[OutboxItem]:
    query = select(OutboxItem).where(OutboxItem.channel == OutboxChannel.MAIL)
    return db.run_sync(lambda s: list(s.scalars(query)))


def _alerts(db: Database) -> list[dict[str, Any]]:
    query = select(OutboxItem).where(OutboxItem.channel == OutboxChannel.TELEGRAM)
    return db.run_sync(
        lambda s: [i.payload for i in s.scalars(query) if i.payload.get("alert") == "smtp_login"]
    )


async def test_sender_replaces_a_revoked_token_at_once(
    provider: OAuth2Server,
    xoauth2_smtp: tuple[XOAuth2Handler, int],
    db: Database,
    clock: FixedClock,
    workflow: Workflow,
    domain: DomainConfig,
) -> None:
    handler, port = xoauth2_smtp
    _open_ticket(db, workflow, domain)
    source, _ = _source(provider, HELPDESK)
    sender = _sender(port, source, db, clock, workflow)
    provider.revoke(await source.atoken())
    assert await sender.deliver_due() == 1
    assert [i.status for i in _mail_items(db)] == [OutboxStatus.SENT]
    assert handler.logins == [HELPDESK] and len(handler.messages) == 1
    assert source.refreshes == 2 and _alerts(db) == []


async def test_sender_keeps_the_mail_and_alerts_when_the_provider_refuses(
    provider: OAuth2Server,
    xoauth2_smtp: tuple[XOAuth2Handler, int],
    db: Database,
    clock: FixedClock,
    workflow: Workflow,
    domain: DomainConfig,
) -> None:
    handler, port = xoauth2_smtp
    _open_ticket(db, workflow, domain)
    source, refresh = _source(provider, HELPDESK)
    provider.revoke_grant(refresh)
    sender = _sender(port, source, db, clock, workflow)
    await sender.deliver_due()
    (item,) = _mail_items(db)
    assert item.status is OutboxStatus.PENDING and item.attempts == 1
    assert item.last_error == "OAuth2: token endpoint refused the refresh token (invalid_grant)"
    (alert,) = _alerts(db)
    assert alert["error"] == item.last_error
    assert handler.messages == []
