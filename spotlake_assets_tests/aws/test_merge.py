"""merge_snapshot: fills, savings, rounding, price-only rows, errors, ladder, and a pandas-merge reference."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from spotlake_assets.aws.constants import (
    IF_COLUMNS,
    MERGED_COLUMNS,
    ONDEMAND_COLUMNS,
    SPOT_PRICE_COLUMNS,
    SPS_COLUMNS,
)
from spotlake_assets.aws.merge import AwsMergeDetail, merge_snapshot
from spotlake_assets.domain.merge import MergeResult
from spotlake_assets.storage.frames import frame_to_parquet, parquet_to_frame

TIME = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ZONES = {"use1-az1": "us-east-1", "use1-az2": "us-east-1", "euw1-az1": "eu-west-1"}
KEYS = ["InstanceType", "Region", "AZ"]
DTYPES = {
    "SPS": "int64",
    "SPSCapacity": "int64",
    "T3": "int64",
    "T2": "int64",
    "IF": "float64",
    "OndemandPrice": "float64",
    "SpotPrice": "float64",
    "Savings": "int64",
    "Time": "datetime64[ns, UTC]",
}


def sps_frame(rows: list[tuple[str, str, str, int]], capacity: int = 5) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["InstanceType", "Region", "AZ", "SPS"])
    frame["TargetCapacity"] = capacity
    frame["T3"] = np.where(frame["SPS"] >= 3, capacity, 0)
    frame["T2"] = np.where(frame["SPS"] == 2, capacity, 0)
    return frame[list(SPS_COLUMNS)]


def inputs(**overrides: pd.DataFrame) -> dict[str, Any]:
    frames: dict[str, Any] = {
        "sps": sps_frame(
            [
                ("m5.large", "us-east-1", "use1-az1", 3),
                ("m5.large", "us-east-1", "use1-az2", 2),
                ("c5.large", "eu-west-1", "euw1-az1", 1),
            ]
        ),
        "spot_price": pd.DataFrame(
            [
                ("m5.large", "use1-az1", 0.0412345),
                ("c5.large", "euw1-az1", 0.05),
                ("r6i.large", "use1-az2", 0.1),  # price only
                ("r6i.large", "apne1-az9", 0.2),  # price only, AZ unknown to zone_regions
            ],
            columns=list(SPOT_PRICE_COLUMNS),
        ),
        "interruption_frequency": pd.DataFrame(
            [
                ("us-east-1", "m5.large", 3.0),
                ("eu-west-1", "c5.large", 2.0),
                ("ap-northeast-1", "m5.large", 1.0),
            ],
            columns=list(IF_COLUMNS),
        ),
        "ondemand": pd.DataFrame(
            [
                ("us-east-1", "m5.large", 0.096),
                ("us-east-1", "r6i.large", 0.126),
                ("eu-west-1", "c5.large", 0.0),
            ],
            columns=list(ONDEMAND_COLUMNS),
        ),
    }
    frames.update(overrides)
    return frames


def merge(
    previous: pd.DataFrame | None = None, capacity: int = 5, **overrides: Any
) -> MergeResult[AwsMergeDetail]:
    return merge_snapshot(
        **inputs(**overrides), zone_regions=ZONES, time=TIME, previous=previous, capacity=capacity
    )


def records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows without Time and SPSCapacity (its own tests below)."""
    return list(
        frame.drop(columns=["Time", "SPSCapacity"])
        .astype({k: object for k in KEYS})
        .itertuples(index=False, name=None)
    )


