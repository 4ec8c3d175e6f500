"""The parsing process as a process: signals meant for the service, its parent's death, a
write cut short, and which code it runs (from a review of the switch from multiprocessing to
a plain subprocess)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

import lpse_helpdesk
from lpse_helpdesk.bridge.parse_worker import ParseWorker, Progress, serve_mails
from lpse_helpdesk.bridge.prepare import Prepared
from lpse_helpdesk.domain.loader import load_domain
from tests.mailmaker import make_mail

OWN = frozenset({"helpdesk@lpse.test"})
ROOT = Path(__file__).resolve().parent.parent


def _mail(subject: str) -> bytes:
    return make_mail(subject=subject, sender="vendor@vendor.co.id")


def _slow(conn: Connection, progress: Progress) -> None:
    """The real loop; each mail takes 0.2 s (well within the budget)."""
    import lpse_helpdesk.bridge.parse_worker as worker_module

    real = worker_module.prepare_light  # type: ignore[attr-defined]  # its import, patched below

    def prepare_light(raw: bytes, *args: Any) -> Any:
        time.sleep(0.2)
        return real(raw, *args)

    worker_module.prepare_light = prepare_light  # type: ignore[attr-defined,assignment]  # stand-in
    serve_mails(conn, progress)


def test_a_sigterm_to_the_whole_service_does_not_fail_the_mail_being_parsed() -> None:
    """`systemctl stop` (KillMode=control-group, deploy/lpse-helpdesk.service) sends SIGTERM
    to every process of the unit at once. The child ignores SIGINT for exactly that reason
    ("the parent ends this process") but not SIGTERM: it dies mid-batch and the parent
    blames the innocent mail in progress ("the parsing process died on this mail"), which
    counts toward its quarantine, and starts a new child while shutting down."""
    worker = ParseWorker(64 * 1024, OWN, load_domain(), budget=10.0, serve=_slow)
    try:
        worker.start(wait=True)
        assert worker._process is not None
        pid = worker._process.pid
        timer = threading.Timer(0.5, os.kill, (pid, signal.SIGTERM))
        timer.start()
        outcomes = worker.prepare([_mail(f"Surat {i}") for i in range(6)])
        timer.join()
    finally:
        worker.close()
    assert [type(o).__name__ for o in outcomes] == ["Prepared"] * 6


def _dies_inside_a_progress_write(conn: Connection, progress: Progress) -> None:
    """As a SIGKILL (OOM killer) or a group SIGTERM would land between the first and the
    last store of `Progress.set`: the sequence is left odd."""
    conn.send("ready")
    conn.recv()
    sequence = struct.unpack_from("=q", progress._map)[0]
    struct.pack_into("=q", progress._map, 0, sequence + 1)  # Progress.set's first step
    os.kill(os.getpid(), signal.SIGKILL)


_HANG_SCRIPT = """
from lpse_helpdesk.bridge.parse_worker import ParseWorker
from lpse_helpdesk.domain.loader import load_domain
from tests.test_parse_worker_process import OWN, _dies_inside_a_progress_write, _mail
worker = ParseWorker(64 * 1024, OWN, load_domain(), budget=1.0,
                     serve=_dies_inside_a_progress_write)
outcomes = worker.prepare([_mail("Satu")])
print("DONE", [type(o).__name__ for o in outcomes], flush=True)
worker.close()
"""


def test_a_child_killed_inside_a_progress_write_does_not_hang_the_parent() -> None:
    """`Progress.get` spins until the sequence is even: a writer that died mid-write leaves
    it odd for good, so the parent spins at 100% CPU forever, holding the worker's lock
    (`close`, hence the service's stop, waits on it too)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = subprocess.Popen(
        [sys.executable, "-c", _HANG_SCRIPT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = script.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        script.kill()  # the process this test started, by its id
        script.communicate()
        pytest.fail("prepare() never returned: Progress.get spins on an odd sequence")
    assert "DONE ['ParseFailed']" in out, err


_ORPHAN_SCRIPT = """
import os, signal, threading, time
from lpse_helpdesk.bridge.parse_worker import ParseWorker
from lpse_helpdesk.domain.loader import load_domain
from tests.test_parse_worker_process import OWN, _mail
from tests.test_parse_worker import _misbehaving
worker = ParseWorker(64 * 1024, OWN, load_domain(), budget=600.0, serve=_misbehaving)
worker.start(wait=True)
threading.Thread(target=worker.prepare, args=([_mail("LAMBAT")],), daemon=True).start()
while worker._progress.get()[0] < 0:
    time.sleep(0.01)
print(worker._process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the service dies (OOM killer, kill -9, a crash)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_the_parsing_process_does_not_outlive_the_service() -> None:
    """A child busy on a pathological mail never reads its socket, so it does not see the
    parent's death: it keeps burning a CPU (up to forever) beside the restarted service."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The child's pid on a pipe of its own; stderr to a file: the orphan would hold a pipe.
    script = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert script.stdout is not None
    line = script.stdout.readline()
    script.wait(timeout=60)
    script.stdout.close()
    child = int(line)
    try:
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the parsing process outlived its parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)  # the orphan this test made, by its id


def test_the_parsing_process_runs_the_parents_code_not_the_working_directorys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -c` puts the working directory first on sys.path, and the child imports
    lpse_helpdesk before it adopts the parent's sys.path. With the README's deployment
    (`git clone` to /opt/lpse-helpdesk, `pip install .`, WorkingDirectory=/opt/lpse-helpdesk)
    the child runs the checkout, not the installed package (and, unable to write
    __pycache__ there, compiles it on every restart); `lpse-helpdesk import` run from any
    directory executes whatever lpse_helpdesk (or json, mmap, socket...) lies there."""
    marker = tmp_path / "shadow-imported"
    shadow = tmp_path / "lpse_helpdesk"
    shadow.mkdir()
    real = Path(lpse_helpdesk.__file__).parent
    (shadow / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n__path__ = [{str(real)!r}]\n"
    )
    monkeypatch.chdir(tmp_path)
    worker = ParseWorker(64 * 1024, OWN, load_domain())
    try:
        outcomes = worker.prepare([_mail("Satu")])
    finally:
        worker.close()
    assert isinstance(outcomes[0], Prepared)
    assert not marker.exists(), "the child imported lpse_helpdesk from the working directory"
