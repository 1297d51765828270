"""Tier 4: the definitions load in every environment; the one resolver refuses unknown environments and
unusable settings, with the same message from every entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from spotlake_assets.aws.resources import Boto3AwsApi
from spotlake_assets.azure.environment import azure_resources
from spotlake_assets.environment import resources_for
from spotlake_assets.orchestration.alerts import slack_resource
from spotlake_assets.query.lake import LakeLocationError, default_location
from spotlake_assets.settings import InvalidSetting, UnknownEnvironment, environment_name, load_settings
from spotlake_assets.storage.errors import LakeBucketNotFound
from spotlake_assets.storage.lake import LocalLake, S3Lake

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_AWS_KEYS = {
    "aws/workload",
    "aws/sps",
    "aws/interruption_frequency",
    "aws/spot_price",
    "aws/ondemand_price",
    "aws/merged",
    "aws/delta",
    "aws/history",
    "aws/latest",
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


# --- one resolver: every entry point fails the same way on an unknown SPOTLAKE_ENV --------------------------

STAGING = "SPOTLAKE_ENV='staging' is not one of local, test, prod (unknown environment)"


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTLAKE_")}
    # A home with a lake: before, the query tool quietly read this local lake under SPOTLAKE_ENV=staging.
    (tmp_path / "lake" / "latest_data").mkdir(parents=True, exist_ok=True)
    return {**env, "SPOTLAKE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home"), **extra}


def test_every_in_process_entry_point_refuses_an_unknown_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environ = {"SPOTLAKE_ENV": "staging", "SPOTLAKE_HOME": str(tmp_path)}
    monkeypatch.setenv("SPOTLAKE_ENV", "staging")
    from spotlake_assets.definitions import build_definitions

    entry_points: dict[str, Callable[[], object]] = {
        "definitions": build_definitions,
        "resources": lambda: resources_for(environ),
        "azure resources": lambda: azure_resources("staging", environ),
        "alerts": lambda: slack_resource(environ),
        "query default lake": lambda: default_location(environ),
        "settings": lambda: load_settings(environ),
    }
    for name, entry_point in entry_points.items():
        with pytest.raises(UnknownEnvironment) as caught:
            entry_point()
        assert str(caught.value) == STAGING, name


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "spotlake_assets.query.cli", "query", "latest"],
        ["-m", "spotlake_assets.query.cli", "query", "latest", "--lake", "LAKE"],
        ["-m", "spotlake_assets.demo", "--windows", "1"],
    ],
    ids=["query", "query --lake", "demo"],
)
def test_every_command_refuses_an_unknown_environment(command: list[str], tmp_path: Path) -> None:
    argv = [str(tmp_path / "lake") if arg == "LAKE" else arg for arg in command]
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=_clean_env(tmp_path, SPOTLAKE_ENV="staging"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0 and done.stdout == "", done.stdout + done.stderr
    assert STAGING in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "dagster_home").exists(), "nothing may be created before the environment is known"


def test_the_dagster_cli_refuses_an_unknown_environment(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        # Dagster itself needs an existing DAGSTER_HOME before it loads the location.
        env=_clean_env(tmp_path, SPOTLAKE_ENV="staging", DAGSTER_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0 and STAGING in done.stdout + done.stderr


# --- settings: each variable is parsed once, and a bad value names itself -----------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SPOTLAKE_SCALE", "abc", "SPOTLAKE_SCALE='abc' is not a number in (0, 1]"),
        ("SPOTLAKE_SCALE", "0", "SPOTLAKE_SCALE='0' is not a number in (0, 1]"),
        ("SPOTLAKE_SCALE", "2", "SPOTLAKE_SCALE='2' is not a number in (0, 1]"),
        ("SPOTLAKE_SCALE", "-0.5", "SPOTLAKE_SCALE='-0.5' is not a number in (0, 1]"),
        ("SPOTLAKE_SCALE", "nan", "SPOTLAKE_SCALE='nan' is not a number in (0, 1]"),
        ("SPOTLAKE_SCALE", "", "SPOTLAKE_SCALE='' is not a number in (0, 1]"),
        ("SPOTLAKE_SEED", "seven", "SPOTLAKE_SEED='seven' is not an integer"),
        ("SPOTLAKE_SEED", "1.5", "SPOTLAKE_SEED='1.5' is not an integer"),
        (
            "SPOTLAKE_HOME",
            "",
            "SPOTLAKE_HOME='' is empty: unset it (default ./.spotlake) or name a directory",
        ),
        ("SPOTLAKE_AZURE_AUTH", "enviroment", "SPOTLAKE_AZURE_AUTH='enviroment' is not one of dynamodb, env"),
        (
            "SPOTLAKE_AZURE_AUTH_TABLE",
            "",
            "SPOTLAKE_AZURE_AUTH_TABLE='' is not a name of 3-255 letters, digits, '_', '-' or '.'",
        ),
        ("SPOTLAKE_AZURE_AUTH_ITEM", " ", "SPOTLAKE_AZURE_AUTH_ITEM=' ' is not a non-empty item id"),
        (
            "SPOTLAKE_UI_URL",
            "dagster:3000",
            "SPOTLAKE_UI_URL='dagster:3000' is not an http:// or https:// URL",
        ),
    ],
)
def test_a_bad_local_setting_names_the_variable_and_its_value(
    variable: str, value: str, message: str, tmp_path: Path
) -> None:
    environ = {"SPOTLAKE_HOME": str(tmp_path), variable: value}
    with pytest.raises(InvalidSetting) as caught:
        resources_for(environ)
    assert str(caught.value).startswith(message) and caught.value.variable == variable
    # The demo reads SPOTLAKE_HOME alone; it goes through the same parser.
    if variable == "SPOTLAKE_HOME":
        from spotlake_assets.settings import spotlake_home

        with pytest.raises(InvalidSetting, match=r"^SPOTLAKE_HOME='' is empty"):
            spotlake_home(environ)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"SPOTLAKE_ENV": "prod", "SPOTLAKE_BUCKET": ""},
            "SPOTLAKE_BUCKET='' is not an S3 bucket name: it has 0 characters (3 to 63 allowed)",
        ),
        (
            {"SPOTLAKE_ENV": "prod", "SPOTLAKE_BUCKET": "SpotLake_Prod"},
            "SPOTLAKE_BUCKET='SpotLake_Prod' is not an S3 bucket name: only lowercase letters, digits, '.' "
            "and '-' are allowed",
        ),
        (
            {
                "SPOTLAKE_ENV": "test",
                "SPOTLAKE_READ_BUCKET": "spotlake-a",
                "SPOTLAKE_WRITE_BUCKET": "spotlake-a",
            },
            "SPOTLAKE_READ_BUCKET and SPOTLAKE_WRITE_BUCKET are both 'spotlake-a': the test environment must "
            "write to a bucket other than the one it reads configuration from",
        ),
        (
            {"SPOTLAKE_ENV": "prod", "SPOTLAKE_CREDENTIALS_SECRET_ID": "spotlake sps"},
            "SPOTLAKE_CREDENTIALS_SECRET_ID='spotlake sps' is not a Secrets Manager secret name or ARN",
        ),
    ],
)
def test_a_bad_cloud_setting_names_the_variable_and_its_value(environ: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        resources_for(environ)
    assert str(caught.value) == message


def test_a_file_is_not_a_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    with pytest.raises(InvalidSetting) as caught:
        resources_for({"SPOTLAKE_HOME": str(home)})
    assert str(caught.value) == f"SPOTLAKE_HOME={str(home)!r} is a file, not a directory"


def test_a_secret_is_never_echoed(tmp_path: Path) -> None:
    secret = "hooks.slack.com/services/T000/B000/XXXXSECRET"
    with pytest.raises(InvalidSetting) as caught:
        resources_for({"SPOTLAKE_HOME": str(tmp_path), "SPOTLAKE_SLACK_WEBHOOK_URL": secret})
    assert "SPOTLAKE_SLACK_WEBHOOK_URL is not an https:// URL" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_settings_reach_both_simulations_and_optional_values_may_be_empty(tmp_path: Path) -> None:
    resources = resources_for(
        {
            "SPOTLAKE_HOME": str(tmp_path),
            "SPOTLAKE_SCALE": " 0.25 ",
            "SPOTLAKE_SEED": "11",
            # Deployment templates pass unset optional values as empty strings.
            "SPOTLAKE_CREDENTIALS_SECRET_ID": "",
            "SPOTLAKE_SLACK_WEBHOOK_URL": "",
        }
    )
    for api in (resources["aws_api"], resources["azure_api"]):
        assert (api.seed, api.scale) == (11, 0.25)
    assert resources["slack"].webhook_url is None and not resources["slack"].configured
    prod = resources_for({"SPOTLAKE_ENV": "prod", "SPOTLAKE_CREDENTIALS_SECRET_ID": ""})
    assert prod["aws_credentials"].source == "lake_csv"


def test_the_query_tool_finds_the_lake_where_the_resources_put_it(tmp_path: Path) -> None:
    local = {"SPOTLAKE_HOME": str(tmp_path)}
    assert default_location(local) == resources_for(local)["lake"].root
    assert default_location({"SPOTLAKE_ENV": "prod", "SPOTLAKE_BUCKET": "spotlake"}) == "s3://spotlake"
    test = {
        "SPOTLAKE_ENV": "test",
        "SPOTLAKE_READ_BUCKET": "spotlake-r",
        "SPOTLAKE_WRITE_BUCKET": "spotlake-w",
    }
    assert default_location(test) == "s3://spotlake-w"
    with pytest.raises(LakeLocationError) as caught:
        default_location({"SPOTLAKE_ENV": "prod"})
    assert str(caught.value) == (
        "SPOTLAKE_ENV=prod keeps its lake in SPOTLAKE_BUCKET, which is not set: set it or pass --lake s3://bucket"
    )


def test_a_missing_prod_bucket_names_its_variable_at_run_time(
    moto_s3: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Definitions load without the bucket (an EnvVar); the run that reads it names the variable.
    lake = resources_for({"SPOTLAKE_ENV": "prod"})["lake"]
    monkeypatch.setenv("SPOTLAKE_BUCKET", "spotlake-absent")
    with dg.build_resources({"lake": lake}) as resources, pytest.raises(LakeBucketNotFound) as caught:
        resources.lake.read_bytes("latest_data/latest_aws.json")
    assert str(caught.value) == (
        "bucket s3://spotlake-absent does not exist (GetObject latest_data/latest_aws.json); the bucket name "
        "comes from SPOTLAKE_BUCKET"
    )


@pytest.mark.parametrize("env", ["local", "test", "prod"])
def test_every_node_label_of_a_group_graph_is_distinct(
    env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The UI labels a node by its key's last part: within a group, no two may share one."""
    monkeypatch.setenv("SPOTLAKE_ENV", env)
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    from spotlake_assets.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    labels: dict[str, list[str]] = {}
    for node in graph.asset_nodes:
        labels.setdefault(node.group_name or "default", []).append(node.key.path[-1])
    for group, names in labels.items():
        assert len(names) == len(set(names)), f"group {group}: {sorted(names)}"
    for provider in ("aws", "azure"):
        sinks = {
            dg.AssetKey([provider, name]) for name in ("history", "timestream", "latest", "history_daily")
        }
        assert sinks <= graph.get_all_asset_keys()
        # The compaction's lineage is drawn: a day of history_daily reads that day's history windows.
        daily = graph.get(dg.AssetKey([provider, "history_daily"]))
        assert dg.AssetKey([provider, "history"]) in daily.parent_keys


