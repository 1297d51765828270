"""`make bench` keeps working: the window and tick benchmarks run end to end at a tiny scale.

They pin their own days (2026-03-01), which must stay partitions whatever `SPOTLAKE_PARTITIONS_START` the
environment has; the figures themselves are not asserted (speed belongs to the benchmarks, not the tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, tmp_path: Path) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "SPOTLAKE_PARTITIONS_START"}
    environ |= {"SPOTLAKE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_full_window_benchmark_runs(tmp_path: Path) -> None:
    out = _run("full_window.py", "--scale", "0.02", "--windows", "1", tmp_path=tmp_path)
    assert "window 00:00:" in out and "peak RSS" in out


@pytest.mark.parametrize("provider", ["aws", "azure"])
def test_tick_benchmark_runs_and_prices_both_architectures(provider: str, tmp_path: Path) -> None:
    out = _run("tick.py", "--providers", provider, "--scale", "0.02", "--latency-ms", "0", tmp_path=tmp_path)
    assert f"{provider} tick" in out and "x86_64 $" in out and "arm64 $" in out
