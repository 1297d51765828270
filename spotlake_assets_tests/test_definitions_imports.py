"""Tier 4: loading the code location stays cheap. The code server, every sensor tick and every run worker load
the definitions, so the modules only a run's work needs (frames, merges, sinks, cloud SDKs) are imported
where that work happens; a module-level import of one on the definitions' path fails here (README "Cost of
a tick")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imported by a run when it computes, never by loading the definitions (about 0.4 CPU-s together).
RUN_TIME_ONLY = (
    "pandas",
    "numpy",
    "pyarrow",
    "dagster_pandas",
    "boto3",
    "botocore",
    "s3transfer",
    "slack_sdk",
    "dagster_slack",
    "azure",
    "matplotlib",
)

LOAD = (
    "import json, sys\n"
    "import spotlake_assets.definitions as d\n"
    "d.build_definitions().get_repository_def()\n"
    "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
)


@pytest.mark.parametrize("env", ["local", "prod"])
def test_loading_the_definitions_imports_no_run_time_module(env: str, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPOTLAKE_")}
    environ = {
        **clean,
        "SPOTLAKE_ENV": env,
        "SPOTLAKE_HOME": str(tmp_path),
        "SPOTLAKE_BUCKET": "spotlake-test",
    }
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOAD], env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "spotlake_assets" in loaded and "dagster" in loaded
    assert sorted(loaded.intersection(RUN_TIME_ONLY)) == []
