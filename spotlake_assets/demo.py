"""`make demo`: the main jobs on the embedded default (simulated AWS and Azure, local lake), through a
real Dagster instance, so `make ui` shows the runs afterwards. Re-running it is safe: every write is
idempotent and the SPS checkpoints mean no simulated query is repeated.

By default it collects the most recent windows that have finished (and any that finish while it runs), after
building the workload of every day they fall on, then `ops/collector_stats` for those days, and records the
delta freshness check: right after the demo every check is green. ``--day`` pins the windows to a day from
00:00 instead (deterministic; reruns give identical lakes).

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
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import MAX_RETRIES_TAG

from spotlake_assets.aws.demo import aws_summary_lines
from spotlake_assets.azure.demo import azure_summary_lines
from spotlake_assets.domain.summary import metadata_value
from spotlake_assets.domain.windows import WINDOW, day_key_of_window, window_key
from spotlake_assets.orchestration.freshness import CHECK_NAME, evaluate_freshness
from spotlake_assets.orchestration.metrics import peak_rss_mib
from spotlake_assets.orchestration.run_health import live_runs, reap_dead_runs, this_process
from spotlake_assets.settings import InvalidSetting, load_settings, partitions_start
from spotlake_assets.storage.locks import file_lock

# Temp files older than this are swept even while another run may be writing: a lake write goes from its
# temp file to the rename within seconds, so ten minutes never catches one in flight.
BUSY_LAKE_TEMP_AGE_S = 600.0
DEFAULT_WINDOWS = 6
# Windows that finish while the demo runs are collected too (at most this many), so the newest one is fresh.
MAX_CATCH_UP_WINDOWS = 3
PROVIDERS = ("aws", "azure")
# What `make ui` reads back (make syntax): the scale and partitions start of the last demo on this home.
DEMO_SETTINGS_FILE = "demo.mk"


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


def recent_windows(now: datetime, count: int) -> list[str]:
    """The ``count`` most recent windows that have finished by ``now``, oldest first."""
    in_progress = datetime.fromtimestamp(
        now.timestamp() // WINDOW.total_seconds() * WINDOW.total_seconds(), UTC
    )
    return [window_key(in_progress - (count - i) * WINDOW) for i in range(count)]


def day_windows(day: str, count: int) -> list[str]:
    """``count`` consecutive windows of ``day`` from 00:00 (the pinned, deterministic demo)."""
    first = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return [window_key(first + i * WINDOW) for i in range(count)]


def days_of(windows: list[str]) -> list[str]:
    """The days the windows fall on, in order: each needs its workload before its windows run."""
    return sorted({day_key_of_window(w) for w in windows})


def pin_partitions_start(first_day: str, environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Start the partitions on ``first_day`` when it is before `local`'s default start and no start is set
    (partition definitions are read at import: call this before importing the definitions). Returns the start
    to remember for `make ui`, None when the default covers the demo."""
    if environ.get("SPOTLAKE_PARTITIONS_START", "").strip():
        return str(environ["SPOTLAKE_PARTITIONS_START"]).strip()
    if first_day < partitions_start("local", environ):
        environ["SPOTLAKE_PARTITIONS_START"] = first_day
        return first_day
    return None


def remember_for_ui(home: Path, scale: float, start: str | None) -> None:
    """`make ui` runs at the demo's scale (and sees its partitions) unless told otherwise."""
    lines = [f"DEMO_SCALE := {scale:g}"] + ([f"DEMO_PARTITIONS_START := {start}"] if start else [])
    (home / DEMO_SETTINGS_FILE).write_text("\n".join(lines) + "\n")


def record_freshness(instance: dg.DagsterInstance, now: datetime) -> list[str]:
    """Evaluate each provider's `delta_is_fresh` as its sensor would, and store the evaluation (runless), so
    the check shows its state right after the demo instead of "not evaluated"."""
    lines = []
    for provider in PROVIDERS:
        delta = dg.AssetKey([provider, "delta"])
        passed, metadata = evaluate_freshness(instance, delta, now)
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=delta, check_name=CHECK_NAME, passed=passed, metadata=metadata)
        )
        lines.append(
            f"  {provider}/delta {CHECK_NAME}: {'passed' if passed else 'FAILED'} (newest window "
            f"{metadata['newest_window']}, {metadata['age_minutes']} min old)"
        )
    return lines


