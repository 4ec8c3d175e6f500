"""Send one mail over SMTP and say whether a failure is worth retrying.

`send` raises TemporaryFailure (retry later: 4xx replies, refused or dropped connections,
timeouts, DNS and TLS errors, a rejected login) or PermanentFailure (do not retry: 5xx replies
to the sender, the recipients or the data). Reasons are short English strings with the SMTP
code; they never contain the password, the OAuth2 token or the mail's content.
"""

from __future__ import annotations

import base64
import logging
import random
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import TYPE_CHECKING, Literal

import aiosmtplib

from lpse_helpdesk.bridge.oauth2 import xoauth2_string

if TYPE_CHECKING:
    from lpse_helpdesk.config.settings import Security

__all__ = [
    "AuthenticationFailure",
    "PermanentFailure",
    "SendFailure",
    "TemporaryFailure",
    "backoff_seconds",
    "send",
]

log = logging.getLogger(__name__)

_REASON_LIMIT = 200


class SendFailure(Exception):
    """A mail was not sent; ``reason`` is short English text, ``code`` the SMTP reply code."""

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TemporaryFailure(SendFailure):
    """Try again later."""


class AuthenticationFailure(TemporaryFailure):
    """The server refused our login: an operator must fix the credentials; the mail waits."""


class PermanentFailure(SendFailure):
    """The server refused this mail for good; retrying will not help. `recipient`: it was
    the recipient that was refused (a 5xx at RCPT TO: the address does not exist)."""

    def __init__(self, reason: str, *, code: int | None = None, recipient: bool = False) -> None:
        super().__init__(reason, code=code)
        self.recipient = recipient


async def send(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    security: Literal["ssl", "starttls", "plain"] | Security,
    username: str | None,
    password: str | None,
    timeout: float,
    sender: str,
    recipients: Sequence[str],
    tls_context: ssl.SSLContext | None = None,
    oauth2_token: str | None = None,
) -> None:
    """Deliver ``message`` to ``recipients`` with envelope sender ``sender``.

    ``security``: "ssl" (implicit TLS, port 465), "starttls" (required, port 587) or "plain"
    (no TLS at all; for a relay on the same host). When some recipients are refused and
    others accepted the mail counts as sent and the refusals are logged.

    ``oauth2_token``: log in as ``username`` with SASL XOAUTH2 and this access token instead
    of a password. A refused token is an AuthenticationFailure, as is a server that does not
    offer XOAUTH2.
    """
    if security not in ("ssl", "starttls", "plain"):
        raise ValueError(f"unknown SMTP security {security!r}")
    if not recipients:
        raise ValueError("a mail needs at least one recipient")
    if oauth2_token is not None and not username:
        raise ValueError("XOAUTH2 needs the username")
    try:
        if oauth2_token is not None and username:
            refused = await _send_xoauth2(
                message,
                sender=sender,
                recipients=list(recipients),
                hostname=host,
                port=port,
                use_tls=security == "ssl",
                start_tls=security == "starttls",
                timeout=timeout,
                tls_context=tls_context,
                username=username,
                token=oauth2_token,
            )
        else:
            refused, _ = await aiosmtplib.send(
                message,
                sender=sender,
                recipients=list(recipients),
                hostname=host,
                port=port,
                username=username,
                password=password,
                use_tls=security == "ssl",
                start_tls=security == "starttls",
                timeout=timeout,
                tls_context=tls_context,
            )
    except aiosmtplib.SMTPException as exc:
        raise _classify(exc) from None
    except ssl.SSLError as exc:
        raise TemporaryFailure(_short(f"TLS error: {exc.reason or exc}")) from None
    except TimeoutError:
        raise TemporaryFailure("timeout") from None
    except OSError as exc:
        raise TemporaryFailure(_short(f"connection failed: {exc.strerror or exc}")) from None
    except ValueError as exc:  # aiosmtplib refuses addresses unsafe on an SMTP command line
        raise PermanentFailure(_short(f"invalid address: {exc}")) from None
    if refused:
        codes = ", ".join(sorted({str(response.code) for response in refused.values()}))
        log.warning(
            "SMTP server refused %d of %d recipients (%s)", len(refused), len(recipients), codes
        )
    log.debug("SMTP server accepted the mail for %d recipient(s)", len(recipients) - len(refused))


