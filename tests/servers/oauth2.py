"""An OAuth2 provider on 127.0.0.1 for tests: a token endpoint and a token introspection endpoint.

``POST /token`` answers the refresh_token grant (RFC 6749 §6) the way Google and Microsoft do:
form fields ``grant_type=refresh_token``, ``refresh_token``, ``client_id`` and optionally
``client_secret`` and ``scope``; a JSON answer with ``access_token``, ``token_type``,
``expires_in`` (and a new ``refresh_token`` when rotation is on), or
``{"error": "invalid_grant", ...}`` with status 400.

``POST /introspect`` (form field ``token``) and ``GET /introspect?token=...`` answer the way
RFC 7662 says: ``{"active": true, "username": ..., "scope": ...}`` for a live access token,
``{"active": false}`` otherwise. Dovecot's ``passdb oauth2`` uses it to check XOAUTH2 logins.

The server runs in a background thread (``ThreadingHTTPServer``); every helper is quick and
thread-safe. Tests tell it to refuse (:meth:`OAuth2Server.refuse_next`), to fail with a 5xx,
or revoke tokens (:meth:`OAuth2Server.revoke`).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.servers._proc import LOCALHOST

__all__ = ["Grant", "OAuth2Server", "TokenRequest"]


@dataclass
class Grant:
    """A refresh token the server knows: whose it is and which client may use it."""

    user: str
    client_id: str
    client_secret: str | None
    scope: str


@dataclass(frozen=True)
class TokenRequest:
    """One request to /token, as the server received it (form fields)."""

    fields: dict[str, str]
    status: int


class OAuth2Server:
    """Token and introspection endpoints; use as a context manager or call start()/stop()."""

    def __init__(self, host: str = LOCALHOST, *, expires_in: int = 3600) -> None:
        self.host = host
        self.port = 0
        #: ``expires_in`` of the next tokens issued (seconds); a test may change it.
        self.expires_in = expires_in
        #: Issue a new refresh token with every access token (as Microsoft does).
        self.rotate_refresh_tokens = False
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._tokens: dict[str, str] = {}  # live access token -> refresh token it came from
        self._queued: deque[tuple[int, dict[str, Any]]] = deque()
        self._counter = itertools.count(1)
        self.token_requests: list[TokenRequest] = []
        self.introspections: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> OAuth2Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._httpd is not None:
            raise RuntimeError("the OAuth2 server is already started")
        httpd = ThreadingHTTPServer((self.host, 0), _handler_class(self))
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="oauth2-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and join the thread. Safe to call twice."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    # -- test controls -------------------------------------------------------------------

    def add_grant(
        self,
        user: str,
        *,
        client_id: str = "helpdesk-client",
        client_secret: str | None = None,
        scope: str = "https://mail.google.com/",
        refresh_token: str | None = None,
    ) -> str:
        """Register a refresh token for ``user`` and return it."""
        refresh_token = refresh_token or f"rt-{secrets.token_urlsafe(16)}"
        with self._lock:
            self._grants[refresh_token] = Grant(user, client_id, client_secret, scope)
        return refresh_token

    def refuse_next(
        self,
        error: str = "invalid_grant",
        *,
        status: int = 400,
        count: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next ``count`` token requests with an OAuth2 error (or any status)."""
        body: dict[str, Any] = {"error": error}
        if description is not None:
            body["error_description"] = description
        with self._lock:
            self._queued.extend([(status, body)] * count)

    def revoke_grant(self, refresh_token: str) -> None:
        """Forget a refresh token (the user withdrew consent): further refreshes are refused."""
        with self._lock:
            self._grants.pop(refresh_token, None)

    def revoke(self, access_token: str | None = None) -> None:
        """End one access token early (all of them when None): introspection says inactive."""
        with self._lock:
            if access_token is None:
                self._tokens.clear()
            else:
                self._tokens.pop(access_token, None)

    def live_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def user_of(self, access_token: str) -> str | None:
        """The user a live access token belongs to, or None."""
        with self._lock:
            refresh = self._tokens.get(access_token)
            grant = self._grants.get(refresh) if refresh is not None else None
            return grant.user if grant is not None else None

    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self.token_requests)

    # -- request handling (server thread) ------------------------------------------------

    def _token(self, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            status, body = self._answer_token(fields)
            self.token_requests.append(TokenRequest(dict(fields), status))
            return status, body

    def _answer_token(self, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self._queued:
            return self._queued.popleft()
        if fields.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        refresh = fields.get("refresh_token", "")
        grant = self._grants.get(refresh)
        if grant is None:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            }
        if fields.get("client_id") != grant.client_id or (
            grant.client_secret is not None and fields.get("client_secret") != grant.client_secret
        ):
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        access = f"at-{next(self._counter)}-{secrets.token_urlsafe(12)}"
        self._tokens[access] = refresh
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": fields.get("scope") or grant.scope,
        }
        if self.rotate_refresh_tokens:
            new_refresh = f"rt-{secrets.token_urlsafe(16)}"
            self._grants[new_refresh] = grant
            self._tokens[access] = new_refresh
            body["refresh_token"] = new_refresh
        return 200, body

    def _introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            self.introspections.append(token)
            refresh = self._tokens.get(token)
            grant = self._grants.get(refresh) if refresh is not None else None
            if grant is None:
                return {"active": False}
            return {
                "active": True,
                "username": grant.user,
                "client_id": grant.client_id,
                "scope": grant.scope,
                "token_type": "Bearer",
            }


def _handler_class(server: OAuth2Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the recorded requests instead."""

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            fields = dict(parse_qsl(body, keep_blank_values=True))
            path = urlsplit(self.path).path
            if path == "/token":
                self._reply(*server._token(fields))
            elif path == "/introspect":
                self._reply(200, server._introspect(fields.get("token", "")))
            else:
                self._reply(404, {"error": "not_found"})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            if parts.path == "/introspect":
                token = query.get("token") or _bearer(self.headers.get("Authorization"))
                self._reply(200, server._introspect(token))
            else:
                self._reply(404, {"error": "not_found"})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _bearer(header: str | None) -> str:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return ""
