"""The daily Azure SPS workload: which Spot Placement Score requests cover every valid (region, size) pair.

A request scores at most 8 locations x 5 sizes (a "rectangle"; it may include pairs that are not offered,
which Azure answers with a status instead of a score). Covering a 0/1 matrix with the fewest such
rectangles is NP-hard; SpotLake clusters greedily. Here:

1. Every plan is *size-blocked*: sizes are partitioned into blocks of at most 5, and a block's requests take
   the union of its sizes' regions 8 at a time. For a given block that is optimal (each of its regions must
   appear in one of its requests), so the problem is choosing the blocks: minimise Σ ceil(|union|/8).
2. Candidate blocks come from several orderings of the sizes by region signature (exact dynamic programming
   over contiguous runs of each ordering), from identical-signature classes, and from growing blocks around
   each leftover size by the smallest union increase. CP-SAT then picks an exact partition of the sizes into
   candidate blocks with minimum total requests, warm-started with the best DP plan, so it can only improve
   on it. One worker, a fixed seed and a *deterministic* time limit make the plan a function of the input.
3. The lower bound is combinatorial and valid for every plan, size-blocked or not: the largest of
   ⌈pairs/40⌉, ⌈Σ_size ⌈regions/8⌉ / 5⌉ and ⌈Σ_region ⌈sizes/5⌉ / 8⌉. The gap is (requests - bound)/bound.
Pure: no Dagster, no I/O.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

from spotlake_assets.azure.constants import (
    MAX_LOCATIONS_PER_REQUEST,
    MAX_SIZES_PER_REQUEST,
    UNIVERSE_COLUMNS,
    WORKLOAD_COLUMNS,
)
from spotlake_assets.azure.models import SpsRequest

log = logging.getLogger(__name__)

REQUESTS_PER_BATCH = 10
_SOLVER_SEED = 20260101
# Deterministic time (CP-SAT's work units, ~seconds on one core) rather than wall time: the same input
# always gives the same plan, whatever the machine's load.
DETERMINISTIC_LIMIT = 2.0


class EmptyUniverse(ValueError):
    """No (region, size) pair to score: planning would silently collect nothing."""


@dataclass(frozen=True)
class WorkloadPlan:
    requests: tuple[SpsRequest, ...]
    pairs: int
    regions: int
    sizes: int
    lower_bound: int
    heuristic_requests: int  # the best dynamic-programming plan, before CP-SAT
    status: str  # CP-SAT's status on the block-selection model
    optimality_gap: float  # (requests - lower_bound) / lower_bound
    solve_seconds: float
    batches: int


def lower_bound(size_regions: dict[str, frozenset[str]], max_regions: int, max_sizes: int) -> int:
    pairs = sum(len(r) for r in size_regions.values())
    by_region: dict[str, int] = defaultdict(int)
    for regions in size_regions.values():
        for region in regions:
            by_region[region] += 1
    per_size = sum(math.ceil(len(r) / max_regions) for r in size_regions.values())
    per_region = sum(math.ceil(n / max_sizes) for n in by_region.values())
    return max(
        math.ceil(pairs / (max_regions * max_sizes)),
        math.ceil(per_size / max_sizes),
        math.ceil(per_region / max_regions),
    )


class _Blocks:
    """Sizes as region bitmasks; the cost of a block is ⌈popcount(OR of its masks) / max_regions⌉."""

    def __init__(self, sizes: Sequence[str], masks: Sequence[int], max_regions: int, max_sizes: int) -> None:
        self.sizes = list(sizes)
        self.masks = list(masks)
        self.max_regions = max_regions
        self.max_sizes = max_sizes
        self.candidates: dict[frozenset[int], int] = {}

    def cost(self, members: Iterable[int]) -> int:
        union = 0
        for m in members:
            union |= self.masks[m]
        return math.ceil(union.bit_count() / self.max_regions)

    def add(self, members: Iterable[int]) -> None:
        block = frozenset(members)
        if block and len(block) <= self.max_sizes and block not in self.candidates:
            self.candidates[block] = self.cost(block)

    def dp(self, order: Sequence[int]) -> list[list[int]]:
        """Optimal cut of ``order`` into contiguous blocks (all windows become candidates too)."""
        n = len(order)
        best = [0] + [math.inf] * n
        cut = [0] * (n + 1)
        for end in range(1, n + 1):
            union = 0
            for length in range(1, min(self.max_sizes, end) + 1):
                union |= self.masks[order[end - length]]
                members = order[end - length : end]
                self.add(members)
                total = best[end - length] + math.ceil(union.bit_count() / self.max_regions)
                if total < best[end]:
                    best[end], cut[end] = total, end - length
        blocks: list[list[int]] = []
        end = n
        while end > 0:
            blocks.append(list(order[cut[end] : end]))
            end = cut[end]
        return blocks[::-1]

    def grow(self, seed: int, pool: Sequence[int]) -> None:
        """A block around ``seed`` adding, each time, the size that grows the union least."""
        members = [seed]
        union = self.masks[seed]
        rest = [p for p in pool if p != seed]
        while len(members) < self.max_sizes and rest:
            choice = min(rest, key=lambda p: ((union | self.masks[p]).bit_count(), p))
            members.append(choice)
            union |= self.masks[choice]
            rest.remove(choice)
            self.add(members)


def _orderings(blocks: _Blocks, region_rank: dict[int, int]) -> list[list[int]]:
    n = len(blocks.sizes)
    # Signature as region positions by popularity: sizes sharing the common regions sort next to each other.
    signature = [tuple(sorted(region_rank[b] for b in _bits(blocks.masks[i]))) for i in range(n)]
    by_signature = sorted(range(n), key=lambda i: (signature[i], blocks.sizes[i]))
    by_count = sorted(range(n), key=lambda i: (-len(signature[i]), signature[i], blocks.sizes[i]))
    by_mask = sorted(range(n), key=lambda i: (blocks.masks[i], blocks.sizes[i]))
    by_name = sorted(range(n), key=lambda i: blocks.sizes[i])
    return [by_signature, by_count, by_mask, by_name]


def _bits(mask: int) -> list[int]:
    out, position = [], 0
    while mask:
        if mask & 1:
            out.append(position)
        mask >>= 1
        position += 1
    return out


def _select(blocks: _Blocks, hint: list[list[int]], limit: float) -> tuple[list[list[int]], str]:
    """Exact partition of the sizes into candidate blocks with minimum total cost (CP-SAT)."""
    candidates = sorted(blocks.candidates.items(), key=lambda item: (sorted(item[0]), item[1]))
    # Imported here: only the daily workload run solves, and ortools costs every other process its import.
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    chosen = [model.new_bool_var(f"b{i}") for i in range(len(candidates))]
    covering: dict[int, list[cp_model.IntVar]] = defaultdict(list)
    for var, (block, _) in zip(chosen, candidates, strict=True):
        for member in block:
            covering[member].append(var)
    for member in range(len(blocks.sizes)):
        model.add_exactly_one(covering[member])
    model.minimize(sum(cost * var for var, (_, cost) in zip(chosen, candidates, strict=True)))
    hinted = {frozenset(b) for b in hint}
    for var, (block, _) in zip(chosen, candidates, strict=True):
        model.add_hint(var, block in hinted)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = _SOLVER_SEED
    solver.parameters.max_deterministic_time = limit
    status = solver.solve(model)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return hint, name
    picked = [sorted(block) for var, (block, _) in zip(chosen, candidates, strict=True) if solver.value(var)]
    return picked, name


def _chunks(items: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """``items`` in ⌈n/size⌉ balanced consecutive chunks (sizes differ by at most one)."""
    count = math.ceil(len(items) / size)
    base, extra = divmod(len(items), count)
    out, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        out.append(tuple(items[start:end]))
        start = end
    return out


def planned_universe(
    prices: pd.DataFrame, invalid_regions: Iterable[str], invalid_sizes: Iterable[str]
) -> pd.DataFrame:
    """The day's (tier, size, region) universe from the price frame (``UNIVERSE_COLUMNS``): ``Planned`` is
    False where the SPS API has rejected the region or the ARM SKU (``<tier>_<size>``) before."""
    universe = prices[["InstanceTier", "InstanceType", "Region", "RegionName"]].copy()
    sku = universe["InstanceTier"] + "_" + universe["InstanceType"]
    universe["Planned"] = ~(universe["Region"].isin(list(invalid_regions)) | sku.isin(list(invalid_sizes)))
    return universe[list(UNIVERSE_COLUMNS)]


def planned_pairs(universe: pd.DataFrame) -> list[tuple[str, str]]:
    """The (region, ARM SKU) pairs to score: the planned rows of :func:`planned_universe`."""
    planned = universe[universe["Planned"]]
    return list(zip(planned["Region"], planned["InstanceTier"] + "_" + planned["InstanceType"], strict=True))


def uncovered_pairs(plan: WorkloadPlan, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The ``pairs`` no request of ``plan`` scores (empty for a correct plan; an asset check reads it)."""
    covered = {(r, s) for q in plan.requests for r in q.regions for s in q.sizes}
    return [p for p in pairs if p not in covered]


