"""Benchmark: AWS merge + T2/T3 ladder + delta on ~100k synthetic pools (labelled synthetic data).

Builds a previous window's inputs and merged snapshot, then a current window with 5% of pools changed
(half SPS, half spot price), 0.5% added and 0.5% removed, and times ``merge_snapshot`` (which applies the
ladder) followed by ``compute_delta``. Both windows use the same target capacity so the delta reflects the
injected changes only (with consecutive capacities, T3/T2 of most pools legitimately change too).

``--categorical-inputs`` gives the inputs categorical key columns, as a Parquet read with pyarrow's
``read_dictionary`` would (the merged snapshot and the previous one always have them).

Optionally compares with the SpotLake-style approach (pandas string outer joins, row-wise key/feature
strings and a Python two-pointer walk) timed on a 10k-row sample and scaled linearly to 100k.

    .venv/bin/python benchmarks/merge_delta.py [--rows 100000] [--repeat 15] [--naive] [--categorical-inputs]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from spotlake_assets.aws.constants import FEATURE_COLUMNS, KEY_COLUMNS
from spotlake_assets.aws.merge import DROPPED_UNKNOWN_AZ, AwsMergeDetail, merge_snapshot
from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.domain.merge import MergeResult
from spotlake_assets.orchestration.metrics import (
    current_rss_mib,
    peak_rss_mib,
    release_freed_memory,
    section_peak_rss_mib,
    start_rss_section,
)

# (region, AZ-id prefix, number of AZs): real names, 30 regions / 95 AZs like the moto catalogue.
REGIONS = (
    ("us-east-1", "use1", 6), ("us-east-2", "use2", 3), ("us-west-1", "usw1", 2),
    ("us-west-2", "usw2", 4), ("ca-central-1", "cac1", 3), ("ca-west-1", "caw1", 3),
    ("sa-east-1", "sae1", 3), ("mx-central-1", "mxc1", 3), ("eu-west-1", "euw1", 3),
    ("eu-west-2", "euw2", 3), ("eu-west-3", "euw3", 3), ("eu-central-1", "euc1", 3),
    ("eu-central-2", "euc2", 3), ("eu-north-1", "eun1", 3), ("eu-south-1", "eus1", 3),
    ("eu-south-2", "eus2", 3), ("ap-northeast-1", "apne1", 3), ("ap-northeast-2", "apne2", 4),
    ("ap-northeast-3", "apne3", 3), ("ap-southeast-1", "apse1", 3), ("ap-southeast-2", "apse2", 3),
    ("ap-southeast-3", "apse3", 3), ("ap-southeast-4", "apse4", 3), ("ap-south-1", "aps1", 3),
    ("ap-south-2", "aps2", 3), ("ap-east-1", "ape1", 3), ("me-south-1", "mes1", 3),
    ("me-central-1", "mec1", 3), ("il-central-1", "ilc1", 3), ("af-south-1", "afs1", 3),
)  # fmt: skip
FAMILIES = (
    "m5", "m5a", "m5ad", "m5d", "m5dn", "m5n", "m5zn", "m6a", "m6g", "m6gd", "m6i", "m6id", "m6idn", "m6in",
    "m7a", "m7g", "m7gd", "m7i", "m7i-flex", "m8g", "c5", "c5a", "c5ad", "c5d", "c5n", "c6a", "c6g", "c6gd",
    "c6gn", "c6i", "c6id", "c6in", "c7a", "c7g", "c7gd", "c7gn", "c7i", "c8g", "r5", "r5a", "r5ad", "r5b",
    "r5d", "r5dn", "r5n", "r6a", "r6g", "r6gd", "r6i", "r6id", "r6idn", "r6in", "r7a", "r7g", "r7gd", "r7i",
    "r7iz", "r8g", "t3", "t3a", "t4g", "i3", "i3en", "i4g", "i4i", "im4gn", "is4gen", "d3", "d3en", "x2gd",
    "x2idn", "x2iedn", "z1d", "g4dn", "g5", "g6", "inf2", "p4d", "trn1", "hpc7g",
)  # fmt: skip
SIZES = (
    "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
    "32xlarge", "48xlarge", "metal", "metal-24xl", "metal-48xl", "nano", "micro", "small",
)  # fmt: skip
CAPACITY = 20
WINDOW_START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _objects(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


class Catalogue:
    """Synthetic pools: about ``rows`` (instance type, AZ) pairs over the real region / AZ-id names.

    A pool is the integer ``type * n_azs + az``; strings are only materialised in the frames, as shared
    objects (like Parquet reads with pyarrow's deduplication).
    """

    def __init__(self, rows: int, rng: np.random.Generator) -> None:
        zones = [
            (r, f"{prefix}-az{i + 1}") for r, (_, prefix, count) in enumerate(REGIONS) for i in range(count)
        ]
        self.zone_regions = {az: REGIONS[r][0] for r, az in zones}
        self.types = _objects([f"{f}.{s}" for f in FAMILIES for s in SIZES])
        self.azs = _objects([az for _, az in zones])
        self.regions = _objects([name for name, _, _ in REGIONS])
        self.az_region = np.array([r for r, _ in zones])
        universe = len(self.types) * len(self.azs)
        # Reserve pools outside the previous window so the current one can add new ones.
        chosen = rng.choice(universe, size=min(int(rows * 1.01), universe), replace=False)
        # Collectors write rows grouped by instance type (one SPS query per type): keep that order.
        self.pools = np.sort(chosen[:rows])
        self.spare = chosen[rows:]

    def frames(self, pools: np.ndarray, sps: np.ndarray, spot: np.ndarray) -> dict[str, pd.DataFrame]:
        t, z = pools // len(self.azs), pools % len(self.azs)
        r = self.az_region[z]
        # 2% of pools are price-only and 1% SPS-only, like real windows.
        has_sps = (pools % 50) != 0
        has_price = (pools % 100) != 1
        # Region-level tables: every (type, region) pair of the pools but 5%, values derived from the pair.
        pairs = np.unique(t * len(self.regions) + r)
        pairs = pairs[pairs % 20 != 0]
        pair_type, pair_region = pairs // len(self.regions), pairs % len(self.regions)
        region_level = {"Region": self.regions[pair_region], "InstanceType": self.types[pair_type]}
        return {
            "sps": pd.DataFrame(
                {
                    "InstanceType": self.types[t[has_sps]],
                    "Region": self.regions[r[has_sps]],
                    "AZ": self.azs[z[has_sps]],
                    "SPS": sps[has_sps],
                    "TargetCapacity": np.full(int(has_sps.sum()), CAPACITY),
                    "T3": np.where(sps[has_sps] >= 3, CAPACITY, 0),
                    "T2": np.where(sps[has_sps] == 2, CAPACITY, 0),
                }
            ),
            "spot_price": pd.DataFrame(
                {
                    "InstanceType": self.types[t[has_price]],
                    "AZ": self.azs[z[has_price]],
                    "SpotPrice": spot[has_price],
                }
            ),
            "interruption_frequency": pd.DataFrame(
                {**region_level, "IF": np.array([3.0, 2.5, 2.0, 1.5, 1.0])[pairs % 5]}
            ),
            "ondemand": pd.DataFrame(
                {**region_level, "OndemandPrice": np.round(0.005 + (pairs % 9973) / 1000, 4)}
            ),
        }


def build(
    rows: int, seed: int = 7
) -> tuple[Catalogue, pd.DataFrame, dict[str, pd.DataFrame], dict[str, int]]:
    """The catalogue, the previous window's merged snapshot, the current window's inputs, the injections."""
    rng = np.random.default_rng(seed)
    catalogue = Catalogue(rows, rng)
    pools = catalogue.pools
    sps = rng.integers(1, 4, size=len(pools))
    spot = np.round(rng.uniform(0.001, 5.0, size=len(pools)), 6)
    previous = merge_snapshot(
        **catalogue.frames(pools, sps, spot),
        zone_regions=catalogue.zone_regions,
        time=WINDOW_START - timedelta(minutes=10),
        previous=None,
        capacity=CAPACITY,
    ).frame

    n_changed, n_moved = int(rows * 0.05), int(rows * 0.005)
    picked = rng.permutation(len(pools))
    removed = picked[:n_moved]
    changed = picked[n_moved : n_moved + n_changed]
    half = len(changed) // 2
    sps[changed[:half]] = sps[changed[:half]] % 3 + 1
    spot[changed[half:]] = np.round(spot[changed[half:]] * 1.1 + 0.0001, 6)
    keep = np.ones(len(pools), dtype=bool)
    keep[removed] = False
    added = catalogue.spare[:n_moved]
    current = catalogue.frames(
        np.concatenate([pools[keep], added]),
        np.concatenate([sps[keep], rng.integers(1, 4, size=len(added))]),
        np.concatenate([spot[keep], np.round(rng.uniform(0.001, 5.0, size=len(added)), 6)]),
    )
    injected = {"changed": n_changed, "added": len(added), "removed": len(removed)}
    return catalogue, previous, current, injected


def naive_merge_delta(
    inputs: dict[str, pd.DataFrame], previous: pd.DataFrame, zone_regions: dict[str, str]
) -> int:
    """SpotLake-style: string outer joins, row-wise key/feature strings, Python two-pointer walk."""
    sps = inputs["sps"].drop(columns=["TargetCapacity"])
    price = inputs["spot_price"].copy()
    price["Region"] = price["AZ"].map(zone_regions)
    merged = pd.merge(sps, price, on=["InstanceType", "Region", "AZ"], how="outer")
    merged = pd.merge(merged, inputs["interruption_frequency"], on=["InstanceType", "Region"], how="left")
    merged = pd.merge(merged, inputs["ondemand"], on=["InstanceType", "Region"], how="left")
    merged = merged.fillna({"SPS": -1, "IF": -1, "SpotPrice": -1, "OndemandPrice": -1, "T3": 0, "T2": 0})
    merged = merged.astype({"SPS": "int64", "T3": "int64", "T2": "int64"})
    merged[["SpotPrice", "OndemandPrice"]] = merged[["SpotPrice", "OndemandPrice"]].round(5)
    merged["Savings"] = merged.apply(
        lambda r: int(100 - 100 * r.SpotPrice / r.OndemandPrice) if r.OndemandPrice > 0 else -1, axis=1
    )
    keys, features = list(KEY_COLUMNS), list(FEATURE_COLUMNS)
    for frame in (previous, merged):
        frame["Workload"] = frame[keys].astype(str).apply(lambda row: ":".join(row.values), axis=1)
        frame["Feature"] = frame[features].astype(str).apply(lambda row: ":".join(row.values), axis=1)
    prev_rows = sorted(zip(previous["Workload"], previous["Feature"], strict=True))
    curr_rows = sorted(zip(merged["Workload"], merged["Feature"], strict=True))
    i = j = out = 0
    while i < len(prev_rows) and j < len(curr_rows):
        if prev_rows[i][0] == curr_rows[j][0]:
            out += prev_rows[i][1] != curr_rows[j][1]
            i, j = i + 1, j + 1
        elif prev_rows[i][0] < curr_rows[j][0]:
            out, i = out + 1, i + 1
        else:
            out, j = out + 1, j + 1
    return out + (len(prev_rows) - i) + (len(curr_rows) - j)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--naive", action="store_true", help="also time the SpotLake-style approach")
    parser.add_argument(
        "--categorical-inputs",
        action="store_true",
        help="key columns of the inputs as categoricals (Parquet read with read_dictionary) instead of str",
    )
    args = parser.parse_args()

    print(f"peak RSS after imports: {peak_rss_mib():.1f} MiB")
    catalogue, previous, curr_inputs, injected = build(args.rows)
    if args.categorical_inputs:
        curr_inputs = {
            name: frame.astype({c: "category" for c in KEY_COLUMNS if c in frame.columns})
            for name, frame in curr_inputs.items()
        }
    print(f"peak RSS after building inputs: {peak_rss_mib():.1f} MiB")
    print(
        f"inputs: sps {len(curr_inputs['sps'])}, spot_price {len(curr_inputs['spot_price'])}, "
        f"IF {len(curr_inputs['interruption_frequency'])}, on-demand {len(curr_inputs['ondemand'])}; "
        f"previous snapshot {len(previous)} rows; injected {injected}"
    )

    setup_peak = peak_rss_mib()
    # Measure the timed section on its own: hand back the harness's freed scratch memory and restart the peak
    # from what is resident now (imports, inputs, previous snapshot).
    gc.collect()
    release_freed_memory()
    resident = current_rss_mib()
    sectioned = start_rss_section()

    merge_wall, delta_wall, total_wall, total_cpu = [], [], [], []
    result: MergeResult[AwsMergeDetail] | None = None
    delta = pd.DataFrame()
    for _ in range(args.repeat):
        # Drop the previous repetition's outputs first: a real run holds one window's frames, not two.
        result, delta = None, pd.DataFrame()
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = merge_snapshot(
            **curr_inputs,
            zone_regions=catalogue.zone_regions,
            time=WINDOW_START,
            previous=previous,
            capacity=CAPACITY,
        )
        merged_at = time.perf_counter()
        delta = compute_delta(previous, result.frame, KEY_COLUMNS, FEATURE_COLUMNS, time=WINDOW_START)
        finished, cpu_finished = time.perf_counter(), time.process_time()
        merge_wall.append(merged_at - started)
        delta_wall.append(finished - merged_at)
        total_wall.append(finished - started)
        total_cpu.append(cpu_finished - cpu_started)

    assert result is not None
    rows = len(result.frame)
    median = statistics.median(total_wall)
    ceased = int(delta["Ceased"].sum())
    print(f"merged rows: {rows} (unknown-AZ price rows dropped: {result.dropped[DROPPED_UNKNOWN_AZ]})")
    print(f"delta rows: {len(delta)} (new or changed {len(delta) - ceased}, ceased {ceased})")
    print(
        f"median wall over {args.repeat} runs: merge+ladder {statistics.median(merge_wall):.4f} s, "
        f"delta {statistics.median(delta_wall):.4f} s, total {median:.4f} s "
        f"(min {min(total_wall):.4f}, max {max(total_wall):.4f}); {rows / median:,.0f} rows/s"
    )
    # CPU time is less sensitive to other processes sharing the machine than wall time.
    print(f"median CPU time, total: {statistics.median(total_cpu):.4f} s")
    if sectioned:
        print(
            f"peak RSS during merge + delta: {section_peak_rss_mib():.1f} MiB (whole process; resident "
            f"before: {resident} MiB; the setup peaked at {setup_peak:.1f} MiB)"
        )
    print(f"peak RSS of the whole run: {peak_rss_mib():.1f} MiB")

    if args.naive:
        sample = 10_000
        _, naive_previous, naive_curr_inputs, _ = build(sample)
        naive_previous = naive_previous.astype({c: object for c in KEY_COLUMNS})
        started = time.perf_counter()
        naive_rows = naive_merge_delta(naive_curr_inputs, naive_previous.copy(), catalogue.zone_regions)
        seconds = (time.perf_counter() - started) * (args.rows / sample)
        print(
            f"naive SpotLake-style (10k sample scaled to {args.rows}): {seconds:.2f} s "
            f"({args.rows / seconds:,.0f} rows/s, {naive_rows} delta rows in the sample); "
            f"speed-up x{seconds / median:,.0f}"
        )
        print(f"peak RSS after naive run: {peak_rss_mib():.1f} MiB")


if __name__ == "__main__":
    main()
