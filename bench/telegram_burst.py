"""Issue #5: a burst of new tickets against a Bot API server that enforces 20 messages/min.

Starts the test Bot API server (tests/servers/telegram.py) with
``RateLimits(group_per_minute=20, global_per_second=30)``, a fresh SQLite database made by
the real migrations, the real Workflow + Intake (SystemClock) and the real
``TelegramService`` with the production defaults (``Limits()``, ``poll_seconds``; nothing
wakes the dispatcher, as in production). Scenarios:

* burst: N mails (default 200; different senders and subjects) ingested through the real
  Intake at once, then: seconds until every ticket number appears in some group message
  (digest or card), tickets still missing after ``--timeout``, 429s the server sent and
  RetryAfter the dispatcher received, digests vs cards in the first minute, and how long a
  card edit (a staff member presses a priority button on the first card, 2 s in) waits
  behind the backlog. ``--commit one`` (default) ingests in one transaction; ``--commit
  imap`` like ``MailIntakeService``: one transaction per mail, FETCH_BATCH mails per
  database job. ``--full`` also waits until every ticket has its own card (about N/15
  minutes: new cards leave RESERVE of the 18/min for digests), so it is off by default.
* trickle: a new ticket every second for 2 minutes (120 tickets, one transaction each);
  the budget is used up after ~15 s, and each later ticket must still be visible within
  60 s: max / median / p90 time-to-visible per ticket.
* mixed: the burst, then at once the trickle (the trickle's tickets find the budget spent
  by the burst); time-to-visible of the trickle's tickets.
* waves: N mails (default 200) committed in ``--waves`` waves (default 4) ``--gap`` seconds
  apart (default 6): seconds until every ticket is *named* in the group, i.e. one message
  shows its number together with the sender's address (issue #11: a burst that arrives in
  waves once left later waves listed by bare numbers), per-ticket max / median, 429s.

    .venv/bin/python -m bench.telegram_burst                  # burst 200, then trickle 120
    .venv/bin/python -m bench.telegram_burst --scenario burst --tickets 500 --commit imap
    .venv/bin/python -m bench.telegram_burst --scenario burst --tickets 40 --full
    .venv/bin/python -m bench.telegram_burst --scenario mixed
    .venv/bin/python -m bench.telegram_burst --scenario waves --tickets 200 --waves 4

Targets (issue #5): every ticket visible within 60 s, 0 missing, 0 HTTP 429; (issue #11)
every sender named within 60 s in the waves case.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import re
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from lpse_helpdesk.bot.dispatcher import RESERVE
from lpse_helpdesk.bot.ratelimit import Limits
from lpse_helpdesk.bot.service import BotSettings, TelegramService
from lpse_helpdesk.bridge.imap_client import FETCH_BATCH
from lpse_helpdesk.bridge.intake import Intake
from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.domain.model import DomainConfig
from lpse_helpdesk.storage.db import Database, make_engine, upgrade
from lpse_helpdesk.storage.models import TelegramCard, Ticket
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.timekeeping.clock import SystemClock
from lpse_helpdesk.workflow.mail_plan import Addresses, OutboxMailPlanner
from lpse_helpdesk.workflow.tickets import Workflow
from tests.bot_harness import GROUP
from tests.conftest import HELPDESK, LKPP, WIB, make_intake
from tests.mailmaker import make_mail
from tests.servers.telegram import BotApiServer, RateLimits, SentMessage

TARGET_SECONDS = 60.0
NUMBER = re.compile(r"LPSE-\d{4}-\d{5,}")
STAFF_ID = 1001

FIRST = ["Siti", "Budi", "Agus", "Dewi", "Rina", "Joko", "Putri", "Hendra", "Wahyu", "Lestari"]
LAST = ["Santoso", "Wijaya", "Saputra", "Hidayat", "Kusuma", "Nugroho", "Pratama", "Lubis"]
FIRMS = ["cv-maju-jaya", "pt-karya-abadi", "cv-sinar-terang", "pt-bangun-nusa", "cv-mitra-usaha"]
TOPICS = [
    ("Gagal upload penawaran paket {code}", "Kami gagal unggah dokumen penawaran."),
    ("Lupa password akun SPSE", "Mohon bantuan reset password akun penyedia kami."),
    ("Verifikasi akun penyedia belum diproses", "Dokumen verifikasi sudah kami kirim."),
    ("Tidak bisa login SPSE sejak pagi", "Muncul pesan sesi tidak valid saat login."),
    ("Apendo error saat enkripsi paket {code}", "Aplikasi Apendo menampilkan galat."),
    ("Perubahan data perusahaan", "Kami ingin memperbarui alamat dan NPWP perusahaan."),
    ("Jadwal tender {code} tidak muncul", "Paket tidak tampil di daftar tender kami."),
    ("Kendala e-katalog produk tayang", "Produk kami belum tayang di katalog."),
]


def _mail(i: int, tag: str) -> bytes:
    """A realistic new-ticket mail; sender, subject and Message-ID differ by (tag, i)."""
    rnd = random.Random(f"{tag}-{i}")
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    firm = rnd.choice(FIRMS)
    code = 10_000_000 + rnd.randrange(90_000_000)
    subject, text = rnd.choice(TOPICS)
    body = (
        f"Selamat siang Helpdesk LPSE,\n\n{text} Kode tender: {code}.\n"
        f"Mohon petunjuknya.\n\nTerima kasih,\n{first} {last}\n{firm.upper()}\n"
    )
    return make_mail(
        sender=f"{first} {last} <{first.lower()}.{tag}{i}@{firm}.co.id>",
        to=f"Helpdesk LPSE <{HELPDESK}>",
        subject=subject.format(code=code) + f" (#{i})",
        body=body,
        message_id=f"<bench.{tag}.{i}.{code}@{firm}.co.id>",
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Rig:
    server: BotApiServer
    db: Database
    intake: Intake
    service: TelegramService
    work: Path
    first_seen: dict[str, float] = field(default_factory=dict)  # number -> server time
    _scanned: set[int] = field(default_factory=set)

    async def ingest(self, mails: list[bytes], *, commit: str = "one") -> dict[str, float]:
        """Ticket number -> time.monotonic() when its mail's transaction committed."""

        def ticket(session: Session, raw: bytes) -> int:
            result = self.intake.ingest(session, raw)
            if result.ticket_id is None:
                raise RuntimeError(f"mail opened no ticket: {result}")
            return result.ticket_id

        def one(session: Session) -> list[int]:
            return [ticket(session, raw) for raw in mails]

        def per_mail(chunk: list[bytes]) -> list[tuple[int, float]]:
            done = []
            for raw in chunk:
                with self.db.transaction() as session:
                    ticket_id = ticket(session, raw)
                done.append((ticket_id, time.monotonic()))
            return done

        if commit == "one":
            ids = await self.db.run(one)
            at = time.monotonic()
            committed = [(ticket_id, at) for ticket_id in ids]
        else:  # as MailIntakeService.sync_once: FETCH_BATCH mails per database job
            committed = []
            for start in range(0, len(mails), FETCH_BATCH):
                chunk = mails[start : start + FETCH_BATCH]
                committed += await self.db.run_plain(partial(per_mail, chunk))
        numbers = self.db.run_sync(lambda s: {i: s.get_one(Ticket, i).number for i, _ in committed})
        return {numbers[i]: at for i, at in committed}

    def card_ids(self) -> set[int]:
        return set(self.db.run_sync(lambda s: list(s.scalars(select(TelegramCard.message_id)))))

    def scan(self) -> list[SentMessage]:
        """Record when each ticket number first appeared in the group (server's clock)."""
        messages = self.server.messages(GROUP)
        for message in messages:
            if message.message_id in self._scanned:
                continue
            self._scanned.add(message.message_id)
            texts = [message.text or message.caption or "", *message.versions]
            for number in NUMBER.findall("\n".join(texts)):
                seen = self.first_seen.get(number)
                if seen is None or message.sent_at < seen:
                    self.first_seen[number] = message.sent_at
        return messages

    def kinds(self, messages: list[SentMessage], since: float, until: float) -> dict[str, int]:
        cards = self.card_ids()
        counts = {"digest": 0, "card": 0, "other": 0}
        for m in messages:
            if not since <= m.sent_at < until:
                continue
            if m.message_id in cards:
                counts["card"] += 1
            elif "tiket baru" in (m.text or ""):
                counts["digest"] += 1
            else:
                counts["other"] += 1
        return counts

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.scan()
            if done():
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)


