"""`make demo MODE=single`: the single-account mode runs end to end on the simulated cloud, in a fresh
process with its own home (as `make demo` runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from spotlake_assets.aws_single import constants as c
from spotlake_assets.storage import keys

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_single_account_mode(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SPOTLAKE_", "DAGSTER_"))},
        "SPOTLAKE_HOME": str(tmp_path),
        "SPOTLAKE_SCALE": "0.02",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spotlake_assets.demo",
            "--mode",
            "single",
            "--day",
            "2026-03-01",
            "--windows",
            "2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Single-account summary (SIMULATED)" in done.stdout
    assert "repeats within 24 h are free" in done.stdout
    lake = tmp_path / "lake"
    assert (lake / c.selection_key("2026-03-01")).is_file()
    assert (lake / keys.history_key(c.PREFIX, "2026-03-01-00:10")).is_file()
    assert (lake / c.launch_time_key("2026-03-01-00:10")).is_file()
    # The full pipeline did not run: single mode spends only the account's own budget.
    assert not (lake / keys.workload_key("aws", "2026-03-01")).exists()


def test_make_demo_passes_the_mode() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "MODE ?= full" in makefile and "python -m spotlake_assets.demo --mode $(MODE)" in makefile
