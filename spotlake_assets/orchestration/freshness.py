"""Freshness of each provider's delta: the product is stale when its newest window is over 30 minutes old.

Measured on the newest materialized partition rather than the last write, so a backfill of old windows does
not make a stalled collector look healthy.

The check is evaluated by a sensor, in the daemon, without launching a run: `<p>_freshness_sensor` reads the
newest delta partition from the instance and reports the `delta_is_fresh` evaluation as a runless event
(`dg.SensorResult(asset_events=[dg.AssetCheckEvaluation(...)])`, which Dagster's sensor daemon stores with
`instance.report_runless_asset_event`). A scheduled run per check (the previous design) cost a Batch job
every ten minutes per provider. The asset check stays defined, so the UI lists it and an operator can still
execute it by hand.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from spotlake_assets.domain.windows import window_start

MAX_DELTA_AGE = timedelta(minutes=30)
CHECK_NAME = "delta_is_fresh"
# Every ten minutes, like the windows; the sensor daemon evaluates it in process, no run is launched.
FRESHNESS_INTERVAL_S = 600


def delta_age(newest_partition: str | None, now: datetime) -> timedelta | None:
    return None if newest_partition is None else now - window_start(newest_partition)


def evaluate_freshness(
    instance: dg.DagsterInstance, delta: dg.AssetKey, now: datetime
) -> tuple[bool, dict[str, Any]]:
    """Whether ``delta``'s newest materialized window is fresh at ``now``, and the metadata saying why."""
    materialized = instance.get_materialized_partitions(delta)
    newest = max(materialized) if materialized else None
    age = delta_age(newest, now)
    return age is not None and age <= MAX_DELTA_AGE, {
        "newest_window": newest or "(none)",
        "age_minutes": round(age.total_seconds() / 60, 1) if age is not None else -1.0,
        "max_age_minutes": MAX_DELTA_AGE.total_seconds() / 60,
    }


def build_delta_freshness(
    provider: str, running: bool
) -> tuple[dg.AssetChecksDefinition, dg.SensorDefinition]:
    """The check, and the sensor that evaluates it every 10 minutes without a run."""
    delta = dg.AssetKey([provider, "delta"])

    @dg.asset_check(
        asset=delta,
        name=CHECK_NAME,
        description=(
            f"Fails when the newest {provider} delta window started over {MAX_DELTA_AGE} ago"
            f" (evaluated by {provider}_freshness_sensor, without a run)."
        ),
    )
    def delta_is_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        passed, metadata = evaluate_freshness(context.instance, delta, datetime.now(UTC))
        return dg.AssetCheckResult(passed=passed, metadata=metadata)

    @dg.sensor(
        name=f"{provider}_freshness_sensor",
        minimum_interval_seconds=FRESHNESS_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description=f"Evaluates {provider} delta_is_fresh in the daemon every 10 minutes; launches no run.",
    )
    def freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        passed, metadata = evaluate_freshness(context.instance, delta, datetime.now(UTC))
        evaluation = dg.AssetCheckEvaluation(
            asset_key=delta, check_name=CHECK_NAME, passed=passed, metadata=metadata
        )
        return dg.SensorResult(asset_events=[evaluation])

    return delta_is_fresh, freshness_sensor
