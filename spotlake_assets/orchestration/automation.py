"""Automation built the same way for every provider: the daily workload schedule (23:55 UTC, for the next
day), the 10-minute collector schedule, and the lake sensor that turns each new SPS object into one merge run
(`build_provider_automation`), called by `provider.build_provider` with the provider's job names and the
inputs its merge waits for (`MergeStep.inputs`). The run-failure alert is in `alerts`, the freshness check in
`freshness`."""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg

from spotlake_assets.domain.sensing import plan_merges
from spotlake_assets.domain.windows import DAY_KEY_FORMAT, window_key
from spotlake_assets.storage.lake import LakeResource

log = logging.getLogger(__name__)

MAX_RUN_REQUESTS_PER_TICK = 12
MAX_INPUT_WAIT = timedelta(minutes=20)
MERGE_CHAIN_TAG = "spotlake/merge-chain"


def build_lake_sensor(
    provider: str,
    job_name: str,
    required_inputs: Callable[[str], list[str]],
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    max_wait: timedelta = MAX_INPUT_WAIT,
    max_requests: int = MAX_RUN_REQUESTS_PER_TICK,
) -> dg.SensorDefinition:
    """A sensor on ``rawdata/<provider>/sps/``: each new window becomes one run of ``job_name``
    (merge → delta → sinks). The cursor is the last SPS key turned into a run; listing starts after it, so
    a tick reads only what is new. ``run_key`` = the window, so a window is merged once however often it is
    seen."""

    prefix = f"rawdata/{provider}/sps/"

    @dg.sensor(
        name=f"{provider}_lake_sensor",
        job_name=job_name,
        minimum_interval_seconds=60,
        default_status=default_status,
        description=f"New {provider} SPS objects in the lake → merge, delta and sinks for that window.",
    )
    def lake_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        new_keys = lake.list_keys(prefix, start_after=context.cursor or None)
        plan = plan_merges(
            new_keys,
            context.cursor or None,
            lambda window: [key for key in required_inputs(window) if not lake.exists(key)],
            datetime.now(UTC),
            max_wait,
            max_requests,
        )
        requests = [
            dg.RunRequest(
                run_key=f"{provider}-merge-{r.partition_key}",
                partition_key=r.partition_key,
                tags={MERGE_CHAIN_TAG: provider},
                run_config=(
                    {"ops": {f"{provider}__merged": {"config": {"allow_missing_inputs": True}}}}
                    if r.with_gaps
                    else {}
                ),
            )
            for r in plan.requests
        ]
        if not requests:
            reason = plan.waiting or f"no new SPS objects under {prefix}"
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=plan.cursor)
        for r in plan.requests:
            if r.with_gaps:
                context.log.warning(
                    "%s: inputs overdue, merging with gaps: %s", r.partition_key, ", ".join(r.missing_inputs)
                )
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor)

    return lake_sensor


def build_provider_automation(
    provider: str,
    daily_job: str,
    collect_job: str,
    merge_job: str,
    merge_inputs: Callable[[str], list[str]],
    running: bool,
) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """A provider's schedules and lake sensor: the daily job at 23:55 UTC for the next day, the collectors at
    every 10-minute mark for the window that just started, the merge chain on each new SPS object.
    ``running`` makes them start RUNNING (prod/test) instead of STOPPED (local)."""
    schedule_status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED

    @dg.schedule(
        job_name=daily_job,
        cron_schedule="55 23 * * *",
        execution_timezone="UTC",
        name=f"{provider}_workload_schedule",
        default_status=schedule_status,
    )
    def workload_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tomorrow = context.scheduled_execution_time.astimezone(UTC) + timedelta(days=1)
        day = tomorrow.strftime(DAY_KEY_FORMAT)
        return dg.RunRequest(run_key=f"{provider}-workload-{day}", partition_key=day)

    @dg.schedule(
        job_name=collect_job,
        cron_schedule="*/10 * * * *",
        execution_timezone="UTC",
        name=f"{provider}_window_schedule",
        default_status=schedule_status,
    )
    def window_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # The tick at HH:M0 snapshots the window that starts at HH:M0 (partitions use end_offset=1).
        key = window_key(context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"{provider}-window-{key}", partition_key=key)

    lake_sensor = build_lake_sensor(provider, merge_job, merge_inputs, sensor_status)
    return [workload_schedule, window_schedule], [lake_sensor]
