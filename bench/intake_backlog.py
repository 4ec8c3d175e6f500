"""Issue #3: a backlog of N mails in a Dovecot INBOX turned into tickets on SQLite.

For each size N (default 1,000 and 10,000) this starts a throwaway Dovecot
(tests/servers/dovecot.py), fills a new user's INBOX with N realistic, unique mails over one
IMAP connection (not timed), then runs the real ``MailIntakeService.sync_once()`` in a fresh
child process against a fresh SQLite database made by the real migrations. The child reports
wall time and the peak RSS (``ru_maxrss``) of itself and of every helper process it started
(the mail parser, and multiprocessing's resource tracker if one runs; their sum is the
figure: issue #14 wants all of them together under 150 MB); the parent
checks the result (tickets, messages, no failures, every mail \\Seen on the server) and prints
mails/s, the time-per-mail ratio between the sizes (1.0 = linear) and, within each run, the ms
per mail over the first and the last tenth of the backlog (growth with the database, free of
the noise between runs).

    .venv/bin/python -m bench.intake_backlog                    # 1000 and 10000
    .venv/bin/python -m bench.intake_backlog --sizes 500,2000
    .venv/bin/python -m bench.intake_backlog --repeat 3         # each mailbox synced 3 times
    .venv/bin/python -m bench.intake_backlog --sizes 2000 --profile /tmp/intake.prof

``--py-spy FILE`` samples the child with py-spy (``pip install py-spy``; real threads, little
overhead) and prints where the time of the ingest goes, function by function. ``--profile FILE``
runs the child under cProfile instead, with the IMAP and database work executed inline on the
main thread (so that one profile sees all of it). Neither run's timings are the figures.
``--keep-db FILE`` keeps a copy of the (last) SQLite database, e.g. for EXPLAIN QUERY PLAN.

Mix of mails (seeded, so runs are comparable): about 58 % plain text of 2-10 KB, 10 %
multipart/alternative, 10 % HTML-only, 10 % with a small PDF attachment, 12 % replies (with
quoted text) to an earlier mail of the backlog, which join its ticket instead of opening one.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import random
import resource
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from lpse_helpdesk.bridge.inbound import MailIntakeService
    from lpse_helpdesk.storage.db import Database
    from tests.servers.dovecot import ImapAccount

ROOT = Path(__file__).resolve().parent.parent
HELPDESK = "helpdesk@lpse.test"
LKPP = "helpdesk@lkpp.test"
RESULT_MARK = "BENCH-RESULT "
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"  # the child's IMAP password (not on its command line)
TARGET_MAILS_PER_SECOND = 600.0  # issue #14 (issue #3: 200)
TARGET_RSS_MIB = 150e6 / 2**20  # issue #14: 150 MB (143 MiB), every process together
T = TypeVar("T")

# --------------------------------------------------------------------------- the mails

_FIRST = ["Budi", "Siti", "Rina", "Agus", "Dewi", "Hendra", "Yuli", "Joko", "Wati", "Andi"]
_LAST = ["Santoso", "Wulandari", "Pratama", "Hidayat", "Lestari", "Saputra", "Rahman", "Putri"]
_FIRMS = ["ptmaju", "cvberkah", "ptkarya", "cvsinar", "ptbangun", "cvmandiri", "ptsentosa"]
_TLDS = ["co.id", "com", "id", "go.id"]

_SUBJECTS = [
    "Gagal upload penawaran paket {code}",
    "Lupa password akun SPSE",
    "Mohon reset akun, akun terkunci",
    "Verifikasi akun penyedia belum selesai",
    "Perubahan email akun penyedia",
    "Dokumen penawaran tidak dapat dibuka oleh Pokja",
    "Apendo tidak bisa enkripsi dokumen",
    "Sertifikat elektronik kedaluwarsa, passphrase ditolak",
    "Jadwal tahapan tender {code} belum berubah",
    "Sanggahan untuk paket {code}",
    "Pencatatan non tender tidak muncul",
    "Paket di SiRUP tidak tampil",
    "Produk e-katalog tidak bisa diperbarui",
    "SPSE tidak dapat diakses sejak pagi",
    "Konsultasi regulasi pengadaan langsung",
    "Tidak bisa login ke SPSE, muncul pesan error",
    "Data kualifikasi SiKAP tidak tersimpan",
    "Pertanyaan mengenai paket {code}",
]

_SENTENCES = [
    "Selamat siang Bapak/Ibu Helpdesk LPSE, kami dari penyedia jasa konstruksi.",
    "Kami mengalami kendala saat mengunggah dokumen penawaran pada paket {code}.",
    "Setiap kali tombol unggah ditekan muncul pesan galat dan proses berhenti di 80 persen.",
    "Sudah kami coba dengan peramban Chrome dan Firefox versi terbaru, hasilnya sama.",
    "Batas waktu pemasukan penawaran adalah besok pukul 15.00 WIB.",
    "Mohon bantuan agar dokumen kami dapat terkirim sebelum batas waktu.",
    "Berkas yang kami unggah berukuran sekitar 18 MB dalam format zip.",
    "Akun kami terdaftar atas nama perusahaan dengan NPWP yang sama sejak 2019.",
    "Kami juga sudah menghapus cache dan cookie peramban sesuai panduan.",
    "Apabila diperlukan, kami bersedia datang langsung ke kantor LPSE.",
    "Nomor telepon yang dapat dihubungi: 0812-{phone}.",
    "Terlampir tangkapan layar pesan kesalahan yang muncul di layar.",
    "Pokja Pemilihan menyampaikan bahwa dokumen kami belum diterima di sistem.",
    "Kami khawatir penawaran kami dianggap tidak memenuhi syarat karena kendala ini.",
    "Mohon informasi langkah apa yang harus kami lakukan selanjutnya.",
    "Atas perhatian dan bantuannya kami ucapkan terima kasih.",
    "Paket pekerjaan ini adalah rehabilitasi gedung kantor kecamatan tahun anggaran 2026.",
    "Kami telah memperbarui data kualifikasi di SiKAP minggu lalu.",
    "Sertifikat elektronik kami diterbitkan oleh BSrE dan masih berlaku.",
    "Sejak pembaruan aplikasi kemarin, halaman daftar paket terasa lambat sekali.",
]

_SIGNATURES = [
    "Hormat kami,\n{name}\nDirektur {firm}\nHP/WA 0812-{phone}",
    "Salam,\n{name}\nBagian Pengadaan {firm}",
    "Terima kasih,\n{name}\n{firm}\nTelp (021) 55{phone}",
]


@dataclass
class Plan:
    """What the backlog holds, so that the result can be checked."""

    mails: int = 0
    new: int = 0  # mails that open a ticket
    replies: int = 0  # mails that join an earlier mail's ticket
    kinds: Counter[str] = field(default_factory=Counter)
    bytes: int = 0


@dataclass(frozen=True)
class _Sent:
    message_id: str
    sender: str
    subject: str
    body: str


def _person(k: int) -> tuple[str, str]:
    first = _FIRST[k % len(_FIRST)]
    last = _LAST[(k // len(_FIRST)) % len(_LAST)]
    firm = f"{_FIRMS[k % len(_FIRMS)]}{k}"
    address = f"{first.lower()}.{last.lower()}{k}@{firm}.{_TLDS[k % len(_TLDS)]}"
    return f"{first} {last}", address


def _text(rng: random.Random, size: int, code: str, name: str, firm: str) -> str:
    phone = f"{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}"
    lines: list[str] = []
    length = 0
    while length < size:
        paragraph = " ".join(
            rng.choice(_SENTENCES).format(code=code, phone=phone) for _ in range(rng.randint(2, 5))
        )
        lines.append(paragraph)
        length += len(paragraph) + 2
    lines.append(rng.choice(_SIGNATURES).format(name=name, firm=firm.upper(), phone=phone))
    return "\n\n".join(lines)


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>\n" for p in text.split("\n\n"))
    return (
        '<html><head><meta charset="utf-8"><style>p{margin:0 0 8px 0}</style></head>'
        f'<body><div dir="ltr" style="font-family:Arial">{paragraphs}</div></body></html>'
    )


def _pdf(rng: random.Random, size: int) -> bytes:
    """A small PDF-looking file (real magic number, a binary stream of `size` bytes)."""
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    stream = b"3 0 obj<</Length %d/Filter/FlateDecode>>stream\n" % size
    return (
        head + stream + rng.randbytes(size) + b"\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def generate(n: int, seed: int = 3, plan: Plan | None = None) -> Iterator[bytes]:
    """N unique mails, one at a time (never all in memory); `plan` is filled in as they go."""
    # The test helpers are imported where they are used: the measured child process, which
    # imports this module, should hold what the service holds and no more.
    from tests.corpus.build import alternative, leaf, message, top
    from tests.mailmaker import make_mail

    rng = random.Random(seed)
    run = secrets.token_hex(4)
    plan = plan if plan is not None else Plan()
    senders = max(1, n // 4)  # at most ~4 new tickets per sender: under the flood cap (10/h)
    recent: list[_Sent] = []
    for i in range(n):
        message_id = f"bench.{run}.{i}@mail.example.id"
        date = email.utils.format_datetime(email.utils.localtime())
        roll = rng.random()
        code = str(rng.randrange(10_000_000, 99_999_999))
        if roll < 0.12 and recent:
            original = rng.choice(recent)
            name, address = original.sender.split(" <")[0], original.sender.split("<")[1][:-1]
            quoted = "\n".join(f"> {line}" for line in original.body.splitlines())
            reply = _text(rng, rng.randint(300, 1500), code, name, address.split("@")[1])
            body = f"{reply}\n\nPada {date}, {original.sender} menulis:\n{quoted}\n"
            raw = make_mail(
                sender=original.sender,
                to=f"Helpdesk LPSE <{HELPDESK}>",
                subject=f"Re: {original.subject}",
                body=body,
                message_id=f"<{message_id}>",
                in_reply_to=f"<{original.message_id}>",
                references=f"<{original.message_id}>",
            )
            kind = "reply"
            plan.replies += 1
        else:
            name, address = _person(plan.new % senders)
            sender = f"{name} <{address}>"
            firm = address.split("@")[1]
            subject = rng.choice(_SUBJECTS).format(code=code)
            body = _text(rng, rng.randint(2_000, 9_000), code, name, firm)
            to = f"Helpdesk LPSE <{HELPDESK}>"
            if roll < 0.22:
                kind = "html_only"
                raw = message(
                    top(sender, subject, msgid=message_id, to=to, date=date),
                    leaf('text/html; charset="utf-8"', _html(body), cte="base64"),
                )
            elif roll < 0.32:
                kind = "alternative"
                boundary = f"b{i}_{rng.randrange(1 << 30):x}"
                raw = message(
                    top(sender, subject, msgid=message_id, to=to, date=date),
                    alternative(body, _html(body), boundary),
                )
            elif roll < 0.42:
                kind = "pdf"
                raw = make_mail(
                    sender=sender,
                    to=to,
                    subject=subject,
                    body=body[:2_500],
                    message_id=f"<{message_id}>",
                    attachment=(f"bukti_{code}.pdf", _pdf(rng, rng.randint(8_000, 40_000))),
                )
            else:
                kind = "plain"
                raw = make_mail(
                    sender=sender, to=to, subject=subject, body=body, message_id=f"<{message_id}>"
                )
            plan.new += 1
            recent.append(_Sent(message_id, sender, subject, body[:1_500]))
            if len(recent) > 300:
                recent.pop(0)
        plan.mails += 1
        plan.kinds[kind] += 1
        plan.bytes += len(raw)
        yield raw


def fill(account: ImapAccount, mails: Iterator[bytes]) -> float:
    """APPEND every mail over one connection; returns the seconds it took."""
    started = time.perf_counter()
    conn = account.server.connect(account.user)
    try:
        for raw in mails:
            typ, data = conn.append("INBOX", None, None, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
    finally:
        conn.logout()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the service


def build_service(
    host: str, port: int, user: str, password: str, db_path: Path
) -> tuple[MailIntakeService, Database]:
    """The real intake service on a fresh, migrated SQLite database, with a SystemClock."""
    from zoneinfo import ZoneInfo

    from lpse_helpdesk.bridge.imap_client import ImapAccount as ServiceAccount
    from lpse_helpdesk.bridge.inbound import IntakeOptions, MailIntakeService
    from lpse_helpdesk.bridge.intake import Intake, IntakeConfig
    from lpse_helpdesk.config.settings import Security
    from lpse_helpdesk.domain.loader import load_domain
    from lpse_helpdesk.storage.db import Database, make_engine, upgrade
    from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
    from lpse_helpdesk.timekeeping.clock import SystemClock
    from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
    from lpse_helpdesk.workflow.tickets import Workflow

    wib = ZoneInfo("Asia/Jakarta")
    engine = make_engine(f"sqlite:///{db_path}")
    upgrade(engine)
    db = Database(engine)
    domain = load_domain()
    clock = SystemClock()
    workflow = Workflow(
        domain,
        BusinessCalendar(domain.working_hours, wib),
        clock,
        OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP)),
        ticket_prefix="LPSE",
        timezone=wib,
    )
    intake = Intake(
        workflow,
        domain,
        IntakeConfig(helpdesk_addresses=frozenset({HELPDESK}), lkpp_address=LKPP),
    )
    account = ServiceAccount(
        host=host, port=port, user=user, password=password, security=Security.PLAIN
    )
    service = MailIntakeService(account, intake, db, clock, IntakeOptions())
    return service, db


class InlineExecutor(Executor):
    """Runs each submitted call at once on the caller's thread (for --profile only)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def _timed(totals: dict[str, float], name: str, call: Callable[..., T]) -> Callable[..., T]:
    def wrapper(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): less disturbed by a busy machine than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process (its peak RSS since exec), 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _children_peak_rss_mib() -> dict[str, float]:
    """VmHWM of each live child of this process by its command ("mail parser" for the
    parsing process, or what else runs, e.g. multiprocessing's resource tracker)."""
    peaks: dict[str, float] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != me:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        name = "resource tracker" if "resource_tracker" in command else "mail parser"
        peaks[name] = peaks.get(name, 0.0) + _peak_rss_mib(int(entry.name))
    return peaks


