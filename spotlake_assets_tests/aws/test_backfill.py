"""A backfill of the merge chain through a real instance (GraphQL launch + backfill daemon iterations, as the
UI does) is one run that merges the range in window order, carries the merge-chain tag, and gives exactly
what the live, window-by-window sequence gave; whichever UI path starts it (Catalog or the job's Partitions
tab)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql

from spotlake_assets.aws.definitions import aws_assets
from spotlake_assets.environment import resources_for
from spotlake_assets.orchestration.automation import MERGE_CHAIN_TAG, RANGE_END_TAG, RANGE_START_TAG
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame
from spotlake_assets.storage.lake import LocalLake

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-03-01"
WINDOWS = [f"2026-03-01-{m // 60:02d}:{m % 60:02d}" for m in range(0, 120, 10)]
SCALE = "0.02"
CHAIN = [["aws", "merged"], ["aws", "delta"], ["aws", "history"], ["aws", "latest"]]
COLLECTORS = ["aws/sps", "aws/interruption_frequency", "aws/spot_price"]


def live_sequence(home: Path) -> None:
    """What the schedule + sensor produce: one window after the other, collectors then the merge chain."""
    resources = resources_for({"SPOTLAKE_ENV": "local", "SPOTLAKE_HOME": str(home), "SPOTLAKE_SCALE": SCALE})
    daily = ["aws/workload", "aws/ondemand_price"]
    dg.materialize(aws_assets, selection=daily, partition_key=DAY, resources=resources)
    chain = [*COLLECTORS, *("/".join(path) for path in CHAIN)]
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


def run_backfill(workspace: Any, instance: dg.DagsterInstance, params: dict[str, Any]) -> str:
    """Launch as the UI does (GraphQL `launchPartitionBackfill`), then run the backfill daemon to the end."""
    launched = execute_dagster_graphql(
        workspace.create_request_context(),
        LAUNCH_PARTITION_BACKFILL_MUTATION,
        variables={"backfillParams": params},
    )
    assert launched.data["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = str(launched.data["launchPartitionBackfill"]["backfillId"])
    logger = logging.getLogger("backfill-test")
    for _ in range(40):
        errors = [e for e in execute_backfill_iteration(workspace, logger) if e is not None]
        assert not errors, errors
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None
        if backfill.status != BulkActionStatus.REQUESTED:
            break
    assert backfill is not None
    assert backfill.status in (BulkActionStatus.COMPLETED, BulkActionStatus.COMPLETED_SUCCESS)
    return backfill_id


def assert_one_ordered_chain_run(instance: dg.DagsterInstance, backfill_id: str, windows: list[str]) -> None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    # One run for the whole range, tagged like every merge-chain run (the queue serialises them).
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
    (run,) = runs
    assert run.tags[MERGE_CHAIN_TAG] == "aws"
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (windows[0], windows[-1])
    # Inside it, each window was merged after the one before it: the ladder reads the previous window.
    merged_logs = [
        e.user_message
        for e in instance.all_logs(run.run_id)
        if e.step_key == "aws__merged" and "aws/merged: window" in e.user_message
    ]
    assert [m.split("window ")[1].split(" ")[0] for m in merged_logs] == windows
    for path in CHAIN:
        records = instance.fetch_materializations(dg.AssetKey(path), limit=100, ascending=True).records
        order = [r.asset_materialization.partition for r in records if r.asset_materialization]
        assert order == windows, path


def test_backfill_of_12_windows_equals_12_live_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live_sequence(tmp_path / "live")
    live = LocalLake(root=str(tmp_path / "live" / "lake"))

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
            # The Catalog: select the chain's assets, "Materialize" a range of partitions.
            backfill_id = run_backfill(
                workspace,
                instance,
                {"partitionNames": WINDOWS, "assetSelection": [{"path": path} for path in CHAIN]},
            )

        assert_one_ordered_chain_run(instance, backfill_id, WINDOWS)

    backfilled = LocalLake(root=str(tmp_path / "backfill" / "lake"))
    expected, actual = snapshot(live), snapshot(backfilled)
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        got = actual[key]
        if isinstance(value, bytes):
            assert got == value, key
        else:
            assert isinstance(got, pd.DataFrame), key
            pd.testing.assert_frame_equal(got, value, obj=key)


def test_a_backfill_from_the_jobs_partitions_tab_is_one_ordered_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTLAKE_ENV", "local")
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    monkeypatch.setenv("SPOTLAKE_SCALE", SCALE)
    from spotlake_assets.definitions import build_definitions

    defs = build_definitions()
    windows = WINDOWS[:3]
    with instance_for_test(synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance:
        defs.resolve_job_def("aws_daily_job").execute_in_process(partition_key=DAY, instance=instance)
        for window in windows:
            defs.resolve_job_def("aws_collect_job").execute_in_process(
                partition_key=window, instance=instance
            )
        target = ModuleTarget("spotlake_assets.definitions", None, str(ROOT), "spotlake_assets")
        with create_test_daemon_workspace_context(target, instance) as workspace:
            # The job's Partitions tab: a backfill of the job's partition set, not of assets.
            backfill_id = run_backfill(
                workspace,
                instance,
                {
                    "partitionNames": windows,
                    "selector": {
                        "partitionSetName": "aws_merge_job_partition_set",
                        "repositorySelector": {
                            "repositoryLocationName": "spotlake_assets",
                            "repositoryName": "__repository__",
                        },
                    },
                },
            )
        assert_one_ordered_chain_run(instance, backfill_id, windows)
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert run.job_name == "aws_merge_job"
