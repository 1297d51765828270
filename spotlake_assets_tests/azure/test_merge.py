"""Tier 1: the Azure merge and delta, including the SpotLake defects fixed
(docs/data-contracts.md#azure-columns)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from spotlake_assets.azure.constants import FEATURE_COLUMNS, KEY_COLUMNS, MERGED_COLUMNS
from spotlake_assets.azure.merge import merge_snapshot
from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.domain.windows import CAPACITIES

START = datetime(2026, 3, 2, tzinfo=UTC)
Pool = tuple[str, str, str]  # (size, region, zone)


def sps(scores: Mapping[Pool, int], count: int) -> pd.DataFrame:
    rows = [
        (
            count,
            region,
            region.upper(),
            "Standard",
            size,
            zone,
            score,
            count if score == 3 else 0,
            count if score >= 2 else 0,
        )
        for (size, region, zone), score in sorted(scores.items())
    ]
    columns = [
        "DesiredCount",
        "Region",
        "RegionName",
        "InstanceTier",
        "InstanceType",
        "AvailabilityZone",
        "Score",
        "T3",
        "T2",
    ]
    return pd.DataFrame(rows, columns=columns)


def prices(pairs: Mapping[tuple[str, str], tuple[float, float]]) -> pd.DataFrame:
    rows = [
        ("Standard", size, region, region.upper(), od, spot, int(100 - 100 * spot / od))
        for (size, region), (od, spot) in sorted(pairs.items())
    ]
    columns = [
        "InstanceTier",
        "InstanceType",
        "Region",
        "RegionName",
        "OndemandPrice",
        "SpotPrice",
        "Savings",
    ]
    return pd.DataFrame(rows, columns=columns)


def rates(pairs: Mapping[tuple[str, str], float]) -> pd.DataFrame:
    rows = [("Standard", size, region, value) for (size, region), value in sorted(pairs.items())]
    return pd.DataFrame(rows, columns=["InstanceTier", "InstanceType", "Region", "IF"])


PRICES = prices({("D2s_v5", "eastus"): (0.096, 0.02), ("D4s_v5", "eastus"): (0.192, 0.05)})
RATES = rates({("D2s_v5", "eastus"): 3.0, ("D4s_v5", "eastus"): 2.5})


def score_at(count: int, high_up_to: int, medium_up_to: int) -> int:
    return 3 if count <= high_up_to else 2 if count <= medium_up_to else 1


def run_cycle(
    windows: int, pools: Mapping[Pool, tuple[int, int]], previous: pd.DataFrame | None = None, first: int = 0
) -> list[pd.DataFrame]:
    """Merged snapshots of ``windows`` consecutive windows; each pool (high_up_to, medium_up_to)."""
    out = []
    for i in range(first, first + windows):
        count = CAPACITIES[i % len(CAPACITIES)]
        scores = {pool: score_at(count, *limits) for pool, limits in pools.items()}
        merged = merge_snapshot(
            sps(scores, count), PRICES, RATES, previous, START + i * timedelta(minutes=10), count
        )
        previous = merged.frame
        out.append(previous)
    return out


def row(frame: pd.DataFrame, size: str, zone: str) -> dict[str, object]:
    match = frame[(frame["InstanceType"] == size) & (frame["AvailabilityZone"] == zone)]
    assert len(match) == 1
    return dict(match.iloc[0])


def test_t2_t3_history_across_a_desired_count_cycle() -> None:
    pools = {("D2s_v5", "eastus", "1"): (30, 45), ("D4s_v5", "eastus", "2"): (0, 10)}
    snapshots = run_cycle(len(CAPACITIES), pools)
    t3 = [row(s, "D2s_v5", "1")["T3"] for s in snapshots]
    t2 = [row(s, "D2s_v5", "1")["T2"] for s in snapshots]
    # A failure at 35 keeps 30: history is joined on the key, never on DesiredCount (SpotLake's join gave 0).
    assert t3 == [1, 5, 10, 15, 20, 25, 30, 30, 30, 30, 30]
    assert t2 == [1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 45]
    low = row(snapshots[-1], "D4s_v5", "2")
    assert (low["T3"], low["T2"]) == (0, 10)


def test_a_second_cycle_with_the_same_capacity_is_an_empty_delta() -> None:
    pools = {("D2s_v5", "eastus", "1"): (30, 45), ("D4s_v5", "eastus", "2"): (5, 25)}
    first = run_cycle(len(CAPACITIES), pools)
    second = run_cycle(len(CAPACITIES), pools, previous=first[-1], first=len(CAPACITIES))
    previous = first[-1]
    for snapshot in second:
        # Time and DesiredCount change every window; they are not features, so nothing is published.
        assert snapshot["Time"].iloc[0] != previous["Time"].iloc[0]
        delta = compute_delta(previous, snapshot, KEY_COLUMNS, FEATURE_COLUMNS)
        assert delta.empty, delta
        previous = snapshot


def test_delta_reports_only_real_changes() -> None:
    pools = {("D2s_v5", "eastus", "1"): (30, 45), ("D4s_v5", "eastus", "2"): (30, 45)}
    before = run_cycle(len(CAPACITIES), pools)[-1]  # last window: count 50
    count = CAPACITIES[len(CAPACITIES) % len(CAPACITIES)]  # the next window: count 1
    scores = {("D2s_v5", "eastus", "1"): 1, ("D4s_v5", "eastus", "2"): 3}
    new_prices = prices({("D2s_v5", "eastus"): (0.096, 0.02), ("D4s_v5", "eastus"): (0.192, 0.06)})
    after = merge_snapshot(
        sps(scores, count), new_prices, RATES, before, START + timedelta(hours=2), count
    ).frame
    delta = compute_delta(before, after, KEY_COLUMNS, FEATURE_COLUMNS)
    assert list(delta["InstanceType"]) == ["D2s_v5", "D4s_v5"]
    d2, d4 = (dict(r) for _, r in delta.iterrows())
    assert (d2["Score"], d2["T3"], d2["T2"]) == (1, 0, 0)  # a failure at count 1 drops to 0
    assert (d4["SpotPrice"], d4["T3"]) == (0.06, 30)


def test_published_score_is_the_single_node_one() -> None:
    pools = {("D2s_v5", "eastus", "1"): (1, 5)}
    snapshots = run_cycle(3, pools)  # counts 1 (High), 5 (Medium), 10 (Low)
    assert [row(s, "D2s_v5", "1")["Score"] for s in snapshots] == [3, 3, 3]
    assert [row(s, "D2s_v5", "1")["DesiredCount"] for s in snapshots] == [1, 5, 10]
    # The score published beside DesiredCount 5 and 10 is the one measured at 1, and says so.
    assert [row(s, "D2s_v5", "1")["ScoreCount"] for s in snapshots] == [1, 1, 1]


def test_score_count_names_the_count_each_published_score_was_measured_at() -> None:
    pools = {("D2s_v5", "eastus", "1"): (30, 45)}
    # First seen at count 5: no single-node score yet, so the score at 5 is published (and carried) as such.
    five, ten = run_cycle(2, pools, first=1)
    assert (row(five, "D2s_v5", "1")["Score"], row(five, "D2s_v5", "1")["ScoreCount"]) == (3, 5)
    assert (row(ten, "D2s_v5", "1")["Score"], row(ten, "D2s_v5", "1")["ScoreCount"]) == (3, 5)
    # Unscored rows (a regional N/A row for a priced pair without any AZ row) have no count.
    regional = row(five, "D4s_v5", "N/A")
    assert (regional["Score"], regional["ScoreCount"], regional["DesiredCount"]) == (-1, -1, -1)
    assert five["ScoreCount"].dtype == np.int64
    assert list(MERGED_COLUMNS).index("ScoreCount") == list(MERGED_COLUMNS).index("Score") + 1


def test_a_previous_snapshot_without_score_count_reads_as_single_node_scores() -> None:
    """Snapshots written before the column existed still chain: their scores count as single-node ones."""
    (legacy,) = run_cycle(1, {("D2s_v5", "eastus", "1"): (1, 5)})
    legacy = legacy.drop(columns=["ScoreCount"])
    (after,) = run_cycle(1, {("D2s_v5", "eastus", "1"): (1, 5)}, previous=legacy, first=1)
    assert (row(after, "D2s_v5", "1")["Score"], row(after, "D2s_v5", "1")["ScoreCount"]) == (3, 1)


def test_sps_rows_without_a_price_are_kept_and_priced_pairs_without_sps_get_a_regional_row() -> None:
    scores = {("D8s_v5", "westus", "Single"): 2, ("D2s_v5", "eastus", "1"): 3}
    merged = merge_snapshot(sps(scores, 1), PRICES, RATES, None, START, 1)
    frame = merged.frame
    assert list(frame.columns) == list(MERGED_COLUMNS)
    unpriced = row(frame, "D8s_v5", "Single")
    assert (unpriced["OndemandPrice"], unpriced["SpotPrice"], unpriced["Savings"], unpriced["IF"]) == (
        -1,
        -1,
        -1,
        -1,
    )
    assert unpriced["Score"] == 2 and unpriced["RegionName"] == "WESTUS"
    regional = row(frame, "D4s_v5", "N/A")
    assert (regional["Score"], regional["T3"], regional["DesiredCount"]) == (-1, 0, -1)
    assert (regional["OndemandPrice"], regional["IF"]) == (0.192, 2.5)
    assert (merged.detail.unpriced_rows, merged.detail.regional_rows, merged.detail.carried_rows) == (1, 1, 0)
    assert frame[list(KEY_COLUMNS)].astype(str).apply(tuple, axis=1).is_monotonic_increasing


def test_an_uncovered_pair_keeps_its_history_until_it_leaves_the_market() -> None:
    pools = {
        ("D2s_v5", "eastus", "1"): (50, 50),
        ("D2s_v5", "eastus", "2"): (50, 50),
        ("D4s_v5", "eastus", "1"): (50, 50),
    }
    before = run_cycle(4, pools)[-1]  # counts 1..15: T3 = 15
    # This window the budget ran out before D2s_v5 was requested: its AZ rows are carried, Score -1.
    partial = sps({("D4s_v5", "eastus", "1"): 3}, 20)
    merged = merge_snapshot(partial, PRICES, RATES, before, START + timedelta(minutes=40), 20)
    carried = row(merged.frame, "D2s_v5", "1")
    assert (carried["Score"], carried["T3"], carried["DesiredCount"]) == (-1, 15, -1)
    assert merged.detail.carried_rows == 2 and merged.detail.regional_rows == 0
    # Once the pair is neither priced nor rated nor scored, its rows cease.
    later = sps({("D4s_v5", "eastus", "1"): 3}, 25)
    gone = merge_snapshot(
        later, PRICES.iloc[1:], RATES.iloc[1:], merged.frame, START + timedelta(minutes=50), 25
    )
    assert set(gone.frame["InstanceType"]) == {"D4s_v5"}
    delta = compute_delta(merged.frame, gone.frame, KEY_COLUMNS, FEATURE_COLUMNS)
    assert int(delta["Ceased"].sum()) == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.assign(DesiredCount=5), "DesiredCount"),
        (lambda f: pd.concat([f, f]), "duplicated keys"),
        (lambda f: f.drop(columns=["Score"]), "missing columns"),
        (lambda f: f.assign(InstanceType=np.nan), "null InstanceType"),
    ],
)
def test_bad_inputs_are_refused(mutate: Callable[[pd.DataFrame], pd.DataFrame], message: str) -> None:
    frame = sps({("D2s_v5", "eastus", "1"): 3}, 1)
    with pytest.raises(ValueError, match=message):
        merge_snapshot(mutate(frame), PRICES, RATES, None, START, 1)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        merge_snapshot(sps({}, 1), PRICES, RATES, None, datetime(2026, 3, 2), 1)


def test_prices_keep_their_precision_in_the_snapshot() -> None:
    precise = prices({("D2s_v5", "eastus"): (0.0052, 0.002508)})
    frame = merge_snapshot(sps({("D2s_v5", "eastus", "1"): 3}, 1), precise, RATES, None, START, 1).frame
    scored = row(frame, "D2s_v5", "1")
    assert (scored["SpotPrice"], scored["OndemandPrice"]) == (0.002508, 0.0052)  # was 0.00251
    assert scored["Savings"] == int(100 - 100 * 0.002508 / 0.0052)


def test_names_join_case_insensitively_keeping_the_price_list_spelling() -> None:
    scores = {("NC24ads_A100_v4", "eastus", "1"): 3, ("NC24ads_A100_v4", "eastus", "2"): 2}
    priced = prices({("NC24ads_A100_v4", "eastus"): (3.67, 0.73), ("D2s_v5", "eastus"): (0.096, 0.02)})
    # Resource Graph's spelling: lower-case size, and a region spelled in upper case for good measure.
    lower = pd.DataFrame(
        [("Standard", "nc24ads_a100_v4", "EastUS", 2.5), ("Standard", "d2s_v5", "eastus", 3.0)],
        columns=["InstanceTier", "InstanceType", "Region", "IF"],
    )
    merged = merge_snapshot(sps(scores, 1), priced, lower, None, START, 1)
    frame = merged.frame
    assert set(frame["InstanceType"]) == {"NC24ads_A100_v4", "D2s_v5"} and set(frame["Region"]) == {"eastus"}
    assert row(frame, "NC24ads_A100_v4", "1")["IF"] == 2.5 and row(frame, "D2s_v5", "N/A")["IF"] == 3.0
    assert len(frame) == 3  # no second row per pair for the other spelling
    assert merged.detail.respelled == {
        "interruption_frequency.InstanceType": 2,
        "interruption_frequency.Region": 1,
    }
    assert (merged.detail.coverage.price_fraction, merged.detail.coverage.if_fraction) == (1.0, 1.0)
    assert merged.detail.coverage.problems(0.5, 0.25) == []


def test_a_collapsed_join_is_named_with_its_numbers() -> None:
    scores = {("D2s_v5", "eastus", "1"): 3, ("D4s_v5", "eastus", "1"): 3}
    unrelated = rates({("D2s_v5", "westus"): 3.0})
    merged = merge_snapshot(sps(scores, 1), PRICES.iloc[:1], unrelated, None, START, 1)
    coverage = merged.detail.coverage
    assert (coverage.scored_pairs, coverage.scored_priced) == (2, 1)
    assert (coverage.market_pairs, coverage.market_rated) == (2, 0)
    problems = coverage.problems(0.6, 0.25)
    assert problems == [
        "price coverage 1/2 scored pairs (50.0%) is below 60%",
        "IF coverage 0/2 priced or scored pairs (0.0%) is below 25%",
    ]
    # An input that is missing altogether is an explicit gap, judged by inputs_complete instead.
    assert coverage.problems(0.6, 0.25, price_present=False, if_present=False) == []
