"""Partitions shared by every provider (docs/architecture.md#flow-of-a-window), and the failure a window
run raises when its day's daily inputs are not in the lake."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from spotlake_assets.domain.windows import DAY_KEY_FORMAT, WINDOW_KEY_FORMAT
from spotlake_assets.settings import InvalidSetting, environment_name, partitions_start
from spotlake_assets.storage.errors import LakeKeyNotFound


def _start_day() -> str:
    # Read at import, the one exception to "no environment at import time": a partitions definition is fixed
    # when the asset decorators run. Only the two variables it needs are read; an unknown SPOTLAKE_ENV is
    # reported by `load_settings` where the environment is resolved, so it must not break the import here.
    try:
        environment = environment_name()
    except InvalidSetting:
        environment = "local"
    return partitions_start(environment, os.environ)


PARTITIONS_START_DAY = _start_day()
PARTITIONS_START = f"{PARTITIONS_START_DAY}-00:00"

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
    start_date=PARTITIONS_START_DAY, fmt=DAY_KEY_FORMAT, timezone="UTC", end_offset=2
)


def daily_job_first(provider: str, day: str, what: str) -> dg.Failure:
    """The failure of a window run whose day has no daily inputs yet: it names the run to launch instead of
    surfacing a raw `LakeKeyNotFound` (no retries: asking again cannot create the workload)."""
    job = f"{provider}_daily_job"
    return dg.Failure(
        description=(
            f"{what} of {day} is not in the lake: run {job} for {day} first "
            f"(Jobs → {job} → Materialize, partition {day}), then this window again"
        ),
        metadata={"job": job, "partition": day, "missing": what},
        allow_retries=False,
    )


@contextmanager
def needs_daily_inputs(provider: str, day: str, what: str = "the workload") -> Iterator[None]:
    """Turns a missing daily input read inside the block into `daily_job_first`."""
    try:
        yield
    except LakeKeyNotFound as exc:
        raise daily_job_first(provider, day, what) from exc