def _thread_cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) of each live thread of this process, by thread name
    (numbered pool threads summed under their prefix), from /proc/self/task."""
    import threading

    names = {t.native_id: t.name.split("_")[0] for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return seconds


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    password = os.environ[PASSWORD_ENV]
    service, db = build_service(args.host, args.port, args.user, password, args.db)
    totals: dict[str, float] = {}
    session = service.session
    session.fetch = _timed(totals, "imap_fetch", session.fetch)  # type: ignore[method-assign]
    session.mark_handled = _timed(  # type: ignore[method-assign]
        totals, "imap_mark_seen", session.mark_handled
    )
    # Seconds and mails of each ingested batch, in order: the cost per mail at the start and
    # at the end of one run shows growth with the backlog without the noise between runs.
    batches: list[tuple[float, int]] = []
    ingest_batch = service._ingest_batch

    first_batch: list[float] = []  # when the first batch began to be stored

    def timed_batch(batch: list[Any], *rest: Any) -> Any:
        started = time.perf_counter()
        if not first_batch:
            first_batch.append(started)
        try:
            return ingest_batch(batch, *rest)
        finally:
            batches.append((time.perf_counter() - started, len(batch)))

    service._ingest_batch = timed_batch  # type: ignore[method-assign,assignment]
    profiler = None
    if args.profile:
        import cProfile

        service._thread = InlineExecutor()  # type: ignore[assignment]
        db._pool = InlineExecutor()  # type: ignore[assignment]
        profiler = cProfile.Profile()
    # The running service starts its parsing process in start(), before any sync.
    worker = getattr(service, "worker", None)
    if worker is not None:
        worker.start(wait=True)
    from lpse_helpdesk.ops import startup

    startup.started()
    rss_before = _max_rss_mib()
    threads_before = _thread_cpu_seconds()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await service._imap(session.connect)
    report = await service.sync_once()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    threads = {
        name: spent - threads_before.get(name, 0.0) for name, spent in _thread_cpu_seconds().items()
    }
    rss_peak = _max_rss_mib()
    await service._imap(session.close)
    db.close()
    # The helper processes (the one that parses the mails, and whatever else was started):
    # their peak RSS is read from /proc before they end (ru_maxrss of children would count
    # the parent's pages shared between fork and exec), their CPU time once they have ended.
    helpers = _children_peak_rss_mib()
    helper_peak = sum(helpers.values())
    worker = getattr(service, "worker", None)
    if worker is not None:
        worker.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    helper_cpu = children.ru_utime + children.ru_stime
    if profiler is not None:
        import pstats

        profiler.dump_stats(args.profile)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
    return {
        "seconds": seconds,
        "fetched": report.fetched,
        "committed": report.committed,
        "failed": report.failed,
        "outcomes": report.outcomes,
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_peak,
        "cpu_seconds": cpu,
        "thread_cpu_seconds": threads,
        "helper_cpu_seconds": helper_cpu,
        "helper_rss_peak_mib": helper_peak,
        "helpers_rss_peak_mib": helpers,
        "breakdown": {
            "until_first_batch": (first_batch or [started])[0] - started,
            "parse_and_commit": sum(t for t, _ in batches),
            **totals,
        },
        "batches": batches,
    }


# --------------------------------------------------------------------------- the parent


def _run_child(
    account: ImapAccount, db_path: Path, profile: str | None, py_spy: str | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.intake_backlog",
        "--child",
        f"--host={account.host}",
        f"--port={account.port}",
        f"--user={account.user}",
        f"--db={db_path}",
    ]
    if profile:
        command += ["--profile", profile]
    if py_spy:
        spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        if spy is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        command = [spy, "record", "-r", "200", "-f", "raw", "-o", py_spy, "--", *command]
    env = {**os.environ, PASSWORD_ENV: account.password}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if profile:
        sys.stderr.write(done.stderr)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise RuntimeError(f"the child failed ({done.returncode}):\n{done.stderr[-4000:]}")


def summarise_py_spy(path: str, within: str = "_ingest_batch", top_n: int = 40) -> None:
    """Inclusive and own share of each function, among the samples taken inside `within`."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if within not in stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [frame.rsplit(":", 1)[0] for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        print(f"no samples inside {within}")
        return
    print(f"py-spy: {total} samples inside {within}; share of that time (inclusive / own):")
    for frame, count in inclusive.most_common(top_n):
        print(f"  {100 * count / total:5.1f} % {100 * own[frame] / total:5.1f} %  {frame}")
    print("  top own time:")
    for frame, count in own.most_common(15):
        print(f"  {100 * count / total:5.1f} %  {frame}")


