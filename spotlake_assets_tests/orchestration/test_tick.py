"""A cheap tick: one run per provider per 10-minute tick, a lake sensor that does not merge a window twice,
freshness evaluated without a run, and definitions that load without the heavy modules."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from spotlake_assets.orchestration.automation import MERGE_CHAIN_TAG, PARTITION_TAG
from spotlake_assets.orchestration.provider import ProviderDefinitions, build_provider
from spotlake_assets.sinks.timestream import LocalTimestream
from spotlake_assets.storage import keys
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.orchestration.test_third_provider import DAY, GCP, PROVIDER, WINDOWS

TICK = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)
# What a production run worker must not import just to load the definitions (lazy where they are used).
HEAVY_MODULES = (
    "ortools",
    "duckdb",
    "azure.mgmt",
    "azure.identity",
    "moto",
    "pyarrow.dataset",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
)


def fires_at(cron: str, tick: datetime) -> bool:
    return next(cron_string_iterator((tick - timedelta(seconds=1)).timestamp(), cron, "UTC")) == tick


def test_a_tick_launches_one_run_per_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPOTLAKE_ENV", "test")
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    from spotlake_assets.definitions import build_definitions

    repository = build_definitions().get_repository_def()
    requested: list[tuple[str, str | None]] = []
    for schedule in repository.schedule_defs:
        if not fires_at(schedule.cron_schedule, TICK):  # type: ignore[arg-type]
            continue
        with dg.build_schedule_context(scheduled_execution_time=TICK, repository_def=repository) as context:
            for request in schedule.evaluate_tick(context).run_requests or []:
                requested.append((request.job_name or schedule.job_name, request.partition_key))
    # The single-account mode (`aws_single`, its own package and schedules) is not one of the providers.
    platform = [r for r in requested if not r[0].startswith("aws_single")]
    assert sorted(platform) == [
        ("aws_window_job", "2026-03-01-00:10"),
        ("azure_window_job", "2026-03-01-00:10"),
    ]
    # The window job is the whole window: collectors, merged, delta and every sink, in one run.
    window_job = repository.get_job("aws_window_job")
    assert {k.to_user_string() for k in window_job.asset_layer.executable_asset_keys} >= {
        "aws/sps",
        "aws/interruption_frequency",
        "aws/spot_price",
        "aws/merged",
        "aws/delta",
        "aws/latest",
    }
    # The freshness check is evaluated by a sensor; no schedule or job exists for it any more.
    assert not [s for s in repository.schedule_defs if "freshness" in s.name]
    freshness = repository.get_sensor_def("aws_freshness_sensor")
    assert not freshness.job_name if freshness.has_jobs else True


@pytest.fixture
def gcp(tmp_path: Path) -> tuple[ProviderDefinitions, dg.Definitions, LocalLake]:
    built = build_provider(GCP)
    lake = LocalLake(root=str(tmp_path / "lake"))
    resources: dict[str, Any] = {
        "lake": lake,
        "timestream": LocalTimestream(root=lake.root),
        **GCP.resources("local", {}),
    }
    return built, built.definitions(resources), lake


def sensor_named(built: ProviderDefinitions, name: str) -> dg.SensorDefinition:
    (sensor,) = [s for s in built.sensors if s.name == name]
    return sensor


def evaluate(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, lake: LocalLake, cursor: str | None = None
) -> dg.SensorResult:
    resources = {"lake": lake} if sensor.name.endswith("lake_sensor") else {}
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_the_lake_sensor_does_not_merge_what_the_window_run_merged(
    gcp: tuple[ProviderDefinitions, dg.Definitions, LocalLake],
) -> None:
    built, defs, lake = gcp
    lake_sensor = sensor_named(built, f"{PROVIDER}_lake_sensor")
    with dg.instance_for_test() as instance:
        assert (
            defs.resolve_job_def("gcp_daily_job")
            .execute_in_process(partition_key=DAY, instance=instance)
            .success
        )
        window = defs.resolve_job_def("gcp_window_job")
        assert window.execute_in_process(partition_key=WINDOWS[0], instance=instance).success
        result = evaluate(lake_sensor, instance, lake)
        # The window run merged its window: nothing to request, and the cursor moves past it.
        assert not result.run_requests and "whose inputs changed" in str(result.skip_reason)
        assert result.cursor == keys.sps_key(PROVIDER, WINDOWS[0], _capacity(WINDOWS[0]))

        # Collectors alone (a backfill of raw data): their merge is missing, so the sensor requests it.
        collect = defs.resolve_job_def("gcp_collect_job")
        assert collect.execute_in_process(partition_key=WINDOWS[1], instance=instance).success
        (request,) = evaluate(lake_sensor, instance, lake, result.cursor).run_requests or []
        assert request.partition_key == WINDOWS[1]
        assert str(request.run_key).startswith(f"gcp-merge-{WINDOWS[1]}-")

        # Collected again with the same answers (a rerun of a deterministic simulation): the inputs are
        # those of the merge, nothing to do (seen from the start of the prefix; WINDOWS[1] is still
        # unmerged, its run never ran here).
        assert collect.execute_in_process(partition_key=WINDOWS[0], instance=instance).success
        again = evaluate(lake_sensor, instance, lake).run_requests or []
        assert [r.partition_key for r in again] == [WINDOWS[1]]

        # An input that really changed: that window is merged again, under a new run key.
        (price,) = [k for k in GCP.merge.inputs(WINDOWS[0]) if "price" in k]
        lake.write_bytes(price, lake.read_bytes(price) + b"\0")
        changed = evaluate(lake_sensor, instance, lake).run_requests or []
        assert [r.partition_key for r in changed] == [WINDOWS[0], WINDOWS[1]]
        assert changed[1].run_key == again[0].run_key and str(changed[0].run_key).startswith(
            f"gcp-merge-{WINDOWS[0]}-"
        )


def _capacity(window: str) -> int:
    from spotlake_assets.domain.windows import capacity_for_window

    return capacity_for_window(window)


def test_the_lake_sensor_waits_for_a_pending_window_run(
    gcp: tuple[ProviderDefinitions, dg.Definitions, LocalLake],
) -> None:
    built, _, lake = gcp
    lake_sensor = sensor_named(built, f"{PROVIDER}_lake_sensor")
    for window in WINDOWS:
        lake.write_bytes(keys.sps_key(PROVIDER, window, _capacity(window)), b"sps")
        for key in GCP.merge.inputs(window):
            lake.write_bytes(key, b"input")
    with dg.instance_for_test() as instance:
        # The window run of WINDOWS[1] has written its SPS object and is merging it.
        instance.add_run(
            dg.DagsterRun(
                job_name="gcp_window_job",
                run_id="window-run",
                status=dg.DagsterRunStatus.STARTED,
                tags={MERGE_CHAIN_TAG: PROVIDER, PARTITION_TAG: WINDOWS[1]},
            )
        )
        result = evaluate(lake_sensor, instance, lake)
        assert [r.partition_key for r in result.run_requests or []] == [WINDOWS[0]]
        # The cursor stops before the pending window, so it is looked at again once the run is over.
        assert result.cursor == keys.sps_key(PROVIDER, WINDOWS[0], _capacity(WINDOWS[0]))
        instance.report_run_failed(instance.get_run_by_id("window-run"))  # type: ignore[arg-type]
        (retry,) = evaluate(lake_sensor, instance, lake, result.cursor).run_requests or []
        assert retry.partition_key == WINDOWS[1]


def test_freshness_is_a_check_evaluation_without_a_run(
    gcp: tuple[ProviderDefinitions, dg.Definitions, LocalLake],
) -> None:
    built, defs, lake = gcp
    freshness = sensor_named(built, f"{PROVIDER}_freshness_sensor")
    with dg.instance_for_test() as instance:
        stale = evaluate(freshness, instance, lake)
        assert not stale.run_requests
        (evaluation,) = stale.asset_events
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        assert (evaluation.asset_key, evaluation.check_name, evaluation.passed) == (
            dg.AssetKey([PROVIDER, "delta"]),
            "delta_is_fresh",
            False,
        )
        defs.resolve_job_def("gcp_daily_job").execute_in_process(partition_key=DAY, instance=instance)
        defs.resolve_job_def("gcp_window_job").execute_in_process(partition_key=WINDOWS[0], instance=instance)
        runs_before = len(instance.get_runs())
        (evaluation,) = evaluate(freshness, instance, lake).asset_events
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        assert evaluation.metadata["newest_window"] == dg.TextMetadataValue(WINDOWS[0])
        # What the sensor daemon does with it: a runless evaluation the UI shows on the check.
        instance.report_runless_asset_event(evaluation)
        check = dg.AssetCheckKey(dg.AssetKey([PROVIDER, "delta"]), "delta_is_fresh")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
        assert record is not None and record.run_id == ""
        assert len(instance.get_runs()) == runs_before


def test_definitions_load_without_the_heavy_modules(tmp_path: Path) -> None:
    # A fresh process, as a Batch run worker loads them; the CPU-seconds go to benchmarks/tick.py (a
    # timing assertion would be flaky on a shared runner).
    script = (
        "import sys, spotlake_assets.definitions as d\n"
        "d.build_definitions().get_repository_def()\n"
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "SPOTLAKE_ENV": "prod", "SPOTLAKE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"definitions imported {done.stdout.strip()}"


def test_simulated_latency_is_seeded_with_a_long_tail_and_off_by_default() -> None:
    from statistics import median

    from spotlake_assets.aws.simulation import SimulatedAwsApi, call_latency_s
    from spotlake_assets.azure.simulation import SimulatedAzureApi
    from spotlake_assets.azure.simulation import call_latency_s as azure_latency_s
    from spotlake_assets.settings import InvalidSetting, load_settings

    assert SimulatedAwsApi().latency_ms == 0.0 and SimulatedAzureApi().latency_ms == 0.0
    assert call_latency_s(0.0, 7, "sps", 1) == 0.0
    draws = [call_latency_s(150.0, 7, "sps", i) for i in range(4000)]
    assert draws == [call_latency_s(150.0, 7, "sps", i) for i in range(4000)]
    assert 0.13 < median(draws) < 0.17 and max(draws) > 0.6  # a long tail above the median
    assert 0.13 < median(azure_latency_s(150.0, 7, "sps", i) for i in range(4000)) < 0.17
    assert load_settings({}).sim_latency_ms == 0.0
    assert load_settings({"SPOTLAKE_SIM_LATENCY_MS": "150"}).sim_latency_ms == 150.0
    with pytest.raises(InvalidSetting, match="SPOTLAKE_SIM_LATENCY_MS='-1'"):
        load_settings({"SPOTLAKE_SIM_LATENCY_MS": "-1"})
