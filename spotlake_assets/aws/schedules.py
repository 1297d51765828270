"""AWS jobs, schedules, the lake sensor and the freshness check.

Automation, one way for every provider: the schedules run the collectors (the day's workload at 23:55 UTC for
the next day; SPS, IF and spot price at every 10-minute mark for the window that just started); the lake
sensor sees each new raw SPS object and runs merge → delta → sinks for that window. Every tick carries a
`run_key`, so a restarted daemon never launches a day or a window twice.
"""

import dagster as dg

from spotlake_assets.aws.assets import IF, MERGED, ONDEMAND, SPOT_PRICE, SPS, WORKLOAD
from spotlake_assets.aws.constants import PROVIDER
from spotlake_assets.domain.windows import capacity_for_window, day_key_of_window
from spotlake_assets.orchestration.automation import build_provider_automation
from spotlake_assets.orchestration.partitions import collection_partitions, workload_partitions
from spotlake_assets.storage import keys

MERGE_CHAIN = dg.AssetSelection.assets(MERGED) | dg.AssetSelection.assets(MERGED).downstream()

aws_daily_job = dg.define_asset_job(
    "aws_daily_job",
    selection=dg.AssetSelection.assets(WORKLOAD, ONDEMAND),
    partitions_def=workload_partitions,
    description="The next day's AWS SPS workload and the day's on-demand prices.",
)

aws_collect_job = dg.define_asset_job(
    "aws_collect_job",
    selection=dg.AssetSelection.assets(SPS, IF, SPOT_PRICE),
    partitions_def=collection_partitions,
    description="The collectors of one 10-minute window (the schedule runs it; the lake sensor follows).",
)

aws_merge_job = dg.define_asset_job(
    "aws_merge_job",
    selection=MERGE_CHAIN,
    partitions_def=collection_partitions,
    tags={"spotlake/merge-chain": PROVIDER},
    description="Merge → delta → sinks of one window, from what the lake holds (sensor-driven).",
)

aws_window_job = dg.define_asset_job(
    "aws_window_job",
    selection=dg.AssetSelection.assets(SPS, IF, SPOT_PRICE) | MERGE_CHAIN,
    partitions_def=collection_partitions,
    tags={"spotlake/merge-chain": PROVIDER},
    description="The main job: one 10-minute AWS window end to end, collectors → merged → delta → sinks.",
)


def merge_inputs(partition_key: str) -> list[str]:
    """What the merge of a window reads besides its SPS object."""
    day = day_key_of_window(partition_key)
    return [
        keys.interruption_frequency_key(PROVIDER, partition_key),
        keys.spot_price_key(PROVIDER, partition_key),
        keys.ondemand_price_key(PROVIDER, day),
        keys.zones_key(PROVIDER, day),
    ]


def sps_object(partition_key: str) -> str:
    return keys.sps_key(PROVIDER, partition_key, capacity_for_window(partition_key))


def aws_automation(running: bool) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """Schedules and the lake sensor; ``running`` makes them start RUNNING (prod/test), else STOPPED."""
    return build_provider_automation(
        PROVIDER, aws_daily_job.name, aws_collect_job.name, aws_merge_job.name, merge_inputs, running
    )


aws_jobs = [aws_daily_job, aws_collect_job, aws_merge_job, aws_window_job]
