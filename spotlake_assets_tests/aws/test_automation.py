"""AWS schedules and the lake sensor, evaluated through Dagster's contexts on a temp lake and on moto S3."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from spotlake_assets.aws.assets import merge_inputs
from spotlake_assets.aws.definitions import definitions
from spotlake_assets.domain.windows import capacity_for_window
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LakeResource, LocalLake

DAY = "2026-03-01"
WINDOWS = ["2026-03-01-00:00", "2026-03-01-00:10", "2026-03-01-00:20"]


def aws_automation(running: bool) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """The workload and window schedules and the lake sensor the builder made for AWS."""
    built = definitions(running)
    return list(built.schedules), [s for s in built.sensors if s.name == "aws_lake_sensor"]


def sps_object(partition_key: str) -> str:
    return keys.sps_key("aws", partition_key, capacity_for_window(partition_key))


def schedule_context(tick: datetime) -> dg.ScheduleEvaluationContext:
    from spotlake_assets.definitions import build_definitions

    # The repository lets Dagster check that the requested partition exists.
    return dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=build_definitions().get_repository_def()
    )


def schedules_and_sensor() -> tuple[dict[str, Any], dg.SensorDefinition]:
    schedules, sensors = aws_automation(running=False)
    return {s.name: s for s in schedules}, sensors[0]


def seed_window(lake: LakeResource, window: str, *, with_inputs: bool = True) -> None:
    lake.write_bytes(sps_object(window), b"sps")
    if with_inputs:
        for key in merge_inputs(window):
            lake.write_bytes(key, b"input")


def evaluate(sensor: dg.SensorDefinition, lake: LakeResource, cursor: str | None = None) -> dg.SensorResult:
    # The sensor asks the instance which windows the window runs merged; a fresh one knows of none.
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake})
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


@pytest.mark.parametrize(
    ("tick", "partition"),
    [
        (datetime(2026, 3, 1, 0, 10, tzinfo=UTC), "2026-03-01-00:10"),
        (datetime(2026, 3, 1, 23, 50, tzinfo=UTC), "2026-03-01-23:50"),
    ],
)
def test_window_schedule_targets_the_window_that_just_started(tick: datetime, partition: str) -> None:
    schedules, _ = schedules_and_sensor()
    schedule = schedules["aws_window_schedule"]
    request = schedule.evaluate_tick(schedule_context(tick)).run_requests[0]
    assert request.partition_key == partition and request.run_key == f"aws-window-{partition}"
    assert schedule.job_name == "aws_window_job" and schedule.cron_schedule == "*/10 * * * *"


def test_workload_schedule_builds_tomorrow_at_23_55() -> None:
    schedules, _ = schedules_and_sensor()
    schedule = schedules["aws_workload_schedule"]
    request = schedule.evaluate_tick(schedule_context(datetime(2026, 3, 1, 23, 55, tzinfo=UTC))).run_requests[
        0
    ]
    assert (request.partition_key, request.run_key) == ("2026-03-02", "aws-workload-2026-03-02")
    assert schedule.cron_schedule == "55 23 * * *"


def test_automation_starts_stopped_locally_and_running_in_production() -> None:
    local_schedules, local_sensors = aws_automation(running=False)
    prod_schedules, prod_sensors = aws_automation(running=True)
    assert {s.default_status for s in local_schedules} == {dg.DefaultScheduleStatus.STOPPED}
    assert {s.default_status for s in prod_schedules} == {dg.DefaultScheduleStatus.RUNNING}
    assert local_sensors[0].default_status == dg.DefaultSensorStatus.STOPPED
    assert prod_sensors[0].default_status == dg.DefaultSensorStatus.RUNNING


def test_sensor_turns_new_windows_into_merge_runs_once(local_lake: LocalLake) -> None:
    _, sensor = schedules_and_sensor()
    assert evaluate(sensor, local_lake).skip_reason is not None
    for window in WINDOWS[:2]:
        seed_window(local_lake, window)
    first = evaluate(sensor, local_lake)
    assert [r.partition_key for r in first.run_requests or []] == WINDOWS[:2]
    # The run key carries the inputs' fingerprint: the same inputs never merge twice, changed ones do.
    assert [str(r.run_key).rsplit("-", 1)[0] for r in first.run_requests or []] == [
        "aws-merge-2026-03-01-00:00",
        "aws-merge-2026-03-01-00:10",
    ]
    assert sensor.job_name == "aws_merge_job"
    again = evaluate(sensor, local_lake, first.cursor)
    assert not again.run_requests and "no new SPS objects" in str(again.skip_reason)
    seed_window(local_lake, WINDOWS[2])
    third = evaluate(sensor, local_lake, first.cursor)
    assert [r.partition_key for r in third.run_requests or []] == [WINDOWS[2]]


def test_sensor_waits_then_merges_with_gaps(local_lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    _, sensor = schedules_and_sensor()
    # A window far in the past is overdue at once; its missing inputs become explicit gaps.
    seed_window(local_lake, WINDOWS[0], with_inputs=False)
    result = evaluate(sensor, local_lake)
    (request,) = result.run_requests or []
    assert request.run_config == {"ops": {"aws__merged": {"config": {"allow_missing_inputs": True}}}}


def test_sensor_on_s3_lists_after_its_cursor(s3_lake: LakeResource) -> None:
    _, sensor = schedules_and_sensor()
    for minute in range(0, 60, 10):
        seed_window(s3_lake, f"2026-03-01-00:{minute:02d}")
    first = evaluate(sensor, s3_lake)
    assert len(first.run_requests or []) == 6
    assert first.cursor == sps_object("2026-03-01-00:50")
    seed_window(s3_lake, "2026-03-01-01:00")
    second = evaluate(sensor, s3_lake, first.cursor)
    assert [r.partition_key for r in second.run_requests or []] == ["2026-03-01-01:00"]


def test_azure_uses_the_same_automation(local_lake: LocalLake) -> None:
    from spotlake_assets.azure.assets import merge_inputs as azure_inputs
    from spotlake_assets.azure.definitions import definitions as azure_definitions

    built = azure_definitions(running=True)
    (sensor,) = [s for s in built.sensors if s.name == "azure_lake_sensor"]
    assert {s.name: s.job_name for s in built.schedules} == {
        "azure_workload_schedule": "azure_daily_job",
        "azure_window_schedule": "azure_window_job",
    }
    assert sensor.job_name == "azure_merge_job" and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    local_lake.write_bytes("rawdata/azure/sps/2026/03/01/00-10_sps_5.parquet", b"sps")
    for key in azure_inputs("2026-03-01-00:10"):
        local_lake.write_bytes(key, b"input")
    (request,) = evaluate(sensor, local_lake).run_requests or []
    assert request.partition_key == "2026-03-01-00:10"
    assert str(request.run_key).startswith("azure-merge-2026-03-01-00:10-")
    assert request.tags == {"spotlake/merge-chain": "azure"}


def test_after_the_demo_the_lake_sensor_merges_only_windows_whose_inputs_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` (the daily job, then the window job of each window, through an instance), then `make ui`
    and `aws_lake_sensor` turned on (a fresh cursor): no run; a changed input: exactly that window."""
    monkeypatch.setenv("SPOTLAKE_ENV", "local")
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    monkeypatch.setenv("SPOTLAKE_SCALE", "0.02")
    from spotlake_assets.definitions import build_definitions

    defs = build_definitions()
    with dg.instance_for_test() as instance:
        assert (
            defs.resolve_job_def("aws_daily_job")
            .execute_in_process(partition_key=DAY, instance=instance)
            .success
        )
        for window in WINDOWS:
            job = defs.resolve_job_def("aws_window_job")
            assert job.execute_in_process(partition_key=window, instance=instance).success
        sensor = defs.get_repository_def().get_sensor_def("aws_lake_sensor")
        lake = LocalLake(root=str(tmp_path / "lake"))
        context = dg.build_sensor_context(instance=instance, resources={"lake": lake})
        first = sensor(context)
        assert isinstance(first, dg.SensorResult)
        assert not first.run_requests and "whose inputs changed" in str(first.skip_reason)

        # A late correction of one window's spot prices: that window, and only it, is merged again.
        key = keys.spot_price_key("aws", WINDOWS[1])
        prices = read_frame(lake, key)
        prices.loc[prices.index[0], "SpotPrice"] = float(prices["SpotPrice"].iloc[0]) + 0.001
        write_frame(lake, key, prices)
        context = dg.build_sensor_context(instance=instance, resources={"lake": lake})
        second = sensor(context)
        assert isinstance(second, dg.SensorResult)
        assert [r.partition_key for r in second.run_requests or []] == [WINDOWS[1]]
