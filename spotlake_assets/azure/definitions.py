"""Azure in the provider contract (`orchestration/provider.py`): its assets, merge step, columns and
resources. `build_provider` makes its merged asset, delta and sinks, jobs, schedules, lake sensor and
freshness check."""

from __future__ import annotations

from spotlake_assets.azure.assets import (
    MERGE,
    azure_interruption_frequency,
    azure_price,
    azure_sps,
    azure_workload,
)
from spotlake_assets.azure.constants import FEATURE_COLUMNS, KEY_COLUMNS, PROVIDER
from spotlake_assets.azure.environment import azure_resources
from spotlake_assets.azure.frames import FRAMES
from spotlake_assets.orchestration.provider import ProviderDefinitions, ProviderSpec, build_provider

PROVIDER_SPEC = ProviderSpec(
    name=PROVIDER,
    title="Azure",
    key_columns=KEY_COLUMNS,
    feature_columns=FEATURE_COLUMNS,
    api_resource_key="azure_api",
    daily=(azure_workload,),
    collectors=(azure_sps, azure_interruption_frequency, azure_price),
    merge=MERGE,
    frames=FRAMES,
    resources=azure_resources,
)


def definitions(running: bool = False) -> ProviderDefinitions:
    """Azure's definitions; ``running``: schedules and sensors start RUNNING (prod/test), else STOPPED."""
    return build_provider(PROVIDER_SPEC, running)


# Every Azure asset, workload to sinks: what `dg.materialize` needs for a whole window (tests, benchmarks).
azure_assets = definitions().assets
