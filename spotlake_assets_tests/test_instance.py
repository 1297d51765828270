"""The instance configs in the repo: they load, and turn on what automation and run health rely on."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster import DagsterInstance

from spotlake_assets.batch_launcher import BatchRunLauncher
from spotlake_assets.definitions import build_definitions

ROOT = Path(__file__).resolve().parents[1]


def test_local_instance_config(tmp_path: Path) -> None:
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.run_monitoring_enabled
    config = instance.get_concurrency_config()
    assert config.pool_config.default_pool_limit == 1
    assert config.run_queue_config is not None
    limits = config.run_queue_config.tag_concurrency_limits
    assert {"key": "spotlake/merge-chain", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def test_local_instance_frees_the_slots_of_ended_runs(tmp_path: Path) -> None:
    # Without it, a run that ended without releasing its pool slot (killed, or canceled by hand) blocks every
    # later step of that pool; the daemon of `make ui` frees such slots after this delay.
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    assert 0 < instance.run_monitoring_settings["free_slots_after_run_end_seconds"] <= 60
    assert instance.run_retries_retry_on_asset_or_op_failure is False


def test_production_instance_frees_the_slots_of_ended_runs() -> None:
    # Production: run monitoring fails a run whose Batch worker is gone (the launcher reports its health),
    # then the daemon frees the slots the finished run still holds. (The whole file is validated against
    # Dagster's schema in infra/test_instance_config.py.)
    config = yaml.safe_load((ROOT / "infra" / "dagster.yaml").read_text())
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 120
    launcher = BatchRunLauncher(job_queue="q", job_definition="d", region_name="us-west-2")
    assert launcher.supports_check_run_worker_health


@pytest.mark.parametrize("env", ["local", "prod"])
def test_dead_run_reaper_runs_by_default_locally_only(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("SPOTLAKE_ENV", env)
    if env == "prod":
        monkeypatch.setenv("SPOTLAKE_BUCKET", "spotlake-prod")
    sensors = {s.name: s for s in build_definitions().get_repository_def().sensor_defs}
    if env == "local":
        assert sensors["dead_run_reaper"].default_status is dg.DefaultSensorStatus.RUNNING
    else:
        assert "dead_run_reaper" not in sensors
