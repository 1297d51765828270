"""The daily SPS workload: which `get_spot_placement_scores` calls cover every (instance type, AZ).

One call scores one instance type over regions totalling at most `MAX_AZS_PER_QUERY` AZs, so for each type
its regions (weight = AZs offering the type) are bin-packed into as few calls as possible; the calls are
then split into credential groups. Pure: no Dagster, no I/O.

Packing: first-fit-decreasing is optimal whenever it meets the lower bound (most shapes in the real
catalogue); otherwise CP-SAT solves an arc-flow model. The arc-flow model aggregates regions by weight, so
the countless interchangeable assignments of equal-weight regions (a type offered in 28 regions of 3 AZs
each) are one solution, not thousands: a per-region assignment model cannot prove optimality on those.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

from spotlake_assets.aws.constants import MAX_AZS_PER_QUERY, QUERIES_PER_GROUP, WORKLOAD_COLUMNS
from spotlake_assets.aws.models import Offering, SpsQuery

logger = logging.getLogger(__name__)

STATUS_BOUND = "BOUND"

# One worker and a fixed seed make CP-SAT's answer a function of its input: the workload, and so the
# day's credential groups, must not change when the asset is re-materialised.
_SOLVER_WORKERS = 1
_SOLVER_SEED = 20240601
# Shapes repeat across days and types; the bound only keeps a long-lived process from growing forever.
_CACHE_LIMIT = 4096


class EmptyOfferings(ValueError):
    """No instance-type offerings at all: planning an empty workload would silently collect nothing."""


@dataclass(frozen=True)
class PackingResult:
    """Regions of one instance type packed into SPS queries.

    `lower_bound` is the best proven bound on the number of queries: the capacity bound, raised to the optimum
    when the solver proves it, so `len(bins) - lower_bound` is the known worst-case excess.
    `solve_seconds` is the time this call spent packing (0 when `cached`).
    """

    bins: tuple[tuple[str, ...], ...]
    status: str
    lower_bound: int
    solve_seconds: float
    cached: bool = False


@dataclass(frozen=True)
class WorkloadPlan:
    queries: tuple[SpsQuery, ...]
    groups: int
    lower_bound: int
    status_counts: Mapping[str, int]
    optimality_gap: float
    solve_seconds: float
    instance_types: int
    zone_rows: int


@dataclass(frozen=True)
class _ShapePacking:
    """A packing of a weight shape (weights sorted descending); bins hold positions in that shape."""

    bins: tuple[tuple[int, ...], ...]
    status: str
    lower_bound: int
    solve_seconds: float


_cache: dict[tuple[tuple[int, ...], int, float], _ShapePacking] = {}


def clear_packing_cache() -> None:
    _cache.clear()


def capacity_lower_bound(weights: Sequence[int], capacity: int) -> int:
    """No bin holds more than `capacity`, and no two items larger than half of it share a bin."""
    volume = math.ceil(sum(weights) / capacity)
    large = sum(1 for w in weights if 2 * w > capacity)
    return max(volume, large)


def _first_fit_decreasing(shape: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of positions in `shape`, which must be sorted descending."""
    bins: list[list[int]] = []
    loads: list[int] = []
    for position, weight in enumerate(shape):
        for index, load in enumerate(loads):
            if load + weight <= capacity:
                bins[index].append(position)
                loads[index] += weight
                break
        else:
            bins.append([position])
            loads.append(weight)
    return bins


