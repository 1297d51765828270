"""AWS jobs and schedules. Each tick names its partition and a run_key, so a restarted daemon never launches
the same day or window twice."""

from datetime import UTC, timedelta

import dagster as dg

from spotlake_assets.aws.assets import (
    IF,
    MERGED,
    ONDEMAND,
    SPOT_PRICE,
    SPS,
    WORKLOAD,
)
from spotlake_assets.aws.constants import PROVIDER
from spotlake_assets.core.partitions import collection_partitions, workload_partitions
from spotlake_assets.core.windows import DAY_KEY_FORMAT, window_key

aws_daily_job = dg.define_asset_job(
    "aws_daily_job",
    selection=dg.AssetSelection.assets(WORKLOAD, ONDEMAND),
    partitions_def=workload_partitions,
    description="The next day's AWS SPS workload and the day's on-demand prices.",
)

aws_window_job = dg.define_asset_job(
    "aws_window_job",
    selection=dg.AssetSelection.assets(SPS, IF, SPOT_PRICE, MERGED)
    | dg.AssetSelection.assets(MERGED).downstream(),
    partitions_def=collection_partitions,
    description="The main job: one 10-minute AWS window, collectors → merged → delta → sinks.",
)


@dg.schedule(
    job=aws_daily_job,
    cron_schedule="55 23 * * *",
    execution_timezone="UTC",
    name="aws_workload_schedule",
)
def aws_workload_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tomorrow = (context.scheduled_execution_time.astimezone(UTC) + timedelta(days=1)).strftime(DAY_KEY_FORMAT)
    return dg.RunRequest(run_key=f"{PROVIDER}-workload-{tomorrow}", partition_key=tomorrow)


@dg.schedule(
    job=aws_window_job,
    cron_schedule="*/10 * * * *",
    execution_timezone="UTC",
    name="aws_window_schedule",
)
def aws_window_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # The tick at HH:M0 snapshots the window that starts at HH:M0 (partitions use end_offset=1).
    key = window_key(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"{PROVIDER}-window-{key}", partition_key=key)


aws_jobs = [aws_daily_job, aws_window_job]
aws_schedules = [aws_workload_schedule, aws_window_schedule]