async def _send_xoauth2(
    message: EmailMessage,
    *,
    sender: str,
    recipients: list[str],
    hostname: str,
    port: int,
    use_tls: bool,
    start_tls: bool,
    timeout: float,
    tls_context: ssl.SSLContext | None,
    username: str,
    token: str,
) -> dict[str, aiosmtplib.SMTPResponse]:
    """What aiosmtplib.send does, with an XOAUTH2 login done here: older aiosmtplib releases
    that pyproject allows have no XOAUTH2 support."""
    client = aiosmtplib.SMTP(
        hostname=hostname,
        port=port,
        use_tls=use_tls,
        start_tls=start_tls,
        timeout=timeout,
        tls_context=tls_context,
    )
    async with client:
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        if "xoauth2" not in client.server_auth_methods:
            raise AuthenticationFailure("login impossible: the server does not offer AUTH XOAUTH2")
        initial = base64.b64encode(xoauth2_string(username, token).encode())
        response = await client.execute_command(b"AUTH", b"XOAUTH2", initial)
        if response.code == 334:
            # A refusal comes as a challenge holding a JSON error; an empty line ends it.
            response = await client.execute_command(b"")
        if response.code != 235:
            raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)
        refused, _ = await client.send_message(message, sender=sender, recipients=recipients)
    return refused


def _classify(exc: aiosmtplib.SMTPException) -> SendFailure:
    """Map an aiosmtplib error to a temporary or permanent failure."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        detail = "; ".join(_reply(r.code, r.message) for r in exc.recipients)
        reason = _short(f"all recipients refused at RCPT TO: {detail}")
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentFailure(reason, code=codes[0], recipient=True)
        return TemporaryFailure(reason, code=codes[0] if codes else None)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        reason = _short(f"login refused: {_reply(exc.code, exc.message)}")
        return AuthenticationFailure(reason, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return TemporaryFailure(_short(f"timeout: {exc}"))
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        stage = _STAGES.get(type(exc), "SMTP")
        reason = _short(f"{stage} refused: {_reply(exc.code, exc.message)}")
        # A 5xx at the greeting or at HELO is about us or the server (our address blocked,
        # maintenance), never about this mail: as Postfix does, keep it for a retry.
        about_the_mail = not isinstance(
            exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPHeloError
        )
        if 500 <= exc.code < 600 and about_the_mail:
            recipient = isinstance(exc, aiosmtplib.SMTPRecipientRefused)
            return PermanentFailure(reason, code=exc.code, recipient=recipient)
        return TemporaryFailure(reason, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return TemporaryFailure(_short(f"connection failed: {exc}"))
    # SMTPNotSupported (no STARTTLS, no AUTH, no SMTPUTF8...) and anything else: configuration
    # or server trouble, not this mail's fault; keep it for a retry.
    return TemporaryFailure(_short(f"{type(exc).__name__}: {exc}"))


_STAGES: dict[type[aiosmtplib.SMTPException], str] = {
    aiosmtplib.SMTPConnectResponseError: "connection",
    aiosmtplib.SMTPHeloError: "HELO",
    aiosmtplib.SMTPSenderRefused: "MAIL FROM",
    aiosmtplib.SMTPRecipientRefused: "RCPT TO",
    aiosmtplib.SMTPDataError: "DATA",
}


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}".strip()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 1] + "…"


def backoff_seconds(
    attempt: int,
    *,
    base: float = 30.0,
    cap: float = 3600.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = after the first failure).

    30 s, 60 s, 120 s ... doubling up to one hour. With ``rng`` the delay varies by up to
    ±10 % (still at most ``cap``), so mails that failed together do not retry together.
    """
    exponent = min(max(attempt, 1) - 1, 32)
    delay = min(cap, base * 2.0**exponent)
    if rng is not None:
        delay = min(cap, delay * rng.uniform(0.9, 1.1))
    return delay