def test_merge_fills_rounds_and_adds_price_only_rows() -> None:
    result = merge()
    assert records(result.frame) == [
        # InstanceType, Region, AZ, SPS, T3, T2, IF, OndemandPrice, SpotPrice, Savings
        ("c5.large", "eu-west-1", "euw1-az1", 1, 0, 0, 2.0, 0.0, 0.05, -1),  # on-demand 0: savings unknown
        ("m5.large", "us-east-1", "use1-az1", 3, 5, 5, 3.0, 0.096, 0.04123, 57),
        ("m5.large", "us-east-1", "use1-az2", 2, 0, 5, 3.0, 0.096, -1.0, -1),  # no spot price
        ("r6i.large", "us-east-1", "use1-az2", -1, 0, 0, -1.0, 0.126, 0.1, 20),
    ]
    assert (result.dropped, result.detail.unknown_azs) == (
        {"spot_price: AZ id not in the day's zones": 1},
        ("apne1-az9",),
    )


def test_merge_reports_every_drop_by_reason() -> None:
    result = merge()
    assert result.dropped == {"spot_price: AZ id not in the day's zones": 1}
    assert result.unjoined == {
        "interruption_frequency: no pool of that (InstanceType, Region)": 1,  # ap-northeast-1 m5.large
        "ondemand: no pool of that (InstanceType, Region)": 0,
    }


def test_schema_and_dtypes() -> None:
    frame = merge().frame
    assert tuple(frame.columns) == MERGED_COLUMNS
    assert {c: str(frame[c].dtype) for c in DTYPES} == DTYPES
    for key in KEYS:
        assert isinstance(frame[key].dtype, pd.CategoricalDtype)
        assert all(isinstance(v, str) for v in frame[key].cat.categories)
    assert (frame["Time"] == pd.Timestamp(TIME)).all()
    assert not frame.duplicated(KEYS).any()
    assert list(frame.index) == list(range(len(frame)))


def test_empty_inputs_give_an_empty_frame_with_the_schema() -> None:
    empty = {name: frame.iloc[:0] for name, frame in inputs().items()}
    frame = merge(**empty).frame
    assert frame.empty
    assert tuple(frame.columns) == MERGED_COLUMNS
    assert {c: str(frame[c].dtype) for c in DTYPES} == DTYPES


@pytest.mark.parametrize(
    ("spot", "ondemand", "expected"),
    [
        (0.0412345, 0.096, 57),
        (0.03, 0.1, 70),
        (0.3, 0.2, -50),  # spot above on-demand
        (0.0, 0.1, 100),
        (0.05, 0.0, -1),
        (np.nan, 0.1, -1),
        (0.05, np.nan, -1),
    ],
)
def test_savings(spot: float, ondemand: float, expected: int) -> None:
    frame = merge(
        sps=sps_frame([("m5.large", "us-east-1", "use1-az1", 3)]),
        spot_price=pd.DataFrame({"InstanceType": ["m5.large"], "AZ": ["use1-az1"], "SpotPrice": [spot]}),
        ondemand=pd.DataFrame(
            {"Region": ["us-east-1"], "InstanceType": ["m5.large"], "OndemandPrice": [ondemand]}
        ),
    ).frame
    assert frame.loc[0, "Savings"] == expected
    if not np.isnan(spot) and not np.isnan(ondemand) and ondemand > 0:
        assert expected == int(100 - 100 * round(spot, 5) / round(ondemand, 5))


@pytest.mark.parametrize(("value", "rounded"), [(0.123456789, 0.12346), (1.000004, 1.0), (0.000015, 0.00002)])
def test_prices_are_rounded_to_five_decimals(value: float, rounded: float) -> None:
    frame = merge(
        spot_price=pd.DataFrame({"InstanceType": ["m5.large"], "AZ": ["use1-az1"], "SpotPrice": [value]}),
        ondemand=pd.DataFrame(
            {"Region": ["us-east-1"], "InstanceType": ["m5.large"], "OndemandPrice": [value]}
        ),
    ).frame
    row = frame[frame["AZ"] == "use1-az1"].iloc[0]
    assert row["SpotPrice"] == rounded
    assert row["OndemandPrice"] == rounded


def test_region_level_tables_do_not_create_rows() -> None:
    frame = merge().frame
    assert "ap-northeast-1" not in set(frame["Region"])