def check_states(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, bool]:
    """Every asset check that has run, by name (``asset:check``): whether its latest evaluation passed —
    the colour the UI shows on the asset."""
    keys = list(defs.resolve_asset_graph().asset_check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return {
        f"{key.asset_key.to_user_string()}:{key.name}": record.status
        == AssetCheckExecutionRecordStatus.SUCCEEDED
        for key, record in sorted(latest.items(), key=lambda item: item[0].to_user_string())
        if record.status != AssetCheckExecutionRecordStatus.PLANNED
    }


def check_lines(states: dict[str, bool]) -> list[str]:
    failed = sorted(name for name, passed in states.items() if not passed)
    lines = [f"  asset checks: {len(states) - len(failed)} of {len(states)} green"]
    lines += [f"    not green: {name}" for name in failed]
    return lines


def dagster_home_for(home: Path) -> Path:
    """``DAGSTER_HOME`` when it is set (the Makefile sets it), else ``<home>/dagster_home``, which then
    becomes this process's ``DAGSTER_HOME`` (Dagster reads the instance from there)."""
    return Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home")))


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
    from spotlake_assets.environment import resources_for  # imports the definitions (see main)

    busy = live_runs(instance)
    lake = resources_for()["lake"]
    swept = lake.sweep_temp_files("", older_than_s=BUSY_LAKE_TEMP_AGE_S if busy else 0.0)
    if swept:
        lines.append(f"  swept {len(swept)} temp file(s) a killed writer left in the lake")
    if busy:
        lines.append(f"  note: {len(busy)} run(s) still in progress in this instance (alive elsewhere)")
    return lines


def _run(
    job: Any,
    partition_key: str,
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    assets: list[dg.AssetKey] | None = None,
) -> dict[str, dict[str, Any]]:
    """One run of ``job`` (or of ``assets`` in the implicit asset job, as the UI's Materialize does)."""
    started = time.perf_counter()
    label = job.name if assets is None else ", ".join(a.to_user_string() for a in assets)
    result = job.execute_in_process(
        partition_key=partition_key,
        instance=instance,
        raise_on_error=False,
        tags=tags,
        asset_selection=assets,
    )
    by_asset: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        name = materialization.asset_key.to_user_string()
        metadata = dict(materialization.metadata)
        by_asset[name] = metadata
        print(
            f"    {name:<28} rows={metadata_value(metadata, 'rows', metadata_value(metadata, 'runs')):>7}  "
            f"{metadata_value(metadata, 'duration_s', 0.0):>6.2f}s  "
            f"api_calls={metadata_value(metadata, 'api_calls')}"
        )
    status = "ok" if result.success else "FAILED"
    elapsed = time.perf_counter() - started
    print(f"  run {result.run_id[:8]} {label}[{partition_key}] {status} in {elapsed:.1f}s")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data:
                print(f"    step {event.step_key} failed: {event.step_failure_data.error.message.strip()}")
        raise SystemExit(1)
    return by_asset


def _windows_from_args(args: argparse.Namespace) -> list[str]:
    if args.day is not None:
        return day_windows(args.day, args.windows)
    return recent_windows(args.now or datetime.now(UTC), args.windows)


def _utc_minute(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--day", default=None, help="UTC day to collect from 00:00 (default: the most recent windows)"
    )
    parser.add_argument("--windows", type=int, default=DEFAULT_WINDOWS, help="how many 10-minute windows")
    parser.add_argument(
        "--now", type=_utc_minute, default=None, help="UTC time YYYY-MM-DDTHH:MM to count back from"
    )
    parser.add_argument(
        "--mode", choices=("full", "single"), default="full", help="single: the single-account mode"
    )
    parser.add_argument(
        "--init-only",
        action="store_true",
        help="only create the Dagster instance's storage, under the demo's lock, and exit (`make ui` runs it "
        "first, so a demo started beside it cannot race it on a fresh home)",
    )
    args = parser.parse_args(argv)
    if args.init_only:
        try:
            open_instance(dagster_home_for(load_settings().home))
        except InvalidSetting as exc:
            sys.exit(str(exc))
        return
    windows = _windows_from_args(args)
    days = days_of(windows)

    try:
        # Before anything imports the partitions: they are fixed when the asset modules load.
        start = pin_partitions_start(days[0])
        # Every SPOTLAKE_* value is checked before anything is created: a bad one is a message.
        settings = load_settings()
    except InvalidSetting as exc:
        sys.exit(str(exc))
    if settings.environment != "local":
        sys.exit("make demo runs on the embedded default only: unset SPOTLAKE_ENV or set it to 'local'")
    if days[0] < settings.partitions_start:
        sys.exit(
            f"the demo collects {days[0]}, before SPOTLAKE_PARTITIONS_START={settings.partitions_start}: "
            "unset it or set it to that day or earlier"
        )
    home = settings.home
    home_lock = _hold_home(home)
    remember_for_ui(home, settings.scale, start)
    dagster_home = dagster_home_for(home)
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
    print(
        f"SpotLake demo: simulated AWS and Azure, {len(windows)} windows {windows[0]} .. {windows[-1]}, "
        f"home {home}"
    )
    for line in recover(instance):
        print(line)
    # Who runs these runs, so the next demo or the `dead_run_reaper` sensor can prove this process dead.
    # No automatic retry: an in-process run has no code location to relaunch; the next demo resumes it.
    tags = {**this_process().tags(), MAX_RETRIES_TAG: "0"}
    if args.mode == "single":
        from spotlake_assets.aws_single.demo import run_single_account

        runner = lambda job, key: _run(job, key, instance, tags)  # noqa: E731 - the one-account demo's runner
        print("\n".join(run_single_account(defs, instance, tags, windows, runner, print)))
        home_lock.close()
        return
    daily: dict[str, dict[str, Any]] = {}
    azure_daily: dict[str, dict[str, Any]] = {}
    for day in days:
        print(f"daily jobs for {day}: AWS workload and on-demand prices, Azure plan")
        daily = _run(defs.resolve_job_def("aws_daily_job"), day, instance, tags)
        azure_daily = _run(defs.resolve_job_def("azure_daily_job"), day, instance, tags)

    window_job, azure_window_job = (
        defs.resolve_job_def("aws_window_job"),
        defs.resolve_job_def("azure_window_job"),
    )
    aws_windows: list[tuple[str, dict[str, dict[str, Any]]]] = []
    azure_windows: list[tuple[str, dict[str, dict[str, Any]]]] = []

    def collect(key: str, label: str) -> None:
        print(f"[{label}] window {key}")
        aws_windows.append((key, _run(window_job, key, instance, tags)))
        azure_windows.append((key, _run(azure_window_job, key, instance, tags)))

    for i, key in enumerate(windows):
        collect(key, f"{i + 1}/{len(windows)}")
    if args.day is None and args.now is None:
        # Windows that finished while the demo ran: the newest collected window stays the newest finished.
        for _ in range(MAX_CATCH_UP_WINDOWS):
            (newest,) = recent_windows(datetime.now(UTC), 1)
            if newest <= windows[-1]:
                break
            if day_key_of_window(newest) not in days:
                days.append(day_key_of_window(newest))
                _run(defs.resolve_job_def("aws_daily_job"), days[-1], instance, tags)
                _run(defs.resolve_job_def("azure_daily_job"), days[-1], instance, tags)
            windows.append(newest)
            collect(newest, "finished meanwhile")
    stats = dg.AssetKey(["ops", "collector_stats"])
    stats_job = defs.resolve_implicit_job_def_def_for_assets([stats])
    for day in days:
        print(f"ops/collector_stats for {day}")
        _run(stats_job, day, instance, tags, assets=[stats])

    lake = home / "lake"
    print("\nSummary")
    print("\n".join(aws_summary_lines(daily, aws_windows)))
    print("\n".join(azure_summary_lines(azure_daily, azure_windows)))
    for line in record_freshness(instance, args.now or datetime.now(UTC)):
        print(line)
    for line in check_lines(check_states(instance, defs)):
        print(line)
    print(f"  wall time {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_mib():.0f} MiB")
    print(f"  lake:        {lake}")
    print(f"  latest JSON: {lake / 'latest_data'}/latest_aws.json and latest_azure.json")
    print(f"  history:     {lake / 'history' / 'aws'}, {lake / 'history' / 'azure'}")
    print(f"  Dagster:     {os.environ['DAGSTER_HOME']} (make ui shows these runs)")
    home_lock.close()


if __name__ == "__main__":
    main()
