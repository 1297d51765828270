"""Tier 4: the definitions load in every environment, and the resolver refuses unknown ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from spotlake_assets.aws.resources import Boto3AwsApi
from spotlake_assets.environment import UnknownEnvironment, environment_name, resources_for
from spotlake_assets.lake.resources import LocalLake, S3Lake

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_AWS_KEYS = {
    "aws/workload",
    "aws/sps",
    "aws/interruption_frequency",
    "aws/spot_price",
    "aws/ondemand_price",
    "aws/merged",
    "aws/delta",
    "history/aws",
    "latest/aws",
}


@pytest.mark.parametrize("env", ["local", "test", "prod"])
def test_definitions_load_in_every_environment(
    env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPOTLAKE_ENV", env)
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    from spotlake_assets.definitions import build_definitions

    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys >= EXPECTED_AWS_KEYS
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"aws_daily_job", "aws_window_job"}
    sensors = {sensor.name: sensor for sensor in defs.get_repository_def().sensor_defs}
    assert {"aws_lake_sensor", "azure_lake_sensor", "run_failure_alert", "history_compaction_sensor"} <= set(
        sensors
    )
    expected = dg.DefaultSensorStatus.STOPPED if env == "local" else dg.DefaultSensorStatus.RUNNING
    assert sensors["aws_lake_sensor"].default_status == expected
    assert sensors["history_compaction_sensor"].default_status == expected
    for spec in defs.resolve_asset_graph().asset_nodes:
        assert spec.description, f"{spec.key.to_user_string()} has no description"


def test_resource_sets_pick_whole_environments(tmp_path: Path) -> None:
    local = resources_for({"SPOTLAKE_HOME": str(tmp_path)})
    assert isinstance(local["lake"], LocalLake) and local["aws_api"].simulated
    assert local["lake"].root == str(tmp_path.resolve() / "lake")
    prod = resources_for({"SPOTLAKE_ENV": "prod"})
    assert isinstance(prod["lake"], S3Lake) and isinstance(prod["aws_api"], Boto3AwsApi)
    assert not prod["aws_api"].simulated
    assert prod["aws_credentials"].source == "lake_csv"
    secret = resources_for({"SPOTLAKE_ENV": "prod", "SPOTLAKE_CREDENTIALS_SECRET_ID": "spotlake/sps"})
    assert secret["aws_credentials"].source == "secrets_manager"
    test = resources_for({"SPOTLAKE_ENV": "test"})
    assert isinstance(test["lake"], S3Lake) and test["lake"].require_distinct_buckets


@pytest.mark.parametrize("value", ["staging", "PRODUCTION", ""])
def test_unknown_environment_fails_loudly(value: str) -> None:
    with pytest.raises(UnknownEnvironment, match="is not one of local, test, prod"):
        environment_name({"SPOTLAKE_ENV": value})


def test_dagster_cli_validates_the_workspace(tmp_path: Path) -> None:
    env = {**os.environ, "SPOTLAKE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    env.pop("SPOTLAKE_ENV", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
