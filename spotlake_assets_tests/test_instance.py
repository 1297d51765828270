"""The local instance config in the repo: it loads, and turns on what automation relies on."""

from __future__ import annotations

import shutil
from pathlib import Path

from dagster import DagsterInstance

ROOT = Path(__file__).resolve().parents[1]


def test_local_instance_config(tmp_path: Path) -> None:
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.run_monitoring_enabled
    config = instance.get_concurrency_config()
    assert config.pool_config.default_pool_limit == 1
    limits = config.run_queue_config.tag_concurrency_limits
    assert {"key": "spotlake/merge-chain", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
