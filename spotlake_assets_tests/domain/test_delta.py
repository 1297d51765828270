"""compute_delta and the key helpers: behaviour table, schema, errors, and equivalence with a naive
row-by-row reference on random data."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from spotlake_assets.aws.constants import FEATURE_COLUMNS, KEY_COLUMNS
from spotlake_assets.domain.delta import CEASED_COLUMN, KeyIndex, compute_delta, encode_keys

PREVIOUS_TIME = datetime(2026, 3, 2, 11, 50, tzinfo=UTC)
TIME = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
KEYS = list(KEY_COLUMNS)
FEATURES = list(FEATURE_COLUMNS)


def snapshot(rows: list[tuple[str, str, str, int, float]], time: datetime = PREVIOUS_TIME) -> pd.DataFrame:
    """A merged-like frame from (type, region, az, sps, spot) rows; the other columns are derived."""
    frame = pd.DataFrame(rows, columns=["InstanceType", "Region", "AZ", "SPS", "SpotPrice"])
    frame["T3"] = np.where(frame["SPS"] >= 3, 10, 0)
    frame["T2"] = np.where(frame["SPS"] == 2, 10, 0)
    frame["IF"] = 2.5
    frame["OndemandPrice"] = 0.192
    frame["Savings"] = (100 - 100 * frame["SpotPrice"] / frame["OndemandPrice"]).astype("int64")
    frame["Time"] = pd.Timestamp(time)
    return frame[[*KEYS, "SPS", "T3", "T2", "IF", "OndemandPrice", "SpotPrice", "Savings", "Time"]]


BASE = [
    ("c5.large", "us-east-1", "use1-az1", 3, 0.03512),
    ("c5.large", "us-east-1", "use1-az2", 2, 0.03499),
    ("m5.large", "eu-west-1", "euw1-az1", 1, 0.04101),
    ("m5.large", "us-east-1", "use1-az1", 3, 0.04012),
]


def run(previous: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    return compute_delta(previous, current, KEYS, FEATURES, time=TIME)


def test_unchanged_input_gives_an_empty_delta_with_the_schema() -> None:
    previous = snapshot(BASE)
    delta = run(previous, previous.copy())
    assert delta.empty
    assert list(delta.columns) == [*previous.columns, CEASED_COLUMN]
    assert delta.dtypes.drop(CEASED_COLUMN).equals(previous.dtypes)
    assert delta[CEASED_COLUMN].dtype == bool


@pytest.mark.parametrize(
    ("feature", "value"),
    [("SPS", 2), ("T3", 15), ("T2", 5), ("IF", 3.0), ("SpotPrice", 0.04013), ("OndemandPrice", 0.2)],
)
def test_one_changed_feature_gives_that_row(feature: str, value: float) -> None:
    previous = snapshot(BASE)
    current = snapshot(BASE, TIME)
    current.loc[3, feature] = value
    delta = run(previous, current)
    assert len(delta) == 1
    row = delta.iloc[0]
    assert (row["InstanceType"], row["Region"], row["AZ"]) == ("m5.large", "us-east-1", "use1-az1")
    assert row[feature] == value
    assert not row[CEASED_COLUMN]
    assert row["Time"] == pd.Timestamp(TIME)


@pytest.mark.parametrize("column", ["Time", "Savings"])
def test_time_or_savings_changes_alone_are_not_a_delta(column: str) -> None:
    previous = snapshot(BASE)
    current = snapshot(BASE, TIME)
    current["Savings"] = previous["Savings"] + (7 if column == "Savings" else 0)
    assert run(previous, current).empty


def test_a_removed_row_is_ceased_with_zero_features_and_the_current_time() -> None:
    previous = snapshot(BASE)
    current = snapshot(BASE[:2] + BASE[3:], TIME)
    delta = run(previous, current)
    assert len(delta) == 1
    row = delta.iloc[0]
    assert (row["InstanceType"], row["Region"], row["AZ"]) == ("m5.large", "eu-west-1", "euw1-az1")
    assert row[CEASED_COLUMN]
    assert all(row[f] == 0 for f in FEATURES)
    assert row["Savings"] == previous.loc[2, "Savings"]
    assert row["Time"] == pd.Timestamp(TIME)
    assert delta.dtypes.drop(CEASED_COLUMN).equals(current.dtypes)


def test_without_time_ceased_rows_take_the_current_snapshot_time() -> None:
    delta = compute_delta(snapshot(BASE), snapshot(BASE[1:], TIME), KEYS, FEATURES)
    assert list(delta[CEASED_COLUMN]) == [True]
    assert delta.loc[0, "Time"] == pd.Timestamp(TIME)


@pytest.mark.parametrize("current_rows", [[], BASE[1:]])
def test_without_time_an_ambiguous_current_time_is_an_error(current_rows: list[Any]) -> None:
    current = snapshot(current_rows, TIME)
    if len(current):
        current.loc[0, "Time"] = pd.Timestamp(PREVIOUS_TIME)
    with pytest.raises(ValueError, match="pass time="):
        compute_delta(snapshot(BASE), current, KEYS, FEATURES)


def test_an_added_row_is_in_the_delta() -> None:
    added = ("r6i.xlarge", "us-east-1", "use1-az6", 3, 0.05)
    delta = run(snapshot(BASE), snapshot([*BASE, added], TIME))
    assert len(delta) == 1
    assert tuple(delta.iloc[0][["InstanceType", "Region", "AZ"]]) == added[:3]
    assert not delta.iloc[0][CEASED_COLUMN]


def test_without_previous_every_row_is_new_and_sorted_by_key() -> None:
    current = snapshot(list(reversed(BASE)), TIME)
    delta = run(None, current)
    assert len(delta) == len(BASE)
    assert list(delta.index) == list(range(len(BASE)))
    assert list(delta["InstanceType"] + "/" + delta["Region"] + "/" + delta["AZ"]) == sorted(
        f"{t}/{r}/{a}" for t, r, a, *_ in BASE
    )
    assert not delta[CEASED_COLUMN].any()


def test_changes_adds_and_removals_together_are_sorted_by_key() -> None:
    current = snapshot([BASE[0], ("a1.large", "us-east-1", "use1-az1", 1, 0.1), BASE[2], BASE[3]], TIME)
    current.loc[0, "SPS"] = 1
    delta = run(snapshot(BASE), current)
    assert list(delta["InstanceType"]) == ["a1.large", "c5.large", "c5.large"]
    assert list(delta["AZ"]) == ["use1-az1", "use1-az1", "use1-az2"]
    assert list(delta[CEASED_COLUMN]) == [False, False, True]


def test_nan_features_equal_each_other_but_not_numbers() -> None:
    previous, current = snapshot(BASE), snapshot(BASE, TIME)
    previous["IF"] = np.nan
    current["IF"] = np.nan
    assert run(previous, current).empty
    current.loc[1, "IF"] = 1.0
    assert list(run(previous, current)["AZ"]) == ["use1-az2"]


def test_floats_compare_exactly_as_stored() -> None:
    current = snapshot(BASE, TIME)
    current.loc[0, "SpotPrice"] = 0.03513  # one unit in the fifth decimal
    assert len(run(snapshot(BASE), current)) == 1


def test_categorical_keys_with_different_categories() -> None:
    previous = snapshot(BASE).astype({k: "category" for k in KEYS})
    current = snapshot(BASE[:2], TIME).astype({k: "category" for k in KEYS})
    delta = run(previous, current)
    assert list(delta["InstanceType"].astype(str)) == ["m5.large", "m5.large"]
    assert list(delta["Region"].astype(str)) == ["eu-west-1", "us-east-1"]
    assert isinstance(delta["InstanceType"].dtype, pd.CategoricalDtype)
    assert delta[CEASED_COLUMN].all()


def test_everything_ceased_when_current_is_empty() -> None:
    previous = snapshot(BASE)
    delta = run(previous, previous.iloc[:0])
    assert len(delta) == len(BASE)
    assert delta[CEASED_COLUMN].all()
    assert (delta["Time"] == pd.Timestamp(TIME)).all()


def test_both_empty() -> None:
    empty = snapshot(BASE).iloc[:0]
    delta = run(empty, empty)
    assert delta.empty
    assert list(delta.columns) == [*empty.columns, CEASED_COLUMN]


@pytest.mark.parametrize("which", ["previous", "current"])
def test_duplicated_keys_are_named(which: str) -> None:
    frames = {"previous": snapshot(BASE), "current": snapshot(BASE, TIME)}
    frames[which] = snapshot([*BASE, BASE[1]])
    with pytest.raises(ValueError, match=rf"{which} has 1 rows with duplicated keys.*use1-az2"):
        run(frames["previous"], frames["current"])


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match=r"current is missing columns \['SPS'\]"):
        run(None, snapshot(BASE).drop(columns=["SPS"]))
    with pytest.raises(ValueError, match=r"previous is missing columns \['Savings'\]"):
        run(snapshot(BASE).drop(columns=["Savings"]), snapshot(BASE))


def test_naive_time_for_an_aware_time_column_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        compute_delta(snapshot(BASE), snapshot(BASE[:1]), KEYS, FEATURES, time=datetime(2026, 3, 2, 12, 0))


@pytest.mark.parametrize("size", [10, 10**9])
def test_key_index_lookup_and_duplicates(size: int) -> None:
    codes = np.array([7, 3, 9], dtype=np.int64)
    index = KeyIndex(codes, size)
    assert len(index.duplicate_rows) == 0
    assert list(index.lookup(np.array([9, 4, 7, 3], dtype=np.int64))) == [2, -1, 0, 1]
    assert list(KeyIndex(np.array([5, 2, 5], dtype=np.int64), size).duplicate_rows) in ([0], [2])


@pytest.mark.parametrize("size", [10, 10**9])
def test_key_index_over_sorted_codes_searches_them_in_place(size: int) -> None:
    codes = np.array([1, 4, 6, 9], dtype=np.int64)
    index = KeyIndex(codes, size)
    assert list(index.lookup(np.array([0, 1, 5, 6, 9], dtype=np.int64))) == [-1, 0, -1, 2, 3]
    # Sorted but with a repeat is not strictly increasing: the repeat must still be found.
    assert list(KeyIndex(np.array([1, 4, 4, 9], dtype=np.int64), size).duplicate_rows) in ([1], [2])
    with pytest.raises(ValueError, match="duplicated"):
        KeyIndex(np.array([2, 2], dtype=np.int64), size).lookup(np.array([2], dtype=np.int64))


def test_encode_keys_orders_like_the_key_tuples_and_matches_nulls() -> None:
    left = pd.DataFrame({"a": ["b", "a", None, "a"], "b": ["x", "y", "x", "x"]})
    right = pd.DataFrame({"a": pd.Categorical(["a", None]), "b": ["y", "x"]})
    (left_codes, right_codes), size = encode_keys([left, right], ["a", "b"])
    assert list(np.argsort(left_codes, kind="stable")) == [3, 1, 0, 2]  # (a,x) (a,y) (b,x) (None,x)
    assert right_codes[0] == left_codes[1] and right_codes[1] == left_codes[2]
    assert max(left_codes.max(), right_codes.max()) < size


# ---- equivalence with a naive reference -------------------------------------------------------------


def naive_delta(previous: pd.DataFrame, current: pd.DataFrame, time: datetime) -> list[dict[Hashable, Any]]:
    """Obviously correct and slow: dictionaries keyed by tuples, one row at a time."""
    before = {tuple(row[k] for k in KEYS): row for row in previous.to_dict("records")}
    after = {tuple(row[k] for k in KEYS): row for row in current.to_dict("records")}
    out: list[dict[Hashable, Any]] = []
    for key, row in after.items():
        old = before.get(key)
        if old is None or any(row[f] != old[f] for f in FEATURES):
            out.append({**row, CEASED_COLUMN: False})
    for key, row in before.items():
        if key not in after:
            out.append({**row, **dict.fromkeys(FEATURES, 0), "Time": pd.Timestamp(time), CEASED_COLUMN: True})
    return sorted(out, key=lambda row: tuple(row[k] for k in KEYS))


def random_windows(seed: int, rows: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    types = [
        f"{family}.{size}" for family in ("c5", "m5", "r6i", "t3") for size in ("large", "xlarge", "2xlarge")
    ]
    zones = [
        (region, f"{region[:2]}{region[-1]}-az{i}")
        for region in ("us-east-1", "eu-west-2")
        for i in (1, 2, 3)
    ]
    universe = [(t, r, a) for t in types for r, a in zones] + [
        (f"x{i}.large", "us-east-1", "use1-az1") for i in range(3000)
    ]
    picked = rng.choice(len(universe), size=rows + rows // 10, replace=False)
    prev_keys, spare = picked[:rows], picked[rows:]

    def frame(keys: np.ndarray) -> pd.DataFrame:
        n = len(keys)
        return pd.DataFrame(
            {
                "InstanceType": [universe[i][0] for i in keys],
                "Region": [universe[i][1] for i in keys],
                "AZ": [universe[i][2] for i in keys],
                "SPS": rng.integers(-1, 4, n),
                "T3": rng.choice([0, 5, 10], n),
                "T2": rng.choice([0, 5, 10], n),
                "IF": rng.choice([-1.0, 1.0, 2.5, 3.0], n),
                "OndemandPrice": np.round(rng.uniform(0.01, 2, n), 5),
                "SpotPrice": np.round(rng.uniform(0.001, 1, n), 5),
                "Savings": rng.integers(-1, 100, n),
                "Time": pd.Timestamp(PREVIOUS_TIME),
            }
        )

    previous = frame(prev_keys)
    current = previous.copy()
    current["Time"] = pd.Timestamp(TIME)
    current["Savings"] = rng.integers(-1, 100, rows)  # never a reason for a delta row
    changed = rng.choice(rows, size=rows // 10, replace=False)
    for feature in FEATURES:
        hit = changed[rng.random(len(changed)) < 0.3]
        if current[feature].dtype.kind == "f":
            current.loc[hit, feature] = np.round(current.loc[hit, feature] + 0.00001, 5)
        else:
            current.loc[hit, feature] = current.loc[hit, feature] + 1
    removed = rng.random(rows) < 0.05
    added = frame(spare)
    added["Time"] = pd.Timestamp(TIME)
    current = pd.concat([current[~removed], added], ignore_index=True)
    return previous, current.sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("categorical", [False, True])
def test_matches_the_naive_reference(seed: int, categorical: bool) -> None:
    previous, current = random_windows(seed)
    expected = naive_delta(previous, current, TIME)
    if categorical:
        previous = previous.astype({k: "category" for k in KEYS})
        current = current.astype({k: "category" for k in KEYS})
    delta = run(previous, current)
    got = delta.astype({k: object for k in KEYS}).to_dict("records")
    assert len(got) == len(expected)
    assert got == expected
    assert 0 < int(delta[CEASED_COLUMN].sum()) < len(delta)