def _verify(account: ImapAccount, db_path: Path, plan: Plan) -> list[str]:
    """What is wrong with the outcome (empty: all good)."""
    problems = []
    with sqlite3.connect(db_path) as conn:

        def count(sql: str) -> int:
            value: int = conn.execute(sql).fetchone()[0]
            return value

        tickets = count("SELECT count(*) FROM tickets")
        messages = count("SELECT count(*) FROM messages WHERE direction = 'in'")
        joined = count("SELECT count(*) FROM messages WHERE in_reply_to IS NOT NULL")
        failed = count("SELECT count(*) FROM failed_mails")
        last_uid = count("SELECT coalesce(max(last_uid), 0) FROM mailbox_state")
    conn.close()
    if tickets != plan.new:
        problems.append(f"{tickets} tickets, expected {plan.new}")
    if messages != plan.mails:
        problems.append(f"{messages} inbound messages, expected {plan.mails}")
    if joined != plan.replies:
        problems.append(f"{joined} replies stored, expected {plan.replies}")
    if failed:
        problems.append(f"{failed} failed mails")
    imap = account.server.connect(account.user)
    try:
        imap.select("INBOX", readonly=True)
        _, unseen = imap.uid("SEARCH", "UNSEEN")
        _, seen = imap.uid("SEARCH", "SEEN")
    finally:
        imap.logout()
    unseen_n = len((unseen[0] or b"").split())
    seen_n = len((seen[0] or b"").split())
    if unseen_n or seen_n != plan.mails:
        problems.append(f"on the server: {seen_n} \\Seen, {unseen_n} not \\Seen")
    if last_uid != plan.mails:
        problems.append(f"stored last UID {last_uid}, expected {plan.mails}")
    return problems


