"""Benchmark: the Azure SPS request planner on the full simulated catalogue (authored, synthetic).

Plans requests of at most 8 locations x 5 sizes covering every valid (region, size) pair of the simulated
price universe (public regions, Spot-capable sizes, minus the regions and sizes the simulated SPS API
rejects, as the workload asset would after one day of learning), and reports the request count, the lower
bound, the gap, the solver status, the solve time and whether a second solve gives the same plan.

    .venv/bin/python benchmarks/azure_planner.py [--repeat 3] [--limit 2.0]
"""

from __future__ import annotations

import argparse
import statistics
import time

from spotlake_assets.azure.catalogue import load_catalogue
from spotlake_assets.azure.workload import DETERMINISTIC_LIMIT, plan_requests
from spotlake_assets.orchestration.metrics import peak_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=float, default=DETERMINISTIC_LIMIT, help="CP-SAT deterministic time")
    args = parser.parse_args()
    catalogue = load_catalogue()
    regions = catalogue.region_by_code
    pairs = [
        (region, sku)
        for (sku, region) in catalogue.offerings
        if catalogue.sizes[sku].spot
        and not regions[region].sovereign
        and sku not in catalogue.sps_invalid_sizes
        and region not in catalogue.sps_invalid_regions
    ]
    timings: list[float] = []
    plans = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        plans.append(plan_requests(pairs, deterministic_limit=args.limit))
        timings.append(time.perf_counter() - started)
    plan = plans[0]
    covered = {(r, s) for q in plan.requests for r in q.regions for s in q.sizes}
    assert set(pairs) <= covered, "the plan misses pairs"
    print(
        f"azure SPS planner on the simulated catalogue (synthetic): {plan.pairs:,} pairs, "
        f"{plan.regions} regions, {plan.sizes} sizes"
    )
    print(
        f"  requests {len(plan.requests)} (dynamic programming {plan.heuristic_requests}), lower bound "
        f"{plan.lower_bound}, gap {plan.optimality_gap:.1%}, CP-SAT {plan.status}"
    )
    print(
        f"  solve median {statistics.median(timings):.2f} s over {args.repeat} runs "
        f"(min {min(timings):.2f} s); deterministic: {all(p.requests == plan.requests for p in plans)}"
    )
    print(
        f"  pairs per request {plan.pairs / len(plan.requests):.1f} of 40; peak RSS {peak_rss_mib():.0f} MiB"
    )


if __name__ == "__main__":
    main()
