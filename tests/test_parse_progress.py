"""The progress the parsing process shares with the service (bridge/parse_worker.py)."""

from __future__ import annotations

import os

import pytest

from lpse_helpdesk.bridge.parse_worker import ParseWorker, Progress
from lpse_helpdesk.bridge.prepare import Prepared
from lpse_helpdesk.domain.loader import load_domain
from tests.mailmaker import make_mail


def test_a_pair_written_is_read_back_whole() -> None:
    progress = Progress.create()
    try:
        assert progress.get() == (-1, 0.0)
        progress.set(7, 123.5)
        assert progress.get() == (7, 123.5)
        shared = Progress(os.dup(progress.fd))  # the other side's mapping of the same file
        try:
            progress.set(8, 124.25)
            assert shared.get() == (8, 124.25)
        finally:
            shared.close()
    finally:
        progress.close()


def test_without_memfd_a_temporary_file_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not Linux, or a sandbox that forbids memfd_create: the worker still runs."""

    def refused(name: str, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", refused)
    worker = ParseWorker(64 * 1024, frozenset({"helpdesk@lpse.test"}), load_domain(), budget=5.0)
    try:
        outcomes = worker.prepare([make_mail(subject="Satu"), make_mail(subject="Dua")])
    finally:
        worker.close()
    assert [o.mail.subject for o in outcomes if isinstance(o, Prepared)] == ["Satu", "Dua"]