def test_ladder_uses_the_previous_snapshot() -> None:
    previous = pd.DataFrame(
        {
            "InstanceType": ["m5.large", "m5.large", "r6i.large"],
            "AZ": ["use1-az1", "use1-az2", "use1-az2"],
            "SPS": [4, 2, 3],
            "T3": [5, 0, 20],
            "T2": [0, 5, 10],
        }
    )
    sps = sps_frame(
        [
            ("m5.large", "us-east-1", "use1-az1", 3),
            ("m5.large", "us-east-1", "use1-az2", 1),
            ("c5.large", "eu-west-1", "euw1-az1", 2),
        ],
        capacity=10,
    )
    frame = merge(previous, capacity=10, sps=sps).frame.set_index(["InstanceType", "AZ"])
    assert tuple(frame.loc[("m5.large", "use1-az1"), ["T3", "T2"]]) == (10, 10)
    assert tuple(frame.loc[("m5.large", "use1-az2"), ["T3", "T2"]]) == (0, 5)  # failed: min(5, 5)
    assert tuple(frame.loc[("c5.large", "euw1-az1"), ["T3", "T2"]]) == (0, 10)  # no previous row
    assert tuple(frame.loc[("r6i.large", "use1-az2"), ["T3", "T2"]]) == (20, 10)  # no SPS: kept
    # SPS is the single-node score: carried outside capacity-1 windows, this window's when none is known.
    assert frame.loc[("m5.large", "use1-az1"), "SPS"] == 4
    assert frame.loc[("m5.large", "use1-az2"), "SPS"] == 2
    assert frame.loc[("c5.large", "euw1-az1"), "SPS"] == 2
    assert frame.loc[("r6i.large", "use1-az2"), "SPS"] == -1  # not scored this window


def test_capacity_one_windows_refresh_the_published_score() -> None:
    previous = pd.DataFrame(
        {"InstanceType": ["m5.large"], "AZ": ["use1-az1"], "SPS": [9], "T3": [50], "T2": [50]}
    )
    sps = sps_frame([("m5.large", "us-east-1", "use1-az1", 3)], capacity=1)
    frame = merge(previous, capacity=1, sps=sps).frame.set_index(["InstanceType", "AZ"])
    assert tuple(frame.loc[("m5.large", "use1-az1"), ["SPS", "T3", "T2"]]) == (3, 50, 50)
    sps = sps_frame([("m5.large", "us-east-1", "use1-az1", 1)], capacity=1)
    frame = merge(previous, capacity=1, sps=sps).frame.set_index(["InstanceType", "AZ"])
    assert tuple(frame.loc[("m5.large", "use1-az1"), ["SPS", "T3", "T2"]]) == (1, 0, 0)


def test_sps_capacity_names_the_capacity_each_published_score_was_measured_at() -> None:
    previous = pd.DataFrame(
        {
            "InstanceType": ["m5.large", "m5.large", "r6i.large"],
            "AZ": ["use1-az1", "use1-az2", "use1-az2"],
            "SPS": [4, 2, 3],
            # use1-az2 was first seen at capacity 5: its carried score is the one measured at 5.
            "SPSCapacity": [1, 5, 1],
            "T3": [5, 0, 20],
            "T2": [0, 5, 10],
        }
    )
    sps = sps_frame(
        [
            ("m5.large", "us-east-1", "use1-az1", 3),
            ("m5.large", "us-east-1", "use1-az2", 1),
            ("c5.large", "eu-west-1", "euw1-az1", 2),
        ],
        capacity=10,
    )
    frame = merge(previous, capacity=10, sps=sps).frame.set_index(["InstanceType", "AZ"])
    published = frame[["SPS", "SPSCapacity"]].astype(object).apply(tuple, axis=1).to_dict()
    assert published == {
        ("c5.large", "euw1-az1"): (2, 10),  # no single-node score yet: this window's, at 10
        ("m5.large", "use1-az1"): (4, 1),  # the single-node score, carried
        ("m5.large", "use1-az2"): (2, 5),  # a carried score keeps the capacity it was measured at
        ("r6i.large", "use1-az2"): (-1, -1),  # no score this window
    }
    one = merge(frame.reset_index(), capacity=1, sps=sps_frame([("m5.large", "us-east-1", "use1-az2", 3)], 1))
    row = one.frame[(one.frame["InstanceType"] == "m5.large") & (one.frame["AZ"] == "use1-az2")]
    assert row[["SPS", "SPSCapacity"]].to_numpy().tolist() == [[3, 1]]  # capacity 1: single-node score taken


