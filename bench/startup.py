"""Issue #14: start-up figures. `lpse-helpdesk run` spawn -> first IMAP sync; `rekap --output -`.

Starts a throwaway Dovecot (tests/servers/dovecot.py) and the Bot API test server
(tests/servers/telegram.py), writes an env file for them with a SQLite database in a
temporary directory and migrates it once (`lpse-helpdesk db upgrade`, not timed: a restart
finds its schema up to date). Then R times (default 5):

* run: one new mail is APPENDed, `lpse-helpdesk run` is spawned, and the time from the spawn
  to the log line of the sync that committed that mail ("IMAP sync: 1 fetched") is taken;
  then SIGTERM, and the process must exit 0. At that moment the resident memory (VmRSS) of
  the service and of its mail parsing process is read too: the whole service at rest, with
  the Telegram bot, the outbox senders and the SLA scan, not the intake alone;
* rekap: `lpse-helpdesk rekap --output -` (this month, CSV to stdout) on that small database
  (the R tickets the runs made), spawn to exit; beside each, the floor: a fresh interpreter
  that only imports the libraries rekap cannot do without (SQLAlchemy Core, PyYAML for the
  SOP data, python-dotenv and our schema's Core tables, the way rekap does: collector
  paused), so that what rekap adds shows. rekap imports neither the ORM nor pydantic.

``--importtime`` also prints the ten slowest imports of each command (``python -X
importtime``, cumulative), the first place to look when a figure grows; ``--trace`` prints
the first run's log lines with their times (where the start-up of `run` goes).

    .venv/bin/python -m bench.startup
    .venv/bin/python -m bench.startup -r 9 --importtime

Targets (issue #14): run -> first IMAP sync <= 1.5 s; rekap --output - <= 0.5 s (medians).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mailmaker import make_mail
from tests.servers.dovecot import DovecotServer
from tests.servers.telegram import BotApiServer

RUN_TARGET = 1.5
REKAP_TARGET = 0.5
GROUP = -1001234567890
HELPDESK = "helpdesk@lpse.test"
COMMAND = [sys.executable, "-m", "lpse_helpdesk"]


def _env_file(path: Path, *, imap: tuple[str, int, str, str], telegram: BotApiServer) -> None:
    host, port, user, password = imap
    settings = {
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_API_URL": telegram.base_url,
        "HELPDESK_CHAT_ID": str(GROUP),
        "IMAP_HOST": host,
        "IMAP_PORT": str(port),
        "IMAP_USER": user,
        "IMAP_PASSWORD": password,
        "IMAP_SECURITY": "plain",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "2",  # nothing is sent: no acknowledgements
        "SMTP_SECURITY": "plain",
        "SEND_ACKNOWLEDGEMENT": "false",
        "HELPDESK_EMAIL": HELPDESK,
        "LKPP_HELPDESK_EMAIL": "helpdesk@lkpp.test",
        "DATABASE_URL": f"sqlite:///{path.parent / 'helpdesk.sqlite3'}",
        "REKAP_MONTHLY": "false",
        "LOG_LEVEL": "INFO",
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))


def _clean_env() -> dict[str, str]:
    # Only the env file speaks: settings in this shell's environment would win over it.
    return {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _tree_rss_mib(pid: int) -> tuple[float, float]:
    """VmRSS of the process and the sum of its children's (the mail parsing process)."""
    children = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rpartition(")")[2].split()[1])
            if parent == pid:
                children += _rss_mib(int(entry))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return _rss_mib(pid), children


def time_run(
    env_file: Path, timeout: float, *, trace: bool = False
) -> tuple[float, tuple[float, float]]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*COMMAND, "--env-file", str(env_file), "run"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_clean_env(),
    )
    assert proc.stderr is not None
    seen: float | None = None
    rss = (0.0, 0.0)
    lines: list[str] = []
    try:
        deadline = started + timeout
        for line in proc.stderr:
            lines.append(line)
            if trace:
                print(f"    {time.perf_counter() - started:6.3f} s  {line.rstrip()[:150]}")
            if "IMAP sync: 1 fetched, 1 committed" in line:
                seen = time.perf_counter() - started
                rss = _tree_rss_mib(proc.pid)
                break
            if time.perf_counter() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rest = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[1]
    if seen is None or proc.returncode != 0:
        tail = "".join(lines[-20:]) + (rest or "")
        raise RuntimeError(f"run did not sync its mail (exit {proc.returncode}):\n{tail}")
    return seen, rss


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_rekap(env_file: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [*COMMAND, "--env-file", str(env_file), "rekap", "--output", "-"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "LPSE-" not in done.stdout:
        raise RuntimeError(f"rekap failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


_FLOOR = (
    "import gc; gc.disable(); import dotenv, sqlalchemy, yaml; "
    "import lpse_helpdesk.storage.tables; gc.freeze()"
)


def time_floor() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", _FLOOR], check=True, env=_clean_env())
    return time.perf_counter() - started


def importtime(env_file: Path, args: list[str], top: int = 10) -> None:
    """The slowest imports (cumulative) of one command, from `python -X importtime`."""
    if args[0] == "run":
        return  # a service: its imports are the same as those before the first sync
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "lpse_helpdesk",
            "--env-file",
            str(env_file),
            *args,
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line[len("import time:") :].split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative), name.rstrip()))
    total = sum(c for c, n in rows if not n.startswith("  "))
    print(f"  imports of `{' '.join(args)}`: {total / 1e6:.2f} s at top level; slowest:")
    for micros, module in sorted(rows, reverse=True)[:top]:
        print(f"    {micros / 1e6:6.3f} s {module}")


