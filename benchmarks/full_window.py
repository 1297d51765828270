"""One full-scale simulated AWS window through Dagster (target ≤ 30 s wall), plus the day's workload.

Prints wall seconds per step and peak RSS. Runs on a temporary lake; nothing is kept.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import dagster as dg

DAY = "2026-03-01"

WINDOW_ASSETS = [
    "aws/sps",
    "aws/interruption_frequency",
    "aws/spot_price",
    "aws/merged",
    "aws/delta",
    "aws/history",
    "aws/latest",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--windows", type=int, default=2)
    args = parser.parse_args()
    # The benchmark's fixed day must be a partition; the partitions are built when the assets are imported.
    os.environ.setdefault("SPOTLAKE_PARTITIONS_START", DAY)
    from spotlake_assets.aws.credentials import AwsCredentialPool
    from spotlake_assets.aws.definitions import aws_assets
    from spotlake_assets.aws.simulation import SimulatedAwsApi
    from spotlake_assets.orchestration.metrics import peak_rss_mib
    from spotlake_assets.sinks.timestream import LocalTimestream
    from spotlake_assets.storage.lake import LocalLake

    with tempfile.TemporaryDirectory() as tmp:
        resources = {
            "lake": LocalLake(root=str(Path(tmp) / "lake")),
            "timestream": LocalTimestream(root=str(Path(tmp) / "lake")),
            "aws_api": SimulatedAwsApi(scale=args.scale),
            "aws_credentials": AwsCredentialPool(source="simulated"),
        }
        started = time.perf_counter()
        dg.materialize(
            aws_assets,
            selection=["aws/workload", "aws/ondemand_price"],
            partition_key=DAY,
            resources=resources,
        )
        print(f"daily (workload + on-demand): {time.perf_counter() - started:.2f} s")
        for minute in range(0, 10 * args.windows, 10):
            started = time.perf_counter()
            result = dg.materialize(
                aws_assets,
                selection=WINDOW_ASSETS,
                partition_key=f"{DAY}-00:{minute:02d}",
                resources=resources,
            )
            rows = next(
                e.materialization.metadata["rows"].value
                for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(["aws", "merged"])
            )
            print(f"window 00:{minute:02d}: {time.perf_counter() - started:.2f} s wall, {rows} merged rows")
        print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
