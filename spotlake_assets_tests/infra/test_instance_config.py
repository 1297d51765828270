"""The production instance config (infra/dagster.yaml): valid for Dagster, every class it names loads with its
config, no literal secrets, and every variable it reads is supplied by the Terraform."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes import ConfigurableClassData

from spotlake_assets.batch_launcher import BatchRunLauncher
from spotlake_assets_tests.infra.conftest import INFRA

CONFIG = yaml.safe_load((INFRA / "dagster.yaml").read_text())


def env_references(node: Any) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_references(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_references(v) for v in node)) if node else set()
    return set()


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> Iterator[dict[str, str]]:
    values = {name: f"value-of-{name.lower()}" for name in env_references(CONFIG)}
    values["AWS_REGION"] = "us-west-2"
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield values


def test_dagster_accepts_the_instance_config(tmp_path: Path, production_env: dict[str, str]) -> None:
    shutil.copy(INFRA / "dagster.yaml", tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert config["run_launcher"]["class"] == "BatchRunLauncher"


def rehydrate(section: str) -> Any:
    entry = CONFIG[section]
    return ConfigurableClassData(
        entry["module"], entry["class"], yaml.safe_dump(entry.get("config", {}))
    ).rehydrate()


def test_the_run_launcher_loads_from_it(production_env: dict[str, str]) -> None:
    launcher = rehydrate("run_launcher")
    assert isinstance(launcher, BatchRunLauncher)
    assert launcher.job_queue == production_env["SPOTLAKE_BATCH_JOB_QUEUE"]
    assert launcher.job_definition == production_env["SPOTLAKE_BATCH_JOB_DEFINITION"]
    # TerminateJob is allowed (iam.tf) only on jobs carrying this tag.
    assert launcher.job_tags == {"project": "spotlake-assets"}


def test_compute_logs_and_coordinator_load_from_it(production_env: dict[str, str]) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    assert isinstance(rehydrate("compute_logs"), S3ComputeLogManager)
    assert isinstance(rehydrate("run_coordinator"), QueuedRunCoordinator)


def test_postgres_storage_config_is_valid(production_env: dict[str, str]) -> None:
    postgres = pytest.importorskip(
        "dagster_postgres", reason="dagster-postgres is not installed: storage config not validated"
    )
    storage_config = CONFIG["storage"]["postgres"]
    result = process_config(
        resolve_to_config_type(postgres.DagsterPostgresStorage.config_type()), storage_config
    )
    assert result.success, result.errors
    assert result.value is not None
    assert result.value["postgres_db"]["password"] == production_env["DAGSTER_PG_PASSWORD"]
    assert storage_config["postgres_db"]["params"] == {"sslmode": "require"}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}/{key}", value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def test_secret_values_are_env_references_only() -> None:
    secret_like = re.compile(r"password|secret|token|key_id|access_key", re.IGNORECASE)
    for path, value in walk(CONFIG):
        if secret_like.search(path.rsplit("/", 1)[-1]):
            assert isinstance(value, dict) and set(value) == {"env"}, (
                f"{path} must be an {{env: NAME}} reference"
            )


def test_monitoring_retries_and_concurrency_are_set_for_spot(aws_env: None) -> None:
    monitoring = CONFIG["run_monitoring"]
    assert monitoring["enabled"] is True
    # Well above Dagster's 180 s default and a Spot environment's scale-from-zero time.
    assert monitoring["start_timeout_seconds"] >= 900
    # The launcher cannot resume a run: a lost worker must fail the run so that run retries relaunch it.
    launcher = BatchRunLauncher(job_queue="q", job_definition="d", region_name="us-west-2")
    assert launcher.supports_resume_run is False
    assert monitoring["max_resume_run_attempts"] == 0
    retries = CONFIG["run_retries"]
    assert retries["enabled"] is True and retries["max_retries"] >= 1
    assert CONFIG["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert CONFIG["concurrency"]["pools"]["default_limit"] == 1
    assert CONFIG["concurrency"]["pools"]["granularity"] == "op"


def test_every_variable_the_instance_reads_is_supplied_by_terraform() -> None:
    terraform_text = "\n".join(p.read_text() for p in sorted(INFRA.glob("*.tf")))
    supplied = set(re.findall(r'name\s*=\s*"([A-Z][A-Z0-9_]+)"', terraform_text))
    workspace = yaml.safe_load((INFRA / "workspace.yaml").read_text())
    needed = env_references(CONFIG) | env_references(workspace)
    assert needed - supplied == set()
    # The password comes from Secrets Manager, not from a plain environment value.
    assert re.search(r'name\s*=\s*"DAGSTER_PG_PASSWORD",\s*valueFrom\s*=', terraform_text)
