"""Partitions shared by every provider (docs/architecture.md#flow-of-a-window)."""

from __future__ import annotations

import dagster as dg

from spotlake_assets.domain.windows import DAY_KEY_FORMAT, WINDOW_KEY_FORMAT

PARTITIONS_START = "2026-01-01-00:00"

# end_offset=1: collectors snapshot the window that has just *started*; without it the newest partition
# would be the last closed window.
collection_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="*/10 * * * *",
    start=PARTITIONS_START,
    fmt=WINDOW_KEY_FORMAT,
    timezone="UTC",
    end_offset=1,
)

# The 23:55 UTC run builds the next day's workload. Measured on dagster 1.13.27: at 23:55 on day D a daily
# definition with end_offset=1 ends at D itself (the day in progress), so tomorrow needs end_offset=2.
workload_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START[:10], fmt=DAY_KEY_FORMAT, timezone="UTC", end_offset=2
)
