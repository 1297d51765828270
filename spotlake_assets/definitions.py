"""The code location: every provider's assets, jobs and schedules, with the environment's resources."""

from __future__ import annotations

import dagster as dg

from spotlake_assets.aws.assets import aws_assets
from spotlake_assets.aws.schedules import aws_jobs, aws_schedules
from spotlake_assets.environment import resources_for


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=aws_assets,
        jobs=aws_jobs,
        schedules=aws_schedules,
        resources=resources_for(),
    )


@dg.definitions
def defs() -> dg.Definitions:
    # Lazy: the environment is read when Dagster loads the location, never at import time.
    return build_definitions()
