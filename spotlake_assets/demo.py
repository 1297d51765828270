"""`make demo`: the main jobs on the embedded default (simulated AWS and Azure, local lake), through a
real Dagster instance, so `make ui` shows the runs afterwards. Re-running it is safe: every write is
idempotent and the SPS checkpoints mean no simulated query is repeated."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from spotlake_assets.aws.demo import aws_summary_lines
from spotlake_assets.azure.demo import azure_summary_lines
from spotlake_assets.core.metrics import peak_rss_mib
from spotlake_assets.core.summary import metadata_value
from spotlake_assets.core.windows import WINDOW, window_key
from spotlake_assets.environment import environment_name, spotlake_home


def _run(job: Any, partition_key: str, instance: dg.DagsterInstance) -> dict[str, dict[str, Any]]:
    started = time.perf_counter()
    result = job.execute_in_process(partition_key=partition_key, instance=instance, raise_on_error=False)
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

    if environment_name() != "local":
        sys.exit("make demo runs on the embedded default only: unset SPOTLAKE_ENV or set it to 'local'")
    home = spotlake_home(os.environ)
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    template = Path(__file__).resolve().parents[1] / "infra" / "local" / "dagster.yaml"
    if template.is_file() and not (dagster_home / "dagster.yaml").exists():
        shutil.copy(template, dagster_home / "dagster.yaml")

    from spotlake_assets.definitions import build_definitions

    started = time.perf_counter()
    defs = build_definitions()
    instance = dg.DagsterInstance.get()
    print(f"SpotLake demo: simulated AWS and Azure, day {args.day}, {args.windows} windows, home {home}")
    print(f"[1/{args.windows + 1}] daily jobs: AWS workload and on-demand prices, Azure plan, for {args.day}")
    daily = _run(defs.resolve_job_def("aws_daily_job"), args.day, instance)
    azure_daily = _run(defs.resolve_job_def("azure_daily_job"), args.day, instance)

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
        windows.append((key, _run(window_job, key, instance)))
        azure_windows.append((key, _run(azure_window_job, key, instance)))

    lake = home / "lake"
    print("\nSummary")
    print("\n".join(aws_summary_lines(daily, windows)))
    print("\n".join(azure_summary_lines(azure_daily, azure_windows)))
    print(f"  wall time {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_mib():.0f} MiB")
    print(f"  lake:        {lake}")
    print(f"  latest JSON: {lake / 'latest_data'}/latest_aws.json and latest_azure.json")
    print(f"  history:     {lake / 'history' / 'aws'}, {lake / 'history' / 'azure'}")
    print(f"  Dagster:     {os.environ['DAGSTER_HOME']} (make ui shows these runs)")


if __name__ == "__main__":
    main()
