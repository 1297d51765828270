"""Automation built the same way for every provider: the daily workload schedule (23:55 UTC, for the next
day), the 10-minute window schedule, and the lake sensor that merges the windows the window run did not
(`build_provider_automation`), called by `provider.build_provider` with the provider's job names and the
inputs its merge waits for (`MergeStep.inputs`). The run-failure alert is in `alerts`, the freshness sensor
in `freshness`.

One run per provider per tick: the window schedule launches `<p>_window_job` (collectors → merged → delta →
sinks in one run, so one Batch job). The lake sensor still sees that window's new SPS object, but requests
a merge run only for a window whose inputs changed since its last merge: not while a merge-chain run of
that window is queued or in progress (the cursor waits for it), and not when the fingerprint of the
window's inputs (their ETags, `input_fingerprint`) equals the one its merge recorded in the lake
(`storage/keys.merge_inputs_key`). So turning the sensor on after `make demo` launches nothing, whatever
instance merged the windows; what is left is what the sensor is for: a collector backfill that changed an
input, an input that arrived late, a window run that failed before its merge.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg

from spotlake_assets.domain.sensing import MergeRequest, SensorPlan, plan_merges
from spotlake_assets.domain.windows import DAY_KEY_FORMAT, window_key
from spotlake_assets.storage.errors import LakeKeyNotFound
from spotlake_assets.storage.keys import merge_inputs_key, sps_window_prefix
from spotlake_assets.storage.lake import LakeResource

log = logging.getLogger(__name__)

MAX_RUN_REQUESTS_PER_TICK = 12
MAX_INPUT_WAIT = timedelta(minutes=20)
MERGE_CHAIN_TAG = "spotlake/merge-chain"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Runs looked at for a pending merge of a window: far more than the queue ever holds.
MAX_PENDING_RUNS = 200
# A run in one of these will still merge its window (dagster's IN_PROGRESS_RUN_STATUSES, which is private).
PENDING_STATUSES = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def input_fingerprint(
    lake: LakeResource, provider: str, partition: str, required_inputs: Callable[[str], list[str]]
) -> str:
    """A digest of what a window's merge reads: every SPS object of the window and ``required_inputs``,
    each by its ETag (``absent`` when missing, so a late input changes it). Taken before the merge reads,
    so an input replaced during the merge shows as a change afterwards."""
    objects = sorted({*lake.list_keys(sps_window_prefix(provider, partition)), *required_inputs(partition)})
    lines = []
    for key in objects:
        stored = lake.head(key)
        lines.append(f"{key}={stored.etag if stored is not None else 'absent'}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def record_merge_inputs(lake: LakeResource, provider: str, partition: str, fingerprint: str) -> None:
    """Recorded with each written merge: the lake sensor compares it before merging the window again.
    Idempotent: the same window and inputs write the same object."""
    body = {"provider": provider, "window": partition, "input_fingerprint": fingerprint}
    lake.write_bytes(merge_inputs_key(provider, partition), json.dumps(body, sort_keys=True).encode())


def recorded_fingerprint(lake: LakeResource, provider: str, partition: str) -> str | None:
    try:
        raw = lake.read_bytes(merge_inputs_key(provider, partition))
    except LakeKeyNotFound:
        return None
    try:
        value = json.loads(raw).get("input_fingerprint")
    except (ValueError, AttributeError):
        # Unreadable: merge again, which rewrites it.
        return None
    return value if isinstance(value, str) else None


def _covers(run: dg.DagsterRun, partition: str) -> bool:
    """Whether ``run`` targets ``partition``: its partition, or the range of a single-run backfill."""
    if run.tags.get(PARTITION_TAG) == partition:
        return True
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    # Window keys sort in time order.
    return start is not None and end is not None and start <= partition <= end


def pending_runs(instance: dg.DagsterInstance) -> Sequence[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(statuses=PENDING_STATUSES), limit=MAX_PENDING_RUNS)


def merge_chain_pending(runs: Sequence[dg.DagsterRun], provider: str, partition: str) -> bool:
    """A run that will merge ``partition`` is queued or running: a tagged merge-chain run of the window
    (window run, merge run, a job backfill's range), or an asset backfill of ``merged`` covering it (its
    tag is only added once it starts, `mark_merge_chain_run`)."""
    merged = dg.AssetKey([provider, "merged"])
    for run in runs:
        chain = run.tags.get(MERGE_CHAIN_TAG) == provider or (
            run.asset_selection is not None and merged in run.asset_selection
        )
        if chain and _covers(run, partition):
            return True
    return False


def merge_pending_or_done(
    instance: dg.DagsterInstance,
    lake: LakeResource,
    provider: str,
    partition: str,
    required_inputs: Callable[[str], list[str]],
    runs: Sequence[dg.DagsterRun] | None = None,
) -> str | None:
    """Why ``partition`` needs no merge run from the sensor, or None when it does: ``"pending"`` when a
    merge-chain run of the window is queued or running, ``"merged"`` when the inputs' fingerprint equals
    the one recorded by its last merge. ``runs``: the pending runs, when already fetched."""
    if merge_chain_pending(pending_runs(instance) if runs is None else runs, provider, partition):
        return "pending"
    recorded = recorded_fingerprint(lake, provider, partition)
    if recorded is not None and recorded == input_fingerprint(lake, provider, partition, required_inputs):
        return "merged"
    return None


def mark_merge_chain_run(context: dg.AssetExecutionContext, provider: str) -> None:
    """Give a run of the merge chain its tag if it came without: an asset backfill from the Catalog runs
    the implicit asset job, whose run tags no definition can set. Window, merge and job-backfill runs carry
    it from their job. From then on the queue's limit on the tag and the lake sensor see the run."""
    run = context.run
    if run.tags.get(MERGE_CHAIN_TAG) != provider:
        context.instance.add_run_tags(run.run_id, {MERGE_CHAIN_TAG: provider})
        context.log.info(
            "tagged this run %s=%s (a backfill without the job's tags)", MERGE_CHAIN_TAG, provider
        )


