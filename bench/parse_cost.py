"""Issue #14: the CPU cost of turning one raw mail into a ``Prepared`` (the parsing stage).

The backlog pipeline has one helper process (bridge/parse_worker.py) preparing mails while the
main process stores the previous batch; at 600 mails/s on two cores that helper may spend at
most about 1.3 ms of CPU per mail. This script takes the same mails as bench/intake_backlog.py
(``generate``: 58 % plain, 10 % alternative, 10 % HTML only, 10 % with a PDF, 12 % replies)
and prints, in ms of CPU per mail:

* ``prepare``: the work the helper does per mail (``prepare_light``), in this process, by mail
  kind and over all (each mail timed alone, once);
* ``pickle``: what goes back over the pipe (dumps in the helper, loads in the parent) and its
  size in bytes;
* ``worker``: the real ``ParseWorker`` round trip in batches of ``PIPELINE_BATCH`` mails,
  split into the helper's CPU (from /proc; start-up and 100 warm-up mails excluded) and the
  parent's (sending the jobs, receiving the results); the start-up CPU is printed on its own.

    .venv/bin/python -m bench.parse_cost                 # 2000 mails
    .venv/bin/python -m bench.parse_cost --mails 500 --profile /tmp/parse.prof

``--profile FILE`` runs ``prepare_light`` over all the mails under cProfile and prints the
functions that take the time (the figures of such a run are not the figures).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.intake_backlog import HELPDESK, Plan, generate

TARGET_HELPER_MS = 1.3  # issue #14: the helper's CPU per mail at 600 mails/s


def _mails(n: int, seed: int) -> list[tuple[str, bytes]]:
    """(kind, raw) pairs, the kind read from the plan as each mail is made."""
    plan = Plan()
    result: list[tuple[str, bytes]] = []
    seen: Counter[str] = Counter()
    for raw in generate(n, seed, plan):
        kind = next(k for k, v in plan.kinds.items() if v != seen[k])
        seen[kind] += 1
        result.append((kind, raw))
    return result


def _process_cpu(pid: int) -> float:
    """utime + stime of another process, in seconds (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def measure_prepare(
    mails: list[tuple[str, bytes]], warm_up: list[tuple[str, bytes]]
) -> dict[str, list[float]]:
    """Each mail prepared once: a second round over the same mails would find its unique
    headers (multipart boundaries, file names) already parsed and look cheaper than it is."""
    from lpse_helpdesk.bridge.parsing import DEFAULT_MAX_BYTES
    from lpse_helpdesk.bridge.prepare import prepare_light
    from lpse_helpdesk.domain.loader import load_domain

    domain = load_domain()
    own = frozenset({HELPDESK})
    for _, raw in warm_up:  # lazy imports, regex and keyword caches (other mails)
        prepare_light(raw, DEFAULT_MAX_BYTES, own, domain)
    costs: dict[str, list[float]] = defaultdict(list)
    for kind, raw in mails:
        started = time.process_time()
        prepare_light(raw, DEFAULT_MAX_BYTES, own, domain)
        costs[kind].append(time.process_time() - started)
    return costs


def measure_pickle(mails: list[tuple[str, bytes]]) -> tuple[float, float, float]:
    """(ms dumps per mail, ms loads per mail, bytes per mail) of the worker's results."""
    from lpse_helpdesk.bridge.parsing import DEFAULT_MAX_BYTES
    from lpse_helpdesk.bridge.prepare import prepare_light
    from lpse_helpdesk.domain.loader import load_domain

    domain = load_domain()
    own = frozenset({HELPDESK})
    results = [prepare_light(raw, DEFAULT_MAX_BYTES, own, domain) for _, raw in mails]
    started = time.process_time()
    blobs = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results]
    dumped = time.process_time() - started
    started = time.process_time()
    for blob in blobs:
        pickle.loads(blob)  # noqa: S301 (our own results, as the pipe carries them)
    loaded = time.process_time() - started
    n = len(mails)
    return 1000 * dumped / n, 1000 * loaded / n, sum(map(len, blobs)) / n