async def _start_rig(domain: DomainConfig) -> Rig:
    server = BotApiServer(limits=RateLimits(group_per_minute=20, global_per_second=30))
    server.start()
    server.group(GROUP)
    server.user(STAFF_ID, "Budi", "budi")
    work = Path(tempfile.mkdtemp(prefix="bench-telegram-"))
    engine = make_engine(f"sqlite:///{work / 'helpdesk.sqlite3'}")
    upgrade(engine)
    db = Database(engine)
    clock = SystemClock()
    planner = OutboxMailPlanner(domain, Addresses(helpdesk=HELPDESK, lkpp=LKPP))
    calendar = BusinessCalendar(domain.working_hours, WIB)
    workflow = Workflow(domain, calendar, clock, planner, ticket_prefix="LPSE", timezone=WIB)
    settings = BotSettings(
        token=server.token,
        api_url=server.base_url,
        chat_id=GROUP,
        staff_ids=frozenset({STAFF_ID}),
        supervisor_ids=frozenset({777}),
        ticket_prefix="LPSE",
        limits=Limits(),  # the production default
        poll_timeout=2,  # long polling only; short so that stop() is quick
    )
    service = TelegramService(settings, db, clock, workflow, domain)
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 15)
    return Rig(server, db, make_intake(workflow, domain), service, work)


