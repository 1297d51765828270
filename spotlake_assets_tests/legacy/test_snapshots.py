"""The import's array path (`spotlake_assets.legacy.snapshots`) against the pandas path it replaces: the same
rows kept and dropped, and history windows equal to ``history_table(compute_delta(...))`` byte for byte."""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.domain.legacy import LegacyLayout, normalise_snapshot
from spotlake_assets.legacy.layouts import AWS_LAYOUT, AZURE_LAYOUT
from spotlake_assets.legacy.parsing import parse_snapshot, parse_snapshot_table
from spotlake_assets.legacy.snapshots import DeltaEncoder, NotFast, Snapshot
from spotlake_assets.sinks.history import history_table, table_bytes
from spotlake_assets.storage.frames import frame_to_parquet

START = datetime(2024, 3, 7, 13, 40, tzinfo=UTC)
AWS_HEADER = "Time,InstanceType,Region,AZ,SPS,T3,T2,IF,OndemandPrice,SpotPrice,Savings"
ZONE_IDS = {"us-east-1a": "use1-az4"}

# Whitespace around names, an empty key, a duplicated key, a fractional score, empty numbers, a zone name
# (mapped and not), pools appearing (one sorting before every known value) and ceasing, an empty
# snapshot, a header without the ladder columns and in another order, a non-numeric score.
AWS_SNAPSHOTS: list[str] = [
    f"""{AWS_HEADER}
t,m5.large,us-east-1,use1-az1,3,3,3,2.5,0.096,0.03,63.3
t, m5.large ,us-east-1,use1-az2,2,1,0,1.5,0.096,0.04,58
t,c5.xlarge,us-west-2,usw2-az1,1,,,-1,0.17,-1,-1
t,c5.xlarge,us-west-2,,1,1,1,1,0.17,0.05,
t,m5.large,us-east-1,use1-az1,1,1,1,1,0.096,0.05,50
t,r5.large,us-east-1,us-east-1a,2.5,1,1,1,0.126,0.05,50
t,r5.large,us-east-1,us-east-1b,2,1,1,1,0.126,0.05,50
""",
    f"""{AWS_HEADER}
t,m5.large,us-east-1,use1-az1,3,3,3,2.5,0.096,0.03,63.3
t,m5.large,us-east-1,use1-az2,3,1,0,1.5,0.096,0.04,58
t,a1.medium,eu-west-1,euw1-az1,1,1,1,1,0.02,0.01,50
t,r5.large,us-east-1,us-east-1a,2,1,1,1,0.126,0.05,51
t,r5.large,us-east-1,us-east-1b,2,1,1,1,0.126,0.06,50
""",
    """Time,Region,InstanceType,AZ,SPS,IF,SpotPrice,OndemandPrice,Savings
t,us-east-1,m5.large,use1-az1,3,2.5,0.03,0.096,63
t,eu-west-1,a1.medium,euw1-az1,x,1,0.01,0.02,50
t,ap-south-1,z9.metal,aps1-az1,1,1,0.01,0.02,
""",
    f"{AWS_HEADER}\n",
    f"""{AWS_HEADER}
t,m5.large,us-east-1,use1-az1,3,3,3,2.5,0.096,0.03,63.3
t,b2.small,us-east-1,use1-az1,1,,1,1,,0.01,1
""",
]
AZURE_HEADER = "InstanceTier,InstanceType,Region,AZ,Score,T3,T2,OndemandPrice,SpotPrice,Savings,IF,Time"
AZURE_SNAPSHOTS: list[str] = [
    f"""{AZURE_HEADER}
Standard,D2s_v5,eastus,1,3,1,1,0.1,0.02,80,1.0,t
Standard,D2s_v5,eastus,,2,1,1,0.1,0.02,80,1.0,t
Standard,D4s_v5,westeurope,N/A,1,1,1,0.2,0.04,80,2.0,t
""",
    f"""{AZURE_HEADER}
Standard,D2s_v5,eastus,1,3,1,1,0.1,0.03,80,1.0,t
Basic,A1,japaneast,2,1,1,1,0.01,0.001,90,1.0,t
""",
    """InstanceTier,InstanceType,Region,OndemandPrice,SpotPrice,IF
Standard,D2s_v5,eastus,0.1,0.03,1.0
""",
]


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def _reference(
    texts: Sequence[str], layout: LegacyLayout, zone_ids: Mapping[str, str] | None
) -> list[tuple[bytes, tuple[int, dict[str, int], int]]]:
    """Each snapshot's history bytes and (rows in, dropped, unmapped) through the pandas path."""
    out = []
    previous: pd.DataFrame | None = None
    for i, text in enumerate(texts):
        window = START + timedelta(minutes=10 * i)
        parsed = parse_snapshot(f"07/{i:02d}-00-00.csv.gz", _gz(text), layout)
        normal = normalise_snapshot(parsed.frame, layout, window, zone_ids)
        changes = compute_delta(
            previous, normal.frame, layout.key_columns, layout.feature_columns, time=window
        )
        counts = (normal.rows_in, dict(normal.dropped), normal.unmapped_zone_names)
        out.append((table_bytes(history_table(changes, layout.key_columns)), counts))
        previous = normal.frame
    return out