@pytest.mark.parametrize("env", ["local", "test", "prod"])
def test_every_check_job_schedule_and_sensor_is_described(
    env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPOTLAKE_ENV", env)
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    from spotlake_assets.definitions import build_definitions

    defs = build_definitions()
    repository = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    undescribed = [
        f"check {key.asset_key.to_user_string()}:{key.name}"
        for key in graph.asset_check_keys
        if not (graph.get_check_spec(key).description or "").strip()
    ]
    # `__ASSET_JOB` is Dagster's implicit job, not ours.
    undescribed += [
        f"job {j.name}"
        for j in repository.get_all_jobs()
        if not j.name.startswith("__") and not j.description
    ]
    undescribed += [f"schedule {s.name}" for s in repository.schedule_defs if not s.description]
    undescribed += [f"sensor {s.name}" for s in repository.sensor_defs if not s.description]
    assert not undescribed, undescribed


def test_production_only_sensors_are_off_locally(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path))
    from spotlake_assets.definitions import build_definitions

    def sensors(env: str) -> dict[str, dg.SensorDefinition]:
        monkeypatch.setenv("SPOTLAKE_ENV", env)
        return {s.name: s for s in build_definitions().get_repository_def().sensor_defs}

    local, prod = sensors("local"), sensors("prod")
    # Nobody to page on a laptop, and runs are never launched on AWS Batch there.
    assert local["run_failure_alert"].default_status == dg.DefaultSensorStatus.STOPPED
    assert "fail_batch_runs_that_cannot_start" not in local and "stop_orphaned_batch_jobs" not in local
    running = dg.DefaultSensorStatus.RUNNING
    assert local["dead_run_reaper"].default_status == running
    for name in ("run_failure_alert", "fail_batch_runs_that_cannot_start", "stop_orphaned_batch_jobs"):
        assert prod[name].default_status == running, name
