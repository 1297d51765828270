"""Tier 1: the request planner covers every pair within the limits, deterministically, near its bound."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from spotlake_assets.azure.constants import UNIVERSE_COLUMNS
from spotlake_assets.azure.workload import (
    EmptyUniverse,
    lower_bound,
    plan_requests,
    planned_pairs,
    planned_universe,
    requests_from_frame,
    uncovered_pairs,
    workload_frame,
)


def universe(seed: int, regions: int, sizes: int, density: float) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    # Families share region sets (as on Azure), with some per-size gaps.
    pairs = []
    for s in range(sizes):
        family = random.Random(seed * 1000 + s // 6)
        offered = [r for r in range(regions) if family.random() < density]
        pairs += [(f"region{r:02d}", f"Standard_S{s:03d}") for r in offered if rng.random() > 0.05]
    return pairs


@pytest.mark.parametrize(
    ("seed", "regions", "sizes", "density"),
    [(1, 12, 20, 0.7), (2, 30, 60, 0.5), (3, 9, 7, 1.0), (4, 40, 80, 0.3), (5, 1, 1, 1.0)],
)
def test_plan_covers_every_pair_within_the_limits(
    seed: int, regions: int, sizes: int, density: float
) -> None:
    pairs = universe(seed, regions, sizes, density) or [("region00", "Standard_S000")]
    plan = plan_requests(pairs, deterministic_limit=0.5)
    covered = {(r, s) for q in plan.requests for r in q.regions for s in q.sizes}
    assert set(pairs) <= covered
    assert all(1 <= len(q.regions) <= 8 and 1 <= len(q.sizes) <= 5 for q in plan.requests)
    assert plan.lower_bound <= len(plan.requests) <= plan.heuristic_requests
    assert plan.optimality_gap == pytest.approx((len(plan.requests) - plan.lower_bound) / plan.lower_bound)
    assert [q.request_id for q in plan.requests] == list(range(len(plan.requests)))
    assert sum(q.pairs for q in plan.requests) == len(set(pairs))


def test_plan_is_deterministic() -> None:
    pairs = universe(9, 25, 50, 0.6)
    first, second = plan_requests(pairs), plan_requests(list(reversed(pairs)))
    assert first.requests == second.requests


def test_identical_families_pack_perfectly() -> None:
    # 10 sizes offered in the same 16 regions: 2 blocks of 5 sizes x 2 chunks of 8 regions = the bound.
    pairs = [(f"r{r}", f"Standard_X{s}") for r in range(16) for s in range(10)]
    plan = plan_requests(pairs)
    assert len(plan.requests) == plan.lower_bound == 4 and plan.optimality_gap == 0


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ({"a": frozenset({"r1"})}, 1),
        ({f"s{i}": frozenset(f"r{j}" for j in range(9)) for i in range(5)}, 2),  # 9 regions need 2 per size
        ({f"s{i}": frozenset({f"r{i}"}) for i in range(41)}, 9),  # 41 sizes, one region each: 41/5
    ],
)
def test_lower_bound(sizes: dict[str, frozenset[str]], expected: int) -> None:
    assert lower_bound(sizes, 8, 5) == expected


def test_empty_universe_is_refused() -> None:
    with pytest.raises(EmptyUniverse):
        plan_requests([])


def test_workload_frame_round_trips_and_is_validated() -> None:
    plan = plan_requests(universe(3, 10, 12, 0.8))
    frame = workload_frame(plan)
    assert requests_from_frame(frame) == plan.requests
    broken = frame.copy()
    sizes = broken["Sizes"].tolist()
    sizes[0] = [f"Standard_S{i}" for i in range(6)]
    broken["Sizes"] = pd.Series(sizes, index=broken.index, dtype=object)
    with pytest.raises(ValueError, match=r"Sizes must hold 1\.\.5"):
        requests_from_frame(broken)
    with pytest.raises(ValueError, match="missing columns"):
        requests_from_frame(pd.DataFrame({"RequestId": [0]}))


def test_the_universe_leaves_out_what_the_api_rejected_and_says_so() -> None:
    prices = pd.DataFrame(
        {
            "InstanceTier": ["Standard", "Standard", "Standard", "Basic"],
            "InstanceType": ["D2s_v5", "D4s_v5", "D2s_v5", "A1"],
            "Region": ["eastus", "eastus", "westeurope", "eastus"],
            "RegionName": ["US East", "US East", "EU West", "US East"],
            "SpotPrice": [0.01, 0.02, 0.01, 0.005],
        }
    )
    universe = planned_universe(
        prices, invalid_regions=["westeurope"], invalid_sizes={"Standard_D4s_v5": "x"}
    )
    assert list(universe.columns) == list(UNIVERSE_COLUMNS)
    assert universe["Planned"].tolist() == [True, False, False, True]
    assert planned_pairs(universe) == [("eastus", "Standard_D2s_v5"), ("eastus", "Basic_A1")]


def test_uncovered_pairs_names_what_no_request_scores() -> None:
    pairs = universe(3, regions=12, sizes=14, density=0.6)
    plan = plan_requests(pairs)
    assert uncovered_pairs(plan, pairs) == []
    extra = ("region99", "Standard_S999")
    assert uncovered_pairs(plan, [*pairs, extra]) == [extra]
