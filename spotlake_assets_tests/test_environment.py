"""Tier 4: every environment's resource set carries the Timestream sink it should."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotlake_assets.environment import resources_for
from spotlake_assets.settings import InvalidSetting
from spotlake_assets.sinks.records import AWS_MAPPING, build_records
from spotlake_assets.sinks.timestream import Boto3Timestream, LocalTimestream, TimestreamError
from spotlake_assets_tests.sinks.test_timestream import WINDOW, delta


def test_local_keeps_records_under_the_lake(tmp_path: Path) -> None:
    sink = resources_for({"SPOTLAKE_HOME": str(tmp_path)})["timestream"]
    assert isinstance(sink, LocalTimestream) and sink.local
    assert sink.root == str(tmp_path.resolve() / "lake") and sink.database == "spotlake"


def test_prod_and_test_use_boto3_with_their_own_databases() -> None:
    prod = resources_for({"SPOTLAKE_ENV": "prod"})["timestream"]
    test = resources_for({"SPOTLAKE_ENV": "test"})["timestream"]
    assert isinstance(prod, Boto3Timestream) and isinstance(test, Boto3Timestream)
    assert (prod.database, prod.region_name, prod.protected_databases) == ("spotlake", "us-west-2", [])
    assert (test.database, test.protected_databases) == ("spotlake-test", ["spotlake"])
    moved = resources_for(
        {
            "SPOTLAKE_ENV": "prod",
            "SPOTLAKE_TIMESTREAM_DATABASE": "spotlake2",
            "SPOTLAKE_TIMESTREAM_REGION": "eu-west-1",
        }
    )["timestream"]
    assert (moved.database, moved.region_name) == ("spotlake2", "eu-west-1")


def test_the_test_environment_never_writes_to_productions_database() -> None:
    sink = resources_for({"SPOTLAKE_ENV": "test", "SPOTLAKE_TIMESTREAM_DATABASE": "spotlake"})["timestream"]
    with pytest.raises(TimestreamError, match="refused in this environment"):
        sink.write(build_records(delta(2), AWS_MAPPING, WINDOW, version=1))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "SPOTLAKE_TIMESTREAM_REGION",
            "west",
            "SPOTLAKE_TIMESTREAM_REGION='west' is not an AWS region (e.g. us-west-2)",
        ),
        (
            "SPOTLAKE_TIMESTREAM_DATABASE",
            "",
            "SPOTLAKE_TIMESTREAM_DATABASE='' is not a name of 3-255 letters, digits, '_', '-' or '.'",
        ),
    ],
)
def test_a_bad_timestream_target_is_named_at_load(variable: str, value: str, message: str) -> None:
    # Before: the empty database or the bad region reached boto3 at the first write of a run.
    with pytest.raises(InvalidSetting) as caught:
        resources_for({"SPOTLAKE_ENV": "prod", variable: value})
    assert str(caught.value) == message and caught.value.variable == variable
