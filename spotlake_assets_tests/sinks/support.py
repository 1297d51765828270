"""Helpers of the sink tests that run the AWS graph, and the entry point of the process a test kills.

``python -m spotlake_assets_tests.sinks.support LAKE WINDOW MARKER`` materializes one window (collectors
through latest) and, right after the Timestream write returns, writes ``MARKER`` and waits to be killed:
the test then knows the process dies between the Timestream write and the latest-state update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import botocore.retries.standard
import dagster as dg
import pytest

from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.definitions import aws_assets
from spotlake_assets.aws.simulation import SimulatedAwsApi
from spotlake_assets.sinks.records import RecordSet
from spotlake_assets.sinks.timestream import LocalTimestream, TimestreamSink, WriteReport
from spotlake_assets.storage.lake import LocalLake

DAY = "2026-03-01"
WINDOWS = [f"2026-03-01-00:{m:02d}" for m in range(0, 60, 10)]
WINDOW_ASSETS = [
    "aws/sps",
    "aws/interruption_frequency",
    "aws/spot_price",
    "aws/merged",
    "aws/delta",
    "aws/history",
    "aws/timestream",
    "aws/latest",
]
FAST_SPS = {"ops": {"aws__sps": {"config": {"backoff_initial_s": 0.001, "backoff_max_s": 0.002}}}}


@pytest.fixture
def boto_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 with fake credentials, no shared config and no retry sleeps."""
    # Fake ambient credentials and no shared config: nothing here may reach, or sign for, a real account.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_CONFIG_FILE": str(tmp_path / "absent-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    # botocore sleeps a random exponential delay between attempts; zero keeps retry tests fast without
    # changing how many attempts it makes.
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0)


def resources(lake: LocalLake, timestream: TimestreamSink | None = None) -> dict[str, Any]:
    return {
        "lake": lake,
        "aws_api": SimulatedAwsApi(seed=11, scale=0.03),
        "aws_credentials": AwsCredentialPool(source="simulated", simulated_size=200, seed=11),
        "timestream": timestream or LocalTimestream(root=lake.root, rejected_backoff_s=0.0),
    }


def run(
    lake: LocalLake,
    selection: Sequence[str],
    partition: str,
    *,
    timestream: TimestreamSink | None = None,
    raise_on_error: bool = True,
    run_config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    config = run_config if run_config is not None else (FAST_SPS if "aws/sps" in selection else None)
    return dg.materialize(
        aws_assets,
        selection=list(selection),
        partition_key=partition,
        resources=resources(lake, timestream),
        run_config=config,
        raise_on_error=raise_on_error,
    )


def build_day(lake: LocalLake) -> None:
    run(lake, ["aws/workload", "aws/ondemand_price"], DAY)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key.to_user_string() == asset:
            return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


class PausingTimestream(LocalTimestream):
    """The local sink, then a pause long enough for the test to kill the process."""

    marker: str

    def write(self, records: RecordSet) -> WriteReport:
        report = super().write(records)
        Path(self.marker).write_text(f"{report.ingested} records written\n")
        time.sleep(300)
        return report


def main(argv: Sequence[str]) -> None:
    root, window, marker = argv
    lake = LocalLake(root=root)
    run(lake, WINDOW_ASSETS, window, timestream=PausingTimestream(root=root, marker=marker))


if __name__ == "__main__":
    main(sys.argv[1:])
