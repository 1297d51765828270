"""The code location: every provider of `providers.PROVIDERS` built by the one builder, the shared
monitoring and run-health definitions, and the environment's resources."""

import dagster as dg

from spotlake_assets.aws_single.definitions import definitions as single_account_definitions
from spotlake_assets.batch_launcher.sensors import batch_sensors
from spotlake_assets.environment import resources_for
from spotlake_assets.legacy.assets import legacy_assets, legacy_jobs
from spotlake_assets.orchestration.alerts import build_run_failure_alert
from spotlake_assets.orchestration.monitoring import collector_stats
from spotlake_assets.orchestration.provider import build_provider
from spotlake_assets.providers import PROVIDERS
from spotlake_assets.settings import environment_name


def build_definitions() -> dg.Definitions:
    # Automation starts RUNNING where the platform runs for real; locally it waits for the operator.
    running = environment_name() != "local"
    providers = [build_provider(spec, running) for spec in PROVIDERS]
    single = single_account_definitions(running)
    # Only the daily history compaction uses an automation condition (on_cron); its sensor follows `running`.
    compaction = dg.AutomationConditionSensorDefinition(
        "history_compaction_sensor",
        target=dg.AssetSelection.assets(*(dg.AssetKey([spec.name, "history_daily"]) for spec in PROVIDERS)),
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description="At 00:30 UTC compacts each provider's closed day of history (<p>/history_daily).",
    )
    # Locally every run worker is on this host, so one whose process is gone can be proven dead and reaped
    # (freeing its pool slots); in production run monitoring asks the Batch launcher, helped by its sensors.
    run_health = [*batch_sensors] if running else _dead_run_sensors()
    return dg.Definitions(
        assets=[*(a for p in providers for a in p.assets), collector_stats, *legacy_assets, *single.assets],
        asset_checks=[c for p in providers for c in p.asset_checks],
        jobs=[*(j for p in providers for j in p.jobs), *legacy_jobs, *single.jobs],
        schedules=[*(s for p in providers for s in p.schedules), *single.schedules],
        sensors=[
            *(s for p in providers for s in p.sensors),
            compaction,
            build_run_failure_alert(running),
            *run_health,
        ],
        resources=resources_for(),
        # One process per run: steps share the process's memory and imports, and a run is one Batch container.
        executor=dg.in_process_executor,
    )


def _dead_run_sensors() -> list[dg.SensorDefinition]:
    # Imported only where it is used: run_health pulls in Dagster's SQLite run storage (and alembic), about
    # 0.4 CPU-s that every production run worker would pay for a sensor it never has.
    from spotlake_assets.orchestration.run_health import build_dead_run_sensor

    return [build_dead_run_sensor()]


@dg.definitions
def defs() -> dg.Definitions:
    # Lazy: the environment is read when Dagster loads the location, never at import time.
    return build_definitions()
