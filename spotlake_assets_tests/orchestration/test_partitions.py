"""A window run whose day has no workload fails with a `dg.Failure` naming the daily run to launch first,
never a raw `LakeKeyNotFound`; the partitions start where the settings say."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from spotlake_assets.orchestration.partitions import (
    PARTITIONS_START_DAY,
    collection_partitions,
    daily_job_first,
    needs_daily_inputs,
    workload_partitions,
)
from spotlake_assets.storage.errors import LakeKeyNotFound

WINDOW = "2026-03-01-00:10"


def test_the_test_suite_pins_the_start_before_its_fixed_days() -> None:
    # conftest pins SPOTLAKE_PARTITIONS_START so the suite's fixed days (2026-03-01) are partitions.
    assert PARTITIONS_START_DAY == "2026-01-01"
    assert collection_partitions.has_partition_key(WINDOW)
    assert workload_partitions.has_partition_key("2026-03-01")


def test_a_missing_daily_input_names_the_job_and_partition() -> None:
    with pytest.raises(dg.Failure) as raised, needs_daily_inputs("aws", "2026-12-05"):
        raise LakeKeyNotFound("rawdata/aws/workloads/2026/12/05/workload.parquet")
    failure = raised.value
    assert "run aws_daily_job for 2026-12-05 first" in str(failure.description)
    assert failure.metadata["job"].value == "aws_daily_job"
    assert failure.metadata["partition"].value == "2026-12-05"
    assert failure.allow_retries is False
    assert "azure_daily_job for 2026-03-01" in str(daily_job_first("azure", "2026-03-01", "x").description)


@pytest.mark.parametrize("provider", ["aws", "azure"])
def test_a_window_job_without_its_days_workload_says_what_to_run(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTLAKE_ENV", "local")
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    monkeypatch.setenv("SPOTLAKE_SCALE", "0.02")
    from spotlake_assets.definitions import build_definitions

    job = build_definitions().resolve_job_def(f"{provider}_window_job")
    result = job.execute_in_process(
        partition_key=WINDOW, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )

    assert not result.success
    messages = [
        event.step_failure_data.error.message
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error
    ]
    assert messages, "no step failed"
    for message in messages:
        assert f"run {provider}_daily_job for 2026-03-01 first" in message, message
        assert "LakeKeyNotFound" not in message
