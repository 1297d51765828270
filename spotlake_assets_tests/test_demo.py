"""`make demo`'s program, twice on the same home: both runs succeed, the second duplicates nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(home: Path) -> str:
    env = {
        **os.environ,
        "SPOTLAKE_HOME": str(home),
        "SPOTLAKE_SCALE": "0.02",
        "DAGSTER_HOME": str(home / "dh"),
    }
    env.pop("SPOTLAKE_ENV", None)
    done = subprocess.run(
        [sys.executable, "-m", "spotlake_assets.demo", "--day", "2026-03-01", "--windows", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def lake_digest(lake: Path) -> dict[str, str]:
    return {
        str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lake.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_demo_runs_twice_without_duplicates(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    assert "Summary" in first and "2026-03-01-00:10" in first
    assert "latest JSON:" in first and "peak RSS" in first
    before = lake_digest(tmp_path / "lake")
    assert any(k.startswith("history/aws/2026/03/01/") for k in before)
    second = run_demo(tmp_path)
    after = lake_digest(tmp_path / "lake")
    assert after == before
    # Every SPS group of the rerun came from its checkpoint: no query was repeated.
    rows = [line.split() for line in second.splitlines() if line.strip().startswith("2026-03-01-00:")]
    assert rows and all(row[6] == "0" for row in rows), second
    # The runs are in the persistent instance, where `make ui` finds them.
    assert (tmp_path / "dh").is_dir() and any((tmp_path / "dh").iterdir())
