"""Benchmark: Azure merge + T2/T3 ladder + delta on ~100k synthetic AZ rows (labelled synthetic data).

Builds a previous window's merged snapshot, then a current window in which 5% of pools change score, 5% of
(size, region) pairs change spot price, 0.5% of pools appear and 0.5% disappear, and times
``merge_snapshot`` (which applies the ladder) followed by ``compute_delta``. Both windows use the same
desired count, so the delta holds the injected changes only. Inputs have plain string columns, as the
collectors write them; the previous snapshot has the categorical columns a merged snapshot is read back with.

    .venv/bin/python benchmarks/azure_merge_delta.py [--rows 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from spotlake_assets.azure.constants import FEATURE_COLUMNS, KEY_COLUMNS
from spotlake_assets.azure.merge import merge_snapshot
from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.orchestration.metrics import (
    current_rss_mib,
    peak_rss_mib,
    release_freed_memory,
    section_peak_rss_mib,
    start_rss_section,
)

COUNT = 20
WINDOW_START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
VCPUS = (2, 4, 8, 16, 32, 48, 64, 96)
ZONES = ("1", "2", "3")


def objects(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


class Catalogue:
    """Synthetic pools: (size, region, zone) triples; strings shared as Parquet reads produce them."""

    def __init__(self, rows: int, rng: np.random.Generator) -> None:
        self.sizes = objects(
            sorted(
                f"{f}{v}{x}_v{g}"
                for f in "DEFL"
                for x in ("s", "as", "ds", "ads", "ls")
                for g in (4, 5, 6)
                for v in VCPUS
            )
        )
        self.regions = objects([f"region{i:02d}" for i in range(80)])
        self.names = objects([f"Region {i:02d}" for i in range(80)])
        universe = len(self.sizes) * len(self.regions) * len(ZONES)
        chosen = rng.choice(universe, size=min(int(rows * 1.01), universe), replace=False)
        self.pools = np.sort(chosen[:rows])
        self.spare = chosen[rows:]

    def split(self, pools: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        zone = pools % len(ZONES)
        pair = pools // len(ZONES)
        return pair // len(self.regions), pair % len(self.regions), zone

    def frames(
        self, pools: np.ndarray, scores: np.ndarray, spot_of_pair: np.ndarray
    ) -> dict[str, pd.DataFrame]:
        size, region, zone = self.split(pools)
        pairs = np.unique(pools // len(ZONES))
        # 1% of pairs have no price (kept with -1), 5% no eviction rate.
        priced = pairs[pairs % 100 != 7]
        rated = pairs[pairs % 20 != 3]
        ondemand = 0.05 + (priced % 97) / 100
        return {
            "sps": pd.DataFrame(
                {
                    "DesiredCount": np.full(len(pools), COUNT),
                    "Region": self.regions[region],
                    "RegionName": self.names[region],
                    "InstanceTier": objects(["Standard"] * len(pools)),
                    "InstanceType": self.sizes[size],
                    "AvailabilityZone": objects(list(ZONES))[zone],
                    "Score": scores,
                    "T3": np.where(scores == 3, COUNT, 0),
                    "T2": np.where(scores >= 2, COUNT, 0),
                }
            ),
            "price": pd.DataFrame(
                {
                    "InstanceTier": objects(["Standard"] * len(priced)),
                    "InstanceType": self.sizes[priced // len(self.regions)],
                    "Region": self.regions[priced % len(self.regions)],
                    "RegionName": self.names[priced % len(self.regions)],
                    "OndemandPrice": ondemand.round(5),
                    "SpotPrice": (ondemand * spot_of_pair[priced]).round(5),
                    "Savings": np.trunc(100 - 100 * spot_of_pair[priced]).astype(np.int64),
                }
            ),
            "interruption_frequency": pd.DataFrame(
                {
                    "InstanceTier": objects(["Standard"] * len(rated)),
                    "InstanceType": self.sizes[rated // len(self.regions)],
                    "Region": self.regions[rated % len(self.regions)],
                    "IF": np.array([3.0, 2.5, 2.0, 1.5, 1.0])[rated % 5],
                }
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    catalogue = Catalogue(args.rows, rng)
    n_pairs = len(catalogue.sizes) * len(catalogue.regions)
    spot = rng.uniform(0.1, 0.5, n_pairs)
    scores = rng.choice([1, 2, 3], size=len(catalogue.pools), p=[0.2, 0.3, 0.5])
    previous_inputs = catalogue.frames(catalogue.pools, scores, spot)
    previous = merge_snapshot(**previous_inputs, previous=None, time=WINDOW_START, desired_count=COUNT).frame
    del previous_inputs
    gc.collect()

    # The current window: 5% of pools change score, 5% of pairs change price, 0.5% added and 0.5% removed.
    n_change = len(catalogue.pools) // 200
    keep = np.ones(len(catalogue.pools), dtype=bool)
    keep[rng.choice(len(keep), n_change, replace=False)] = False
    pools = np.sort(np.concatenate([catalogue.pools[keep], catalogue.spare[:n_change]]))
    at = np.minimum(np.searchsorted(catalogue.pools, pools), len(catalogue.pools) - 1)
    current_scores = np.where(catalogue.pools[at] == pools, scores[at], 3)
    flip = rng.random(len(pools)) < 0.05
    current_scores[flip] = 4 - current_scores[flip]
    current_spot = spot.copy()
    moved = rng.random(n_pairs) < 0.05
    current_spot[moved] *= 1.1
    inputs = catalogue.frames(pools, current_scores, current_spot)
    later = WINDOW_START + timedelta(minutes=10)

    setup_peak = peak_rss_mib()
    # The timed section is measured on its own: the harness's freed scratch memory is handed back and the
    # peak restarts from what is resident now (imports, the inputs, the previous snapshot).
    gc.collect()
    release_freed_memory()
    resident = current_rss_mib()
    sectioned = start_rss_section()
    timings: list[float] = []
    result = None
    delta = None
    for _ in range(args.repeat):
        # Drop the previous repetition's output first: one window's result is alive at a time, as in a run.
        result = delta = None
        gc.collect()
        started = time.perf_counter()
        result = merge_snapshot(**inputs, previous=previous, time=later, desired_count=COUNT)
        delta = compute_delta(previous, result.frame, KEY_COLUMNS, FEATURE_COLUMNS)
        timings.append(time.perf_counter() - started)
    assert result is not None and delta is not None
    median = statistics.median(timings)
    rows = len(result.frame)
    print(
        f"azure merge + ladder + delta, {rows:,} merged rows ({len(inputs['sps']):,} SPS rows), "
        f"{args.repeat} runs (synthetic data)"
    )
    print(f"  median {median:.4f} s   min {min(timings):.4f} s   {rows / median:,.0f} rows/s")
    print(f"  delta rows {len(delta):,} (ceased {int(delta['Ceased'].sum()):,})")
    if sectioned:
        print(
            f"  peak RSS during merge + delta {section_peak_rss_mib():.1f} MiB "
            f"(whole process; resident before: {resident} MiB)"
        )
        print(f"  peak RSS of the setup (imports, synthetic inputs, previous snapshot) {setup_peak:.1f} MiB")
    print(f"  peak RSS of the whole run {peak_rss_mib():.1f} MiB")


if __name__ == "__main__":
    main()
