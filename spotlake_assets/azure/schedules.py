"""Azure jobs, schedules and the lake sensor — the same automation as AWS (see `aws.schedules`): schedules
run the collectors, the lake sensor runs merge → delta → sinks for each new SPS object. Every tick names its
partition and a run_key, so a restarted daemon never launches the same day or window twice."""

import dagster as dg

from spotlake_assets.azure.assets import IF, MERGED, PRICE, SPS, WORKLOAD
from spotlake_assets.azure.constants import PROVIDER
from spotlake_assets.orchestration.automation import MERGE_CHAIN_TAG, build_provider_automation
from spotlake_assets.orchestration.partitions import collection_partitions, workload_partitions
from spotlake_assets.storage import keys

MERGE_CHAIN = dg.AssetSelection.assets(MERGED) | dg.AssetSelection.assets(MERGED).downstream()

azure_daily_job = dg.define_asset_job(
    "azure_daily_job",
    selection=dg.AssetSelection.assets(WORKLOAD),
    partitions_def=workload_partitions,
    description="The next day's Azure SPS request plan (universe, learned exclusions, calling locations).",
)

azure_collect_job = dg.define_asset_job(
    "azure_collect_job",
    selection=dg.AssetSelection.assets(SPS, IF, PRICE),
    partitions_def=collection_partitions,
    description="The Azure collectors of one window (the schedule runs it; the lake sensor follows).",
)

azure_merge_job = dg.define_asset_job(
    "azure_merge_job",
    selection=MERGE_CHAIN,
    partitions_def=collection_partitions,
    tags={MERGE_CHAIN_TAG: PROVIDER},
    description="Azure merge → delta → sinks of one window, from what the lake holds (sensor-driven).",
)

azure_window_job = dg.define_asset_job(
    "azure_window_job",
    selection=dg.AssetSelection.assets(SPS, IF, PRICE) | MERGE_CHAIN,
    partitions_def=collection_partitions,
    tags={MERGE_CHAIN_TAG: PROVIDER},
    description="One 10-minute Azure window end to end: collectors → merged → delta → sinks.",
)


def merge_inputs(partition_key: str) -> list[str]:
    """What the Azure merge of a window reads besides its SPS object."""
    return [
        keys.interruption_frequency_key(PROVIDER, partition_key),
        keys.spot_price_key(PROVIDER, partition_key),
    ]


def azure_automation(running: bool) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """Schedules and the lake sensor; ``running`` makes them start RUNNING (prod/test), else STOPPED."""
    return build_provider_automation(
        PROVIDER, azure_daily_job.name, azure_collect_job.name, azure_merge_job.name, merge_inputs, running
    )


azure_jobs = [azure_daily_job, azure_collect_job, azure_merge_job, azure_window_job]
