"""A throwaway Dovecot 2.3 IMAP server on 127.0.0.1, run as a child process.

Each user has its own passwd-file (``users/<name>``): Dovecot opens a file it
has not seen before at once, whereas a single shared passwd-file is re-read at
most once a second. Mail processes run as ``nobody`` when we are root (Dovecot
refuses uid 0), otherwise as the current user.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import imaplib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.servers._proc import (
    LOCALHOST,
    find_binary,
    free_port,
    is_root,
    port_accepts,
    stop_process,
    tail,
    wait_until,
)

DEBIAN_PACKAGE = "dovecot-imapd"

_CONFIG = """\
protocols = imap
listen = {host}
ssl = no
disable_plaintext_auth = no
base_dir = {root}/run
state_dir = {root}/run
log_path = {root}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
first_valid_gid = 1
auth_failure_delay = 0
{mechanisms}mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 100
mailbox_idle_check_interval = 1 secs
verbose_proctitle = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u{passdb_extra}
}}
{oauth2_passdb}userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
  default_fields = uid={user} gid={group} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  # No listener: auth then runs without its per-IP penalty, so that failed
  # logins in tests are not slowed down by 2, 4, 8, 15 seconds.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""

# With an OAuth2 introspection URL: passwords for PLAIN/LOGIN, bearer tokens for
# XOAUTH2/OAUTHBEARER, each checked by its own passdb.
_OAUTH2_MECHANISMS = "auth_mechanisms = plain login xoauth2 oauthbearer\n"
_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
"""
_OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""

_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")
_USER_NAME = re.compile(r"[A-Za-z0-9._+@-]+")


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` binary, or None when it is not installed."""
    return find_binary("dovecot")