def plan_requests(
    pairs: Iterable[tuple[str, str]],
    *,
    max_regions: int = MAX_LOCATIONS_PER_REQUEST,
    max_sizes: int = MAX_SIZES_PER_REQUEST,
    per_batch: int = REQUESTS_PER_BATCH,
    deterministic_limit: float = DETERMINISTIC_LIMIT,
) -> WorkloadPlan:
    """Plan SPS requests covering every (region, size) pair of ``pairs``; see the module docstring."""
    started = time.perf_counter()
    size_regions_sets: dict[str, set[str]] = defaultdict(set)
    for region, size in pairs:
        size_regions_sets[size].add(region)
    if not size_regions_sets:
        raise EmptyUniverse("no (region, size) pairs to plan SPS requests for")
    size_regions = {s: frozenset(r) for s, r in sorted(size_regions_sets.items())}
    regions = sorted(set().union(*size_regions.values()))
    popularity: dict[str, int] = defaultdict(int)
    for rs in size_regions.values():
        for r in rs:
            popularity[r] += 1
    # Bit i is the i-th most popular region: masks of similar sizes share their low bits.
    ranked = sorted(regions, key=lambda r: (-popularity[r], r))
    bit = {r: i for i, r in enumerate(ranked)}
    sizes = list(size_regions)
    masks = [sum(1 << bit[r] for r in size_regions[s]) for s in sizes]
    blocks = _Blocks(sizes, masks, max_regions, max_sizes)

    best: list[list[int]] | None = None
    best_cost = math.inf
    for order in _orderings(blocks, {i: i for i in range(len(ranked))}):
        plan = blocks.dp(order)
        cost = sum(blocks.cost(b) for b in plan)
        if cost < best_cost:
            best, best_cost = plan, cost
    assert best is not None
    # Sizes in blocks that waste region slots are where merging across families can pay off.
    loose = [m for b in best if len(b) < max_sizes for m in b]
    for seed in loose:
        blocks.grow(seed, loose)
    chosen, status = _select(blocks, best, deterministic_limit)
    if sum(blocks.cost(b) for b in chosen) > best_cost:
        chosen, status = best, f"{status} (kept dynamic programming)"

    requests: list[tuple[tuple[str, ...], tuple[str, ...], int]] = []
    for block in chosen:
        block_sizes = sorted(sizes[m] for m in block)
        union = sorted(set().union(*(size_regions[s] for s in block_sizes)))
        for chunk in _chunks(union, max_regions):
            covered = sum(len(size_regions[s] & set(chunk)) for s in block_sizes)
            requests.append((chunk, tuple(block_sizes), covered))
    requests.sort(key=lambda r: (r[1], r[0]))
    planned = tuple(
        SpsRequest(request_id=i, regions=r, sizes=s, pairs=n, batch=i // per_batch)
        for i, (r, s, n) in enumerate(requests)
    )
    bound = lower_bound(size_regions, max_regions, max_sizes)
    total_pairs = sum(len(r) for r in size_regions.values())
    return WorkloadPlan(
        requests=planned,
        pairs=total_pairs,
        regions=len(regions),
        sizes=len(sizes),
        lower_bound=bound,
        heuristic_requests=int(best_cost),
        status=status,
        optimality_gap=(len(planned) - bound) / bound,
        solve_seconds=time.perf_counter() - started,
        batches=math.ceil(len(planned) / per_batch),
    )


def workload_frame(plan: WorkloadPlan) -> pd.DataFrame:
    """One row per request, ``WORKLOAD_COLUMNS``; Regions and Sizes as lists (Parquet list<string>)."""
    requests = plan.requests
    return pd.DataFrame(
        {
            "RequestId": pd.Series([r.request_id for r in requests], dtype="int64"),
            "Regions": pd.Series([list(r.regions) for r in requests], dtype=object),
            "Sizes": pd.Series([list(r.sizes) for r in requests], dtype=object),
            "Pairs": pd.Series([r.pairs for r in requests], dtype="int64"),
            "Batch": pd.Series([r.batch for r in requests], dtype="int64"),
        },
        columns=list(WORKLOAD_COLUMNS),
    )


def _names(value: object, request_id: int, column: str, limit: int) -> tuple[str, ...]:
    # Parquet reads list<string> back as numpy arrays; a plain string would iterate into characters.
    if not isinstance(value, list | tuple | np.ndarray):
        raise ValueError(f"workload request {request_id}: {column} must be a list, got {value!r}")
    names = tuple(value)
    if not names or len(names) > limit:
        raise ValueError(
            f"workload request {request_id}: {column} must hold 1..{limit} names, got {len(names)}"
        )
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"workload request {request_id}: {column} must be distinct non-empty names")
    return names


def requests_from_frame(frame: pd.DataFrame) -> tuple[SpsRequest, ...]:
    """Validate a workload frame read back from the lake; its requests ordered by ``RequestId``."""
    missing = [c for c in WORKLOAD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"workload frame is missing columns {missing}")
    if frame["RequestId"].duplicated().any():
        raise ValueError("workload RequestId values are not unique")
    requests = [
        SpsRequest(
            request_id=int(request_id),
            regions=_names(regions, int(request_id), "Regions", MAX_LOCATIONS_PER_REQUEST),
            sizes=_names(sizes, int(request_id), "Sizes", MAX_SIZES_PER_REQUEST),
            pairs=int(pairs),
            batch=int(batch),
        )
        for request_id, regions, sizes, pairs, batch in frame[list(WORKLOAD_COLUMNS)].itertuples(index=False)
    ]
    return tuple(sorted(requests, key=lambda r: r.request_id))