def test_a_previous_snapshot_without_sps_capacity_reads_as_single_node_scores() -> None:
    """Snapshots written before the column existed still chain: their scores count as single-node ones."""
    previous = pd.DataFrame(
        {"InstanceType": ["m5.large"], "AZ": ["use1-az1"], "SPS": [4], "T3": [5], "T2": [5]}
    )
    sps = sps_frame([("m5.large", "us-east-1", "use1-az1", 3)], capacity=10)
    frame = merge(previous, capacity=10, sps=sps).frame
    assert frame.loc[frame["AZ"] == "use1-az1", ["SPS", "SPSCapacity"]].to_numpy().tolist() == [[4, 1]]


def test_previous_merged_snapshot_round_trips_through_parquet_and_chains() -> None:
    first = merge().frame
    stored = parquet_to_frame(frame_to_parquet(first), "memory")
    pd.testing.assert_frame_equal(stored, first)
    second = merge(stored, capacity=10, sps=sps_frame([("m5.large", "us-east-1", "use1-az1", 3)], 10)).frame
    assert second.set_index(["InstanceType", "AZ"]).loc[("m5.large", "use1-az1"), "T3"] == 10


def test_categorical_and_object_inputs_give_the_same_frame() -> None:
    frames = inputs()
    categorical = {
        name: frame.astype({c: "category" for c in frame.columns if c in KEYS})
        for name, frame in frames.items()
    }
    pd.testing.assert_frame_equal(merge(**categorical).frame, merge(**frames).frame)


@pytest.mark.parametrize(
    ("name", "row", "message"),
    [
        ("sps", 1, r"sps has 1 rows with duplicated keys \('InstanceType', 'AZ'\).*use1-az2"),
        ("spot_price", 2, r"spot_price has 1 rows with duplicated keys.*r6i\.large"),
        ("interruption_frequency", 0, r"interruption_frequency has 1 rows with duplicated keys.*us-east-1"),
        ("ondemand", 1, r"ondemand has 1 rows with duplicated keys.*r6i\.large"),
    ],
)
def test_duplicated_keys_raise(name: str, row: int, message: str) -> None:
    frame = inputs()[name]
    with pytest.raises(ValueError, match=message):
        merge(**{name: pd.concat([frame, frame.iloc[[row]]], ignore_index=True)})


def test_duplicated_previous_keys_raise() -> None:
    previous = pd.DataFrame(
        {"InstanceType": ["m5.large"] * 2, "AZ": ["use1-az1"] * 2, "SPS": [1, 1], "T3": [0, 0], "T2": [0, 0]}
    )
    with pytest.raises(ValueError, match="previous has 1 rows with duplicated keys"):
        merge(previous)


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("sps", "SPS"),
        ("sps", "Region"),
        ("spot_price", "AZ"),
        ("interruption_frequency", "IF"),
        ("ondemand", "Region"),
    ],
)
def test_missing_columns_raise(name: str, column: str) -> None:
    with pytest.raises(ValueError, match=rf"{name} is missing columns \['{column}'\]"):
        merge(**{name: inputs()[name].drop(columns=[column])})


