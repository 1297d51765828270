"""`make demo`'s program as a user runs it, in real processes on a home configured like `make demo`'s:

- twice on the same home: both succeed and every lake object is the same (rows, not bytes);
- killed (SIGKILL) while one of its runs holds a concurrency-pool slot, then run again: the rerun is not
  blocked, reaps the dead run, frees the slot and finishes;
- started twice at once: on one home, one runs and the other says the home is taken; on two homes sharing a
  fresh Dagster home, both initialise the instance without colliding and finish;
- by default (no ``--day``): the most recent finished windows, each day's workload first, ops/collector_stats,
  plots, and every asset check green afterwards, freshness included; `make ui` then runs at its scale.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from spotlake_assets.chaos import (
    DemoSpec,
    InstanceState,
    LakeDiff,
    compare_lakes,
    dagster_home_of,
    demo_env,
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
from spotlake_assets.demo import (
    DEMO_SETTINGS_FILE,
    day_windows,
    days_of,
    main,
    pin_partitions_start,
    recent_windows,
    remember_for_ui,
)
from spotlake_assets.orchestration.plots import MAX_PNG_BYTES, plot_keys, png_of
from spotlake_assets.storage.locks import file_lock

ROOT = Path(__file__).resolve().parents[1]

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


def test_recent_windows_are_the_last_finished_ones() -> None:
    now = datetime(2026, 12, 5, 0, 23, 40, tzinfo=UTC)
    # 00:20 is still in progress: the three before it, oldest first, across midnight.
    assert recent_windows(now, 3) == ["2026-12-04-23:50", "2026-12-05-00:00", "2026-12-05-00:10"]
    assert recent_windows(datetime(2026, 12, 5, 0, 20, tzinfo=UTC), 1) == ["2026-12-05-00:10"]
    assert days_of(recent_windows(now, 3)) == ["2026-12-04", "2026-12-05"]
    assert day_windows("2026-03-01", 2) == ["2026-03-01-00:00", "2026-03-01-00:10"]


def test_a_pinned_day_before_the_local_start_moves_the_start() -> None:
    environ: dict[str, str] = {}
    assert pin_partitions_start("2026-03-01", environ) == "2026-03-01"
    assert environ == {"SPOTLAKE_PARTITIONS_START": "2026-03-01"}
    # A start that is set is kept (the demo then refuses a day before it, with a message).
    assert pin_partitions_start("2026-03-02", {"SPOTLAKE_PARTITIONS_START": "2026-01-01"}) == "2026-01-01"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    untouched: dict[str, str] = {}
    assert pin_partitions_start(today, untouched) is None and untouched == {}


def test_a_pinned_day_before_a_set_start_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime.now(UTC).strftime("%Y-%m-%d")
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    monkeypatch.setenv("SPOTLAKE_PARTITIONS_START", start)
    monkeypatch.delenv("SPOTLAKE_ENV", raising=False)
    with pytest.raises(SystemExit, match=f"collects 2026-03-01, before SPOTLAKE_PARTITIONS_START={start}"):
        main(["--day", "2026-03-01"])


def _make_ui_line(home: Path, *args: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        [make, "-n", "--no-print-directory", "ui", f"SPOTLAKE_HOME={home}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return " ".join(line for line in done.stdout.splitlines() if "SPOTLAKE_ENV=local" in line)


def test_make_ui_runs_at_the_scale_of_the_last_demo(tmp_path: Path) -> None:
    assert "SPOTLAKE_SCALE=1.0 " in _make_ui_line(tmp_path)  # no demo yet: full scale
    assert "SPOTLAKE_PARTITIONS_START" not in _make_ui_line(tmp_path)
    remember_for_ui(tmp_path, 0.05, "2026-03-01")
    assert (tmp_path / DEMO_SETTINGS_FILE).is_file()
    line = _make_ui_line(tmp_path)
    assert "SPOTLAKE_SCALE=0.05 " in line and "SPOTLAKE_PARTITIONS_START=2026-03-01" in line
    assert "SPOTLAKE_SCALE=0.5 " in _make_ui_line(tmp_path, "SCALE=0.5")


def test_make_ui_creates_the_instance_under_the_demos_lock_first(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    recipe = subprocess.run(
        [make, "-n", "--no-print-directory", "ui", f"SPOTLAKE_HOME={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    ).stdout.splitlines()  # fmt: skip
    init = next(i for i, line in enumerate(recipe) if "spotlake_assets.demo --init-only" in line)
    assert init < next(i for i, line in enumerate(recipe) if "dagster dev" in line)
    # The init waits for a demo holding the lock (as `open_instance` does), then creates the storage.
    dagster_home = dagster_home_of(tmp_path)
    runs_db = dagster_home / "history" / "runs.db"
    with file_lock(dagster_home / ".instance-init.lock"):
        process = subprocess.Popen(
            [sys.executable, "-m", "spotlake_assets.demo", "--init-only"],
            cwd=ROOT,
            env=demo_env(tmp_path, ONE_WINDOW),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(3)
        assert process.poll() is None and not runs_db.exists()
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert runs_db.is_file() and (dagster_home / "schedules" / "schedules.db").is_file()


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None, key
    return dict(event.asset_materialization.metadata)


def test_the_default_demo_leaves_every_check_green(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    env = {k: v for k, v in demo_env(tmp_path, ONE_WINDOW).items() if k != "SPOTLAKE_PARTITIONS_START"}
    done = subprocess.run(
        [sys.executable, "-m", "spotlake_assets.demo", "--windows", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout
    assert done.returncode == 0, output[-3000:] + done.stderr[-3000:]
    # Green: the newest windows are fresh and no check's latest evaluation failed.
    assert "aws/delta delta_is_fresh: passed" in output and "azure/delta delta_is_fresh: passed" in output
    green = [line for line in output.splitlines() if "asset checks:" in line]
    assert len(green) == 1, output[-3000:]
    passed, total = green[0].split(":")[1].split(" green")[0].split(" of ")
    assert int(passed) == int(total) > 10 and "not green" not in output, output[-3000:]
    assert (tmp_path / DEMO_SETTINGS_FILE).read_text() == "DEMO_SCALE := 0.02\n"

    with dg.DagsterInstance.from_config(str(dagster_home_of(tmp_path))) as instance:
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        stats_key = dg.AssetKey(["ops", "collector_stats"])
        assert today in instance.get_materialized_partitions(stats_key)
        assert _latest_metadata(instance, stats_key)["runs"].value > 0
        drawn = 0
        window_assets = [dg.AssetKey([p, a]) for p in ("aws", "azure") for a in ("merged", "delta")]
        for key in (stats_key, *window_assets):
            metadata = _latest_metadata(instance, key)
            for name in plot_keys(metadata):
                assert len(png_of(metadata[name])) < MAX_PNG_BYTES
                drawn += 1
        # Five on the day's stats, one per window on each merged and delta.
        assert drawn == 5 + 4