@dataclass(frozen=True)
class ImapAccount:
    """Login data of one mailbox on a :class:`DovecotServer`, with shortcuts to its helpers."""

    host: str
    port: int
    user: str
    password: str
    server: DovecotServer = field(repr=False, compare=False)

    def append(
        self,
        raw: bytes,
        flags: Sequence[str] = (),
        folder: str = "INBOX",
        date: datetime | None = None,
    ) -> int:
        """Append a message to this mailbox; see :meth:`DovecotServer.append`."""
        return self.server.append(self.user, raw, flags, folder, date)

    def drop_connections(self, *, hard: bool = False) -> None:
        """Drop this user's sessions; see :meth:`DovecotServer.drop_connections`."""
        self.server.drop_connections(self.user, hard=hard)

    def bump_uidvalidity(self, folder: str = "INBOX") -> int:
        """Change a folder's UIDVALIDITY; see :meth:`DovecotServer.bump_uidvalidity`."""
        return self.server.bump_uidvalidity(self.user, folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """The folder's current UIDVALIDITY."""
        return self.server.uidvalidity(self.user, folder)

    def create_folder(self, folder: str) -> None:
        """Create a folder in this mailbox."""
        self.server.create_folder(self.user, folder)


class DovecotServer:
    """Dovecot IMAP (no TLS) in a temp dir; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        host: str = LOCALHOST,
        port: int | None = None,
        *,
        oauth2_introspection_url: str | None = None,
    ) -> None:
        """``oauth2_introspection_url``: also accept XOAUTH2 and OAUTHBEARER logins, whose
        bearer tokens Dovecot checks at that RFC 7662 endpoint (``passdb oauth2``, POST);
        passwords then work for PLAIN and LOGIN only."""
        self.host = host
        self.port = port or 0
        self.oauth2_introspection_url = oauth2_introspection_url
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._passwords: dict[str, str] = {}
        self._counter = itertools.count(1)
        # Dovecot refuses to run mail or login processes as root.
        account = pwd.getpwnam("nobody") if is_root() else pwd.getpwuid(os.getuid())
        self._os_user = account.pw_name
        self._os_group = grp.getgrgid(account.pw_gid).gr_name

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def config_path(self) -> Path:
        """The generated dovecot.conf (valid after start())."""
        return self._root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        """Dovecot's log file (valid after start())."""
        return self._root / "dovecot.log"

    @property
    def running(self) -> bool:
        """Whether the master process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Write the config into a new temp dir and start Dovecot on a free port."""
        if self._proc is not None:
            raise RuntimeError("Dovecot is already started")
        root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.root = root
        root.chmod(0o755)
        for sub in ("users", "home"):
            (root / sub).mkdir()
        (root / "users").chmod(0o755)
        shutil.chown(root / "home", self._os_user, self._os_group)
        atexit.register(self.stop)
        fixed_port = self.port != 0
        try:
            for attempt in range(3):
                if not fixed_port:
                    self.port = free_port(self.host)
                try:
                    self._spawn()
                    return
                except RuntimeError:  # most likely someone took the port meanwhile
                    if fixed_port or attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """Stop and start the master on the same port, keeping users and mail."""
        self._terminate()
        self._spawn()

    def stop(self) -> None:
        """Stop Dovecot and delete its temp dir. Safe to call twice."""
        atexit.unregister(self.stop)
        self._terminate()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def log_text(self) -> str:
        """The last lines of Dovecot's log, for failure messages."""
        return tail(self.log_path) if self.root else ""

    # -- users and mail ----------------------------------------------------------

    def add_user(self, user: str | None = None, password: str | None = None) -> ImapAccount:
        """Create a user with an empty mailbox; usable at once, without a reload."""
        if user is None:
            user = f"user{next(self._counter)}-{secrets.token_hex(3)}@lpse.test"
        if not _USER_NAME.fullmatch(user) or user in self._passwords:
            raise ValueError(f"bad or duplicate user name: {user!r}")
        password = password or secrets.token_urlsafe(12)
        if ":" in password or "\n" in password:
            raise ValueError("a password must not contain ':' or a newline")
        entry = self._root / "users" / user
        tmp = entry.with_name(f".{user}.tmp")
        tmp.write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        tmp.chmod(0o644)
        tmp.rename(entry)
        self._passwords[user] = password
        return ImapAccount(self.host, self.port, user, password, self)

    def append(
        self,
        user: str,
        raw: bytes,
        flags: Sequence[str] = (),
        folder: str = "INBOX",
        date: datetime | None = None,
    ) -> int:
        """APPEND ``raw`` over a separate IMAP connection and return its UID."""
        conn = self.connect(user)
        try:
            flag_list = f"({' '.join(flags)})" if flags else None
            when = imaplib.Time2Internaldate(date) if date is not None else None
            typ, data = conn.append(_quote(folder), flag_list, when, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
            match = _APPENDUID.search(data[0] or b"")
            if match is None:
                raise RuntimeError(f"no APPENDUID in {data!r}")
            return int(match.group(1))
        finally:
            conn.logout()

    def connect(self, user: str) -> imaplib.IMAP4:
        """A logged-in imaplib connection for ``user``; the caller logs out."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        conn.login(user, self._passwords[user])
        return conn

    def create_folder(self, user: str, folder: str) -> None:
        """Create ``folder`` for ``user``."""
        self.doveadm("mailbox", "create", "-u", user, folder)

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """The UIDVALIDITY of ``folder`` as Dovecot has it now."""
        out = self.doveadm("-f", "flow", "mailbox", "status", "-u", user, "uidvalidity", folder)
        match = re.search(r"uidvalidity=(\d+)", out)
        if match is None:
            raise RuntimeError(f"unexpected doveadm output: {out!r}")
        return int(match.group(1))

    def bump_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Give ``folder`` a new UIDVALIDITY (existing mail stays) and return it.

        Uses ``doveadm mailbox update --uid-validity``; UIDs stay as they were.
        A session with the folder selected hears nothing while it idles; its
        next command gets ``* BYE IMAP session state is inconsistent, please
        relogin.`` and the connection is closed.
        """
        old = self.uidvalidity(user, folder)
        new = old + 1 if old < 0xFFFFFFFF else 1
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        return new

    def drop_connections(self, user: str | None = None, *, hard: bool = False) -> None:
        """Drop the server side of logged-in IMAP sessions (all users when ``user`` is None).

        Soft (default): ``doveadm kick``; the client gets ``* BYE`` and then EOF.
        Hard: SIGKILL the session processes; the client sees EOF with no BYE.
        """
        if hard:
            for pid in self._session_pids(user):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        # Exit code 68 means "no users kicked": nobody was connected.
        self.doveadm("kick", user if user is not None else "*", ok_codes=(0, 68))

    def doveadm(self, *args: str, ok_codes: Sequence[int] = (0,)) -> str:
        """Run ``doveadm -c <our config> args...`` and return its stdout."""
        binary = find_binary("doveadm")
        if binary is None:
            raise RuntimeError(f"doveadm not found (Debian package {DEBIAN_PACKAGE})")
        done = subprocess.run(
            [binary, "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode not in ok_codes:
            raise RuntimeError(
                f"doveadm {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
        return done.stdout

    # -- internals ---------------------------------------------------------------

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("Dovecot is not started")
        return self.root

    def _spawn(self) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise FileNotFoundError(f"dovecot not found (Debian package {DEBIAN_PACKAGE})")
        root = self._root
        oauth2_url = self.oauth2_introspection_url
        if oauth2_url is not None:
            (root / "oauth2.conf.ext").write_text(_OAUTH2_CONFIG.format(url=oauth2_url))
        self.config_path.write_text(
            _CONFIG.format(
                host=self.host,
                port=self.port,
                root=root,
                user=self._os_user,
                group=self._os_group,
                mechanisms=_OAUTH2_MECHANISMS if oauth2_url else "",
                passdb_extra="\n  mechanisms = plain login" if oauth2_url else "",
                oauth2_passdb=_OAUTH2_PASSDB.format(root=root) if oauth2_url else "",
            )
        )
        with (root / "stderr.log").open("ab") as stderr:
            self._proc = subprocess.Popen(
                [binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            wait_until(self._ready, 15, f"Dovecot on port {self.port}")
        except (TimeoutError, RuntimeError) as exc:
            self._terminate()
            raise RuntimeError(
                f"Dovecot did not start: {exc}\n{tail(root / 'stderr.log')}\n{self.log_text()}"
            ) from exc

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("dovecot exited")
        return port_accepts(self.host, self.port)

    def _terminate(self) -> None:
        if self._proc is not None:
            # SIGTERM to the master alone makes it wait for its children (1-6 s);
            # the whole group stops in milliseconds.
            stop_process(self._proc, group=True)
            self._proc = None

    def _session_pids(self, user: str | None) -> list[int]:
        """PIDs of ``dovecot/imap`` children of our master (their titles name the user)."""
        if self._proc is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid != self._proc.pid or not title.startswith("dovecot/imap "):
                continue
            if user is None or f"[{user} " in title:
                pids.append(int(entry.name))
        return pids


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
