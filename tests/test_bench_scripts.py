"""The benchmark scripts are not run by the tests (their figures are measured, not asserted),
but they must keep working: each imports cleanly (no work at import time) and answers
``--help``. `make lint` type-checks them as well."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")


def test_there_are_benchmarks() -> None:
    assert {"intake_backlog", "idle_latency", "startup"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_imports_and_answers_help(name: str) -> None:
    importlib.import_module(f"bench.{name}")
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