def _solve_arc_flow(
    shape: Sequence[int], capacity: int, heuristic: list[list[int]], lower_bound: int, time_limit_s: float
) -> tuple[list[list[int]] | None, str, int]:
    """Min-bins arc-flow model (Valério de Carvalho): a bin is a path 0 → `capacity` whose item arcs add
    the weights it holds and whose last arc may waste the rest.

    Returns (bins of positions in `shape`, or None without a solution; the solver's status; the bound).
    """
    counts = Counter(shape)
    weights = sorted(counts, reverse=True)
    nodes = {0}
    frontier = [0]
    while frontier:
        node = frontier.pop()
        for weight in weights:
            nxt = node + weight
            if nxt <= capacity and nxt not in nodes:
                nodes.add(nxt)
                frontier.append(nxt)

    # Imported here: only the daily workload run solves, and ortools costs every other process its import.
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    upper_bound = len(heuristic)
    n_bins = model.new_int_var(lower_bound, upper_bound, "bins")
    item_arcs: dict[tuple[int, int], cp_model.IntVar] = {}
    waste_arcs: dict[int, cp_model.IntVar] = {}
    for node in sorted(nodes):
        for weight in weights:
            if node + weight <= capacity:
                item_arcs[node, weight] = model.new_int_var(0, counts[weight], f"i{node}_{weight}")
        # No waste arc from the source: an empty bin is never useful and would decode to an empty query.
        if 0 < node < capacity:
            waste_arcs[node] = model.new_int_var(0, upper_bound, f"w{node}")

    inflow: dict[int, list[cp_model.IntVar]] = defaultdict(list)
    outflow: dict[int, list[cp_model.IntVar]] = defaultdict(list)
    for (node, weight), var in item_arcs.items():
        outflow[node].append(var)
        inflow[node + weight].append(var)
    for node, var in waste_arcs.items():
        outflow[node].append(var)
        inflow[capacity].append(var)
    for node in sorted(nodes | {capacity}):
        balance = sum(inflow[node]) - sum(outflow[node])
        if node == 0:
            model.add(balance == -n_bins)
        elif node == capacity:
            model.add(balance == n_bins)
        else:
            model.add(balance == 0)
    for weight in weights:
        model.add(sum(var for (_, w), var in item_arcs.items() if w == weight) == counts[weight])
    model.minimize(n_bins)

    hint_items: Counter[tuple[int, int]] = Counter()
    hint_waste: Counter[int] = Counter()
    for bin_positions in heuristic:
        node = 0
        for weight in sorted((shape[p] for p in bin_positions), reverse=True):
            hint_items[node, weight] += 1
            node += weight
        if node < capacity:
            hint_waste[node] += 1
    model.add_hint(n_bins, upper_bound)
    for key, var in item_arcs.items():
        model.add_hint(var, hint_items[key])
    for node, var in waste_arcs.items():
        model.add_hint(var, hint_waste[node])

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = _SOLVER_WORKERS
    solver.parameters.random_seed = _SOLVER_SEED
    status = solver.solve(model)
    status_name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, status_name, lower_bound

    solved_bins = int(solver.value(n_bins))
    # The bound is valid for a minimisation once a solution exists; epsilon guards against 3.0000001.
    bound = max(lower_bound, math.ceil(solver.best_objective_bound - 1e-6))
    remaining_items = {key: int(solver.value(var)) for key, var in item_arcs.items()}
    remaining_waste = {node: int(solver.value(var)) for node, var in waste_arcs.items()}
    free_positions: dict[int, list[int]] = defaultdict(list)
    for position in reversed(range(len(shape))):
        free_positions[shape[position]].append(position)  # pop() yields the lowest position first

    # Flow decomposition: an integral flow on a DAG splits into `solved_bins` source→sink paths, and a walk
    # that follows any arc with flow left always reaches the sink.
    bins: list[list[int]] = []
    for _ in range(solved_bins):
        node, positions = 0, []
        while node != capacity:
            for weight in weights:
                if remaining_items.get((node, weight), 0) > 0:
                    remaining_items[node, weight] -= 1
                    positions.append(free_positions[weight].pop())
                    node += weight
                    break
            else:
                remaining_waste[node] -= 1
                node = capacity
        bins.append(positions)
    return bins, status_name, bound


def _pack_shape(shape: tuple[int, ...], capacity: int, time_limit_s: float) -> _ShapePacking:
    started = time.perf_counter()
    lower_bound = capacity_lower_bound(shape, capacity)
    heuristic = _first_fit_decreasing(shape, capacity)
    if len(heuristic) <= lower_bound:
        bins, status, bound = heuristic, STATUS_BOUND, lower_bound
    else:
        solved, status, bound = _solve_arc_flow(shape, capacity, heuristic, lower_bound, time_limit_s)
        if solved is None or len(solved) > len(heuristic):
            logger.warning(
                "CP-SAT returned %s for %d regions (%d AZs, capacity %d); keeping first-fit-decreasing "
                "(%d bins, bound %d)",
                status,
                len(shape),
                sum(shape),
                capacity,
                len(heuristic),
                bound,
            )
            bins = heuristic
        else:
            bins = solved
    return _ShapePacking(
        bins=tuple(tuple(sorted(b)) for b in bins),
        status=status,
        lower_bound=bound,
        solve_seconds=time.perf_counter() - started,
    )


