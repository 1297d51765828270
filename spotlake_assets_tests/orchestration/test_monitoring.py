"""Run statistics and the delta freshness check, through a real (ephemeral) Dagster instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.definitions import aws_assets
from spotlake_assets.aws.simulation import SimulatedAwsApi
from spotlake_assets.domain.stats import RunFigure, sparkline, summarise
from spotlake_assets.domain.windows import WINDOW, window_key
from spotlake_assets.orchestration.freshness import build_delta_freshness, delta_age
from spotlake_assets.orchestration.monitoring import collector_stats
from spotlake_assets.sinks.timestream import LocalTimestream
from spotlake_assets.storage.frames import read_frame
from spotlake_assets.storage.lake import LocalLake

WINDOW_ASSETS = ["aws/sps", "aws/interruption_frequency", "aws/spot_price", "aws/merged", "aws/delta"]


def resources(lake: LocalLake) -> dict[str, Any]:
    return {
        "lake": lake,
        "aws_api": SimulatedAwsApi(scale=0.02),
        "aws_credentials": AwsCredentialPool(source="simulated", simulated_size=100),
        "timestream": LocalTimestream(root=lake.root),
    }


def collect(instance: dg.DagsterInstance, lake: LocalLake, day: str, windows: list[str]) -> None:
    selection = ["aws/workload", "aws/ondemand_price"]
    dg.materialize(
        aws_assets, selection=selection, partition_key=day, resources=resources(lake), instance=instance
    )
    for window in windows:
        dg.materialize(
            aws_assets,
            selection=WINDOW_ASSETS,
            partition_key=window,
            resources=resources(lake),
            instance=instance,
        )


def test_summary_and_sparkline() -> None:
    figures = [RunFigure("aws/sps", "w", d, 300.0 + d, 10) for d in (1.0, 2.0, 3.0, 10.0)]
    summary = summarise(figures)
    row = summary.iloc[0]
    assert (row["runs"], row["duration_max_s"], row["peak_rss_max_mib"]) == (4, 10.0, 310.0)
    assert sparkline([1, 2, 3, 10]) == "▁▁▂█" and sparkline([]) == ""
    assert summarise([]).empty


def test_collector_stats_counts_runs_by_the_day_they_collected(local_lake: LocalLake) -> None:
    instance = dg.DagsterInstance.ephemeral()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    collect(instance, local_lake, "2026-03-01", ["2026-03-01-00:00", "2026-03-01-00:10"])

    def stats(day: str) -> dict[str, Any]:
        result = dg.materialize(
            [collector_stats], partition_key=day, resources={"lake": local_lake}, instance=instance
        )
        materialization = result.asset_materializations_for_node("ops__collector_stats")[0]
        return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}

    # The runs happened today, but they collected 2026-03-01: they count there, not today.
    collected = stats("2026-03-01")
    assert collected["runs"] == 2 + 2 * 5 and collected["windows"] == 2
    assert "aws/sps" in collected["report"]
    assert stats(today)["runs"] == 0
    frame = read_frame(local_lake, "ops/collector_stats/2026/03/01.parquet")
    assert dict(zip(frame["asset"], frame["runs"], strict=True))["aws/sps"] == 2


@pytest.mark.parametrize(
    ("newest", "fresh"), [("2026-03-01-12:00", True), ("2026-03-01-11:40", True), ("2026-03-01-11:30", False)]
)
def test_delta_age(newest: str, fresh: bool) -> None:
    now = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    age = delta_age(newest, now)
    assert age is not None and (age <= timedelta(minutes=30)) is fresh
    assert delta_age(None, now) is None


def test_freshness_check_on_a_real_instance(local_lake: LocalLake) -> None:
    instance = dg.DagsterInstance.ephemeral()
    check, sensor = build_delta_freshness("aws", running=False)

    def evaluate() -> dg.AssetCheckEvaluation:
        # The sensor evaluates the check in the daemon: an evaluation, never a run.
        result = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(result, dg.SensorResult) and not result.run_requests
        (evaluation,) = result.asset_events
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        return evaluation

    assert evaluate().passed is False  # no delta at all yet

    now = datetime.now(UTC)
    current = window_key(datetime.fromtimestamp(now.timestamp() // 600 * 600, UTC) - WINDOW)
    collect(instance, local_lake, current[:10], [current])
    evaluation = evaluate()
    assert evaluation.passed is True and evaluation.metadata["newest_window"].value == current
    # The check itself stays executable by hand (the UI's "Execute"), with the same verdict.
    defs = dg.Definitions(assets=aws_assets, asset_checks=[check], resources=resources(local_lake))
    job = dg.define_asset_job("freshness_by_hand", selection=dg.AssetSelection.checks(check))
    resolved = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("freshness_by_hand")
    (by_hand,) = resolved.execute_in_process(instance=instance).get_asset_check_evaluations()
    assert by_hand.passed is True