def build_lake_sensor(
    provider: str,
    job_name: str,
    required_inputs: Callable[[str], list[str]],
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    max_wait: timedelta = MAX_INPUT_WAIT,
    max_requests: int = MAX_RUN_REQUESTS_PER_TICK,
) -> dg.SensorDefinition:
    """A sensor on ``rawdata/<provider>/sps/``: each new window whose inputs changed since its last merge
    becomes one run of ``job_name`` (merge → delta → sinks); a window the window run merges, or whose
    inputs are those its last merge recorded, is passed over (`merge_pending_or_done`). The cursor is the
    last SPS key dealt with; listing starts after it, so a tick reads only what is new, and it stops before
    a window whose run is still pending, so that window is looked at again once the run is over. ``run_key``
    = the window and its input fingerprint, so a window is merged once per set of inputs however often it
    is seen (and again when an input changes)."""
    prefix = f"rawdata/{provider}/sps/"

    @dg.sensor(
        name=f"{provider}_lake_sensor",
        job_name=job_name,
        minimum_interval_seconds=60,
        default_status=default_status,
        description=(
            f"New {provider} SPS objects in the lake → merge, delta and sinks of each window whose inputs"
            " changed since its last merge (input fingerprint), at most 12 per tick, oldest first; waits up"
            " to 20 minutes for late inputs, then merges with explicit gaps."
        ),
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
        plan, fingerprints = _without_merged_windows(context, lake, plan, provider, required_inputs)
        requests = [
            dg.RunRequest(
                run_key=f"{provider}-merge-{r.partition_key}-{fingerprints[r.partition_key][:12]}",
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
            reason = (
                plan.waiting or f"no new SPS objects under {prefix} whose inputs changed since their merge"
            )
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
    lake: LakeResource,
    plan: SensorPlan,
    provider: str,
    required_inputs: Callable[[str], list[str]],
) -> tuple[SensorPlan, dict[str, str]]:
    """``plan`` without the windows whose inputs are those of their last merge, and the input fingerprint
    of each window kept; cut before the first window whose run is pending."""
    kept: list[MergeRequest] = []
    fingerprints: dict[str, str] = {}
    cursor_before = context.cursor or None
    runs = pending_runs(context.instance) if plan.requests else []
    for request in plan.requests:
        pk = request.partition_key
        why = merge_pending_or_done(context.instance, lake, provider, pk, required_inputs, runs)
        if why == "pending":
            waiting = f"window {pk} has a merge-chain run queued or in progress"
            return replace(plan, requests=tuple(kept), cursor=cursor_before, waiting=waiting), fingerprints
        if why is None:
            kept.append(request)
            fingerprints[pk] = input_fingerprint(lake, provider, pk, required_inputs)
        cursor_before = request.sps_key
    return replace(plan, requests=tuple(kept)), fingerprints


def build_provider_automation(
    provider: str,
    daily_job: str,
    window_job: str,
    merge_job: str,
    merge_inputs: Callable[[str], list[str]],
    running: bool,
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
        description=f"At 23:55 UTC, {daily_job} for the next day (the workload the next day's windows ask).",
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
        description=(
            f"At every 10-minute mark, {window_job} for the window that just started: collectors → merged →"
            " delta → sinks in one run."
        ),
    )
    def window_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # The tick at HH:M0 snapshots the window that starts at HH:M0 (partitions use end_offset=1).
        key = window_key(context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"{provider}-window-{key}", partition_key=key)

    lake_sensor = build_lake_sensor(provider, merge_job, merge_inputs, sensor_status)
    return [workload_schedule, window_schedule], [lake_sensor]