def pack_regions(
    weights: Mapping[str, int], capacity: int = MAX_AZS_PER_QUERY, time_limit_s: float = 2.0
) -> PackingResult:
    """Pack regions (weight = AZs offering one instance type) into the fewest queries of at most `capacity`.

    Regions of weight 0 are ignored. Bins and the regions inside them are sorted, and the solver runs with a
    fixed seed and one worker, so the same weights always give the same result (unless a time limit cuts a
    solve short). Results are cached by the multiset of weights: types with the same shape share one solve.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
    for region, weight in weights.items():
        if weight < 0:
            raise ValueError(f"region {region!r} has a negative weight {weight}")
        if weight > capacity:
            raise ValueError(
                f"region {region!r} has {weight} AZs, more than one query can hold ({capacity}): "
                "it cannot be scored with SingleAvailabilityZone queries"
            )
    # Equal weights are interchangeable, so ranking names within a weight maps a cached shape back to any
    # set of names deterministically.
    ordered = sorted(((w, r) for r, w in weights.items() if w > 0), key=lambda item: (-item[0], item[1]))
    shape = tuple(w for w, _ in ordered)
    key = (shape, capacity, time_limit_s)
    packing = _cache.get(key)
    cached = packing is not None
    if packing is None:
        packing = _pack_shape(shape, capacity, time_limit_s)
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = packing
    bins = tuple(sorted(tuple(sorted(ordered[p][1] for p in b)) for b in packing.bins))
    return PackingResult(
        bins=bins,
        status=packing.status,
        lower_bound=packing.lower_bound,
        solve_seconds=0.0 if cached else packing.solve_seconds,
        cached=cached,
    )


def _region_weights(offerings: Iterable[Offering]) -> dict[str, dict[str, int]]:
    zones: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    zone_region: dict[str, str] = {}
    for offering in offerings:
        # An AZ id belongs to exactly one region; a clash means a corrupt catalogue and a wrong weight.
        known = zone_region.setdefault(offering.zone_id, offering.region)
        if known != offering.region:
            raise ValueError(
                f"AZ id {offering.zone_id!r} is listed in both {known!r} and {offering.region!r}"
            )
        zones[offering.instance_type][offering.region].add(offering.zone_id)
    return {
        instance_type: {region: len(ids) for region, ids in regions.items()}
        for instance_type, regions in zones.items()
    }


def plan_workload(
    offerings: Iterable[Offering], queries_per_group: int = QUERIES_PER_GROUP, time_limit_s: float = 2.0
) -> WorkloadPlan:
    """Plan the day's SPS queries: every (instance type, AZ) offered is covered by exactly one query.

    Query ids run over instance types in sorted order, then over each type's sorted bins, so the plan (and
    each credential group's share) is a pure function of the set of offerings.
    """
    if queries_per_group < 1:
        raise ValueError(f"queries_per_group must be at least 1, got {queries_per_group}")
    weights_by_type = _region_weights(offerings)
    if not weights_by_type:
        raise EmptyOfferings(
            "no instance-type offerings: describe_instance_type_offerings returned nothing for every region, "
            "so there is no SPS workload to plan"
        )

    queries: list[SpsQuery] = []
    statuses: Counter[str] = Counter()
    lower_bound = 0
    solve_seconds = 0.0
    zone_rows = 0
    for instance_type in sorted(weights_by_type):
        weights = weights_by_type[instance_type]
        result = pack_regions(weights, time_limit_s=time_limit_s)
        statuses[result.status] += 1
        lower_bound += result.lower_bound
        solve_seconds += result.solve_seconds
        zone_rows += sum(weights.values())
        for regions in result.bins:
            query_id = len(queries)
            queries.append(
                SpsQuery(
                    query_id=query_id,
                    instance_type=instance_type,
                    regions=regions,
                    az_weight=sum(weights[r] for r in regions),
                    group=query_id // queries_per_group,
                )
            )
    return WorkloadPlan(
        queries=tuple(queries),
        groups=math.ceil(len(queries) / queries_per_group),
        lower_bound=lower_bound,
        status_counts=dict(sorted(statuses.items())),
        optimality_gap=(len(queries) - lower_bound) / lower_bound,
        solve_seconds=solve_seconds,
        instance_types=len(weights_by_type),
        zone_rows=zone_rows,
    )


def workload_frame(plan: WorkloadPlan) -> pd.DataFrame:
    """One row per query, columns `WORKLOAD_COLUMNS`; `Regions` holds lists so Parquet stores list<string>."""
    queries = plan.queries
    return pd.DataFrame(
        {
            "QueryId": pd.Series([q.query_id for q in queries], dtype="int64"),
            "InstanceType": pd.Series([q.instance_type for q in queries], dtype=object),
            "Regions": pd.Series([list(q.regions) for q in queries], dtype=object),
            "AZWeight": pd.Series([q.az_weight for q in queries], dtype="int64"),
            "Group": pd.Series([q.group for q in queries], dtype="int64"),
        },
        columns=list(WORKLOAD_COLUMNS),
    )


def _integer_column(frame: pd.DataFrame, column: str) -> list[int]:
    series = frame[column]
    if not pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise ValueError(f"workload column {column!r} must be integer, got {series.dtype}")
    if series.isna().any():
        raise ValueError(f"workload column {column!r} has missing values")
    return [int(v) for v in series]


def _regions_cell(value: object, query_id: int) -> tuple[str, ...]:
    # Parquet reads list<string> back as numpy arrays; a plain string would iterate into characters.
    if not isinstance(value, list | tuple | np.ndarray):
        raise ValueError(f"workload query {query_id}: Regions must be a list of region names, got {value!r}")
    regions = tuple(value)
    if not regions:
        raise ValueError(f"workload query {query_id}: Regions is empty")
    if not all(isinstance(r, str) and r for r in regions):
        raise ValueError(f"workload query {query_id}: Regions must be non-empty strings, got {list(regions)}")
    if len(set(regions)) != len(regions):
        raise ValueError(f"workload query {query_id}: Regions repeats a region {list(regions)}")
    return regions


def queries_from_frame(frame: pd.DataFrame) -> tuple[SpsQuery, ...]:
    """Validate a workload frame read back from the lake and return its queries ordered by `QueryId`."""
    missing = [c for c in WORKLOAD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"workload frame is missing columns {missing}")
    extra = [str(c) for c in frame.columns if c not in WORKLOAD_COLUMNS]
    if extra:
        raise ValueError(f"workload frame has unexpected columns {extra}")
    if frame.empty:
        raise ValueError("workload frame has no queries")

    query_ids = _integer_column(frame, "QueryId")
    az_weights = _integer_column(frame, "AZWeight")
    groups = _integer_column(frame, "Group")
    if len(set(query_ids)) != len(query_ids):
        duplicated = sorted(q for q, n in Counter(query_ids).items() if n > 1)
        raise ValueError(f"workload QueryId values are not unique: {duplicated[:10]}")

    queries: list[SpsQuery] = []
    for query_id, instance_type, regions, az_weight, group in zip(
        query_ids, frame["InstanceType"], frame["Regions"], az_weights, groups, strict=True
    ):
        if query_id < 0 or group < 0:
            raise ValueError(f"workload query {query_id}: QueryId and Group must be non-negative")
        if not isinstance(instance_type, str) or not instance_type:
            raise ValueError(f"workload query {query_id}: InstanceType must be a non-empty string")
        if not 1 <= az_weight <= MAX_AZS_PER_QUERY:
            raise ValueError(
                f"workload query {query_id}: AZWeight {az_weight} outside 1..{MAX_AZS_PER_QUERY}"
            )
        region_names = _regions_cell(regions, query_id)
        if len(region_names) > az_weight:
            raise ValueError(
                f"workload query {query_id}: {len(region_names)} regions but AZWeight {az_weight}"
            )
        queries.append(
            SpsQuery(
                query_id=query_id,
                instance_type=instance_type,
                regions=region_names,
                az_weight=az_weight,
                group=group,
            )
        )
    return tuple(sorted(queries, key=lambda q: q.query_id))


@dataclass(frozen=True)
class PlanCoverage:
    """How much of the day's plan a window's scores cover, counted in (instance type, AZ) pairs."""

    planned: int  # pairs the plan scores: the sum of its queries' AZWeight
    scored: int  # planned pairs with a score
    sample: tuple[str, ...]  # the first queries short of AZs, each naming its type, regions and gap

    @property
    def missing(self) -> int:
        return self.planned - self.scored


def plan_coverage(
    queries: Sequence[SpsQuery],
    scored: pd.DataFrame,
    zones_by_region: Mapping[str, Sequence[str]] | None = None,
    sample_size: int = 20,
) -> PlanCoverage:
    """Measure ``scored`` (rows of InstanceType, Region, AZ that hold a score) against the plan.

    A query plans ``az_weight`` pairs: the AZs of its regions that offer its type. The workload does not
    keep which AZs those are, so a query counts as short by ``az_weight`` minus the distinct AZs scored
    for its type in its regions; ``zones_by_region`` (the day's zones) lets the sample name the AZs of
    those regions that have no score, among which the missing pairs are.
    """
    zones = zones_by_region or {}
    pairs = scored[["InstanceType", "Region", "AZ"]].drop_duplicates()
    azs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for instance_type, region, zone_id in pairs.itertuples(index=False, name=None):
        azs[(str(instance_type), str(region))].add(str(zone_id))
    planned = covered = 0
    sample: list[str] = []
    for query in queries:
        got = {r: azs.get((query.instance_type, r), set()) for r in query.regions}
        answered = min(sum(len(z) for z in got.values()), query.az_weight)
        planned += query.az_weight
        covered += answered
        if answered < query.az_weight and len(sample) < sample_size:
            unscored = sorted(z for r in query.regions for z in zones.get(r, ()) if z not in got[r])
            where = f"; AZs there without a score: {', '.join(unscored)}" if unscored else ""
            sample.append(
                f"{query.instance_type} in {', '.join(query.regions)}: {answered} of {query.az_weight} "
                f"planned AZs scored{where}"
            )
    return PlanCoverage(planned=planned, scored=covered, sample=tuple(sample))