def run_size(
    n: int,
    seed: int,
    profile: str | None,
    py_spy: str | None,
    keep_db: Path | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """One INBOX of `n` mails, synced `repeat` times (each time into a fresh database, the
    mails made unseen again): the run of median time is the result, with every run's rate."""
    from tests.servers.dovecot import DovecotServer

    plan = Plan()
    work = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    runs: list[dict[str, Any]] = []
    try:
        with DovecotServer() as server:
            account = server.add_user()
            fill_seconds = fill(account, generate(n, seed, plan))
            print(
                f"  N={n}: filled INBOX in {fill_seconds:.1f} s "
                f"({plan.bytes / n / 1024:.1f} KiB/mail avg; {dict(sorted(plan.kinds.items()))})",
                flush=True,
            )
            for attempt in range(repeat):
                if attempt:
                    _unsee(account)
                run_dir = work / f"run{attempt}"
                run_dir.mkdir()
                db_path = run_dir / "helpdesk.sqlite3"
                result = _run_child(account, db_path, profile, py_spy)
                result["problems"] = _verify(account, db_path, plan)
                result["db_mib"] = sum(p.stat().st_size for p in run_dir.iterdir()) / 2**20
                if keep_db is not None:
                    shutil.copyfile(db_path, keep_db)
                shutil.rmtree(run_dir, ignore_errors=True)
                runs.append(result)
                if repeat > 1:
                    print(f"    run {attempt + 1}: {n / result['seconds']:.0f} mails/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = sorted(runs, key=lambda r: float(r["seconds"]))[len(runs) // 2]
    result["problems"] = [p for r in runs for p in r["problems"]]
    result["rates"] = [n / r["seconds"] for r in runs]
    result["n"] = n
    result["plan"] = {"new": plan.new, "replies": plan.replies, "bytes": plan.bytes}
    return result


def _unsee(account: ImapAccount) -> None:
    """Every mail of the INBOX unseen again, for another run on the same mailbox."""
    imap = account.server.connect(account.user)
    try:
        imap.select("INBOX")
        imap.uid("STORE", "1:*", "-FLAGS.SILENT", "(\\Seen)")
    finally:
        imap.logout()


def _tenths(batches: list[tuple[float, int]]) -> list[float]:
    """ms per mail over each tenth of the batches, in order (fewer parts for few batches)."""
    parts = min(10, len(batches)) or 1
    size = len(batches) / parts
    rates = []
    for i in range(parts):
        part = batches[round(i * size) : round((i + 1) * size)]
        rates.append(1000 * sum(t for t, _ in part) / max(1, sum(n for _, n in part)))
    return rates


def _all_rss(result: dict[str, Any]) -> float:
    return float(result["rss_peak_mib"]) + float(result.get("helper_rss_peak_mib", 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated backlog sizes")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--repeat", type=int, default=1, help="sync each mailbox this many times; the median"
    )
    parser.add_argument("--profile", help="cProfile the child; write the stats to this file")
    parser.add_argument("--py-spy", help="sample the child with py-spy; raw stacks to this file")
    parser.add_argument("--keep-db", type=Path, help="copy the (last) SQLite database here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        import logging

        from lpse_helpdesk.ops import startup

        # As `lpse-helpdesk run`: no cyclic collection while importing, then what the
        # start-up made is frozen out of the collector's sight (in _child).
        startup.begin()
        logging.basicConfig(level=logging.WARNING)
        print(RESULT_MARK + json.dumps(asyncio.run(_child(args))), flush=True)
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(
        f"intake backlog benchmark: Dovecot INBOX -> tickets on SQLite "
        f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]})",
        flush=True,
    )
    results = []
    for n in sizes:
        results.append(run_size(n, args.seed, args.profile, args.py_spy, args.keep_db, args.repeat))
        if args.py_spy:
            summarise_py_spy(args.py_spy)
    print()
    header = f"{'mails':>7} {'seconds':>8} {'mails/s':>8} {'ms/mail':>8} {'peak RSS':>9}"
    print(
        "(peak RSS: the ingesting process plus every helper process it started; "
        f"target {TARGET_RSS_MIB:.0f} MiB for all together)"
    )
    print(header + f" {'RSS before':>10} {'SQLite':>8}  breakdown (s)")
    ok = True
    for r in results:
        rate = r["n"] / r["seconds"]
        parts = ", ".join(f"{k} {v:.1f}" for k, v in r["breakdown"].items())
        print(
            f"{r['n']:>7} {r['seconds']:>8.2f} {rate:>8.0f} {1000 * r['seconds'] / r['n']:>8.2f}"
            f" {_all_rss(r):>6.0f} MiB {r['rss_before_mib']:>6.0f} MiB"
            f" {r['db_mib']:>4.0f} MiB  {parts}"
        )
        print(f"{'':>7} outcomes {r['outcomes']}, failed {r['failed']}")
        if len(r["rates"]) > 1:
            print(
                f"{'':>7} the median of {len(r['rates'])} runs: "
                + ", ".join(f"{rate:.0f}" for rate in r["rates"])
                + " mails/s"
            )
        if "cpu_seconds" in r:
            cpu_ms = 1000 * r["cpu_seconds"] / r["n"]
            helper_ms = 1000 * r.get("helper_cpu_seconds", 0.0) / r["n"]
            print(
                f"{'':>7} CPU ms/mail: ingesting process {cpu_ms:.2f}, helper {helper_ms:.2f}; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            by_thread = sorted(r.get("thread_cpu_seconds", {}).items(), key=lambda kv: -kv[1])
            print(
                f"{'':>7} of which by thread: "
                + ", ".join(f"{name} {1000 * spent / r['n']:.2f}" for name, spent in by_thread)
            )
        helpers = r.get("helpers_rss_peak_mib", {})
        print(
            f"{'':>7} peak RSS {r['rss_peak_mib']:.0f} MiB ingesting process + "
            + (
                " + ".join(f"{mib:.0f} MiB {name}" for name, mib in sorted(helpers.items()))
                or "no helper process"
            )
        )
        if _all_rss(r) > TARGET_RSS_MIB:
            print(f"{'':>7} above the peak RSS target of {TARGET_RSS_MIB:.0f} MiB")
        tenths = _tenths(r["batches"])
        print(
            f"{'':>7} ms/mail in the first tenth {tenths[0]:.2f}, in the last tenth "
            f"{tenths[-1]:.2f} (each tenth: {' '.join(f'{t:.2f}' for t in tenths)})"
        )
        for problem in r["problems"]:
            print(f"{'':>7} WRONG: {problem}")
        ok = ok and not r["problems"]
        if rate < TARGET_MAILS_PER_SECOND:
            print(f"{'':>7} below the target of {TARGET_MAILS_PER_SECOND:.0f} mails/s")
    if len(results) > 1:
        per_mail = [r["seconds"] / r["n"] for r in results]
        ratios = [f"{p / per_mail[0]:.2f}" for p in per_mail]
        print(
            f"time per mail relative to N={results[0]['n']}: {', '.join(ratios)} "
            f"(1.00 = linear; median {statistics.median(per_mail) * 1000:.2f} ms/mail)"
        )
        rss = [r["rss_peak_mib"] - r["rss_before_mib"] for r in results]
        print("peak RSS growth during the sync: " + ", ".join(f"{m:.0f} MiB" for m in rss))
    print("correctness: " + ("all good" if ok else "PROBLEMS, see above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
