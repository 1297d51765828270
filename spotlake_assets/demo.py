"""`make demo`: the main jobs on the embedded default (simulated AWS and Azure, local lake), through a
real Dagster instance, so `make ui` shows the runs afterwards. Re-running it is safe: every write is
idempotent and the SPS checkpoints mean no simulated query is repeated.

A demo that was killed is recovered by the next one: before launching anything, runs whose worker is
provably dead are marked failed and their concurrency-pool slots freed (`core.run_health`), and the
temporary files a killed writer left in the lake are swept. One demo at a time holds a home."""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import dagster as dg
from dagster._core.storage.tags import MAX_RETRIES_TAG

from spotlake_assets.aws.demo import aws_summary_lines
from spotlake_assets.azure.demo import azure_summary_lines
from spotlake_assets.domain.summary import metadata_value
from spotlake_assets.domain.windows import WINDOW, window_key
from spotlake_assets.environment import resources_for
from spotlake_assets.orchestration.metrics import peak_rss_mib
from spotlake_assets.orchestration.run_health import live_runs, reap_dead_runs, this_process
from spotlake_assets.settings import InvalidSetting, load_settings
from spotlake_assets.storage.locks import file_lock

# Temp files older than this are swept even while another run may be writing: a lake write goes from its
# temp file to the rename within seconds, so ten minutes never catches one in flight.
BUSY_LAKE_TEMP_AGE_S = 600.0


class HomeBusy(SystemExit):
    """Another demo holds this home (a message, not a traceback)."""


def _hold_home(home: Path) -> IO[str]:
    """An exclusive lock on ``home`` for this process's lifetime (the OS drops it when the process dies,
    even on SIGKILL). Two demos on one home would both reap, sweep and rebuild the same windows: the second
    says so and stops instead."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / ".demo.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise HomeBusy(
            f"another demo (pid {holder}) holds {home}: wait for it to finish, "
            "or give this one its own SPOTLAKE_HOME"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def open_instance(dagster_home: Path) -> dg.DagsterInstance:
    """The instance of ``dagster_home``, its storage created under a lock: two processes creating the SQLite
    schemas of a fresh home at once collide on ``alembic_version`` (sqlite3.IntegrityError)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    with file_lock(dagster_home / ".instance-init.lock"):
        instance = dg.DagsterInstance.get()
        # Touch every storage so each creates its tables now, inside the lock, not at the first run.
        instance.get_run_records(limit=1)
        instance.all_instigator_state()
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.get_concurrency_keys()
    return instance


def recover(instance: dg.DagsterInstance) -> list[str]:
    """Reap runs a killed demo (or `dagster dev` worker) left behind, then sweep the lake's temp files.

    Temp files: when no run is left in progress, nothing can be writing, so every temp file is a leftover
    and goes (a run launched after this check creates its temp files after the sweep has looked).
    Otherwise only those older than `BUSY_LAKE_TEMP_AGE_S`."""
    lines = [f"  recovered: {outcome.describe()}" for outcome in reap_dead_runs(instance)]
    busy = live_runs(instance)
    lake = resources_for()["lake"]
    swept = lake.sweep_temp_files("", older_than_s=BUSY_LAKE_TEMP_AGE_S if busy else 0.0)
    if swept:
        lines.append(f"  swept {len(swept)} temp file(s) a killed writer left in the lake")
    if busy:
        lines.append(f"  note: {len(busy)} run(s) still in progress in this instance (alive elsewhere)")
    return lines


