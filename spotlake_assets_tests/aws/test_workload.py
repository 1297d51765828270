"""Pure tests of the SPS workload planner: packing validity and optimality, determinism, caching, grouping,
and the lake frame contract."""

from __future__ import annotations

import functools
import gzip
import io
import json
import pathlib
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ortools.sat.python import cp_model

from spotlake_assets.aws import workload
from spotlake_assets.aws.constants import MAX_AZS_PER_QUERY, WORKLOAD_COLUMNS
from spotlake_assets.aws.models import Offering, SpsQuery
from spotlake_assets.aws.workload import (
    EmptyOfferings,
    PackingResult,
    WorkloadPlan,
    capacity_lower_bound,
    clear_packing_cache,
    pack_regions,
    plan_coverage,
    plan_workload,
    queries_from_frame,
    workload_frame,
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # The shape cache is process-wide: each test starts cold so "cached" assertions mean what they say.
    clear_packing_cache()
    yield
    clear_packing_cache()


def _named(weights: list[int]) -> dict[str, int]:
    return {f"r{i:02d}": w for i, w in enumerate(weights)}


def _random_weights(seed: int, n: int, low: int = 1, high: int = 6) -> dict[str, int]:
    rng = random.Random(seed)
    return _named([rng.randint(low, high) for _ in range(n)])


def _optimum(weights: list[int], capacity: int) -> int:
    """Exact minimum number of bins, independent of the planner: memoised recursion over the multiset of
    remaining weights, one bin (a sub-multiset that fits) at a time. Small while distinct weights are few."""
    sizes = sorted(set(weights), reverse=True)

    def patterns(counts: tuple[int, ...], index: int, room: int) -> Iterator[tuple[int, ...]]:
        if index == len(sizes):
            yield ()
            return
        for take in range(min(counts[index], room // sizes[index]), -1, -1):
            for rest in patterns(counts, index + 1, room - take * sizes[index]):
                yield (take, *rest)

    @functools.cache
    def solve(counts: tuple[int, ...]) -> int:
        if not any(counts):
            return 0
        # The largest remaining item must go somewhere: only bins containing it need trying.
        first = next(i for i, c in enumerate(counts) if c)
        best = len(weights)
        for pattern in patterns(counts, 0, capacity):
            if pattern[first]:
                best = min(best, 1 + solve(tuple(c - t for c, t in zip(counts, pattern, strict=True))))
        return best

    return solve(tuple(weights.count(size) for size in sizes))


def _assert_valid_cover(result: PackingResult, weights: Mapping[str, int], capacity: int) -> None:
    packed = [region for bin_ in result.bins for region in bin_]
    expected = sorted(r for r, w in weights.items() if w > 0)
    assert sorted(packed) == expected, "every region with a weight must be in exactly one bin"
    for bin_ in result.bins:
        assert bin_, "no empty bin"
        assert sum(weights[r] for r in bin_) <= capacity, f"bin {bin_} over capacity {capacity}"
        assert list(bin_) == sorted(bin_)
    assert list(result.bins) == sorted(result.bins)
    assert result.lower_bound <= len(result.bins)
    assert result.lower_bound >= capacity_lower_bound([w for w in weights.values() if w > 0], capacity)


COVER_CASES = [
    pytest.param({"us-east-1": 6, "us-west-2": 4, "eu-west-1": 3}, 10, id="real-like"),
    pytest.param({"a": 4, "b": 4, "c": 3, "d": 3, "e": 3, "f": 3}, 10, id="ffd-suboptimal"),
    pytest.param(_named([3] * 28), 10, id="28-threes"),
    pytest.param(_named([5, 4, 4] + [3] * 25), 10, id="catalogue-shape"),
    pytest.param(_named([10, 10, 1]), 10, id="full-bins"),
    pytest.param({"only": 7}, 10, id="single"),
    pytest.param({"a": 0, "b": 2, "c": 0}, 10, id="zero-weights-ignored"),
    pytest.param(_random_weights(1, 30), 10, id="random-30"),
    pytest.param(_random_weights(2, 40, 1, 10), 10, id="random-40-wide"),
    pytest.param(_random_weights(3, 25, 1, 7), 7, id="capacity-7"),
]


@pytest.mark.parametrize(("weights", "capacity"), COVER_CASES)
def test_pack_covers_every_region_once_within_capacity(weights: dict[str, int], capacity: int) -> None:
    result = pack_regions(weights, capacity=capacity)
    _assert_valid_cover(result, weights, capacity)
    assert result.status in {"OPTIMAL", "BOUND"}


@pytest.mark.parametrize(
    ("weights", "capacity", "ffd_bins", "optimum", "status"),
    [
        # FFD puts 4+4 together and strands a 3; 4+3+3 twice fills both bins exactly.
        pytest.param([4, 4, 3, 3, 3, 3], 10, 3, 2, "OPTIMAL", id="4433333"),
        # The capacity bound says 2, but no bin holds three 4s: FFD is optimal, yet only the solver proves it.
        pytest.param([4, 4, 4, 4, 4], 10, 3, 3, "OPTIMAL", id="five-fours-above-capacity-bound"),
        # At most three 3s fit a bin, so 28 need ceil(28 / 3) = 10 bins; the capacity bound says 9.
        pytest.param([3] * 28, 10, 10, 10, "OPTIMAL", id="28-threes"),
        pytest.param([6, 6, 6, 4, 4, 4], 10, 3, 3, "BOUND", id="large-items-bound"),
        # Volume says 2; three items over half the capacity need 3 bins, so FFD is optimal without a solve.
        pytest.param([6, 6, 6], 10, 3, 3, "BOUND", id="three-large-items"),
        # Shapes of moto's real catalogue: the most common one where FFD wastes a query (33 types) ...
        pytest.param([5, 4] + [3] * 8 + [2] * 3, 10, 5, 4, "OPTIMAL", id="real-13-regions"),
        pytest.param([5, 4, 4] + [3] * 26 + [2], 10, 11, 10, "OPTIMAL", id="real-30-regions"),
        # ... and one where FFD is optimal but above the capacity bound, so only the solver proves it.
        pytest.param([5, 4] + [3] * 15 + [2] * 3, 10, 7, 7, "OPTIMAL", id="real-20-regions"),
    ],
)
def test_pack_reaches_proven_optimum(
    weights: list[int], capacity: int, ffd_bins: int, optimum: int, status: str
) -> None:
    shape = sorted(weights, reverse=True)
    assert len(workload._first_fit_decreasing(shape, capacity)) == ffd_bins, "case no longer exercises FFD"
    assert _optimum(weights, capacity) == optimum, "hand-computed optimum is wrong"
    result = pack_regions(_named(weights), capacity=capacity)
    assert len(result.bins) == optimum
    assert result.status == status
    assert result.lower_bound == optimum, "an optimal status must come with a matching proven bound"


@pytest.mark.parametrize("seed", range(24))
def test_pack_matches_exhaustive_optimum_on_random_small_instances(seed: int) -> None:
    rng = random.Random(seed)
    capacity = rng.choice([6, 7, 8, 10, 12])
    weights = [rng.randint(1, capacity) for _ in range(rng.randint(1, 12))]
    named = _named(weights)
    result = pack_regions(named, capacity=capacity)
    _assert_valid_cover(result, named, capacity)
    assert len(result.bins) == _optimum(weights, capacity)
    assert result.status in {"OPTIMAL", "BOUND"}


@pytest.mark.parametrize("seed", range(12))
def test_pack_matches_exhaustive_optimum_on_catalogue_sized_instances(seed: int) -> None:
    # Real types span up to 30 regions of 1-6 AZs: larger than a subset DP can check, not than the oracle.
    rng = random.Random(1000 + seed)
    weights = [rng.choice([1, 2, 2, 3, 3, 3, 3, 4, 5, 6]) for _ in range(rng.randint(15, 30))]
    named = _named(weights)
    result = pack_regions(named)
    _assert_valid_cover(result, named, MAX_AZS_PER_QUERY)
    assert len(result.bins) == _optimum(weights, MAX_AZS_PER_QUERY)
    assert result.status in {"OPTIMAL", "BOUND"}


def test_pack_is_deterministic_across_calls_and_input_order() -> None:
    weights = _random_weights(7, 30)
    first = pack_regions(weights)
    clear_packing_cache()
    second = pack_regions(dict(reversed(list(weights.items()))))
    assert first.bins == second.bins
    assert first.status == second.status
    assert not first.cached and not second.cached


def test_cache_maps_same_shape_to_new_names() -> None:
    original = {
        "ap-south-1": 4,
        "eu-west-1": 4,
        "us-east-1": 3,
        "us-east-2": 3,
        "us-west-1": 3,
        "sa-east-1": 3,
    }
    # Alphabetical order differs from weight order here, so a mapping by name rank alone would mispack.
    renamed = {"a1": 3, "a2": 3, "a3": 3, "a4": 3, "z1": 4, "z2": 4}
    first = pack_regions(original)
    second = pack_regions(renamed)
    assert not first.cached
    assert second.cached
    assert second.solve_seconds == 0.0
    _assert_valid_cover(second, renamed, MAX_AZS_PER_QUERY)
    assert len(second.bins) == len(first.bins) == 2
    assert first.status == second.status == "OPTIMAL"

    def bin_shapes(result: PackingResult, weights: Mapping[str, int]) -> list[list[int]]:
        return sorted(sorted(weights[r] for r in b) for b in result.bins)

    assert bin_shapes(first, original) == bin_shapes(second, renamed)
    # The cached answer equals a cold solve of the renamed input.
    clear_packing_cache()
    assert pack_regions(renamed).bins == second.bins


def test_cache_distinguishes_capacity() -> None:
    weights = _named([4, 4, 3, 3, 3, 3])
    assert len(pack_regions(weights, capacity=10).bins) == 2
    other = pack_regions(weights, capacity=8)
    assert not other.cached
    _assert_valid_cover(other, weights, 8)
    assert len(other.bins) == _optimum([4, 4, 3, 3, 3, 3], 8)


@pytest.mark.parametrize(
    ("weights", "capacity", "message"),
    [
        pytest.param({"us-east-1": 11}, 10, "us-east-1", id="over-capacity"),
        pytest.param({"ok": 2, "me-south-1": 7}, 6, "me-south-1", id="over-smaller-capacity"),
        pytest.param({"eu-west-3": -1}, 10, "eu-west-3", id="negative"),
        pytest.param({"a": 1}, 0, "capacity", id="zero-capacity"),
    ],
)
def test_pack_rejects_bad_input(weights: dict[str, int], capacity: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack_regions(weights, capacity=capacity)


@pytest.mark.parametrize(
    ("weights", "capacity", "bound"),
    [
        ([], 10, 0),
        ([6, 6, 6], 10, 3),
        ([5, 5, 5], 10, 2),
        ([3] * 28, 10, 9),
        ([4, 4, 3, 3, 3, 3], 10, 2),
        ([7], 7, 1),
    ],
)
def test_capacity_lower_bound(weights: list[int], capacity: int, bound: int) -> None:
    assert capacity_lower_bound(weights, capacity) == bound


def test_pack_of_nothing_is_empty() -> None:
    result = pack_regions({"a": 0})
    assert result.bins == ()
    assert result.lower_bound == 0
    assert result.status == "BOUND"


def test_time_limited_solve_never_raises() -> None:
    rng = random.Random(11)
    capacity = 120
    weights = _named([rng.randint(20, 70) for _ in range(150)])
    result = pack_regions(weights, capacity=capacity, time_limit_s=1e-4)
    _assert_valid_cover(result, weights, capacity)
    assert result.status in {"OPTIMAL", "FEASIBLE", "UNKNOWN", "BOUND"}
    ffd = workload._first_fit_decreasing(sorted(weights.values(), reverse=True), capacity)
    assert len(result.bins) <= len(ffd)


@pytest.mark.parametrize(
    "status", [cp_model.UNKNOWN, cp_model.INFEASIBLE, cp_model.MODEL_INVALID], ids=lambda s: str(s.name)
)
def test_solver_without_solution_falls_back_to_ffd(
    monkeypatch: pytest.MonkeyPatch, status: cp_model.CpSolverStatus
) -> None:
    def no_solution(self: cp_model.CpSolver, model: cp_model.CpModel, *args: object) -> object:
        return status

    monkeypatch.setattr(cp_model.CpSolver, "solve", no_solution)
    weights = {"a": 4, "b": 4, "c": 3, "d": 3, "e": 3, "f": 3}
    result = pack_regions(weights)
    _assert_valid_cover(result, weights, MAX_AZS_PER_QUERY)
    assert len(result.bins) == 3, "FFD's answer is kept"
    assert result.status == status.name
    assert result.lower_bound == 2


def _offerings(spec: Mapping[str, Mapping[str, int]]) -> list[Offering]:
    """{instance type: {region: number of AZs}} → offerings with AZ ids `<region>-az<n>`."""
    return [
        Offering(instance_type, region, f"{region}-az{n}")
        for instance_type, regions in spec.items()
        for region, azs in regions.items()
        for n in range(1, azs + 1)
    ]


SMALL_SPEC = {
    "m5.large": {"us-east-1": 6, "us-west-2": 4, "eu-west-1": 3, "ap-south-1": 3, "sa-east-1": 3},
    "c5.xlarge": {
        "us-east-1": 4,
        "us-east-2": 4,
        "eu-west-1": 3,
        "eu-west-2": 3,
        "eu-west-3": 3,
        "ca-central-1": 3,
    },
    "p5.48xlarge": {"us-east-1": 2},
}


def test_plan_workload_covers_every_offering_once() -> None:
    offerings = _offerings(SMALL_SPEC)
    plan = plan_workload(offerings + offerings[:5])  # duplicated offerings count once
    assert plan.instance_types == 3
    assert plan.zone_rows == len(offerings)
    assert [q.query_id for q in plan.queries] == list(range(len(plan.queries)))
    assert [q.instance_type for q in plan.queries] == sorted(q.instance_type for q in plan.queries)
    covered: Counter[tuple[str, str]] = Counter()
    for query in plan.queries:
        weights = SMALL_SPEC[query.instance_type]
        assert query.az_weight == sum(weights[r] for r in query.regions) <= MAX_AZS_PER_QUERY
        covered.update((query.instance_type, r) for r in query.regions)
    assert covered == Counter({(t, r): 1 for t, regions in SMALL_SPEC.items() for r in regions})
    # c5.xlarge is the 4,4,3,3,3,3 trap: 2 queries, not FFD's 3.
    assert sum(q.instance_type == "c5.xlarge" for q in plan.queries) == 2
    assert len(plan.queries) == plan.lower_bound == 2 + 2 + 1
    assert plan.optimality_gap == 0.0
    assert sum(plan.status_counts.values()) == 3
    assert plan.status_counts["OPTIMAL"] >= 1


def test_plan_workload_is_deterministic_under_shuffling() -> None:
    offerings = _offerings(SMALL_SPEC)
    first = plan_workload(offerings)
    shuffled = offerings[:]
    random.Random(3).shuffle(shuffled)
    clear_packing_cache()
    second = plan_workload(iter(shuffled))
    assert first.queries == second.queries
    assert first.status_counts == second.status_counts


@pytest.mark.parametrize(
    ("n_types", "per_group", "groups"), [(120, 50, 3), (100, 50, 2), (1, 50, 1), (20, 7, 3)]
)
def test_plan_workload_groups_queries(n_types: int, per_group: int, groups: int) -> None:
    spec = {f"t{i:04d}.large": {"us-east-1": 1} for i in range(n_types)}
    plan = plan_workload(_offerings(spec), queries_per_group=per_group)
    assert len(plan.queries) == n_types
    assert plan.groups == groups
    assert [q.group for q in plan.queries] == [i // per_group for i in range(n_types)]
    assert max(Counter(q.group for q in plan.queries).values()) == per_group if n_types >= per_group else True


def test_plan_workload_rejects_empty_offerings() -> None:
    with pytest.raises(EmptyOfferings, match="no instance-type offerings") as info:
        plan_workload([])
    assert isinstance(info.value, ValueError)


def test_plan_workload_rejects_az_in_two_regions() -> None:
    offerings = [Offering("m5.large", "us-east-1", "use1-az1"), Offering("c5.large", "us-east-2", "use1-az1")]
    with pytest.raises(ValueError, match="use1-az1"):
        plan_workload(offerings)


def test_plan_workload_rejects_bad_group_size() -> None:
    with pytest.raises(ValueError, match="queries_per_group"):
        plan_workload(_offerings(SMALL_SPEC), queries_per_group=0)


def _moto_catalogue() -> list[Offering]:
    moto = pytest.importorskip("moto")
    root = pathlib.Path(moto.__file__).parent / "ec2/resources/instance_type_offerings/availability-zone-id"
    files = sorted(root.glob("*.json.gz"))
    if not files:
        pytest.skip(f"moto ships no instance-type offerings under {root}")
    offerings: list[Offering] = []
    for path in files:
        region = path.name.removesuffix(".json.gz")
        with gzip.open(path, "rt") as handle:
            offerings += [Offering(o["InstanceType"], region, o["Location"]) for o in json.load(handle)]
    return offerings


def test_plan_on_real_catalogue_is_optimal_and_covers_every_offering() -> None:
    offerings = _moto_catalogue()
    plan = plan_workload(offerings)
    assert plan.zone_rows == len(set(offerings))
    weights: dict[str, dict[str, int]] = {}
    for offering in set(offerings):
        by_region = weights.setdefault(offering.instance_type, {})
        by_region[offering.region] = by_region.get(offering.region, 0) + 1
    assert plan.instance_types == len(weights)
    covered = Counter((q.instance_type, r) for q in plan.queries for r in q.regions)
    assert covered == Counter({(t, r): 1 for t, regions in weights.items() for r in regions})
    assert all(q.az_weight <= MAX_AZS_PER_QUERY for q in plan.queries)
    # Independent check of every distinct shape against the exhaustive oracle, not the solver's own bound.
    per_type = Counter(q.instance_type for q in plan.queries)
    optimum_by_shape: dict[tuple[int, ...], int] = {}
    for instance_type, regions in weights.items():
        shape = tuple(sorted(regions.values(), reverse=True))
        if shape not in optimum_by_shape:
            optimum_by_shape[shape] = _optimum(list(shape), MAX_AZS_PER_QUERY)
        assert per_type[instance_type] == optimum_by_shape[shape], instance_type
    assert plan.lower_bound == len(plan.queries)
    assert plan.optimality_gap == 0.0
    assert set(plan.status_counts) <= {"OPTIMAL", "BOUND"}


@pytest.fixture
def plan() -> WorkloadPlan:
    return plan_workload(_offerings(SMALL_SPEC))


def test_workload_frame_round_trips_through_parquet(plan: WorkloadPlan) -> None:
    frame = workload_frame(plan)
    assert tuple(frame.columns) == WORKLOAD_COLUMNS
    assert {c: str(frame[c].dtype) for c in ("QueryId", "AZWeight", "Group")} == dict.fromkeys(
        ("QueryId", "AZWeight", "Group"), "int64"
    )
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert table.schema.field("Regions").type == pa.list_(pa.string())
    assert table.schema.field("InstanceType").type == pa.string()
    assert table.schema.field("QueryId").type == pa.int64()
    assert queries_from_frame(table.to_pandas()) == plan.queries


def test_queries_from_frame_orders_by_query_id(plan: WorkloadPlan) -> None:
    frame = workload_frame(plan).iloc[::-1].reset_index(drop=True)
    assert queries_from_frame(frame) == plan.queries


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        values = list(frame[column])
        values[row] = value
        frame[column] = pd.Series(values, dtype=object if column in ("Regions", "InstanceType") else None)
        return frame

    return mutate


BAD_FRAMES = [
    pytest.param(lambda f: f.drop(columns=["Group"]), "missing columns \\['Group'\\]", id="missing-column"),
    pytest.param(lambda f: f.assign(Extra=1), "unexpected columns \\['Extra'\\]", id="extra-column"),
    pytest.param(lambda f: f.iloc[0:0], "no queries", id="empty"),
    pytest.param(lambda f: f.astype({"QueryId": "float64"}), "'QueryId' must be integer", id="float-id"),
    pytest.param(lambda f: f.astype({"AZWeight": "bool"}), "'AZWeight' must be integer", id="bool-weight"),
    pytest.param(
        lambda f: f.astype({"Group": "Int64"}).assign(Group=lambda g: g["Group"].mask(g.index == 0)),
        "'Group' has missing",
        id="nullable-with-na",
    ),
    pytest.param(lambda f: f.assign(QueryId=0), "not unique", id="duplicate-id"),
    pytest.param(lambda f: f.assign(Group=-1), "non-negative", id="negative-group"),
    pytest.param(lambda f: f.assign(AZWeight=MAX_AZS_PER_QUERY + 1), "AZWeight 11 outside", id="weight-over"),
    pytest.param(lambda f: f.assign(AZWeight=0), "AZWeight 0 outside", id="weight-zero"),
    pytest.param(_set("Regions", 0, []), "Regions is empty", id="empty-regions"),
    pytest.param(_set("Regions", 0, "us-east-1"), "must be a list", id="string-regions"),
    pytest.param(_set("Regions", 0, ["us-east-1", 3]), "non-empty strings", id="non-string-region"),
    pytest.param(_set("Regions", 0, ["us-east-1", "us-east-1"]), "repeats", id="repeated-region"),
    pytest.param(_set("InstanceType", 1, None), "InstanceType must be", id="missing-type"),
]


@pytest.mark.parametrize(("mutate", "message"), BAD_FRAMES)
def test_queries_from_frame_rejects_bad_frames(
    plan: WorkloadPlan, mutate: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        queries_from_frame(mutate(workload_frame(plan)))


def test_queries_from_frame_rejects_more_regions_than_azs() -> None:
    query = SpsQuery(query_id=0, instance_type="m5.large", regions=("a", "b", "c"), az_weight=2, group=0)
    plan = WorkloadPlan(
        queries=(query,),
        groups=1,
        lower_bound=1,
        status_counts={"BOUND": 1},
        optimality_gap=0.0,
        solve_seconds=0.0,
        instance_types=1,
        zone_rows=2,
    )
    with pytest.raises(ValueError, match="3 regions but AZWeight 2"):
        queries_from_frame(workload_frame(plan))


def _one_query_plan(regions: tuple[str, ...], az_weight: int) -> WorkloadPlan:
    query = SpsQuery(query_id=0, instance_type="m5.large", regions=regions, az_weight=az_weight, group=0)
    return WorkloadPlan(
        queries=(query,),
        groups=1,
        lower_bound=1,
        status_counts={"BOUND": 1},
        optimality_gap=0.0,
        solve_seconds=0.0,
        instance_types=1,
        zone_rows=az_weight,
    )


def test_queries_from_frame_accepts_one_az_per_region() -> None:
    """The boundary of the check above: regions of one AZ each give exactly AZWeight regions."""
    plan = _one_query_plan(("a", "b", "c"), 3)
    assert queries_from_frame(workload_frame(plan)) == plan.queries


# --- coverage of the plan -----------------------------------------------------------------------------------

COVERAGE_QUERIES = (
    SpsQuery(0, "m5.large", ("eu-west-1", "us-east-1"), 5, 0),
    SpsQuery(1, "c5.xlarge", ("us-east-1",), 2, 0),
)
COVERAGE_ZONES = {"us-east-1": ["use1-az1", "use1-az2", "use1-az6"], "eu-west-1": ["euw1-az1", "euw1-az2"]}


def _scored(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["InstanceType", "Region", "AZ"])


FULL = [
    ("m5.large", "eu-west-1", "euw1-az1"),
    ("m5.large", "eu-west-1", "euw1-az2"),
    ("m5.large", "us-east-1", "use1-az1"),
    ("m5.large", "us-east-1", "use1-az2"),
    ("m5.large", "us-east-1", "use1-az6"),
    ("c5.xlarge", "us-east-1", "use1-az1"),
    ("c5.xlarge", "us-east-1", "use1-az6"),
]


def test_plan_coverage_complete() -> None:
    coverage = plan_coverage(COVERAGE_QUERIES, _scored(FULL), COVERAGE_ZONES)
    assert (coverage.planned, coverage.scored, coverage.missing, coverage.sample) == (7, 7, 0, ())


def test_plan_coverage_counts_and_names_missing_pairs() -> None:
    # The merge of its own SPS input always looked complete; against the plan two pairs are missing.
    scored = _scored([r for r in FULL if r[2] not in {"euw1-az2", "use1-az6"} or r[0] == "c5.xlarge"])
    coverage = plan_coverage(COVERAGE_QUERIES, scored, COVERAGE_ZONES)
    assert (coverage.planned, coverage.scored, coverage.missing) == (7, 5, 2)
    assert coverage.sample == (
        "m5.large in eu-west-1, us-east-1: 3 of 5 planned AZs scored; AZs there without a score: "
        "euw1-az2, use1-az6",
    )


def test_plan_coverage_extra_rows_do_not_hide_a_missing_type() -> None:
    # Scores for another type, or more AZs than planned, never make up for a query without any score.
    scored = _scored([r for r in FULL if r[0] != "c5.xlarge"] + [("r5.large", "us-east-1", "use1-az1")])
    coverage = plan_coverage(COVERAGE_QUERIES, scored)
    assert coverage.missing == 2
    assert coverage.sample == ("c5.xlarge in us-east-1: 0 of 2 planned AZs scored",)


def test_optimality_gap_is_the_excess_over_the_lower_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """FFD and CP-SAT prove the optimum on these shapes, so force a packing 50% above its bound."""

    def loose(weights: Mapping[str, int], capacity: int = 10, time_limit_s: float = 2.0) -> PackingResult:
        bins = tuple((region,) for region in sorted(weights))
        return PackingResult(bins=bins, status="FEASIBLE", lower_bound=2, solve_seconds=0.0)

    monkeypatch.setattr(workload, "pack_regions", loose)
    offerings = [Offering(t, r, f"{r}-az1") for t in ("a.large", "b.large") for r in ("r1", "r2", "r3")]
    plan = plan_workload(offerings)
    assert (len(plan.queries), plan.lower_bound, plan.optimality_gap) == (6, 4, 0.5)
