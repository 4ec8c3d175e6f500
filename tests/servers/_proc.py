"""Small helpers shared by the server wrappers: ports, binaries, process shutdown."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

LOCALHOST = "127.0.0.1"
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def find_binary(name: str, *extra_dirs: str) -> str | None:
    """Find ``name`` on PATH, then in the sbin directories and ``extra_dirs``."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS, *extra_dirs])
    return shutil.which(name, path=path)


def is_root() -> bool:
    """Whether this process runs as root (as CI does)."""
    return os.geteuid() == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 20 ms until it returns true; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def port_accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def stop_process(
    proc: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    *,
    group: bool = False,
    timeout: float = 10.0,
) -> None:
    """Send ``sig`` (to the whole process group if ``group``), wait up to ``timeout``,
    then SIGKILL whatever is left of the process group.

    The process must have been started with ``start_new_session=True`` so that
    its children share its process group and die with it.
    """
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or '' when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