def _fast(
    texts: Sequence[str], layout: LegacyLayout, zone_ids: Mapping[str, str] | None
) -> list[tuple[bytes, tuple[int, dict[str, int], int]]]:
    encoder = DeltaEncoder(layout, zone_ids)
    out = []
    previous: Snapshot | None = None
    for i, text in enumerate(texts):
        window = START + timedelta(minutes=10 * i)
        parsed = parse_snapshot_table(f"07/{i:02d}-00-00.csv.gz", _gz(text), layout)
        current = encoder.normalise(parsed.table)
        counts = (current.rows_in, current.dropped, current.unmapped_zone_names)
        out.append((table_bytes(encoder.history(previous, current, window)), counts))
        previous = current
    return out


@pytest.mark.parametrize(
    ("layout", "texts", "zone_ids"),
    [
        (AWS_LAYOUT, AWS_SNAPSHOTS, ZONE_IDS),
        (AWS_LAYOUT, AWS_SNAPSHOTS, None),
        (AWS_LAYOUT, AWS_SNAPSHOTS[::-1], None),
        (AZURE_LAYOUT, AZURE_SNAPSHOTS, None),
    ],
    ids=["aws-zone-ids", "aws", "aws-reversed", "azure"],
)
def test_the_array_path_writes_the_pandas_paths_history_byte_for_byte(
    layout: LegacyLayout, texts: list[str], zone_ids: Mapping[str, str] | None
) -> None:
    fast, reference = _fast(texts, layout, zone_ids), _reference(texts, layout, zone_ids)
    assert [counts for _, counts in fast] == [counts for _, counts in reference]
    assert [data for data, _ in fast] == [data for data, _ in reference]
    # The cases above do exercise what they are meant to: drops of every kind, ceased rows.
    if texts is AWS_SNAPSHOTS and zone_ids is None:
        assert {"missing_key:AZ", "duplicate_key", "non_integer:SPS"} <= set(fast[0][1][1])
        assert any(pq.read_table(io.BytesIO(data))["Ceased"].to_pylist().count(True) for data, _ in fast)


def test_a_previous_snapshot_read_from_the_lake_gives_the_same_window() -> None:
    layout = AWS_LAYOUT
    first, second = (
        normalise_snapshot(parse_snapshot(f"07/0{i}-00-00.csv", t.encode(), layout).frame, layout, START)
        for i, t in enumerate(AWS_SNAPSHOTS[:2])
    )
    stored = pq.read_table(io.BytesIO(frame_to_parquet(first.frame))).to_pandas()
    expected = history_table(
        compute_delta(stored, second.frame, layout.key_columns, layout.feature_columns, time=START),
        layout.key_columns,
    )
    encoder = DeltaEncoder(layout)
    current = encoder.normalise(
        parse_snapshot_table("07/01-00-00.csv", AWS_SNAPSHOTS[1].encode(), layout).table
    )
    got = encoder.history(encoder.from_frame(stored), current, START)
    assert table_bytes(got) == table_bytes(expected)


def test_a_previous_snapshot_of_another_shape_is_left_to_the_pandas_path() -> None:
    encoder = DeltaEncoder(AWS_LAYOUT)
    frame = normalise_snapshot(
        parse_snapshot("07/00-00-00.csv", AWS_SNAPSHOTS[1].encode(), AWS_LAYOUT).frame, AWS_LAYOUT, START
    ).frame
    with pytest.raises(NotFast):
        encoder.from_frame(frame.drop(columns=["T2"]))
    with pytest.raises(NotFast):
        encoder.from_frame(frame.assign(SPS=frame["SPS"].astype("float64")))
    with pytest.raises(NotFast):
        encoder.from_frame(frame.iloc[::-1])
