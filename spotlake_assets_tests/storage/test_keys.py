"""Tier 1: the lake's key layout (docs/data-contracts.md#lake-layout) is a pure function of provider and
partition."""

from __future__ import annotations

from spotlake_assets.storage import keys

WINDOW = "2026-03-02-13:40"
DAY = "2026-03-02"


def test_window_keys_follow_spotlakes_layout() -> None:
    assert keys.sps_key("aws", WINDOW, 15) == "rawdata/aws/sps/2026/03/02/13-40_sps_15.parquet"
    assert (
        keys.interruption_frequency_key("azure", WINDOW)
        == "rawdata/azure/spot_if/2026/03/02/13-40_spot_if.parquet"
    )
    assert keys.merged_key("aws", WINDOW) == "merged/aws/2026/03/02/13-40_merged.parquet"
    assert keys.delta_key("azure", WINDOW) == "delta/azure/2026/03/02/13-40_delta.parquet"
    assert keys.history_key("aws", WINDOW) == "history/aws/2026/03/02/13-40.parquet"


def test_a_days_workload_files_share_one_folder() -> None:
    folder = "rawdata/azure/workloads/2026/03/02/"
    day_files = (
        keys.workload_key("azure", DAY),
        keys.workload_universe_key("azure", DAY),
        keys.sps_locations_key("azure", DAY),
        keys.zones_key("azure", DAY),
    )
    assert all(k.startswith(folder) for k in day_files)
    assert len(set(day_files)) == len(day_files)
    assert keys.workload_universe_key("azure", DAY) == folder + "universe.parquet"
    assert keys.sps_locations_key("azure", DAY) == folder + "sps_locations.parquet"