async def _stop_rig(rig: Rig) -> None:
    try:
        await asyncio.wait_for(rig.service.stop(), 30)
    finally:
        rig.server.stop()
        rig.db.close()
        shutil.rmtree(rig.work, ignore_errors=True)


class EditProbe:
    """A staff member presses a priority button on the first card; time until it is edited."""

    def __init__(self, rig: Rig, domain: DomainConfig) -> None:
        self.rig, self.labels = rig, {p.label for p in domain.priorities}
        self.message_id: int | None = None
        self.pressed = 0.0
        self.edited: float | None = None

    def press(self) -> None:
        cards = sorted(self.rig.card_ids())
        if not cards:
            return
        message = self.rig.server.message(GROUP, cards[0])
        for button in message.buttons:
            if button["text"] in self.labels:  # not the current ("●") one
                self.message_id = message.message_id
                self.pressed = time.monotonic()
                staff = {"id": STAFF_ID, "is_bot": False, "first_name": "Budi"}
                self.rig.server.press(GROUP, message.message_id, staff, button["callback_data"])
                return

    def check(self) -> bool:
        if self.message_id is not None and self.edited is None:
            message = self.rig.server.message(GROUP, self.message_id)
            if message.edit_count:
                self.edited = time.monotonic() - self.pressed
        return self.edited is not None

    def result(self) -> str:
        if self.message_id is None:
            return "no card to press"
        if self.edited is None:
            return f"> {time.monotonic() - self.pressed:.0f}"
        return f"{self.edited:.1f}"


