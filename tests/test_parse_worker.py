"""The parsing process: a batch in one message each way, the budget still per mail.

Real child processes (spawned as in production); the serve loops below wrap the real one
and misbehave on a marker, as a pathological mail in a library would.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import Any

import pytest

from lpse_helpdesk.bridge.parse_worker import (
    OverBudget,
    ParseFailed,
    ParseWorker,
    Progress,
    serve_mails,
)
from lpse_helpdesk.bridge.prepare import Prepared
from lpse_helpdesk.domain.loader import load_domain
from tests.mailmaker import make_mail

OWN = frozenset({"helpdesk@lpse.test"})


def _misbehaving(conn: Connection, progress: Progress) -> None:
    """The real loop, except that a mail with LAMBAT hangs and one with MATI kills the
    process."""
    import lpse_helpdesk.bridge.parse_worker as worker_module

    real = worker_module.prepare_light  # type: ignore[attr-defined]  # its import, patched below

    def prepare_light(raw: bytes, *args: Any) -> Any:
        if b"LAMBAT" in raw:
            time.sleep(3600)
        if b"MATI" in raw:
            os._exit(3)
        return real(raw, *args)

    worker_module.prepare_light = prepare_light  # type: ignore[attr-defined,assignment]  # stand-in
    serve_mails(conn, progress)


@pytest.fixture
def worker() -> Any:
    started = ParseWorker(64 * 1024, OWN, load_domain(), budget=1.0, serve=_misbehaving)
    yield started
    started.close()


def _mail(subject: str) -> bytes:
    return make_mail(subject=subject, sender="vendor@vendor.co.id")


def _subjects(outcomes: list[Any]) -> list[str]:
    return [o.mail.subject if isinstance(o, Prepared) else type(o).__name__ for o in outcomes]


def test_a_batch_comes_back_whole_and_in_order(worker: ParseWorker) -> None:
    raws = [_mail(f"Surat {i}") for i in range(60)]
    assert _subjects(worker.prepare(raws)) == [f"Surat {i}" for i in range(60)]
    # The settings went to the child once; the next batch is served by the same child.
    assert _subjects(worker.prepare(raws[:2])) == ["Surat 0", "Surat 1"]
    assert worker.kills == 0


def test_a_mail_over_budget_in_the_middle_keeps_the_others(worker: ParseWorker) -> None:
    raws = [_mail("Pertama"), _mail("Kedua"), _mail("LAMBAT sekali"), _mail("Keempat")]
    outcomes = worker.prepare(raws)
    assert _subjects(outcomes) == ["Pertama", "Kedua", "OverBudget", "Keempat"]
    assert isinstance(outcomes[2], OverBudget) and outcomes[2].seconds == 1.0
    assert worker.kills == 1


def test_the_budget_is_per_mail_not_per_batch() -> None:
    """Many mails together take longer than one mail's budget: none is stopped."""
    raws = [_mail(f"Surat {i}") for i in range(30)]
    slow = ParseWorker(64 * 1024, OWN, load_domain(), budget=0.5, serve=_slow_each)
    try:
        started = time.monotonic()
        outcomes = slow.prepare(raws)
        assert time.monotonic() - started > 0.5 * 2  # longer than two budgets in all
    finally:
        slow.close()
    assert _subjects(outcomes) == [f"Surat {i}" for i in range(30)]
    assert slow.kills == 0


def _slow_each(conn: Connection, progress: Progress) -> None:
    """Each mail takes 0.1 s: well within a 0.5 s budget, a batch of 30 well over it."""
    import lpse_helpdesk.bridge.parse_worker as worker_module

    real = worker_module.prepare_light  # type: ignore[attr-defined]  # its import, patched below

    def prepare_light(raw: bytes, *args: Any) -> Any:
        time.sleep(0.1)
        return real(raw, *args)

    worker_module.prepare_light = prepare_light  # type: ignore[attr-defined,assignment]  # stand-in
    serve_mails(conn, progress)


def test_a_process_that_dies_on_a_mail_fails_only_that_mail(worker: ParseWorker) -> None:
    raws = [_mail("Pertama"), _mail("MATI di sini"), _mail("Ketiga")]
    outcomes = worker.prepare(raws)
    assert _subjects(outcomes) == ["Pertama", "ParseFailed", "Ketiga"]
    assert isinstance(outcomes[1], ParseFailed) and "died" in outcomes[1].reason
    # A fresh child took over and keeps serving.
    assert _subjects(worker.prepare([_mail("Lagi")])) == ["Lagi"]
