"""Tier 1: Timestream record builders (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from spotlake_assets.aws.constants import FEATURE_COLUMNS, KEY_COLUMNS
from spotlake_assets.sinks.records import (
    AWS_MAPPING,
    MAX_RECORDS_PER_WRITE,
    MeasureSpec,
    TimestreamMapping,
    build_records,
    default_mapping,
    infer_measure_type,
    window_ms,
    window_version,
)

WINDOW = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)
WINDOW_MS = 1772323800000


def aws_delta(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InstanceType": pd.Categorical(["m5.large", "m5.large", "c5.xlarge"][:rows]),
            "Region": ["us-east-1", "us-east-1", "eu-west-1"][:rows],
            "AZ": ["use1-az1", "use1-az2", "euw1-az3"][:rows],
            "SPS": np.array([3, 0, 9][:rows], dtype=np.int64),
            "T3": np.array([45, 0, 50][:rows], dtype=np.int64),
            "T2": np.array([50, 0, 50][:rows], dtype=np.int64),
            "IF": [2.5, 0.0, -1.0][:rows],
            "OndemandPrice": [0.096, 0.0, -1.0][:rows],
            "SpotPrice": [0.0354, 0.0, 0.12345][:rows],
            "Savings": np.array([63, 0, -1][:rows], dtype=np.int64),
            "Time": pd.Series([pd.Timestamp(WINDOW)] * rows, dtype="datetime64[ns, UTC]"),
            "Ceased": [False, True, False][:rows],
        }
    )


def test_aws_records_match_spotlakes_table_layout() -> None:
    records = build_records(aws_delta(), AWS_MAPPING, WINDOW, version=7)
    assert records.table == "aws"
    assert records.common == {
        "MeasureName": "aws_values",
        "MeasureValueType": "MULTI",
        "Time": str(WINDOW_MS),
        "TimeUnit": "MILLISECONDS",
        "Version": 7,
    }
    assert records.records[0] == {
        "Dimensions": [
            {"Name": "InstanceType", "Value": "m5.large"},
            {"Name": "Region", "Value": "us-east-1"},
            {"Name": "AZ", "Value": "use1-az1"},
            {"Name": "OndemandPrice", "Value": "0.096"},
            {"Name": "Ceased", "Value": "False"},
        ],
        "MeasureValues": [
            {"Name": "SPS", "Value": "3", "Type": "BIGINT"},
            # aws_delta() predates the column: the documented fill (single-node) is sent.
            {"Name": "SPSCapacity", "Value": "1", "Type": "BIGINT"},
            {"Name": "T3", "Value": "45", "Type": "BIGINT"},
            {"Name": "T2", "Value": "50", "Type": "BIGINT"},
            {"Name": "IF", "Value": "2.5", "Type": "DOUBLE"},
            {"Name": "SpotPrice", "Value": "0.0354", "Type": "DOUBLE"},
        ],
    }
    # A ceased pool keeps its dimensions, flagged, with zeroed measures.
    assert {"Name": "Ceased", "Value": "True"} in records.records[1]["Dimensions"]
    # Unknown numbers stay SpotLake's -1, spelled as Python's str() of the float.
    assert {"Name": "OndemandPrice", "Value": "-1.0"} in records.records[2]["Dimensions"]
    assert (
        records.labels[2]
        == "InstanceType=c5.xlarge, Region=eu-west-1, AZ=euw1-az3, OndemandPrice=-1.0, Ceased=False"
    )


def test_the_capacity_of_each_score_is_a_measure() -> None:
    frame = aws_delta()
    frame.insert(list(frame.columns).index("SPS") + 1, "SPSCapacity", np.int64(25))
    records = build_records(frame, AWS_MAPPING, WINDOW, version=1)
    assert {"Name": "SPSCapacity", "Value": "25", "Type": "BIGINT"} in records.records[0]["MeasureValues"]
    azure = default_mapping("azure", ("InstanceType",), ("Score", "T3"))
    assert [m.name for m in azure.measures] == ["Score", "ScoreCount", "T3", "Ceased"]
    assert next(m for m in azure.measures if m.name == "ScoreCount").type == "BIGINT"


def test_missing_values_are_left_out_not_sent_as_nan() -> None:
    frame = aws_delta()
    frame["IF"] = frame["IF"].astype(float)
    frame.loc[0, "IF"] = np.nan
    frame.loc[1, "OndemandPrice"] = np.nan
    records = build_records(frame, AWS_MAPPING, WINDOW, version=1)
    assert "IF" not in {m["Name"] for m in records.records[0]["MeasureValues"]}
    assert "OndemandPrice" not in {d["Name"] for d in records.records[1]["Dimensions"]}
    assert all("nan" not in str(r) for r in records.records)


def test_effective_records_apply_the_common_attributes() -> None:
    records = build_records(aws_delta(1), AWS_MAPPING, WINDOW, version=3)
    (only,) = records.effective()
    assert only["Time"] == str(WINDOW_MS) and only["Version"] == 3 and only["MeasureName"] == "aws_values"
    assert only["Dimensions"] == records.records[0]["Dimensions"]


@pytest.mark.parametrize("rows", [0, 1, 99, 100, 101, 250])
def test_batches_hold_at_most_100_records_in_order(rows: int) -> None:
    frame = pd.concat([aws_delta(1)] * rows, ignore_index=True) if rows else aws_delta(0)
    records = build_records(frame, AWS_MAPPING, WINDOW, version=1)
    batches = list(records.batches())
    assert all(len(batch) <= MAX_RECORDS_PER_WRITE for _, batch in batches)
    assert [start for start, _ in batches] == list(range(0, rows, 100))
    assert sum(len(batch) for _, batch in batches) == rows
    with pytest.raises(ValueError, match=r"outside 1\.\.100"):
        list(records.batches(101))


def test_version_is_a_deterministic_function_of_the_partition() -> None:
    assert window_version("2026-03-01-00:10") == window_version("2026-03-01-00:10") == WINDOW_MS * 100
    assert window_version("2026-03-01-00:10", revision=1) == WINDOW_MS * 100 + 1
    assert window_version("2026-03-01-00:20") > window_version("2026-03-01-00:10", revision=99)
    with pytest.raises(ValueError, match="revision"):
        window_version("2026-03-01-00:10", revision=100)


def test_window_ms_is_exact_and_reads_naive_times_as_utc() -> None:
    assert window_ms(WINDOW) == WINDOW_MS
    assert window_ms(WINDOW.replace(tzinfo=None)) == WINDOW_MS


def test_azure_default_mapping_uses_its_keys_and_types_measures_from_dtypes() -> None:
    keys = ("InstanceTier", "InstanceType", "Region", "AvailabilityZone")
    mapping = default_mapping("azure", keys, ("Score", "T3", "T2", "IF", "SpotPrice", "OndemandPrice"))
    assert mapping.table == "azure" and mapping.measure_name == "azure_values"
    assert mapping.dimensions == keys
    frame = pd.DataFrame(
        {
            "InstanceTier": ["Standard"],
            "InstanceType": ["Standard_D2s_v3"],
            "Region": ["eastus"],
            "AvailabilityZone": ["1"],
            "Score": [3],
            "T3": [20],
            "T2": [20],
            "IF": [2.5],
            "SpotPrice": [0.01],
            "OndemandPrice": [0.1],
            "Ceased": [False],
        }
    )
    (record,) = build_records(frame, mapping, WINDOW, version=1).records
    assert [d["Name"] for d in record["Dimensions"]] == list(keys)
    types = {m["Name"]: m["Type"] for m in record["MeasureValues"]}
    assert types == {
        "Score": "BIGINT",
        "ScoreCount": "BIGINT",  # filled: the frame predates the column
        "T3": "BIGINT",
        "T2": "BIGINT",
        "IF": "DOUBLE",
        "SpotPrice": "DOUBLE",
        "OndemandPrice": "DOUBLE",
        "Ceased": "BOOLEAN",
    }
    assert {"Name": "Ceased", "Value": "false", "Type": "BOOLEAN"} in record["MeasureValues"]
    assert default_mapping("aws", KEY_COLUMNS, FEATURE_COLUMNS) is AWS_MAPPING


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([1], dtype="int64"), "BIGINT"),
        (pd.Series([1.5]), "DOUBLE"),
        (pd.Series([True]), "BOOLEAN"),
        (pd.Series(["High"]), "VARCHAR"),
        (pd.Series(pd.to_datetime(["2026-03-01"], utc=True)), "TIMESTAMP"),
    ],
)
def test_measure_types_are_inferred_from_dtypes(values: pd.Series, expected: str) -> None:
    assert infer_measure_type(values.dtype) == expected


def test_timestamp_measures_are_epoch_milliseconds() -> None:
    frame = pd.DataFrame({"K": ["a"], "Updated": pd.to_datetime(["2026-03-01 00:10"], utc=True)})
    mapping = TimestreamMapping("t", "v", ("K",), (MeasureSpec("Updated"),))
    (record,) = build_records(frame, mapping, WINDOW, version=1).records
    assert record["MeasureValues"] == [{"Name": "Updated", "Value": str(WINDOW_MS), "Type": "TIMESTAMP"}]


def test_unmapped_columns_and_empty_rows_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"lacks columns \['SPS', 'SPSCapacity'\]"):
        build_records(aws_delta().drop(columns=["SPS"]), AWS_MAPPING, WINDOW, version=1)
    mapping = TimestreamMapping("t", "v", ("K",), (MeasureSpec("M", "DOUBLE"),))
    with pytest.raises(ValueError, match="no measure value"):
        build_records(pd.DataFrame({"K": ["a"], "M": [np.nan]}), mapping, WINDOW, version=1)
    with pytest.raises(ValueError, match="versions start at 1"):
        build_records(aws_delta(), AWS_MAPPING, WINDOW, version=0)