def measure_worker(
    mails: list[tuple[str, bytes]], warm_up: list[tuple[str, bytes]]
) -> tuple[float, float, float, float]:
    """(helper ms/mail, parent ms/mail, helper start-up CPU s, wall s) of a ParseWorker run,
    measured after the helper prepared the warm-up mails (its lazy imports)."""
    from lpse_helpdesk.bridge.inbound import PIPELINE_BATCH
    from lpse_helpdesk.bridge.parse_worker import ParseWorker
    from lpse_helpdesk.bridge.parsing import DEFAULT_MAX_BYTES
    from lpse_helpdesk.bridge.prepare import Prepared
    from lpse_helpdesk.domain.loader import load_domain

    worker = ParseWorker(DEFAULT_MAX_BYTES, frozenset({HELPDESK}), load_domain(), budget=60.0)
    worker.start(wait=True)
    try:
        process = worker._process
        assert process is not None and process.pid is not None
        pid = process.pid
        startup = _process_cpu(pid)
        worker.prepare([raw for _, raw in warm_up])
        raws = [raw for _, raw in mails]
        helper_before, parent_before = _process_cpu(pid), time.process_time()
        wall = time.perf_counter()
        for start in range(0, len(raws), PIPELINE_BATCH):
            outcomes = worker.prepare(raws[start : start + PIPELINE_BATCH])
            bad = [o for o in outcomes if not isinstance(o, Prepared)]
            if bad:
                raise RuntimeError(f"the worker failed on a bench mail: {bad[0]}")
        wall = time.perf_counter() - wall
        helper = _process_cpu(pid) - helper_before
        parent = time.process_time() - parent_before
    finally:
        worker.close()
    n = len(mails)
    return 1000 * helper / n, 1000 * parent / n, startup, wall


def profile(mails: list[tuple[str, bytes]], path: str) -> None:
    import cProfile
    import pstats

    from lpse_helpdesk.bridge.parsing import DEFAULT_MAX_BYTES
    from lpse_helpdesk.bridge.prepare import prepare_light
    from lpse_helpdesk.domain.loader import load_domain

    domain = load_domain()
    own = frozenset({HELPDESK})
    for _, raw in mails[:50]:
        prepare_light(raw, DEFAULT_MAX_BYTES, own, domain)
    profiler = cProfile.Profile()
    profiler.enable()
    for _, raw in mails:
        pickle.dumps(prepare_light(raw, DEFAULT_MAX_BYTES, own, domain))
    profiler.disable()
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--profile", help="cProfile prepare_light; write the stats here")
    args = parser.parse_args(argv)

    mails = _mails(args.mails, args.seed)
    kinds = Counter(kind for kind, _ in mails)
    size = sum(len(raw) for _, raw in mails) / len(mails) / 1024
    print(
        f"parsing cost: {len(mails)} mails, {size:.1f} KiB avg, {dict(sorted(kinds.items()))} "
        f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    if args.profile:
        profile(mails, args.profile)
        return 0

    costs = measure_prepare(mails, _mails(100, args.seed + 1))
    print("\nprepare_light, ms CPU/mail (each mail once, after 100 other mails):")
    print(f"  {'kind':<12} {'mails':>6} {'mean':>7} {'median':>7} {'p90':>7}")
    everything: list[float] = []
    for kind in sorted(costs):
        values = [1000 * v for v in costs[kind]]
        everything += values
        p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
        print(
            f"  {kind:<12} {len(values):>6} {statistics.fmean(values):>7.3f}"
            f" {statistics.median(values):>7.3f} {p90:>7.3f}"
        )
    print(
        f"  {'all':<12} {len(everything):>6} {statistics.fmean(everything):>7.3f}"
        f" {statistics.median(everything):>7.3f}"
    )

    dumps, loads, blob = measure_pickle(mails)
    print(
        f"\npickle of the results: dumps {dumps:.3f} ms/mail (helper), "
        f"loads {loads:.3f} ms/mail (parent), {blob / 1024:.1f} KiB/mail"
    )

    helper, parent, startup, wall = measure_worker(mails, _mails(100, args.seed + 1))
    print(
        f"\nParseWorker round trip: helper {helper:.2f} ms CPU/mail, parent {parent:.2f} ms "
        f"CPU/mail, {len(mails) / wall:.0f} mails/s wall; helper start-up {startup:.2f} s CPU"
    )
    verdict = "meets" if helper <= TARGET_HELPER_MS else "ABOVE"
    print(f"  helper {verdict} the target of {TARGET_HELPER_MS} ms CPU/mail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
