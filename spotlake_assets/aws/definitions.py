"""AWS in the provider contract (`orchestration/provider.py`): its assets, merge step, columns and resources.
`build_provider` makes its merged asset, delta and sinks, jobs, schedules, lake sensor and freshness check."""

from __future__ import annotations

from spotlake_assets.aws.assets import (
    MERGE,
    aws_interruption_frequency,
    aws_ondemand_price,
    aws_spot_price,
    aws_sps,
    aws_workload,
)
from spotlake_assets.aws.constants import FEATURE_COLUMNS, KEY_COLUMNS, PROVIDER
from spotlake_assets.aws.environment import aws_resources
from spotlake_assets.aws.frames import FRAMES
from spotlake_assets.orchestration.provider import ProviderDefinitions, ProviderSpec, build_provider

PROVIDER_SPEC = ProviderSpec(
    name=PROVIDER,
    title="AWS",
    key_columns=KEY_COLUMNS,
    feature_columns=FEATURE_COLUMNS,
    api_resource_key="aws_api",
    daily=(aws_workload, aws_ondemand_price),
    collectors=(aws_sps, aws_interruption_frequency, aws_spot_price),
    merge=MERGE,
    frames=FRAMES,
    resources=aws_resources,
)


def definitions(running: bool = False) -> ProviderDefinitions:
    """AWS's definitions; ``running``: schedules and sensors start RUNNING (prod/test), else STOPPED."""
    return build_provider(PROVIDER_SPEC, running)


# Every AWS asset, workload to sinks: what `dg.materialize` needs for a whole window (tests, benchmarks).
aws_assets = definitions().assets
