"""Across the seam: imported history, then windows the live pipeline collects. The first collected window's
delta is taken against the imported snapshot (no re-publication of every pool), and `spotlake query` reads
one continuous series and rebuilds the collected snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.domain.windows import window_key, window_start
from spotlake_assets.legacy.layouts import AWS_LAYOUT
from spotlake_assets.orchestration.pipeline import read_previous_state
from spotlake_assets.query.engine import PoolFilter, SpotQuery
from spotlake_assets.query.lake import ArrowLake
from spotlake_assets.sinks.history import compact_day, write_window_history
from spotlake_assets.storage.frames import frame_to_parquet, read_frame
from spotlake_assets.storage.keys import merged_key
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.legacy.support import run_import, small_month

KEYS = AWS_LAYOUT.key_columns


def _collect(lake: LocalLake, pk: str, snapshot: pd.DataFrame) -> pd.DataFrame:
    """What `aws/merged` → `aws/delta` → `history/aws` do for a window, with the same functions."""
    lake.write_bytes(merged_key("aws", pk), frame_to_parquet(snapshot))
    previous = read_previous_state(lake, "aws", pk)
    assert previous.frame is not None, previous.first_window_reason
    changes = compute_delta(previous.frame, snapshot, KEYS, AWS_LAYOUT.feature_columns, time=window_start(pk))
    write_window_history(lake, "aws", pk, changes, KEYS)
    return changes


def test_a_pool_reads_as_one_series_from_imported_into_collected_windows(tmp_path: Path) -> None:
    month = small_month(tmp_path / "archive")
    lake = LocalLake(root=str(tmp_path / "lake"))
    report = run_import(lake, month.location)
    last = report.days[-1].last_window
    assert last == "2024-03-02-23:50"
    imported = read_frame(lake, merged_key("aws", last))
    # The collector's first two windows: one pool's score moves, then its price.
    seam = window_start(last) + timedelta(minutes=10)
    first, second = window_key(seam), window_key(seam + timedelta(minutes=10))
    pool = imported.iloc[5]
    at = (imported["InstanceType"] == pool["InstanceType"]) & (imported["AZ"] == pool["AZ"])
    collected = imported.copy()
    collected["Time"] = pd.Timestamp(seam)
    collected.loc[at, "SPS"] = 1 if pool["SPS"] != 1 else 2
    changes = _collect(lake, first, collected)
    assert len(changes) == 1, "the first collected window re-published pools the import already held"
    collected = collected.copy()
    collected["Time"] = pd.Timestamp(seam + timedelta(minutes=10))
    collected.loc[at, "SpotPrice"] = float(np.round(pool["SpotPrice"] * 1.1, 5)) + 0.001
    assert len(_collect(lake, second, collected)) == 1
    compact_day(lake, "aws", "2024-03-03", KEYS)

    query = SpotQuery(ArrowLake.open(str(tmp_path / "lake")), "aws")
    start = datetime(2024, 3, 2, 12, tzinfo=UTC)
    series = query.series(
        PoolFilter(str(pool["InstanceType"]), str(pool["Region"]), str(pool["AZ"])),
        start,
        seam + timedelta(minutes=10),
        timedelta(days=2),
    )
    times = list(pd.to_datetime(series["Time"], utc=True))
    # Led by the imported state in effect at the start, then the two collected changes: no hole, no restart.
    assert times[0] <= pd.Timestamp(start) and times[-2:] == [
        pd.Timestamp(seam),
        pd.Timestamp(seam) + pd.Timedelta(minutes=10),
    ]
    assert list(series["SPS"])[-1] == collected.loc[at, "SPS"].item()
    rebuilt = query.snapshot(seam + timedelta(minutes=10))
    columns = [*KEYS, *AWS_LAYOUT.feature_columns]
    expected = (
        collected[columns].astype({k: str for k in KEYS}).sort_values(list(KEYS)).reset_index(drop=True)
    )
    got = rebuilt[columns].astype({k: str for k in KEYS}).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
