"""Automation built the same way for every provider: the daily workload schedule (23:55 UTC, for the next
day), the 10-minute window schedule, and the lake sensor that merges the windows the window run did not
(`build_provider_automation`), called by `provider.build_provider` with the provider's job names and the
inputs its merge waits for (`MergeStep.inputs`). The run-failure alert is in `alerts`, the freshness sensor
in `freshness`.

One run per provider per tick: the window schedule launches `<p>_window_job` (collectors → merged → delta →
sinks in one run, so one Batch job). The lake sensor still sees that window's new SPS object, but requests
a merge run only for a window whose merge is missing: not while a merge-chain run of that window is queued
or in progress (the cursor waits for it), and not once `[<p>, "merged"]` has a materialization newer than
every collector's of that window. What is left is what the sensor is for: a collector backfill, an input
that arrived late, a window run that failed before its merge.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg

from spotlake_assets.domain.sensing import MergeRequest, SensorPlan, plan_merges
from spotlake_assets.domain.windows import DAY_KEY_FORMAT, window_key
from spotlake_assets.storage.lake import LakeResource

log = logging.getLogger(__name__)

MAX_RUN_REQUESTS_PER_TICK = 12
MAX_INPUT_WAIT = timedelta(minutes=20)
MERGE_CHAIN_TAG = "spotlake/merge-chain"
PARTITION_TAG = "dagster/partition"
# A run in one of these will still merge its window (dagster's IN_PROGRESS_RUN_STATUSES, which is private).
PENDING_STATUSES = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> float | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].timestamp if records else None


def merge_pending_or_done(
    instance: dg.DagsterInstance,
    provider: str,
    partition: str,
    merged: dg.AssetKey,
    collectors: Sequence[dg.AssetKey],
) -> str | None:
    """Why ``partition`` needs no merge run from the sensor, or None when it does: ``"pending"`` when a
    merge-chain run of the window (the window run, a merge run) is queued or running, ``"merged"`` when its
    merge is newer than every collector's materialization of the window."""
    pending = instance.get_runs(
        filters=dg.RunsFilter(
            tags={MERGE_CHAIN_TAG: provider, PARTITION_TAG: partition}, statuses=PENDING_STATUSES
        ),
        limit=1,
    )
    if pending:
        return "pending"
    merged_at = _latest_materialization(instance, merged, partition)
    if merged_at is None:
        return None
    inputs = [_latest_materialization(instance, key, partition) for key in collectors]
    return "merged" if all(t is None or t <= merged_at for t in inputs) else None


def build_lake_sensor(
    provider: str,
    job_name: str,
    required_inputs: Callable[[str], list[str]],
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    max_wait: timedelta = MAX_INPUT_WAIT,
    max_requests: int = MAX_RUN_REQUESTS_PER_TICK,
    collectors: Sequence[dg.AssetKey] = (),
) -> dg.SensorDefinition:
    """A sensor on ``rawdata/<provider>/sps/``: each new window whose merge is missing becomes one run of
    ``job_name`` (merge → delta → sinks); a window the window run merges (or merged after its
    ``collectors``' last materialization) is passed over (`merge_pending_or_done`). The cursor is the last SPS
    key dealt with; listing starts after it, so a tick reads only what is new, and it stops before a window
    whose run is still pending, so that window is looked at again once the run is over. ``run_key`` = the
    window, so a window is merged once however often it is seen."""
    merged = dg.AssetKey([provider, "merged"])

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
        plan = _without_merged_windows(context, plan, provider, merged, collectors)
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
            reason = plan.waiting or f"no new SPS objects under {prefix} whose merge is missing"
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=plan.cursor)
        for r in plan.requests:
            if r.with_gaps:
                context.log.warning(
                    "%s: inputs overdue, merging with gaps: %s", r.partition_key, ", ".join(r.missing_inputs)
                )
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor)

    return lake_sensor


def _without_merged_windows(
    context: dg.SensorEvaluationContext,
    plan: SensorPlan,
    provider: str,
    merged: dg.AssetKey,
    collectors: Sequence[dg.AssetKey],
) -> SensorPlan:
    """``plan`` without the windows the window run merged; cut before the first whose run is pending."""
    kept: list[MergeRequest] = []
    cursor_before = context.cursor or None
    for request in plan.requests:
        why = merge_pending_or_done(context.instance, provider, request.partition_key, merged, collectors)
        if why == "pending":
            waiting = f"window {request.partition_key} has a merge-chain run queued or in progress"
            return replace(plan, requests=tuple(kept), cursor=cursor_before, waiting=waiting)
        if why is None:
            kept.append(request)
        cursor_before = request.sps_key
    return replace(plan, requests=tuple(kept))


def build_provider_automation(
    provider: str,
    daily_job: str,
    window_job: str,
    merge_job: str,
    merge_inputs: Callable[[str], list[str]],
    running: bool,
    collectors: Sequence[dg.AssetKey] = (),
) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """A provider's schedules and lake sensor: the daily job at 23:55 UTC for the next day, the window job
    (collectors → merged → delta → sinks, one run) at every 10-minute mark for the window that just started,
    the merge chain for a new SPS object whose merge is missing. ``running`` makes them start RUNNING
    (prod/test) instead of STOPPED (local)."""
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
        job_name=window_job,
        cron_schedule="*/10 * * * *",
        execution_timezone="UTC",
        name=f"{provider}_window_schedule",
        default_status=schedule_status,
    )
    def window_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # The tick at HH:M0 snapshots the window that starts at HH:M0 (partitions use end_offset=1).
        key = window_key(context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"{provider}-window-{key}", partition_key=key)

    lake_sensor = build_lake_sensor(provider, merge_job, merge_inputs, sensor_status, collectors=collectors)
    return [workload_schedule, window_schedule], [lake_sensor]
