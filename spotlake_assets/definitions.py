"""The code location: every provider's assets, jobs, schedules and sensors, with its resources."""

import dagster as dg

from spotlake_assets.aws.assets import aws_assets
from spotlake_assets.aws.schedules import aws_automation, aws_jobs
from spotlake_assets.azure.assets import azure_assets
from spotlake_assets.azure.schedules import azure_automation, azure_jobs
from spotlake_assets.batch_launcher.sensors import batch_sensors
from spotlake_assets.environment import resources_for
from spotlake_assets.orchestration.alerts import run_failure_alert
from spotlake_assets.orchestration.freshness import build_delta_freshness
from spotlake_assets.orchestration.monitoring import collector_stats
from spotlake_assets.orchestration.run_health import build_dead_run_sensor
from spotlake_assets.settings import environment_name


def build_definitions() -> dg.Definitions:
    # Automation starts RUNNING where the platform runs for real; locally it waits for the operator.
    running = environment_name() != "local"
    aws_schedules, aws_sensors = aws_automation(running)
    azure_schedules, azure_sensors = azure_automation(running)
    freshness = [build_delta_freshness(provider, running) for provider in ("aws", "azure")]
    # Only the daily history compaction uses an automation condition (on_cron); its sensor follows `running`.
    compaction = dg.AutomationConditionSensorDefinition(
        "history_compaction_sensor",
        target=dg.AssetSelection.key_prefixes(["history_daily"]),
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
    )
    # Locally every run worker is on this host, so one whose process is gone can be proven dead and reaped
    # (freeing its pool slots); in production run monitoring asks the Batch launcher instead.
    run_health = [] if running else [build_dead_run_sensor()]
    return dg.Definitions(
        assets=[*aws_assets, *azure_assets, collector_stats],
        asset_checks=[check for check, _ in freshness],
        jobs=[*aws_jobs, *azure_jobs],
        schedules=[*aws_schedules, *azure_schedules, *(schedule for _, schedule in freshness)],
        sensors=[*aws_sensors, *azure_sensors, compaction, run_failure_alert, *batch_sensors, *run_health],
        resources=resources_for(),
        # One process per run: steps share the process's memory and imports, and a run is one Batch container.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    # Lazy: the environment is read when Dagster loads the location, never at import time.
    return build_definitions()
