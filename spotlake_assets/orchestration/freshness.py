"""Freshness of each provider's delta: the product is stale when its newest window is over 30 minutes old.

Measured on the newest materialized partition rather than the last write, so a backfill of old windows does
not make a stalled collector look healthy.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from spotlake_assets.domain.windows import window_start

MAX_DELTA_AGE = timedelta(minutes=30)


def delta_age(newest_partition: str | None, now: datetime) -> timedelta | None:
    return None if newest_partition is None else now - window_start(newest_partition)


def build_delta_freshness(
    provider: str, running: bool
) -> tuple[dg.AssetChecksDefinition, dg.ScheduleDefinition]:
    """The check, and a schedule evaluating it every 10 minutes (5 past each window start)."""
    delta = dg.AssetKey([provider, "delta"])

    @dg.asset_check(
        asset=delta,
        name="delta_is_fresh",
        description=f"Fails when the newest {provider} delta window started over {MAX_DELTA_AGE} ago.",
    )
    def delta_is_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        materialized = context.instance.get_materialized_partitions(delta)
        newest = max(materialized) if materialized else None
        age = delta_age(newest, datetime.now(UTC))
        return dg.AssetCheckResult(
            passed=age is not None and age <= MAX_DELTA_AGE,
            metadata={
                "newest_window": newest or "(none)",
                "age_minutes": round(age.total_seconds() / 60, 1) if age is not None else -1.0,
                "max_age_minutes": MAX_DELTA_AGE.total_seconds() / 60,
            },
        )

    job = dg.define_asset_job(f"{provider}_freshness_job", selection=dg.AssetSelection.checks(delta_is_fresh))
    schedule = dg.ScheduleDefinition(
        name=f"{provider}_freshness_schedule",
        job=job,
        cron_schedule="5-59/10 * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
    )
    return delta_is_fresh, schedule
