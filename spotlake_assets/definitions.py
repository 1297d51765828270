"""The code location: every provider's assets, jobs, schedules and sensors, with its resources."""

import os

import dagster as dg

from spotlake_assets.aws.assets import aws_assets
from spotlake_assets.aws.schedules import aws_automation, aws_jobs
from spotlake_assets.batch_launcher.sensors import batch_sensors
from spotlake_assets.core.alerts import run_failure_alert, slack_resource
from spotlake_assets.core.freshness import build_delta_freshness
from spotlake_assets.environment import environment_name, resources_for
from spotlake_assets.monitoring.assets import collector_stats


def build_definitions() -> dg.Definitions:
    # Automation starts RUNNING where the platform runs for real; locally it waits for the operator.
    running = environment_name() != "local"
    schedules, sensors = aws_automation(running)
    freshness_check, freshness_schedule = build_delta_freshness("aws", running)
    return dg.Definitions(
        assets=[*aws_assets, collector_stats],
        asset_checks=[freshness_check],
        jobs=aws_jobs,
        schedules=[*schedules, freshness_schedule],
        sensors=[*sensors, run_failure_alert, *batch_sensors],
        resources={**resources_for(), "slack": slack_resource(os.environ)},
        # One process per run: steps share the process's memory and imports, and a run is one Batch container.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    # Lazy: the environment is read when Dagster loads the location, never at import time.
    return build_definitions()