def test_other_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"TargetCapacity \[5\.0\], expected 10"):
        merge(capacity=10)
    with pytest.raises(ValueError, match="timezone-aware"):
        merge_snapshot(**inputs(), zone_regions=ZONES, time=datetime(2026, 3, 2), previous=None, capacity=5)
    sps = inputs()["sps"]
    sps.loc[0, "AZ"] = None
    with pytest.raises(ValueError, match="sps has 1 rows with a null AZ"):
        merge(sps=sps)


# ---- reference: plain pandas merges -----------------------------------------------------------------


def reference_merge(frames: dict[str, pd.DataFrame], capacity: int) -> pd.DataFrame:
    """The straightforward pandas version (no previous snapshot), for consistent random inputs."""
    spot = frames["spot_price"].assign(Region=frames["spot_price"]["AZ"].map(ZONES)).dropna(subset=["Region"])
    pools = frames["sps"][["InstanceType", "Region", "AZ", "SPS"]].merge(spot, on=KEYS, how="outer")
    pools = pools.merge(frames["interruption_frequency"], on=["InstanceType", "Region"], how="left")
    pools = pools.merge(frames["ondemand"], on=["InstanceType", "Region"], how="left")
    pools = pools.fillna({"SPS": -1, "IF": -1, "SpotPrice": -1, "OndemandPrice": -1})
    pools["SpotPrice"] = pools["SpotPrice"].round(5)
    pools["OndemandPrice"] = pools["OndemandPrice"].round(5)
    pools["SPS"] = pools["SPS"].astype("int64")
    pools["SPSCapacity"] = np.where(pools["SPS"] >= 0, capacity, -1)
    pools["T3"] = np.where(pools["SPS"] >= 3, capacity, 0)
    pools["T2"] = np.where(pools["SPS"] >= 2, capacity, 0)
    pools["Savings"] = [
        int(100 - 100 * s / o) if s >= 0 and o > 0 else -1
        for s, o in zip(pools["SpotPrice"], pools["OndemandPrice"], strict=True)
    ]
    return pools.sort_values(KEYS).reset_index(drop=True)[list(MERGED_COLUMNS[:-1])]


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_a_pandas_merge_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    types = [
        f"{f}.{s}" for f in ("c5", "m5", "r6i", "t3", "x2gd") for s in ("large", "xlarge", "2xlarge", "metal")
    ]
    zones = list(ZONES)
    universe = [(t, z) for t in types for z in zones]
    sps_pick = rng.choice(len(universe), size=len(universe) * 2 // 3, replace=False)
    spot_pick = rng.choice(len(universe), size=len(universe) * 2 // 3, replace=False)
    sps = sps_frame(
        [(universe[i][0], ZONES[universe[i][1]], universe[i][1], int(rng.integers(1, 4))) for i in sps_pick]
    )
    spot = pd.DataFrame(
        {
            "InstanceType": [universe[i][0] for i in spot_pick],
            "AZ": [universe[i][1] for i in spot_pick],
            "SpotPrice": rng.uniform(0.001, 3, len(spot_pick)),
        }
    )
    pairs = sorted({(t, r) for t in types for r in set(ZONES.values())})
    keep = rng.random(len(pairs)) < 0.8
    regional = pd.DataFrame(
        [p for p, k in zip(pairs, keep, strict=True) if k], columns=["InstanceType", "Region"]
    )
    frames = {
        "sps": sps,
        "spot_price": spot,
        "interruption_frequency": regional.assign(IF=rng.choice([1.0, 1.5, 2.0, 2.5, 3.0], len(regional))),
        "ondemand": regional.assign(OndemandPrice=rng.uniform(0.0, 4, len(regional))).sample(
            frac=1, random_state=1
        ),
    }
    got = (
        merge(
            sps=frames["sps"],
            spot_price=frames["spot_price"],
            interruption_frequency=frames["interruption_frequency"],
            ondemand=frames["ondemand"],
        )
        .frame.drop(columns=["Time"])
        .astype({k: object for k in KEYS})
    )
    pd.testing.assert_frame_equal(got, reference_merge(frames, 5))
