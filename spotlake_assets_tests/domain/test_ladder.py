"""The T2/T3 ladder: the rule table, a full capacity cycle, joins, errors, and equivalence with a naive
row-by-row reference on random data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from spotlake_assets.domain.delta import encode_keys, require_columns, unique_key_index
from spotlake_assets.domain.ladder import ladder_step, previous_scores
from spotlake_assets.domain.windows import CAPACITIES

# Written out, not derived from step_down, so the test does not share the code under test.
FALLBACK = {50: 45, 45: 40, 40: 35, 35: 30, 30: 25, 25: 20, 20: 15, 15: 10, 10: 5, 5: 1, 1: 0}
AWS_JOIN = ["InstanceType", "AZ"]


def previous_positions(
    current: pd.DataFrame, previous: pd.DataFrame | None, join_columns: Sequence[str]
) -> npt.NDArray[np.intp]:
    """For each row of ``current``, the position of its ``join_columns`` key in ``previous``, or -1.

    ``previous`` must be unique on ``join_columns`` (``ValueError`` names duplicates).
    """
    if previous is None or len(previous) == 0:
        return np.full(len(current), -1, dtype=np.intp)
    (current_codes, previous_codes), size = encode_keys([current, previous], join_columns)
    index = unique_key_index(previous, previous_codes, size, join_columns, "previous snapshot")
    return index.lookup(current_codes)


def apply_capacity_ladder(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    capacity: int,
    join_columns: Sequence[str],
    t3_success: npt.ArrayLike,
    t2_success: npt.ArrayLike,
    observed: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """The ladder over whole frames, composed from the pieces the provider merges use: a copy of
    ``current`` whose T3/T2 carry the history of ``previous`` (unique on ``join_columns``)."""
    require_columns(current, join_columns, "current")
    if previous is not None:
        require_columns(previous, [*join_columns, "T3", "T2"], "previous snapshot")
    positions = previous_positions(current, previous, join_columns)
    result = current.copy()
    for column, success in (("T3", t3_success), ("T2", t2_success)):
        result[column] = ladder_step(
            previous_scores(previous, column, positions), capacity, success, observed
        )
    return result


@pytest.mark.parametrize(
    ("previous", "capacity", "success", "expected"),
    [
        (0, 1, True, 1),
        (0, 1, False, 0),
        (50, 1, True, 50),  # capacity 1 keeps the history
        (50, 1, False, 0),
        (0, 5, True, 5),
        (30, 20, True, 30),  # keep the largest success
        (20, 30, True, 30),
        (30, 35, False, 30),
        (50, 35, False, 30),  # one rung below the failed capacity
        (50, 5, False, 1),
        (0, 50, False, 0),
        (45, 50, False, 45),
    ],
)
def test_rule_table(previous: int, capacity: int, success: bool, expected: int) -> None:
    assert ladder_step(np.array([previous]), capacity, np.array([success])).tolist() == [expected]


def test_unobserved_rows_keep_their_previous_score() -> None:
    scores = ladder_step(
        np.array([30, 30, 0]), 40, np.array([True, False, True]), np.array([True, False, False])
    )
    assert scores.tolist() == [40, 30, 0]


def pool(sps: int, capacity: int, extra: dict[str, object] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InstanceType": ["m5.large"],
            "AZ": ["use1-az1"],
            "SPS": [sps],
            "TargetCapacity": [capacity],
            **(extra or {}),
        }
    )


def aws_ladder(current: pd.DataFrame, previous: pd.DataFrame | None, capacity: int) -> pd.DataFrame:
    sps = current["SPS"].to_numpy()
    return apply_capacity_ladder(
        current,
        previous,
        capacity=capacity,
        join_columns=AWS_JOIN,
        t3_success=sps >= 3,
        t2_success=sps >= 2,
        observed=sps >= 0,
    )


def test_full_capacity_cycle_for_a_pool_that_succeeds_up_to_30() -> None:
    previous = None
    t3, t2 = [], []
    for capacity in [*CAPACITIES, 1]:
        score = 3 if capacity <= 30 else 2
        previous = aws_ladder(pool(score, capacity), previous, capacity)
        t3.append(int(previous["T3"].iloc[0]))
        t2.append(int(previous["T2"].iloc[0]))
    assert t3 == [1, 5, 10, 15, 20, 25, 30, 30, 30, 30, 30, 30]
    assert t2 == [1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 50]


def test_a_pool_without_previous_row_starts_from_zero() -> None:
    previous = pd.DataFrame({"InstanceType": ["c5.large"], "AZ": ["use1-az1"], "T3": [50], "T2": [50]})
    result = aws_ladder(pool(1, 20), previous, 20)
    assert (result.loc[0, "T3"], result.loc[0, "T2"]) == (0, 0)
    result = aws_ladder(pool(3, 20), previous, 20)
    assert (result.loc[0, "T3"], result.loc[0, "T2"]) == (20, 20)
    result = aws_ladder(pool(2, 20), previous, 20)
    assert (result.loc[0, "T3"], result.loc[0, "T2"]) == (0, 20)


def test_missing_sps_keeps_the_previous_scores() -> None:
    previous = pd.DataFrame({"InstanceType": ["m5.large"], "AZ": ["use1-az1"], "T3": [25], "T2": [10]})
    result = aws_ladder(pool(-1, 30), previous, 30)
    assert (result.loc[0, "T3"], result.loc[0, "T2"]) == (25, 10)


def test_join_ignores_the_desired_count_for_azure() -> None:
    join = ["InstanceType", "Region", "AvailabilityZone"]
    key = {"InstanceType": ["Standard_D2s_v5"], "Region": ["eastus"], "AvailabilityZone": ["1"]}
    previous = pd.DataFrame({**key, "DesiredCount": [10], "T3": [10], "T2": [10]})
    current = pd.DataFrame({**key, "DesiredCount": [15], "Score": [2]})
    score = current["Score"].to_numpy()
    result = apply_capacity_ladder(
        current, previous, capacity=15, join_columns=join, t3_success=score >= 3, t2_success=score >= 2
    )
    assert (result.loc[0, "T3"], result.loc[0, "T2"]) == (10, 15)
    assert "T3" not in current.columns  # the input is not modified


def test_invalid_capacity_and_mask_length_and_duplicates() -> None:
    with pytest.raises(ValueError, match="capacity 7"):
        aws_ladder(pool(3, 7), None, 7)
    with pytest.raises(ValueError, match="success has shape"):
        ladder_step(np.array([0]), 5, np.array([True, False]))
    previous = pd.DataFrame(
        {"InstanceType": ["m5.large"] * 2, "AZ": ["use1-az1"] * 2, "T3": [5, 5], "T2": [0, 0]}
    )
    with pytest.raises(ValueError, match=r"previous snapshot has 1 rows with duplicated keys.*m5\.large"):
        aws_ladder(pool(3, 5), previous, 5)


# ---- equivalence with a naive reference -------------------------------------------------------------


def naive_ladder(current: pd.DataFrame, previous: pd.DataFrame, capacity: int) -> tuple[list[int], list[int]]:
    """Obviously correct and slow: one row at a time, previous rows in a dict."""
    before = {(row["InstanceType"], row["AZ"]): row for row in previous.to_dict("records")}
    t3_out: list[int] = []
    t2_out: list[int] = []
    for row in current.to_dict("records"):
        old = before.get((row["InstanceType"], row["AZ"]), {"T3": 0, "T2": 0})
        for column, success, out in (("T3", row["SPS"] >= 3, t3_out), ("T2", row["SPS"] >= 2, t2_out)):
            p = old[column]
            if row["SPS"] < 0:
                new = p
            elif success:
                new = max(p, capacity)
            else:
                new = min(p, FALLBACK[capacity])
            out.append(new)
    return t3_out, t2_out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("capacity", [1, 5, 25, 50])
def test_matches_the_naive_reference(seed: int, capacity: int) -> None:
    rng = np.random.default_rng(seed)
    types = [f"t{i}.large" for i in range(400)]
    zones = [f"use1-az{i}" for i in range(1, 7)]
    universe = [(t, z) for t in types for z in zones]
    keys = rng.choice(len(universe), size=2200, replace=False)
    previous = pd.DataFrame(
        {
            "InstanceType": [universe[i][0] for i in keys[:2000]],
            "AZ": [universe[i][1] for i in keys[:2000]],
            "T3": rng.choice([0, *CAPACITIES], 2000),
            "T2": rng.choice([0, *CAPACITIES], 2000),
        }
    )
    current_keys = rng.permutation(np.concatenate([keys[100:2000], keys[2000:]]))  # 100 gone, 200 new
    current = pd.DataFrame(
        {
            "InstanceType": [universe[i][0] for i in current_keys],
            "AZ": [universe[i][1] for i in current_keys],
            "SPS": rng.integers(-1, 4, len(current_keys)),
        }
    )
    if seed == 2:
        previous = previous.astype({"InstanceType": "category", "AZ": "category"})
    result = aws_ladder(current, previous, capacity)
    t3, t2 = naive_ladder(current, previous, capacity)
    assert result["T3"].tolist() == t3
    assert result["T2"].tolist() == t2
    assert result["T3"].dtype == np.int64
