"""The fault-injection tier in small (`make chaos` runs 20 trials): kill -9 the demo twice, once while a
merge step holds its pool slot and once at a seeded random moment, rerun each, and expect the reference's
lake exactly, with nothing duplicated, spent twice, left running or blocked."""

from __future__ import annotations

import subprocess
from pathlib import Path

from spotlake_assets.chaos import (
    KILL_HORIZON_SHARE,
    DemoSpec,
    format_table,
    kill_moments,
    kill_while_holding_a_slot,
    run_reference,
    run_trial,
)

SPEC = DemoSpec(day="2026-03-01", windows=1, scale=0.02)


def _during_a_merge(process: subprocess.Popen[bytes], home: Path) -> bool:
    return kill_while_holding_a_slot(process, home, 60, pool="aws_merge") is not None


def test_chaos_smoke(tmp_path: Path) -> None:
    reference = run_reference(tmp_path, SPEC, timeout_s=300)
    assert reference.snapshot and reference.sps_calls > 0
    (random_moment,) = kill_moments(seed=11, trials=1, horizon_s=KILL_HORIZON_SHARE * reference.wall_s)

    results = [
        run_trial(1, _during_a_merge, reference, tmp_path, SPEC, timeout_s=90),
        run_trial(2, random_moment, reference, tmp_path, SPEC, timeout_s=90),
    ]

    table = "\n".join(format_table(results))
    assert results[0].interrupted, table
    assert [r.failures for r in results] == [0, 0], table
