"""Sensors shared by providers: the lake sensor that turns new SPS objects into merge runs, and the
run-failure alert. Schedules stay in each provider's `schedules` module."""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg

from spotlake_assets.core.sensing import plan_merges
from spotlake_assets.lake.resources import LakeResource

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
