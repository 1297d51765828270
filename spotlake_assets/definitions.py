"""The code location: every provider of `providers.PROVIDERS` built by the one builder, the shared
monitoring and run-health definitions, and the environment's resources."""

import dagster as dg

from spotlake_assets.batch_launcher.sensors import batch_sensors
from spotlake_assets.environment import resources_for
from spotlake_assets.orchestration.alerts import run_failure_alert
from spotlake_assets.orchestration.monitoring import collector_stats
from spotlake_assets.orchestration.provider import build_provider
from spotlake_assets.providers import PROVIDERS
from spotlake_assets.settings import environment_name


def build_definitions() -> dg.Definitions:
    # Automation starts RUNNING where the platform runs for real; locally it waits for the operator.
    running = environment_name() != "local"
    providers = [build_provider(spec, running) for spec in PROVIDERS]
    # Only the daily history compaction uses an automation condition (on_cron); its sensor follows `running`.
    compaction = dg.AutomationConditionSensorDefinition(
        "history_compaction_sensor",
        target=dg.AssetSelection.key_prefixes(["history_daily"]),
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
    )
    # Locally every run worker is on this host, so one whose process is gone can be proven dead and reaped
    # (freeing its pool slots); in production run monitoring asks the Batch launcher instead.
    run_health = [] if running else _dead_run_sensors()
    return dg.Definitions(
        assets=[*(a for p in providers for a in p.assets), collector_stats],
        asset_checks=[c for p in providers for c in p.asset_checks],
        jobs=[j for p in providers for j in p.jobs],
        schedules=[s for p in providers for s in p.schedules],
        sensors=[
            *(s for p in providers for s in p.sensors),
            compaction,
            run_failure_alert,
            *batch_sensors,
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
