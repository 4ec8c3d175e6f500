"""OAuth2 access tokens for XOAUTH2 logins (Google Workspace, Microsoft 365).

A refresh token is configured once; :class:`TokenSource` exchanges it for short-lived access
tokens at the provider's token endpoint (RFC 6749 §6, the ``refresh_token`` grant), keeps the
current one until shortly before it expires, and refreshes it when it is due or when a server
rejected it (:meth:`TokenSource.invalidate`). IMAP (a worker thread) calls
:meth:`TokenSource.token`; SMTP (the event loop) awaits :meth:`TokenSource.atoken`, which
refreshes in a worker thread so the loop never waits on the network. One source may serve
both: Google's ``https://mail.google.com/`` scope and Microsoft's outlook.office365.com scopes
cover IMAP and SMTP with the same token.

Nothing here touches the network at import or construction time. Tokens, the refresh token
and the client secret never appear in logs, in ``repr()`` or in exception messages.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx

__all__ = [
    "GOOGLE_SCOPE",
    "GOOGLE_TOKEN_URL",
    "MICROSOFT_SCOPE",
    "MICROSOFT_TOKEN_URL",
    "OAuth2Config",
    "OAuth2Error",
    "TokenSource",
    "xoauth2_string",
]

log = logging.getLogger(__name__)

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
GOOGLE_SCOPE = "https://mail.google.com/"
#: ``{tenant}``: the directory (tenant) ID or domain, e.g. ``lpse.contoh.go.id``.
MICROSOFT_TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"  # noqa: S105 (a URL)
MICROSOFT_SCOPE = (
    "https://outlook.office365.com/IMAP.AccessAsUser.All "
    "https://outlook.office365.com/SMTP.Send offline_access"
)

#: Refresh this long before the provider's expiry (clock skew, a slow login).
DEFAULT_MARGIN = 120.0
#: Assumed lifetime when the provider does not say (``expires_in`` is only RECOMMENDED).
DEFAULT_LIFETIME = 600.0

_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_AADSTS = re.compile(r"\bAADSTS\d{4,6}\b")  # Microsoft Entra's error number, useful to staff


class OAuth2Error(ConnectionError):
    """No access token could be had. ``reason`` is short English text for staff and logs.

    ``refused`` is true when the provider answered and said no (a revoked or expired refresh
    token, wrong client credentials): an operator must act, retrying will not help. It is
    false for trouble worth retrying (network, timeouts, 5xx, 429).

    A ``ConnectionError``, so that code which backs off and alerts on connection trouble
    (the IMAP intake) treats a failed refresh the same way instead of as a bug.
    """

    def __init__(self, reason: str, *, refused: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused
        self.status = status

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class OAuth2Config:
    """Where and how to refresh. ``client_secret`` and ``scope`` are optional: a public client
    (Microsoft, "Allow public client flows") has no secret, and Google needs no scope."""

    token_url: str
    client_id: str
    client_secret: str | None = field(repr=False)
    refresh_token: str = field(repr=False)
    scope: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.token_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("the OAuth2 token URL must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            # The refresh token and the client secret travel in the request body.
            raise ValueError("the OAuth2 token URL must use https:// (http:// only to localhost)")
        if "{" in self.token_url:
            raise ValueError("fill in the tenant in the OAuth2 token URL")
        if not self.client_id.strip():
            raise ValueError("the OAuth2 client ID is empty")
        if not self.refresh_token.strip():
            raise ValueError("the OAuth2 refresh token is empty")


class _Token(NamedTuple):
    value: str
    refresh_at: float  # clock() reading after which the token is refreshed before use


class TokenSource:
    """Access tokens from a refresh token; thread-safe, cached until shortly before expiry.

    ``clock``: seconds on a monotonic scale (injected by tests). ``margin``: refresh that many
    seconds before the provider's expiry (at most half the token's lifetime).
    ``on_refresh_token``: called with the new refresh token when the provider rotates it
    (Microsoft does, on every refresh) so the caller can store it; the source itself keeps
    using the newest one for as long as the process runs.
    """

    def __init__(
        self,
        config: OAuth2Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = DEFAULT_MARGIN,
        timeout: float = 30.0,
        on_refresh_token: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._margin = margin
        self._timeout = timeout
        self._on_refresh_token = on_refresh_token
        self._refresh_token = config.refresh_token
        self._refresh_lock = threading.Lock()  # held during a refresh (network)
        self._state_lock = threading.Lock()  # held only to swap the cached token
        self._current: _Token | None = None
        self.refreshes = 0  # how many successful refreshes so far (for tests and status)

    def __repr__(self) -> str:
        return f"TokenSource(token_url={self.config.token_url!r})"

    # -- public ------------------------------------------------------------------------------

    def token(self) -> str:
        """A valid access token; refreshes (blocking, over HTTP) when none is cached or due.

        Raises :class:`OAuth2Error`. Call it from a worker thread, never from the event loop.
        """
        current = self._valid()
        if current is not None:
            return current
        with self._refresh_lock:
            current = self._valid()  # another thread may have refreshed meanwhile
            if current is not None:
                return current
            return self._refresh()

    async def atoken(self) -> str:
        """:meth:`token` for the event loop: a cached token at once, a refresh in a thread."""
        current = self._valid()
        if current is not None:
            return current
        return await asyncio.to_thread(self.token)

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (a server rejected it), so the next call refreshes.

        With ``token``, only when that is still the cached one: a token another thread
        already replaced is left alone. Never waits for a refresh in progress, so the event
        loop may call it.
        """
        with self._state_lock:
            current = self._current
            if current is not None and (token is None or current.value == token):
                self._current = None
                log.info("OAuth2 access token dropped; the next login refreshes it")

    # -- internals ---------------------------------------------------------------------------

    def _valid(self) -> str | None:
        current = self._current  # one attribute read: atomic, no lock needed
        if current is not None and self._clock() < current.refresh_at:
            return current.value
        return None

    def _refresh(self) -> str:
        """POST the refresh_token grant; the refresh lock is held."""
        config = self.config
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": config.client_id,
        }
        if config.client_secret:
            form["client_secret"] = config.client_secret
        if config.scope:
            form["scope"] = config.scope
        started = self._clock()
        try:
            response = httpx.post(
                config.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            raise self._fail(OAuth2Error("token endpoint timed out")) from None
        except httpx.HTTPError as exc:
            raise self._fail(
                OAuth2Error(f"token endpoint unreachable ({type(exc).__name__})")
            ) from None
        body = _json(response)
        if response.status_code != 200:
            raise self._fail(_refusal(response.status_code, body))
        access = body.get("access_token") if body is not None else None
        if body is None or not isinstance(access, str) or not access:
            raise self._fail(
                OAuth2Error(
                    "token endpoint answered without an access token (is the URL right?)",
                    refused=True,
                    status=response.status_code,
                )
            )
        token_type = body.get("token_type", "Bearer")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise self._fail(
                OAuth2Error("token endpoint issued a non-Bearer token", refused=True, status=200)
            )
        lifetime = _lifetime(body.get("expires_in"))
        margin = min(self._margin, lifetime / 2)
        with self._state_lock:
            self._current = _Token(access, started + lifetime - margin)
        self.refreshes += 1
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            if self._on_refresh_token is not None:
                try:
                    self._on_refresh_token(rotated)
                except Exception as exc:  # its text might hold the token: name the type only
                    log.error(
                        "could not store the new OAuth2 refresh token (%s)", type(exc).__name__
                    )
        log.info("OAuth2 access token refreshed (valid %d s)", int(lifetime))
        return access

    def _fail(self, error: OAuth2Error) -> OAuth2Error:
        with self._state_lock:
            self._current = None
        log.warning("OAuth2 token refresh failed: %s", _scrub(error.reason, self._secrets()))
        error.reason = _scrub(error.reason, self._secrets())
        error.args = (error.reason,)
        return error

    def _secrets(self) -> list[str]:
        values = [self._refresh_token, self.config.refresh_token, self.config.client_secret]
        return [value for value in values if value]


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response, before base64: ``user=..^Aauth=Bearer ..^A^A``."""
    if "\x01" in user or "\x01" in token:
        raise ValueError("XOAUTH2 user and token must not contain \\x01")
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


# -- helpers ---------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(response: httpx.Response) -> Mapping[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _lifetime(value: object) -> float:
    """``expires_in`` in seconds (a number, or a string of digits as old Azure AD sent)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_LIFETIME


_WHAT = {
    "invalid_grant": "refused the refresh token",
    "invalid_client": "refused the client ID or secret",
    "unauthorized_client": "does not allow this client to refresh tokens",
    "invalid_scope": "refused the scope",
    "invalid_request": "refused the request",
    "unsupported_grant_type": "does not support the refresh_token grant",
}


def _refusal(status: int, body: Mapping[str, Any] | None) -> OAuth2Error:
    """An OAuth2Error for a non-200 answer, naming only the standard error code."""
    code = body.get("error") if body is not None else None
    code = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None
    description = body.get("error_description") if body is not None else None
    aadsts = _AADSTS.search(description) if isinstance(description, str) else None
    detail = ", ".join(part for part in (code, aadsts.group(0) if aadsts else None) if part)
    if status == 429 or status >= 500:
        what = "is rate limiting" if status == 429 else "failed"
        return OAuth2Error(f"token endpoint {what} (HTTP {status})", status=status)
    if code is not None:
        what = _WHAT.get(code, "refused the request")
        return OAuth2Error(f"token endpoint {what} ({detail})", refused=True, status=status)
    return OAuth2Error(
        f"token endpoint refused the request (HTTP {status})", refused=True, status=status
    )


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