def _run(
    job: Any, partition_key: str, instance: dg.DagsterInstance, tags: dict[str, str]
) -> dict[str, dict[str, Any]]:
    started = time.perf_counter()
    result = job.execute_in_process(
        partition_key=partition_key, instance=instance, raise_on_error=False, tags=tags
    )
    by_asset: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        name = materialization.asset_key.to_user_string()
        metadata = dict(materialization.metadata)
        by_asset[name] = metadata
        print(
            f"    {name:<28} rows={metadata_value(metadata, 'rows'):>7}  "
            f"{metadata_value(metadata, 'duration_s', 0.0):>6.2f}s  "
            f"api_calls={metadata_value(metadata, 'api_calls')}"
        )
    status = "ok" if result.success else "FAILED"
    elapsed = time.perf_counter() - started
    print(f"  run {result.run_id[:8]} {job.name}[{partition_key}] {status} in {elapsed:.1f}s")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data:
                print(f"    step {event.step_key} failed: {event.step_failure_data.error.message.strip()}")
        raise SystemExit(1)
    return by_asset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    parser.add_argument("--day", default=yesterday, help="UTC day to collect (default: yesterday)")
    parser.add_argument("--windows", type=int, default=6, help="consecutive 10-minute windows from 00:00")
    args = parser.parse_args(argv)

    try:
        # Every SPOTLAKE_* value is checked before anything is created: a bad one is a message.
        settings = load_settings()
    except InvalidSetting as exc:
        sys.exit(str(exc))
    if settings.environment != "local":
        sys.exit("make demo runs on the embedded default only: unset SPOTLAKE_ENV or set it to 'local'")
    home = settings.home
    home_lock = _hold_home(home)
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    template = Path(__file__).resolve().parents[1] / "infra" / "local" / "dagster.yaml"
    if template.is_file() and not (dagster_home / "dagster.yaml").exists():
        with file_lock(dagster_home / ".instance-init.lock"):
            if not (dagster_home / "dagster.yaml").exists():
                shutil.copy(template, dagster_home / "dagster.yaml")

    from spotlake_assets.definitions import build_definitions

    started = time.perf_counter()
    defs = build_definitions()
    instance = open_instance(dagster_home)
    print(f"SpotLake demo: simulated AWS and Azure, day {args.day}, {args.windows} windows, home {home}")
    for line in recover(instance):
        print(line)
    # Who runs these runs, so the next demo or the `dead_run_reaper` sensor can prove this process dead.
    # No automatic retry: an in-process run has no code location to relaunch; the next demo resumes it.
    tags = {**this_process().tags(), MAX_RETRIES_TAG: "0"}
    print(f"[1/{args.windows + 1}] daily jobs: AWS workload and on-demand prices, Azure plan, for {args.day}")
    daily = _run(defs.resolve_job_def("aws_daily_job"), args.day, instance, tags)
    azure_daily = _run(defs.resolve_job_def("azure_daily_job"), args.day, instance, tags)

    window_job, azure_window_job = (
        defs.resolve_job_def("aws_window_job"),
        defs.resolve_job_def("azure_window_job"),
    )
    first = datetime.strptime(args.day, "%Y-%m-%d").replace(tzinfo=UTC)
    windows: list[tuple[str, dict[str, dict[str, Any]]]] = []
    azure_windows: list[tuple[str, dict[str, dict[str, Any]]]] = []
    for i in range(args.windows):
        key = window_key(first + i * WINDOW)
        print(f"[{i + 2}/{args.windows + 1}] window {key}")
        windows.append((key, _run(window_job, key, instance, tags)))
        azure_windows.append((key, _run(azure_window_job, key, instance, tags)))

    lake = home / "lake"
    print("\nSummary")
    print("\n".join(aws_summary_lines(daily, windows)))
    print("\n".join(azure_summary_lines(azure_daily, azure_windows)))
    print(f"  wall time {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_mib():.0f} MiB")
    print(f"  lake:        {lake}")
    print(f"  latest JSON: {lake / 'latest_data'}/latest_aws.json and latest_azure.json")
    print(f"  history:     {lake / 'history' / 'aws'}, {lake / 'history' / 'azure'}")
    print(f"  Dagster:     {os.environ['DAGSTER_HOME']} (make ui shows these runs)")
    home_lock.close()


if __name__ == "__main__":
    main()