def _stats(name: str, values: list[float], target: float) -> bool:
    median = statistics.median(values)
    met = median <= target
    print(
        f"  {name:<28} median {median:6.3f} s   min {min(values):6.3f} s   "
        f"max {max(values):6.3f} s   target <= {target} s: {'met' if met else 'MISSED'}"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--repeat", type=int, default=5, help="runs of each command")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--importtime", action="store_true", help="list the slowest imports")
    parser.add_argument(
        "--trace", action="store_true", help="print the first run's log lines with their times"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    run_times: list[float] = []
    run_rss: list[tuple[float, float]] = []
    rekap_times: list[float] = []
    rekap_cpu: list[float] = []
    floor_times: list[float] = []
    try:
        with DovecotServer() as dovecot, BotApiServer() as telegram:
            telegram.group(GROUP)
            account = dovecot.add_user()
            env_file = work / "helpdesk.env"
            imap = (account.host, account.port, account.user, account.password)
            _env_file(env_file, imap=imap, telegram=telegram)
            subprocess.run(
                [*COMMAND, "--env-file", str(env_file), "db", "upgrade"],
                check=True,
                capture_output=True,
                env=_clean_env(),
            )
            appender = dovecot.connect(account.user)
            try:
                for i in range(args.repeat):
                    tag = secrets.token_hex(4)
                    raw = make_mail(
                        sender=f"Penyedia {i} <penyedia{i}.{tag}@vendor.co.id>",
                        to=f"Helpdesk LPSE <{HELPDESK}>",
                        subject=f"Gagal upload penawaran paket {10_000_000 + i}",
                        message_id=f"<startup.{tag}.{i}@vendor.co.id>",
                    )
                    appender.append("INBOX", None, None, raw)
                    seconds, rss = time_run(env_file, args.timeout, trace=args.trace and i == 0)
                    run_times.append(seconds)
                    run_rss.append(rss)
                    print(
                        f"  run {i + 1}: first IMAP sync after {seconds:.3f} s; RSS then"
                        f" {sum(rss):.0f} MiB ({rss[0]:.0f} service + {rss[1]:.0f} parsing"
                        " process)",
                        flush=True,
                    )
            finally:
                appender.logout()
            for i in range(args.repeat):
                cpu = _children_cpu()
                rekap_times.append(time_rekap(env_file))
                rekap_cpu.append(_children_cpu() - cpu)
                floor_times.append(time_floor())
                print(
                    f"  rekap {i + 1}: {rekap_times[-1]:.3f} s (CPU {rekap_cpu[-1]:.3f} s;"
                    f" floor {floor_times[-1]:.3f} s)",
                    flush=True,
                )
            if args.importtime:
                importtime(env_file, ["rekap", "--output", "-"])
                importtime(env_file, ["check-config"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nstart-up over {args.repeat} runs ({os.cpu_count()} CPUs):")
    ok = _stats("run spawn -> first IMAP sync", run_times, RUN_TARGET)
    ok = _stats("rekap --output -", rekap_times, REKAP_TARGET) and ok
    whole = statistics.median(sum(r) for r in run_rss)
    print(
        f"  the whole service after its first sync: RSS median {whole:.0f} MiB (service"
        f" {statistics.median(r[0] for r in run_rss):.0f} + parsing process"
        f" {statistics.median(r[1] for r in run_rss):.0f})"
    )
    print(
        f"  (rekap CPU time: median {statistics.median(rekap_cpu):.3f} s; floor, the libraries"
        f" alone: median {statistics.median(floor_times):.3f} s; the wall time above"
        f" also holds the waits for a shared, loaded machine; load average "
        f"{os.getloadavg()[0]:.1f})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
