"""Pure tests of SpotLake → merged normalisation (`spotlake_assets.domain.legacy`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from spotlake_assets.aws.constants import MERGED_COLUMNS as AWS_MERGED
from spotlake_assets.azure.constants import MERGED_COLUMNS as AZURE_MERGED
from spotlake_assets.azure.constants import NO_ZONE
from spotlake_assets.domain.legacy import (
    SnapshotRejected,
    find_gaps,
    month_days,
    normalise_snapshot,
    snapshot_name,
)
from spotlake_assets.legacy.layouts import AWS_LAYOUT, AZURE_LAYOUT, SINGLE_NODE_COLUMNS

MARCH = date(2024, 3, 1)
WINDOW = datetime(2024, 3, 7, 13, 40, tzinfo=UTC)


def _aws(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "Time": ["2024-03-07 13:40:02"] * 3,
        "InstanceType": ["m5.large", "c5.xlarge", "m5.large"],
        "Region": ["us-east-1", "us-west-2", "us-east-1"],
        "AZ": ["use1-az2", "usw2-az1", "use1-az1"],
        "SPS": [3.0, 1.0, 2.0],
        "IF": [3.0, 1.5, -1.0],
        "OndemandPrice": [0.096, 0.17, 0.096],
        "SpotPrice": [0.0352, -1.0, 0.04],
        "Savings": [63.3, -1.0, 58.0],
    }
    base.update(columns)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aws-2024-03/07/13-40-02.csv.gz", datetime(2024, 3, 7, 13, 40, tzinfo=UTC)),
        ("rawdata/aws/2024/03/07/13-49-59.csv", datetime(2024, 3, 7, 13, 40, tzinfo=UTC)),
        ("07/00-00-00.csv.gz", datetime(2024, 3, 7, 0, 0, tzinfo=UTC)),
    ],
)
def test_snapshot_name_is_the_window_the_file_was_written_in(name: str, expected: datetime) -> None:
    assert snapshot_name(name, MARCH).window == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("aws-2024-04/01/00-00-00.csv.gz", "outside the month"),
        ("rawdata/aws/2023/03/01/00-00-00.csv.gz", "outside the month"),
        ("aws-2024-03/32/00-00-00.csv.gz", "outside the month"),
        ("aws-2024-03/01/25-00-00.csv.gz", "outside the month"),
        ("aws-2024-03/01/notes.csv", "not a snapshot"),
    ],
)
def test_files_outside_the_month_are_rejected_with_their_name(name: str, reason: str) -> None:
    with pytest.raises(SnapshotRejected, match=reason) as caught:
        snapshot_name(name, MARCH)
    assert caught.value.name == name


def test_aws_snapshot_gets_our_schema_sorted_and_missing_ladder_columns_as_zero() -> None:
    out = normalise_snapshot(_aws(), AWS_LAYOUT, WINDOW)
    frame = out.frame
    assert tuple(frame.columns) == AWS_MERGED
    assert list(frame["InstanceType"].astype(str)) == ["c5.xlarge", "m5.large", "m5.large"]
    assert list(frame["AZ"].astype(str)) == ["usw2-az1", "use1-az1", "use1-az2"]
    assert (frame["T3"] == 0).all() and (frame["T2"] == 0).all()
    assert frame["SPS"].dtype == np.int64 and list(frame["SPS"]) == [1, 2, 3]
    # SpotLake's sentinels are kept as written; Savings truncated to our int.
    assert list(frame["SpotPrice"]) == [-1.0, 0.04, 0.0352]
    assert list(frame["Savings"]) == [-1, 58, 63]
    assert (frame["Time"] == pd.Timestamp(WINDOW)).all() and str(frame["Time"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(frame["Region"].dtype, pd.CategoricalDtype)
    assert out.rows_in == 3 and not out.dropped


def test_empty_cells_take_the_sentinel_and_bad_rows_are_counted() -> None:
    raw = _aws(
        SPS=[np.nan, 2.5, 2.0],
        SpotPrice=[np.nan, 0.1, 0.04],
        Region=[" us-east-1 ", "us-west-2", ""],
    )
    out = normalise_snapshot(raw, AWS_LAYOUT, WINDOW)
    assert dict(out.dropped) == {"missing_key:Region": 1, "non_integer:SPS": 1}
    assert len(out.frame) == 1
    row = out.frame.iloc[0]
    assert (row["Region"], row["SPS"], row["SpotPrice"]) == ("us-east-1", -1, -1.0)


def test_duplicated_keys_keep_the_first_row() -> None:
    raw = _aws(AZ=["use1-az2", "usw2-az1", "use1-az2"], InstanceType=["m5.large", "c5.xlarge", "m5.large"])
    out = normalise_snapshot(raw, AWS_LAYOUT, WINDOW)
    assert out.dropped == {"duplicate_key": 1}
    assert out.frame.loc[out.frame["InstanceType"] == "m5.large", "SPS"].tolist() == [3]


def test_zone_names_map_to_ids_where_known_and_are_counted_where_not() -> None:
    raw = _aws(AZ=["us-east-1a", "usw2-az1", "us-east-1b"])
    out = normalise_snapshot(raw, AWS_LAYOUT, WINDOW, zone_ids={"us-east-1a": "use1-az6"})
    assert set(out.frame["AZ"].astype(str)) == {"use1-az6", "usw2-az1", "us-east-1b"}
    assert out.unmapped_zone_names == 1


def test_a_missing_required_column_rejects_the_file() -> None:
    with pytest.raises(SnapshotRejected, match="missing columns \\['SPS'\\]"):
        normalise_snapshot(_aws().drop(columns=["SPS"]), AWS_LAYOUT, WINDOW)


def test_azure_without_zone_or_scores_gets_our_regional_row() -> None:
    raw = pd.DataFrame(
        {
            "InstanceTier": ["Standard", "Basic"],
            "InstanceType": ["D2s_v5", "A1"],
            "Region": ["eastus", "westeurope"],
            "OndemandPrice": [0.096, 0.02],
            "SpotPrice": [0.02, 0.004],
            "Savings": [79.0, 80.0],
            "IF": [3.0, np.nan],
        }
    )
    frame = normalise_snapshot(raw, AZURE_LAYOUT, WINDOW).frame
    assert tuple(frame.columns) == AZURE_MERGED
    assert set(frame["AvailabilityZone"].astype(str)) == {NO_ZONE}
    assert list(frame["RegionName"].astype(str)) == list(frame["Region"].astype(str))
    assert list(frame["Score"]) == [-1, -1] and list(frame["DesiredCount"]) == [-1, -1]
    assert list(frame["IF"]) == [-1.0, 3.0]


def test_a_column_added_to_our_schema_is_filled_from_the_layout() -> None:
    layout = replace(
        AWS_LAYOUT,
        merged_columns=(*AWS_LAYOUT.merged_columns, "NewCount"),
        int_columns=(*AWS_LAYOUT.int_columns, "NewCount"),
        defaults={**AWS_LAYOUT.defaults, "NewCount": 7},
    )
    frame = normalise_snapshot(_aws(), layout, WINDOW).frame
    assert (frame["NewCount"] == 7).all()


def test_the_score_capacity_column_of_ours_is_one_for_imported_rows() -> None:
    # SpotLake's SPS is the single-node score (helper C's column; a no-op while our schema lacks it).
    aws_frame = normalise_snapshot(_aws(), AWS_LAYOUT, WINDOW).frame
    present = [c for c in SINGLE_NODE_COLUMNS if c in aws_frame.columns]
    for column in present:
        assert aws_frame[column].dtype == np.int64 and (aws_frame[column] == 1).all()


def test_gaps_are_runs_of_missing_windows() -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    ten = pd.Timedelta(minutes=10).to_pytimedelta()
    present = [start + i * ten for i in (0, 1, 4, 5)]
    gaps = find_gaps(present, start, start + 8 * ten)
    assert [(g.first, g.windows) for g in gaps] == [(start + 2 * ten, 2), (start + 6 * ten, 2)]
    assert find_gaps([], start, start + 2 * ten)[0].windows == 2


def test_month_days() -> None:
    assert len(month_days(date(2024, 2, 1))) == 29 and month_days(date(2023, 12, 1))[-1] == date(2023, 12, 31)


def test_imported_snapshots_pass_the_merged_frame_types_the_live_pipeline_reads_with() -> None:
    from spotlake_assets.aws.frames import MERGED as AWS_FRAME
    from spotlake_assets.azure.frames import MERGED as AZURE_FRAME

    AWS_FRAME.validate(normalise_snapshot(_aws(), AWS_LAYOUT, WINDOW).frame, "imported aws")
    azure = pd.DataFrame(
        {
            "InstanceTier": ["Standard"],
            "InstanceType": ["D2s_v5"],
            "Region": ["eastus"],
            "AvailabilityZone": ["1"],
            "Score": [3],
            "OndemandPrice": [0.096],
            "SpotPrice": [0.02],
            "Savings": [79],
            "IF": [3.0],
        }
    )
    AZURE_FRAME.validate(normalise_snapshot(azure, AZURE_LAYOUT, WINDOW).frame, "imported azure")
