"""One file's bytes → a frame (`legacy/parsing.py`): bad input is a clear rejection or a count."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from spotlake_assets.domain.legacy import SnapshotRejected, normalise_snapshot
from spotlake_assets.legacy.layouts import AWS_LAYOUT, AZURE_LAYOUT
from spotlake_assets.legacy.parsing import parse_snapshot

HEADER = b"Time,InstanceType,Region,AZ,SPS,T3,T2,IF,OndemandPrice,SpotPrice,Savings\n"
ROWS = (
    b"2024-03-01 00:00:03,m5.large,us-east-1,use1-az1,3,10,10,3.0,0.096,0.035,63\n"
    b"2024-03-01 00:00:03,c5.large,us-east-1,use1-az2,2,0,5,2.5,0.085,0.03,64\n"
)


def test_gzip_and_plain_csv_read_the_same() -> None:
    plain = parse_snapshot("01/00-00-03.csv", HEADER + ROWS, AWS_LAYOUT).frame
    zipped = parse_snapshot("01/00-00-03.csv.gz", gzip.compress(HEADER + ROWS), AWS_LAYOUT).frame
    assert plain.equals(zipped) and len(plain) == 2
    assert str(plain["InstanceType"].dtype) == "category"


def test_a_truncated_gzip_rejects_the_file_by_name() -> None:
    data = gzip.compress(HEADER + ROWS * 50)
    with pytest.raises(SnapshotRejected, match="truncated or corrupt gzip") as caught:
        parse_snapshot("01/00-10-00.csv.gz", data[: len(data) // 2], AWS_LAYOUT)
    assert caught.value.name == "01/00-10-00.csv.gz"


def test_a_missing_column_rejects_the_file() -> None:
    header = HEADER.replace(b",SpotPrice", b"")
    rows = b"2024-03-01 00:00:03,m5.large,us-east-1,use1-az1,3,10,10,3.0,0.096,63\n"
    with pytest.raises(SnapshotRejected, match="missing columns \\['SpotPrice'\\]"):
        parse_snapshot("01/00-20-00.csv", header + rows, AWS_LAYOUT)


def test_older_files_without_t2_t3_are_fine() -> None:
    header = HEADER.replace(b",T3,T2", b"")
    rows = b"2024-03-01 00:00:03,m5.large,us-east-1,use1-az1,3,3.0,0.096,0.035,63\n"
    frame = parse_snapshot("01/00-20-00.csv", header + rows, AWS_LAYOUT).frame
    assert "T3" not in frame.columns and len(frame) == 1


def test_a_non_numeric_score_drops_that_row_counted_with_its_number() -> None:
    bad = b"2024-03-01 00:00:03,r5.large,us-east-1,use1-az1,high,0,0,3.0,0.1,0.05,50\n"
    parsed = parse_snapshot("01/00-30-00.csv", HEADER + ROWS + bad, AWS_LAYOUT)
    assert parsed.dropped == {"non_numeric:SPS": 1}
    assert parsed.bad_rows == (3,)
    assert list(parsed.frame["InstanceType"].astype(str)) == ["m5.large", "c5.large"]


def test_an_empty_file_is_rejected() -> None:
    with pytest.raises(SnapshotRejected, match="empty file"):
        parse_snapshot("01/00-40-00.csv", b"", AWS_LAYOUT)


def test_a_corrupt_gzip_body_rejects_the_file() -> None:
    data = gzip.compress(HEADER + ROWS * 50)
    damaged = data[:12] + b"\xff" * 30 + data[42:]
    with pytest.raises(SnapshotRejected, match="truncated or corrupt gzip"):
        parse_snapshot("01/00-50-00.csv.gz", damaged, AWS_LAYOUT)


def test_a_plain_csv_cut_mid_row_is_rejected() -> None:
    with pytest.raises(SnapshotRejected, match="truncated CSV"):
        parse_snapshot("01/01-00-00.csv", (HEADER + ROWS)[:-3], AWS_LAYOUT)


def test_azure_region_rows_keep_their_n_a_zone_and_text_is_never_read_as_missing() -> None:
    # SpotLake writes "N/A" for a region-level Azure row; pyarrow's default null markers (N/A, NA, NULL, nan)
    # would turn that key into a missing value and the row would be dropped.
    header = (
        b"InstanceTier,InstanceType,Region,AvailabilityZone,Score,T3,T2,OndemandPrice,SpotPrice,Savings,IF\n"
    )
    rows = (
        b"Standard,D2s_v5,eastus,1,3,1,1,0.1,0.02,80,1.0\n"
        b"Standard,D4s_v5,westeurope,N/A,-1,0,0,0.2,0.04,80,2.0\n"
        b"Standard,NA,westeurope,N/A,-1,0,0,0.2,0.04,80,2.0\n"
    )
    parsed = parse_snapshot("01/00-00-00.csv", header + rows, AZURE_LAYOUT)
    assert parsed.dropped == {}
    normal = normalise_snapshot(parsed.frame, AZURE_LAYOUT, datetime(2024, 3, 1, tzinfo=UTC))
    assert normal.dropped == {}
    assert sorted(normal.frame["AvailabilityZone"].astype(str)) == ["1", "N/A", "N/A"]
    assert "NA" in set(normal.frame["InstanceType"].astype(str))
