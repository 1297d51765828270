"""A backfill of the merge chain through a real instance (GraphQL launch + backfill daemon iterations) gives
exactly what the live, window-by-window sequence gave."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql

from spotlake_assets.aws.assets import aws_assets
from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.simulation import SimulatedAwsApi
from spotlake_assets.lake import keys
from spotlake_assets.lake.frames import read_frame
from spotlake_assets.lake.resources import LocalLake

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-03-01"
WINDOWS = [f"2026-03-01-{m // 60:02d}:{m % 60:02d}" for m in range(0, 120, 10)]
SCALE = "0.02"
CHAIN = [["aws", "merged"], ["aws", "delta"], ["history", "aws"], ["latest", "aws"]]
COLLECTORS = ["aws/sps", "aws/interruption_frequency", "aws/spot_price"]


def live_sequence(lake: LocalLake) -> None:
    """What the schedule + sensor produce: one window after the other, collectors then the merge chain."""
    resources = {
        "lake": lake,
        "aws_api": SimulatedAwsApi(scale=float(SCALE)),
        "aws_credentials": AwsCredentialPool(source="simulated"),
    }
    dg.materialize(
        aws_assets, selection=["aws/workload", "aws/ondemand_price"], partition_key=DAY, resources=resources
    )
    chain = [*COLLECTORS, "aws/merged", "aws/delta", "history/aws", "latest/aws"]
    for window in WINDOWS:
        dg.materialize(aws_assets, selection=chain, partition_key=window, resources=resources)


def snapshot(lake: LocalLake) -> dict[str, pd.DataFrame | bytes]:
    out: dict[str, pd.DataFrame | bytes] = {}
    for window in WINDOWS:
        for key in (
            keys.merged_key("aws", window),
            keys.delta_key("aws", window),
            keys.history_key("aws", window),
        ):
            out[key] = read_frame(lake, key)
    out[keys.latest_key("aws")] = lake.read_bytes(keys.latest_key("aws"))
    return out


def test_backfill_of_12_windows_equals_12_live_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = LocalLake(root=str(tmp_path / "live" / "lake"))
    live_sequence(live)

    monkeypatch.setenv("SPOTLAKE_ENV", "local")
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path / "backfill"))
    monkeypatch.setenv("SPOTLAKE_SCALE", SCALE)
    from spotlake_assets.definitions import build_definitions

    defs = build_definitions()
    with instance_for_test(synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance:
        # Collectors ran live; only the merge chain is backfilled.
        defs.resolve_job_def("aws_daily_job").execute_in_process(partition_key=DAY, instance=instance)
        for window in WINDOWS:
            defs.resolve_job_def("aws_collect_job").execute_in_process(
                partition_key=window, instance=instance
            )

        target = ModuleTarget("spotlake_assets.definitions", None, str(ROOT), "spotlake_assets")
        with create_test_daemon_workspace_context(target, instance) as workspace:
            launched = execute_dagster_graphql(
                workspace.create_request_context(),
                LAUNCH_PARTITION_BACKFILL_MUTATION,
                variables={
                    "backfillParams": {
                        "partitionNames": WINDOWS,
                        "assetSelection": [{"path": path} for path in CHAIN],
                    }
                },
            )
            assert launched.data["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", launched
            backfill_id = launched.data["launchPartitionBackfill"]["backfillId"]
            logger = logging.getLogger("backfill-test")
            for _ in range(40):
                errors = [e for e in execute_backfill_iteration(workspace, logger) if e is not None]
                assert not errors, errors
                backfill = instance.get_backfill(backfill_id)
                assert backfill is not None
                if backfill.status != BulkActionStatus.REQUESTED:
                    break
            assert backfill.status in (BulkActionStatus.COMPLETED, BulkActionStatus.COMPLETED_SUCCESS)

        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        # Oldest first (a window's chain may span several runs): the ladder and the delta read the previous window.
        records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        order = [
            r.dagster_run.tags["dagster/partition"] for r in sorted(records, key=lambda r: r.create_timestamp)
        ]
        assert order == sorted(order) and sorted(set(order)) == WINDOWS

    backfilled = LocalLake(root=str(tmp_path / "backfill" / "lake"))
    expected, actual = snapshot(live), snapshot(backfilled)
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        if isinstance(value, bytes):
            assert actual[key] == value, key
        else:
            pd.testing.assert_frame_equal(actual[key], value, obj=key)
