"""The single-account mode's definitions: its assets (plus delta and history from the shared factory, so
its history is in the same layout as the main pipeline's), jobs and schedules. `definitions.py` merges them
into the code location; ``running`` starts the schedules RUNNING (prod/test), else STOPPED. The launch-time
asset is in no schedule: a user runs it from the UI (or the demo) on purpose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from spotlake_assets.aws.constants import FEATURE_COLUMNS, KEY_COLUMNS
from spotlake_assets.aws_single.assets import (
    AMIS,
    ARCHITECTURES,
    DAILY_SCORE,
    IF,
    LAUNCH_SWEEP,
    LAUNCH_TIME,
    MERGED,
    SELECTION,
    SPS,
    aws_amis,
    aws_instance_architectures,
    aws_single_daily_score,
    aws_single_interruption_frequency,
    aws_single_launch_sweep,
    aws_single_launch_time,
    aws_single_merged,
    aws_single_selection,
    aws_single_sps,
)
from spotlake_assets.aws_single.constants import PREFIX
from spotlake_assets.domain.windows import DAY_KEY_FORMAT, window_key
from spotlake_assets.orchestration.pipeline import ChangeSpec, build_change_assets

# Of the shared factory's sinks, the open history only: Timestream is closed to new customers, and a
# researcher's account has no SpotLake table.
_SINKS = ("delta", "history")


def change_assets() -> list[dg.AssetsDefinition]:
    built = build_change_assets(ChangeSpec(PREFIX, KEY_COLUMNS, FEATURE_COLUMNS, "aws_api"))
    return [a for a in built if a.key.path[-1] in _SINKS]


@dataclass(frozen=True)
class SingleAccountDefinitions:
    assets: list[dg.AssetsDefinition]
    # What `dg.define_asset_job` returns; dagster exports no public name for it.
    jobs: list[UnresolvedAssetJobDefinition]
    schedules: list[dg.ScheduleDefinition]


def definitions(running: bool = False) -> SingleAccountDefinitions:
    sinks = change_assets()
    window_keys = [SPS, IF, MERGED, *(a.key for a in sinks)]
    daily_job = dg.define_asset_job(
        f"{PREFIX}_daily_job",
        selection=[SELECTION, ARCHITECTURES, AMIS],
        description="Single account: tomorrow's types within the SPS budget, architectures and AMIs.",
    )
    window_job = dg.define_asset_job(
        f"{PREFIX}_window_job",
        selection=window_keys,
        description="Single account: the window's SPS (ledger-guarded) and IF of the selected types, merged, "
        "delta and history.",
    )
    report_job = dg.define_asset_job(
        f"{PREFIX}_report_job",
        selection=[DAILY_SCORE],
        description="Single account: the day's change counts, scores and top K, sent as the daily report.",
    )
    launch_job = dg.define_asset_job(
        f"{PREFIX}_launch_job",
        selection=[LAUNCH_TIME],
        description="Single account: Spot launch-time measurement (costs money: on demand, no schedule).",
    )
    sweep_job = dg.define_asset_job(
        f"{PREFIX}_sweep_job",
        selection=[LAUNCH_SWEEP],
        description="Single account: terminate tagged launch-time leftovers older than the timeout.",
    )
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED

    @dg.schedule(
        job=daily_job,
        cron_schedule="55 23 * * *",
        execution_timezone="UTC",
        name=f"{PREFIX}_selection_schedule",
        default_status=status,
        description="23:55 UTC: choose tomorrow's instance types (and refresh architectures and AMIs).",
    )
    def selection_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tomorrow = (context.scheduled_execution_time.astimezone(UTC) + timedelta(days=1)).strftime(
            DAY_KEY_FORMAT
        )
        return dg.RunRequest(run_key=f"{PREFIX}-selection-{tomorrow}", partition_key=tomorrow)

    @dg.schedule(
        job=window_job,
        cron_schedule="*/10 * * * *",
        execution_timezone="UTC",
        name=f"{PREFIX}_window_schedule",
        default_status=status,
        description="Every 10 minutes: SPS and IF of the selected types for the window that just started.",
    )
    def window_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        key = window_key(context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"{PREFIX}-window-{key}", partition_key=key)

    @dg.schedule(
        job=report_job,
        cron_schedule="55 23 * * *",
        execution_timezone="UTC",
        name=f"{PREFIX}_report_schedule",
        default_status=status,
        description="23:55 UTC: the day's scores and top K, by e-mail and/or Slack when configured.",
    )
    def report_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = context.scheduled_execution_time.astimezone(UTC).strftime(DAY_KEY_FORMAT)
        return dg.RunRequest(run_key=f"{PREFIX}-report-{day}", partition_key=day)

    sweep_schedule = dg.ScheduleDefinition(
        name=f"{PREFIX}_sweep_schedule",
        job=sweep_job,
        cron_schedule="*/30 * * * *",
        execution_timezone="UTC",
        default_status=status,
        description="Every 30 minutes: terminate tagged launch-time leftovers a killed run left behind.",
    )
    assets = [
        aws_instance_architectures,
        aws_amis,
        aws_single_selection,
        aws_single_sps,
        aws_single_interruption_frequency,
        aws_single_merged,
        *sinks,
        aws_single_daily_score,
        aws_single_launch_time,
        aws_single_launch_sweep,
    ]
    return SingleAccountDefinitions(
        assets=assets,
        jobs=[daily_job, window_job, report_job, launch_job, sweep_job],
        schedules=[selection_schedule, window_schedule, report_schedule, sweep_schedule],
    )
