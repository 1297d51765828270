"""Typed frames: one declaration per lake frame (dagster-pandas columns) validates reads and writes, types a
Dagster value and publishes `dagster/column_schema`; errors name the frame, the place, the column and what
was wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from spotlake_assets.aws import constants as aws_constants
from spotlake_assets.aws import frames as aws_frames
from spotlake_assets.aws.merge import merge_snapshot
from spotlake_assets.azure import constants as azure_constants
from spotlake_assets.azure import frames as azure_frames
from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.storage.errors import CorruptLakeFile
from spotlake_assets.storage.frame_types import COLUMN_SCHEMA, FrameSchemaError, FrameType
from spotlake_assets.storage.frames import read_checkpoint, read_frame, write_frame
from spotlake_assets.storage.lake import LocalLake

TIME = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def aws_merged() -> pd.DataFrame:
    sps = pd.DataFrame(
        {
            "InstanceType": ["m5.large", "c5.large"],
            "Region": ["us-east-1", "eu-west-1"],
            "AZ": ["use1-az1", "euw1-az1"],
            "SPS": [3, 1],
            "TargetCapacity": [5, 5],
            "T3": [5, 0],
            "T2": [5, 0],
        }
    )
    empty = {
        "interruption_frequency": pd.DataFrame(
            {"Region": pd.Series(dtype=object), "InstanceType": pd.Series(dtype=object), "IF": []}
        ),
        "spot_price": pd.DataFrame(
            {"InstanceType": pd.Series(dtype=object), "AZ": pd.Series(dtype=object), "SpotPrice": []}
        ),
        "ondemand": pd.DataFrame(
            {"Region": pd.Series(dtype=object), "InstanceType": pd.Series(dtype=object), "OndemandPrice": []}
        ),
    }
    zones = {"use1-az1": "us-east-1", "euw1-az1": "eu-west-1"}
    return merge_snapshot(sps, **empty, zone_regions=zones, time=TIME, previous=None, capacity=5).frame


@pytest.mark.parametrize(
    ("declared", "columns"),
    [
        (aws_frames.MERGED, aws_constants.MERGED_COLUMNS),
        (aws_frames.SPS, aws_constants.SPS_COLUMNS),
        (aws_frames.WORKLOAD, aws_constants.WORKLOAD_COLUMNS),
        (aws_frames.INTERRUPTION_FREQUENCY, aws_constants.IF_COLUMNS),
        (aws_frames.SPOT_PRICE, aws_constants.SPOT_PRICE_COLUMNS),
        (aws_frames.ONDEMAND_PRICE, aws_constants.ONDEMAND_COLUMNS),
        (azure_frames.MERGED, azure_constants.MERGED_COLUMNS),
        (azure_frames.SPS, azure_constants.SPS_COLUMNS),
        (azure_frames.WORKLOAD, azure_constants.WORKLOAD_COLUMNS),
        (azure_frames.UNIVERSE, azure_constants.UNIVERSE_COLUMNS),
        (azure_frames.INTERRUPTION_FREQUENCY, azure_constants.IF_COLUMNS),
        (azure_frames.PRICE, azure_constants.PRICE_COLUMNS),
    ],
)
def test_declarations_follow_the_column_contracts(declared: FrameType, columns: tuple[str, ...]) -> None:
    assert declared.names == columns
    assert [c.name for c in declared.table_schema.columns] == list(columns)
    assert declared.dagster_type.display_name == declared.name.replace("/", "_")


def test_a_merged_frame_and_its_delta_satisfy_their_types() -> None:
    merged = aws_merged()
    assert aws_frames.MERGED.validate(merged) is merged
    delta = compute_delta(None, merged, aws_constants.KEY_COLUMNS, aws_constants.FEATURE_COLUMNS)
    aws_frames.DELTA.validate(delta)
    assert aws_frames.DELTA.names == (*aws_constants.MERGED_COLUMNS, "Ceased")
    # The Dagster type runs the same constraints.
    assert dg.check_dagster_type(aws_frames.MERGED.dagster_type, merged).success
    broken = merged.assign(SPS=np.int64(11))
    check = dg.check_dagster_type(aws_frames.MERGED.dagster_type, broken)
    assert not check.success and "SPS" in str(check.description)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["SpotPrice"]), r"column 'SpotPrice' is missing \(the frame has \["),
        (
            lambda f: f.assign(SPS=[3.5, 1.0]),
            r"column 'SPS' breaks 'Dtype must satisfy \"is_integer\", but was \"float64\"'",
        ),
        (
            lambda f: f.assign(SPSCapacity=[-7, 1]),
            r"column 'SPSCapacity' breaks .*: 1 of 2 rows, e\.g\. \[-7\]",
        ),
        (lambda f: f.assign(Region=["us-east-1", None]), r"column 'Region' breaks 'No Null values allowed'"),
        (
            lambda f: f.assign(Time="2026-03-02"),
            r"column 'Time' breaks 'Dtype must satisfy \"is_timestamp\", but was \"object\"'",
        ),
    ],
)
def test_violations_name_the_frame_the_place_the_column_and_the_problem(mutate: object, message: str) -> None:
    frame = mutate(aws_merged())  # type: ignore[operator]
    with pytest.raises(FrameSchemaError, match=r"^frame aws/merged at lake/k: " + message):
        aws_frames.MERGED.validate(frame, "lake/k")


def test_an_error_quotes_a_few_offending_values_never_the_whole_frame() -> None:
    frame = pd.concat([aws_merged()] * 5000, ignore_index=True).assign(SPS=np.int64(42))
    with pytest.raises(FrameSchemaError) as caught:
        aws_frames.MERGED.validate(frame)
    assert "10000 of 10000 rows, e.g. [42, 42, 42, 42, 42]" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_reads_and_writes_are_checked(local_lake: LocalLake) -> None:
    merged = aws_merged()
    write_frame(local_lake, "merged.parquet", merged, frame_type=aws_frames.MERGED)
    pd.testing.assert_frame_equal(read_frame(local_lake, "merged.parquet", aws_frames.MERGED), merged)
    with pytest.raises(FrameSchemaError, match=r"frame aws/merged at .*bad\.parquet: column 'IF'"):
        write_frame(local_lake, "bad.parquet", merged.assign(IF=9.0), frame_type=aws_frames.MERGED)
    assert not local_lake.exists("bad.parquet")
    write_frame(local_lake, "bad.parquet", merged.assign(IF=9.0))
    with pytest.raises(CorruptLakeFile, match=r"bad\.parquet.*frame aws/merged: column 'IF'"):
        read_frame(local_lake, "bad.parquet", aws_frames.MERGED)


def test_a_checkpoint_breaking_its_type_is_moved_aside(local_lake: LocalLake) -> None:
    key = "state/aws/sps_checkpoints/2026/01/01/00-00/g.parquet"
    sps = pd.DataFrame({c: ["x"] for c in aws_constants.SPS_COLUMNS})  # every score a string
    write_frame(local_lake, key, sps)
    found = read_checkpoint(local_lake, key, aws_frames.SPS)
    assert found.frame is None and "frame aws/sps" in found.moved_aside and "'SPS'" in found.moved_aside


def test_a_merged_snapshot_from_before_sps_capacity_reads_with_its_fill(local_lake: LocalLake) -> None:
    legacy = aws_merged().drop(columns=["SPSCapacity"]).assign(SPS=[4, -1])
    write_frame(local_lake, "old.parquet", legacy)
    read = read_frame(local_lake, "old.parquet", aws_frames.MERGED)
    assert list(read.columns) == list(aws_constants.MERGED_COLUMNS)
    assert read["SPSCapacity"].tolist() == [1, -1]
    azure_legacy = pd.DataFrame({c: [] for c in azure_constants.MERGED_COLUMNS if c != "ScoreCount"})
    assert "ScoreCount" in azure_frames.MERGED.legacy(azure_legacy).columns  # type: ignore[misc]


def test_every_frame_asset_publishes_its_column_schema() -> None:
    from spotlake_assets.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    frames = {
        "aws": aws_frames.FRAMES,
        "azure": azure_frames.FRAMES,
    }
    published = {
        key.to_user_string(): graph.get(key).metadata.get(COLUMN_SCHEMA) for key in graph.get_all_asset_keys()
    }
    for provider, declared in frames.items():
        for name, frame_type in declared.items():
            schema = published[f"{provider}/{name}"]
            assert schema is not None, f"{provider}/{name} publishes no column schema"
            assert [c.name for c in schema.value.columns] == list(frame_type.names)
    merged = published["aws/merged"]
    assert merged is not None
    capacity = next(c for c in merged.value.columns if c.name == "SPSCapacity")
    assert capacity.type == "int64" and "Not a feature" in (capacity.description or "")
