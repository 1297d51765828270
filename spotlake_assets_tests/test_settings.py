"""`SPOTLAKE_PARTITIONS_START`: parsed in settings, a few days back in `local`, fixed in production."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from spotlake_assets.settings import (
    LOCAL_PARTITIONS_LOOKBACK_DAYS,
    PRODUCTION_PARTITIONS_START,
    InvalidSetting,
    load_settings,
    partitions_start,
)

TODAY = date(2026, 12, 5)


def test_local_starts_a_few_days_before_today() -> None:
    assert LOCAL_PARTITIONS_LOOKBACK_DAYS == 3
    assert partitions_start("local", {}, TODAY) == "2026-12-02"


@pytest.mark.parametrize("environment", ["test", "prod"])
def test_production_keeps_its_fixed_documented_start(environment: str) -> None:
    assert partitions_start(environment, {}, TODAY) == PRODUCTION_PARTITIONS_START == "2026-01-01"
    assert partitions_start(environment, {"SPOTLAKE_PARTITIONS_START": " "}, TODAY) == "2026-01-01"


@pytest.mark.parametrize("environment", ["local", "prod"])
def test_a_set_start_wins(environment: str) -> None:
    environ = {"SPOTLAKE_PARTITIONS_START": "2026-03-01"}
    assert partitions_start(environment, environ, TODAY) == "2026-03-01"


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "2026-03-01-00:00", "01/03/2026", "2026-12-06"])
def test_a_bad_start_is_named(value: str) -> None:
    with pytest.raises(InvalidSetting, match="SPOTLAKE_PARTITIONS_START") as raised:
        partitions_start("local", {"SPOTLAKE_PARTITIONS_START": value}, TODAY)
    assert repr(value) in str(raised.value) and "YYYY-MM-DD" in str(raised.value)
    assert raised.value.variable == "SPOTLAKE_PARTITIONS_START"


def test_load_settings_parses_it() -> None:
    assert load_settings({"SPOTLAKE_ENV": "prod"}).partitions_start == "2026-01-01"
    with pytest.raises(InvalidSetting, match="SPOTLAKE_PARTITIONS_START"):
        load_settings({"SPOTLAKE_PARTITIONS_START": "soon"})


def test_the_partitions_follow_the_setting() -> None:
    # A fresh interpreter: the partitions are fixed when the asset modules are imported.
    code = (
        "from spotlake_assets.orchestration.partitions import collection_partitions, workload_partitions\n"
        "print(collection_partitions.start.isoformat(), workload_partitions.start.date())"
    )
    env = {"SPOTLAKE_ENV": "prod", "SPOTLAKE_PARTITIONS_START": "2026-06-15", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2026-06-15T00:00:00+00:00", "2026-06-15"]
