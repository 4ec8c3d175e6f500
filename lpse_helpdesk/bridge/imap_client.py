"""A blocking IMAP session (imap-tools) used from one worker thread by the intake service."""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import io
import logging
import re
import selectors
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted, MailMessage, MailMessageFlags
from imap_tools.errors import MailboxLoginError, UnexpectedCommandStatusError
from imap_tools.mailbox import BaseMailBox

from lpse_helpdesk.bridge.oauth2 import TokenSource, xoauth2_string
from lpse_helpdesk.config.settings import Security

log = logging.getLogger(__name__)

FETCH_BATCH = 200  # mails per FETCH command: one round trip for many mails
META_BATCH = 2000  # UIDs per FETCH of arrival times and sizes
IDLE_MAX_SECONDS = 29 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
IDLE_MAX_LINES = 1000  # read per wake-up; the rest waits in the buffer for DONE
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
# Server responses (not mail text); each a single bounded scan.
_META_UID = re.compile(rb"\bUID (\d++)")
_META_DATE = re.compile(rb'\bINTERNALDATE "([^"]{1,64}+)"')
_META_SIZE = re.compile(rb"\bRFC822\.SIZE (\d++)")


class FolderRefused(Exception):
    """The server refused to create or move into a folder (a NO, not a lost connection)."""

    def __init__(self, folder: str, cause: str) -> None:
        super().__init__(f"{folder}: {cause}")
        self.folder = folder
        self.cause = cause


@dataclass(frozen=True)
class MailMeta:
    """What the server says about a mail before it is fetched."""

    uid: int
    internaldate: dt.datetime | None  # when the server received it (aware, UTC)
    size: int  # RFC822.SIZE in bytes