def _row(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    print(f"  {name:<44} {value:>14}   {target:<12} {verdict}")


def _latencies(rig: Rig, arrived: dict[str, float]) -> dict[str, float]:
    return {x: rig.first_seen[x] - t for x, t in arrived.items() if x in rig.first_seen}


async def burst(domain: DomainConfig, n: int, timeout: float, full: bool, commit: str) -> bool:
    print(f"\nburst: {n} new tickets at once (--commit {commit})", flush=True)
    rig = await _start_rig(domain)
    probe = EditProbe(rig, domain)
    try:
        mails = [_mail(i, "burst") for i in range(n)]
        started = time.monotonic()
        arrived = await rig.ingest(mails, commit=commit)
        t0 = min(arrived.values())
        print(f"  ingested in {time.monotonic() - started:.1f} s; waiting...", flush=True)
        cpu0 = _cpu()

        def visible() -> bool:
            if probe.message_id is None and time.monotonic() > t0 + 2:
                probe.press()
            probe.check()
            return all(x in rig.first_seen for x in arrived)

        all_visible = await rig.wait(visible, timeout)
        visible_cpu = _cpu() - cpu0
        missing = [x for x in arrived if x not in rig.first_seen]
        lat = list(_latencies(rig, arrived).values())
        # Complete the first minute to count what it held (and give the edit its chance).
        await rig.wait(lambda: visible() and False, max(0.0, t0 + 60.0 - time.monotonic()))
        messages = rig.scan()
        first_minute = rig.kinds(messages, t0, t0 + 60.0)
        wait_cpu = _cpu() - cpu0
        cards_done = len(rig.card_ids())
        cards_at = None
        if full:
            limit = n / (Limits().group_per_minute - RESERVE) * 60 + 120
            print(f"  --full: waiting up to {limit:.0f} s for every card...", flush=True)
            if await rig.wait(lambda: len(rig.card_ids()) >= n, limit):
                cards_at = time.monotonic() - t0
            cards_done = len(rig.card_ids())
            messages = rig.scan()
        too_many = rig.server.too_many_requests
        retry = rig.service.dispatcher.retry_after_received
    finally:
        await _stop_rig(rig)

    worst = max(lat) if lat else float("nan")
    ok = all_visible and worst <= TARGET_SECONDS and too_many == 0
    print(f"\nburst of {n} tickets; server: 20/min per group; bot: {Limits()}")
    _row("every ticket visible after (s)", f"{worst:.1f}", "<= 60", all_visible and worst <= 60)
    if lat:
        median, p90 = statistics.median(lat), _quantile(lat, 0.9)
        _row("  time-to-visible median / p90 (s)", f"{median:.1f} / {p90:.1f}")
    _row(f"tickets missing after {timeout:.0f} s", str(len(missing)), "0", not missing)
    _row("HTTP 429 sent by the server", str(too_many), "0", too_many == 0)
    _row("RetryAfter received by the dispatcher", str(retry), "0", retry == 0)
    _row(
        "first minute: digests / cards / other",
        f"{first_minute['digest']} / {first_minute['card']} / {first_minute['other']}",
    )
    _row("card edit pressed at 2 s, applied after (s)", probe.result())
    _row("messages in the group (total)", str(len(messages)))
    _row("cards posted by the end", f"{cards_done}/{n}")
    if full:
        value = f"{cards_at:.0f}" if cards_at is not None else "not all"
        _row("every card posted after (s)", value, f"N/18 min={n / 18 * 60:.0f}")
    # The whole process: dispatcher, Bot API server threads, this script's polling.
    _row("CPU s in the first minute (until visible)", f"{wait_cpu:.1f} ({visible_cpu:.1f})")
    if missing:
        print(f"  missing: {', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}")
    return ok


async def _trickle_into(rig: Rig, count: int, rate: float, tag: str) -> dict[str, float]:
    arrived: dict[str, float] = {}
    start = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        arrived.update(await rig.ingest([_mail(i, tag)]))
        rig.scan()
        if (i + 1) % 30 == 0:
            late = sum(1 for x in arrived if x not in rig.first_seen)
            print(f"  {i + 1:>4} ingested, {late} not yet visible", flush=True)
    return arrived


def _report_trickle(rig: Rig, arrived: dict[str, float], grace: float, kinds: str) -> bool:
    missing = [x for x in arrived if x not in rig.first_seen]
    lat = _latencies(rig, arrived)
    values = list(lat.values())
    worst = max(values) if values else float("nan")
    over = [x for x, v in lat.items() if v > TARGET_SECONDS]
    too_many = rig.server.too_many_requests
    retry = rig.service.dispatcher.retry_after_received
    _row("time-to-visible max (s)", f"{worst:.1f}", "<= 60", not over and not missing)
    if values:
        median, p90 = statistics.median(values), _quantile(values, 0.9)
        _row("time-to-visible median / p90 (s)", f"{median:.1f} / {p90:.1f}")
    _row("tickets visible later than 60 s", str(len(over)), "0", not over)
    _row(f"tickets missing {grace:.0f} s after the last", str(len(missing)), "0", not missing)
    _row("HTTP 429 sent by the server", str(too_many), "0", too_many == 0)
    _row("RetryAfter received by the dispatcher", str(retry), "0", retry == 0)
    _row("messages: digests / cards / other", kinds)
    if values:
        order = sorted(lat, key=lambda x: arrived[x])
        buckets = [order[i : i + 10] for i in range(0, len(order), 10)]
        worst_per = " ".join(f"{max(lat[x] for x in b):.0f}" for b in buckets)
        print(f"  max time-to-visible per 10 arrivals (s): {worst_per}")
    return not over and not missing and too_many == 0


async def trickle(
    domain: DomainConfig, count: int, rate: float, grace: float, after_burst: int = 0
) -> bool:
    title = f"burst of {after_burst}, then " if after_burst else ""
    print(f"\n{title}trickle: {count} new tickets, {rate:g} per second", flush=True)
    rig = await _start_rig(domain)
    try:
        start = time.monotonic()
        if after_burst:
            await rig.ingest([_mail(i, "burst") for i in range(after_burst)])
        arrived = await _trickle_into(rig, count, rate, "trickle")
        await rig.wait(lambda: all(x in rig.first_seen for x in arrived), grace)
        k = rig.kinds(rig.scan(), start, time.monotonic())
        print(f"\n{title}trickle of {count} tickets at {rate:g}/s; server: 20/min per group")
        return _report_trickle(rig, arrived, grace, f"{k['digest']} / {k['card']} / {k['other']}")
    finally:
        await _stop_rig(rig)


def _sender_address(raw: bytes) -> str:
    match = re.search(rb"^From: .*<([^>]+)>", raw, re.MULTILINE)
    return match.group(1).decode() if match else ""


async def waves(domain: DomainConfig, n: int, count: int, gap: float, timeout: float) -> bool:
    print(f"\nwaves: {n} new tickets in {count} waves {gap:g} s apart", flush=True)
    rig = await _start_rig(domain)
    try:
        per_wave = -(-n // count)
        arrived: dict[str, float] = {}
        address: dict[str, str] = {}
        named: dict[str, float] = {}
        scanned: set[int] = set()

        def scan() -> bool:
            for message in rig.server.messages(GROUP):
                if message.message_id in scanned:
                    continue
                scanned.add(message.message_id)
                text = "\n".join([message.plain_text or "", *message.versions])
                for number in NUMBER.findall(text):
                    if number in address and address[number] in text:
                        named.setdefault(number, message.sent_at)
            return bool(arrived) and all(x in named for x in arrived)

        start = time.monotonic()
        for wave in range(count):
            await asyncio.sleep(max(0.0, start + wave * gap - time.monotonic()))
            mails = [
                _mail(i, "wave") for i in range(wave * per_wave, min(n, (wave + 1) * per_wave))
            ]
            committed = await rig.ingest(mails)
            numbers = list(committed)
            for number, raw in zip(numbers, mails, strict=True):
                address[number] = _sender_address(raw)
            arrived.update(committed)
            scan()
            print(f"  wave {wave + 1}: {len(mails)} committed", flush=True)
        all_named = await rig.wait(scan, timeout)
        lat = {x: named[x] - t for x, t in arrived.items() if x in named}
        first = min(arrived.values())
        every = max(named.values()) - first if all_named else float("nan")
        too_many = rig.server.too_many_requests
        retry = rig.service.dispatcher.retry_after_received
        messages = len(rig.server.messages(GROUP))
    finally:
        await _stop_rig(rig)
    values = list(lat.values())
    worst = max(values) if values else float("nan")
    missing = n - len(lat)
    ok = all_named and worst <= TARGET_SECONDS and too_many == 0
    print(f"\n{n} tickets in {count} waves; server: 20/min per group; bot: {Limits()}")
    _row("every sender named after (s, from wave 1)", f"{every:.1f}")
    _row("time-to-named max per ticket (s)", f"{worst:.1f}", "<= 60", worst <= TARGET_SECONDS)
    if values:
        _row("time-to-named median / p90 (s)", f"{statistics.median(values):.1f} / "
             f"{_quantile(values, 0.9):.1f}")  # fmt: skip
    _row(f"tickets not named after {timeout:.0f} s", str(missing), "0", missing == 0)
    _row("HTTP 429 sent by the server", str(too_many), "0", too_many == 0)
    _row("RetryAfter received by the dispatcher", str(retry), "0", retry == 0)
    _row("messages in the group (total)", str(messages))
    return ok


async def run(args: argparse.Namespace) -> int:
    domain = load_domain()
    ok = True
    if args.scenario in ("burst", "both"):
        ok &= await burst(domain, args.tickets, args.timeout, args.full, args.commit)
    if args.scenario in ("trickle", "both"):
        ok &= await trickle(domain, args.trickle, args.rate, args.grace)
    if args.scenario == "mixed":
        ok &= await trickle(domain, args.trickle, args.rate, args.grace, args.tickets)
    if args.scenario == "waves":
        ok &= await waves(domain, args.tickets, args.waves, args.gap, args.timeout)
    print(f"\ntargets {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--scenario", choices=["burst", "trickle", "both", "mixed", "waves"], default="both"
    )
    parser.add_argument("--tickets", type=int, default=200, help="burst size N")
    parser.add_argument("--commit", choices=["one", "imap"], default="one", help="burst ingest")
    parser.add_argument("--timeout", type=float, default=120.0, help="burst: missing after")
    parser.add_argument("--full", action="store_true", help="burst: wait for every card too")
    parser.add_argument("--trickle", type=int, default=120, help="trickle: tickets")
    parser.add_argument("--rate", type=float, default=1.0, help="trickle: tickets per second")
    parser.add_argument("--grace", type=float, default=90.0, help="trickle: wait after last")
    parser.add_argument("--waves", type=int, default=4, help="waves: how many")
    parser.add_argument("--gap", type=float, default=6.0, help="waves: seconds between them")
    args = parser.parse_args(argv)
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
