"""`make demo`'s program as a user runs it, in real processes on a home configured like `make demo`'s:

- twice on the same home: both succeed and every lake object is the same (rows, not bytes);
- killed (SIGKILL) while one of its runs holds a concurrency-pool slot, then run again: the rerun is not
  blocked, reaps the dead run, frees the slot and finishes;
- started twice at once: on one home, one runs and the other says the home is taken; on two homes sharing a
  fresh Dagster home, both initialise the instance without colliding and finish.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spotlake_assets.chaos import (
    DemoSpec,
    InstanceState,
    LakeDiff,
    compare_lakes,
    finish,
    instance_state,
    kill_while_holding_a_slot,
    prepare_home,
    run_demo,
    snapshot_lake,
    start_demo,
    temp_files,
    timestream_duplicates,
)

TWO_WINDOWS = DemoSpec(day="2026-03-01", windows=2, scale=0.02)
ONE_WINDOW = DemoSpec(day="2026-03-01", windows=1, scale=0.02)
# A demo at this scale takes ~10 s; a rerun blocked on a pool would wait forever.
RERUN_TIMEOUT_S = 60.0


def test_demo_twice_reproduces_every_lake_object(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    first = run_demo(tmp_path, TWO_WINDOWS, timeout_s=300, log_name="first.log")
    assert first.returncode == 0, first.output[-3000:]
    assert "Summary" in first.output and "2026-03-01-00:10" in first.output
    assert "latest JSON:" in first.output and "peak RSS" in first.output
    lake = tmp_path / "lake"
    before = snapshot_lake(lake)
    for provider in ("aws", "azure"):
        assert any(k.startswith(f"history/{provider}/2026/03/01/") for k in before), provider
        assert any(k.startswith(f"timestream/spotlake/{provider}/") for k in before), provider

    second = run_demo(tmp_path, TWO_WINDOWS, timeout_s=300, log_name="second.log")

    assert second.returncode == 0, second.output[-3000:]
    diff = compare_lakes(before, snapshot_lake(lake))
    assert diff == LakeDiff(), "\n".join(diff.describe(limit=20))
    assert timestream_duplicates(lake) == 0
    # Every AWS SPS group of the rerun came from its checkpoint: no query was repeated.
    rows = [line.split() for line in second.output.splitlines() if line.strip().startswith("2026-03-01-00:")]
    aws_rows = [row for row in rows if len(row) == 10]
    assert aws_rows and all(row[6] == "0" for row in aws_rows), second.output[-3000:]
    # The runs are in the persistent instance, where `make ui` finds them; none is left behind.
    assert instance_state(tmp_path) == InstanceState(active_runs=0, held_slots=0)


@pytest.mark.parametrize("pool", ["aws_sps", "azure_merge"])
def test_a_demo_killed_holding_a_pool_slot_never_blocks_the_rerun(tmp_path: Path, pool: str) -> None:
    prepare_home(tmp_path)
    claim = kill_while_holding_a_slot(start_demo(tmp_path, ONE_WINDOW, "killed.log"), tmp_path, 120, pool)
    assert claim is not None, (tmp_path / "killed.log").read_text()[-3000:]
    _, run_id, step = claim
    assert instance_state(tmp_path).held_slots >= 1  # what used to block every rerun

    rerun = run_demo(tmp_path, ONE_WINDOW, timeout_s=RERUN_TIMEOUT_S, log_name="rerun.log")

    assert not rerun.blocked, f"rerun blocked by the dead run's {pool} slot ({step}):\n{rerun.output[-2000:]}"
    assert rerun.returncode == 0, rerun.output[-3000:]
    assert f"recovered: run {run_id[:8]}" in rerun.output and "marked failed" in rerun.output
    assert instance_state(tmp_path) == InstanceState(active_runs=0, held_slots=0)
    assert temp_files(tmp_path / "lake") == []
    assert timestream_duplicates(tmp_path / "lake") == 0


def test_two_demos_at_once_on_one_fresh_home(tmp_path: Path) -> None:
    # A fresh clone: no Dagster home, no instance config yet (the demo copies it).
    started = time.monotonic()
    processes = [start_demo(tmp_path, ONE_WINDOW, f"demo{i}.log") for i in (1, 2)]
    runs = [finish(p, tmp_path, f"demo{i}.log", started, 300) for i, p in zip((1, 2), processes, strict=True)]

    assert sorted(run.returncode for run in runs if run.returncode is not None) == [0, 1], [
        r.output[-2000:] for r in runs
    ]
    refused = next(run for run in runs if run.returncode == 1)
    assert f"another demo (pid {processes[0].pid if runs[0] is not refused else processes[1].pid})" in (
        refused.output
    )
    assert str(tmp_path) in refused.output and "Traceback" not in refused.output
    assert instance_state(tmp_path) == InstanceState(active_runs=0, held_slots=0)


def test_two_demos_sharing_a_fresh_dagster_home_initialise_it_once(tmp_path: Path) -> None:
    # Two lakes, one instance: both create the instance's SQLite storage at the same moment. Unserialised,
    # one of them died on `alembic_version` (IntegrityError) or "table ... already exists".
    shared = {"DAGSTER_HOME": str(tmp_path / "shared_dagster_home")}
    homes = [tmp_path / "a", tmp_path / "b"]
    started = time.monotonic()
    processes = [start_demo(home, ONE_WINDOW, "demo.log", shared) for home in homes]
    runs = [finish(p, home, "demo.log", started, 300) for home, p in zip(homes, processes, strict=True)]

    for run in runs:
        assert run.returncode == 0, run.output[-3000:]
        assert "Traceback" not in run.output
    # Each demo saw the other's runs alive and left them alone; the lakes are identical.
    assert compare_lakes(snapshot_lake(homes[0] / "lake"), snapshot_lake(homes[1] / "lake")) == LakeDiff()