def parse_internaldate(value: bytes) -> dt.datetime | None:
    """``01-Dec-2026 20:13:11 +0700`` -> aware UTC datetime; None when unreadable."""
    try:
        parsed = dt.datetime.strptime(value.decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed.astimezone(dt.UTC)


def uid_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``1:3,7`` (shorter commands for long, mostly contiguous lists)."""
    ordered = sorted(set(uids))
    ranges: list[str] = []
    start = previous = ordered[0] if ordered else 0
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        ranges.append(f"{start}:{previous}" if previous > start else str(start))
        start = previous = uid
    if ordered:
        ranges.append(f"{start}:{previous}" if previous > start else str(start))
    return ",".join(ranges)


class RawMailMessage(MailMessage):
    """Keeps the raw bytes and skips imap-tools' own parsing (we parse once, ourselves)."""

    def __init__(self, fetch_data: list[Any]) -> None:
        raw, uid_data, flag_data = self._get_message_data_parts(fetch_data)
        self._raw_uid_data = uid_data
        self._raw_flag_data = flag_data
        self.raw: bytes = raw


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    user: str
    password: str
    security: Security
    folder: str = "INBOX"
    timeout: float = 30.0
    #: Log in with SASL XOAUTH2 and tokens from here instead of LOGIN with ``password``.
    oauth2: TokenSource | None = None


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes
    internaldate: dt.datetime | None = None


class ImapSession:
    """One logged-in connection with the folder selected. Not thread-safe: one thread only."""

    def __init__(self, account: ImapAccount) -> None:
        self.account = account
        self.mailbox: BaseMailBox | None = None
        self.supports_idle = False

    def connect(self) -> None:
        """Connect, log in and select the folder.

        With OAuth2, a token the server refuses is dropped and the login tried once more with
        a fresh one (it may have been revoked or have expired early). Raises
        MailboxLoginError when the login is refused, OAuth2Error when no token can be had.
        """
        account = self.account
        source = account.oauth2
        if source is None:
            self._connect(
                lambda box: box.login(account.user, account.password, initial_folder=None)
            )
            return
        token = source.token()
        try:
            self._connect(lambda box: _xoauth2_login(box, account.user, token))
        except MailboxLoginError:
            source.invalidate(token)
            log.info("IMAP refused the OAuth2 access token; retrying once with a fresh one")
            token = source.token()
            self._connect(lambda box: _xoauth2_login(box, account.user, token))

    def _connect(self, login: Callable[[BaseMailBox], object]) -> None:
        account = self.account
        mailbox: BaseMailBox
        if account.security is Security.SSL:
            mailbox = MailBox(account.host, account.port, timeout=account.timeout)
        elif account.security is Security.STARTTLS:
            mailbox = MailBoxStartTls(account.host, account.port, timeout=account.timeout)
        else:
            mailbox = MailBoxUnencrypted(account.host, account.port, timeout=account.timeout)
        mailbox.email_message_class = RawMailMessage
        try:
            login(mailbox)
            mailbox.folder.set(account.folder)
            # imaplib caches the pre-login capabilities; ask again after login.
            typ, data = mailbox.client.capability()
            caps = data[0].upper().split() if typ == "OK" and data and data[0] else []
            self.supports_idle = b"IDLE" in caps
            _keepalive(mailbox.client.sock, account.timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                mailbox.logout()
            raise
        self.mailbox = mailbox

    @property
    def box(self) -> BaseMailBox:
        if self.mailbox is None:
            raise ConnectionError("not connected")
        return self.mailbox

    def uidvalidity(self) -> int:
        typ, data = self.box.client.status(_quote(self.account.folder), "(UIDVALIDITY)")
        match = _UIDVALIDITY.search(data[0] or b"") if typ == "OK" and data else None
        if match is None:
            raise ConnectionError("the server did not report UIDVALIDITY")
        return int(match.group(1))

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`, seen or not (a person may have read them already)."""
        found = self.box.uids(f"UID {last_uid + 1}:*")
        return sorted(uid for uid in map(int, found) if uid > last_uid)

    def uids_up_to(self, last_uid: int, *, unseen: bool = False) -> list[int]:
        """UIDs from 1 to `last_uid` still in the folder (only the unseen ones if asked)."""
        if last_uid <= 0:
            return []
        found = self.box.uids(f"{'UNSEEN ' if unseen else ''}UID 1:{last_uid}")
        return sorted(uid for uid in map(int, found) if uid <= last_uid)

    def meta(self, uids: Sequence[int]) -> dict[int, MailMeta]:
        """INTERNALDATE and RFC822.SIZE of each UID, without fetching any mail."""
        found: dict[int, MailMeta] = {}
        ordered = sorted(uids)
        for start in range(0, len(ordered), META_BATCH):
            chunk = ordered[start : start + META_BATCH]
            typ, data = self.box.client.uid("FETCH", uid_set(chunk), "(INTERNALDATE RFC822.SIZE)")
            if typ != "OK":
                raise ConnectionError(f"FETCH of arrival times failed: {typ}")
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                if not isinstance(line, bytes):
                    continue
                uid_match = _META_UID.search(line)
                if uid_match is None:
                    continue
                date_match = _META_DATE.search(line)
                size_match = _META_SIZE.search(line)
                uid = int(uid_match.group(1))
                found[uid] = MailMeta(
                    uid,
                    parse_internaldate(date_match.group(1)) if date_match else None,
                    int(size_match.group(1)) if size_match else 0,
                )
        return found

    def uids_between(self, since: dt.date, before: dt.date | None) -> list[int]:
        """UIDs of mail the server received on or after `since` (and before `before`)."""
        criteria = f"SINCE {_imap_date(since)}"
        if before is not None:
            criteria += f" BEFORE {_imap_date(before)}"
        return sorted(int(u) for u in self.box.uids(criteria))

    def fetch(self, uids: Sequence[int]) -> list[FetchedMail]:
        """The raw mails, in bulk, without setting \\Seen (that waits for the commit)."""
        if not uids:
            return []
        result = []
        for message in self.box.fetch(
            uid_list=[str(u) for u in uids], mark_seen=False, bulk=FETCH_BATCH
        ):
            if isinstance(message, RawMailMessage) and message.uid is not None:
                result.append(FetchedMail(int(message.uid), message.raw))
        return result

    def mark_handled(self, uids: Iterable[int], move_to: str | None) -> None:
        """\\Seen, then move to the processed folder when one is configured."""
        uid_list = [str(u) for u in uids]
        if not uid_list:
            return
        self.box.flag(uid_list, MailMessageFlags.SEEN, True)
        if move_to:
            self.move(uid_list, move_to)

    def move(self, uids: Iterable[int | str], folder: str) -> None:
        """Move into `folder` (created when missing). A refusal by the server (NO: no
        permission, quota, a name it does not allow) raises FolderRefused; a lost connection
        raises as usual."""
        uid_list = [str(u) for u in uids]
        if not uid_list:
            return
        try:
            self.ensure_folder(folder)
            self.box.move(uid_list, folder)
        except imaplib.IMAP4.abort:
            raise
        except (UnexpectedCommandStatusError, imaplib.IMAP4.error) as error:
            raise FolderRefused(folder, str(error)[:300]) from None

    def ensure_folder(self, folder: str) -> None:
        if not self.box.folder.exists(folder):
            self.box.folder.create(folder)

    def idle(self, timeout: float) -> list[bytes]:
        """Wait for the server to report a change (IDLE), at most `timeout` seconds.

        Returns what the server said (empty after a timeout, or on a wake-up without a
        complete response); a connection lost under IDLE raises, as in any other command.

        A mail that arrived while we were fetching or marking was announced in those
        commands' responses, which imaplib keeps aside; IDLE would not hear of it again,
        so such an announcement ends the wait at once. A mail that arrived after the last
        command is announced by the server as IDLE begins, often in the very packet that
        carries "+ idling": those lines already sit in imaplib's read buffer, where waiting
        on the socket would never see them, so the buffer is read first.
        """
        client = self.box.client
        pending = client.untagged_responses
        if _announced(pending):
            pending.clear()
            return [b"EXISTS (announced during the last sync)"]
        pending.clear()
        tag = _idle_start(client)
        if _announced(pending):  # said before "+ idling", kept aside by imaplib
            pending.clear()
            lines = [b"EXISTS (announced as IDLE began)"]
        else:
            lines = _idle_responses(client, min(timeout, IDLE_MAX_SECONDS))
        _idle_done(client, tag)  # what the server says meanwhile stays for the next call
        return lines

    def interrupt(self) -> None:
        """From another thread: make a blocking IDLE return now (used when stopping)."""
        mailbox = self.mailbox
        if mailbox is not None:
            with contextlib.suppress(OSError, AttributeError):
                mailbox.client.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        mailbox, self.mailbox = self.mailbox, None
        if mailbox is not None:
            with contextlib.suppress(Exception):
                mailbox.logout()
            with contextlib.suppress(Exception):
                mailbox.client.shutdown()


def _announced(pending: dict[str, Any]) -> bool:
    return "EXISTS" in pending or "RECENT" in pending


def _idle_start(client: imaplib.IMAP4) -> bytes:
    """Send IDLE and read up to the server's "+ idling"; the command's tag.

    Untagged responses before the continuation are kept in ``untagged_responses`` (imaplib
    does that); a tagged answer instead (IDLE refused) raises."""
    tag: bytes = client._command("IDLE")
    while client._get_response() is not None:  # None: the continuation
        result = client.tagged_commands.get(tag)
        if result:
            client.tagged_commands.pop(tag, None)
            raise imaplib.IMAP4.error(f"IDLE refused: {result!r:.200}")
    return tag


def _idle_responses(client: imaplib.IMAP4, timeout: float) -> list[bytes]:
    """The server's lines during IDLE: what is already received, else what comes within
    `timeout` seconds (only whole lines; [] when none came)."""
    if not _received(client) and not _wait_readable(client.sock, timeout):
        return []
    lines: list[bytes] = []
    while len(lines) < IDLE_MAX_LINES and _received(client):
        lines.append(client._get_line())
    return lines


def _idle_done(client: imaplib.IMAP4, tag: bytes) -> None:
    """End IDLE (DONE) and read up to its tagged answer; untagged lines on the way are kept
    in ``untagged_responses`` like any command's."""
    client.send(b"DONE\r\n")
    while not client.tagged_commands.get(tag):
        client._get_response()
    result: Any = client.tagged_commands.pop(tag)  # (type, [data]), typeshed says otherwise
    if result[0] != "OK":
        raise imaplib.IMAP4.error(f"IDLE ended with {result!r:.200}")


def _received(client: imaplib.IMAP4) -> bool:
    """Whether bytes from the server wait to be read, in imaplib's buffer, TLS's, or the
    socket's; never blocks. False too at end of file (the next read then says so)."""
    reader = getattr(client, "_file", None) or client.file  # `_file` from Python 3.14 on
    sock = client.sock
    previous = sock.gettimeout()
    sock.settimeout(0)
    try:
        return bool(cast(io.BufferedReader, reader).peek(1))
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    except OSError:
        return True  # a reset or the like: the read that follows raises it
    finally:
        sock.settimeout(previous)


def _wait_readable(sock: socket.socket, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(max(0.0, timeout)))


def _keepalive(sock: socket.socket, timeout: float) -> None:
    """TCP keepalive so that a connection that silently died (a network drop mid-IDLE, no
    FIN or RST ever arrives) is noticed within about IMAP_TIMEOUT instead of after IDLE's 29
    minutes: probes start after a third of it, three unanswered probes end the connection."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        first = max(1, int(timeout / 3))
        interval = max(1, int(timeout / 6))
        for name, value in (("TCP_KEEPIDLE", first), ("TCP_KEEPINTVL", interval)):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
        count = getattr(socket, "TCP_KEEPCNT", None)
        if count is not None:
            sock.setsockopt(socket.IPPROTO_TCP, count, 3)


def _xoauth2_login(mailbox: BaseMailBox, user: str, token: str) -> None:
    """AUTHENTICATE XOAUTH2. On a refusal the server sends an error challenge (JSON); the
    client must answer it with an empty line to get the final NO (Google's and Dovecot's
    protocol), so the credentials go out on the first challenge only."""
    response = xoauth2_string(user, token).encode()
    try:
        mailbox.client.authenticate("XOAUTH2", lambda challenge: b"" if challenge else response)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as error:
        # imaplib says NO as a bare IMAP4.error; make it the same error a refused LOGIN is.
        raise MailboxLoginError(("NO", [str(error).encode()]), "OK") from None


def _imap_date(day: dt.date) -> str:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{day.day}-{months[day.month - 1]}-{day.year}"


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
