"""`ops/collector_stats`: the day's duration and peak RSS of every collector and merge, from the event log."""

from datetime import datetime
from typing import Any

import dagster as dg

from spotlake_assets.domain.stats import RunFigure, markdown_report, summarise
from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.storage.frames import write_frame
from spotlake_assets.storage.lake import LakeResource

MONITORED = tuple(
    dg.AssetKey(["aws", name])
    for name in (
        "workload",
        "sps",
        "interruption_frequency",
        "spot_price",
        "ondemand_price",
        "merged",
        "delta",
    )
)
# end_offset=1: the day in progress can be summarised too (a partial day, recomputed when it closes).
stats_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC", end_offset=1)


def _figures(
    instance: dg.DagsterInstance, key: dg.AssetKey, start: datetime, end: datetime
) -> list[RunFigure]:
    figures: list[RunFigure] = []
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, after_timestamp=start.timestamp(), before_timestamp=end.timestamp()
            ),
            limit=500,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            materialization = record.asset_materialization
            if materialization is None:
                continue
            meta: dict[str, Any] = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            if "duration_s" in meta:
                figures.append(
                    RunFigure(
                        key.to_user_string(),
                        materialization.partition,
                        float(meta["duration_s"]),
                        float(meta.get("peak_rss_mib", 0.0)),
                        int(meta.get("rows", 0)),
                    )
                )
        if not page.has_more:
            return figures
        cursor = page.cursor


@dg.asset(
    key=["ops", "collector_stats"],
    group_name="ops",
    partitions_def=stats_partitions,
    kinds={"python", "parquet"},
    description=(
        "Per day and asset: runs, mean/p95/max duration and peak RSS of the collectors and the merge, read "
        "from Dagster's event log, with a Markdown chart. Idempotent: recomputed whole for the day, "
        "deterministic key."
    ),
)
def collector_stats(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    watch = Stopwatch()
    window = context.partition_time_window
    start, end = window.start, window.end
    figures = [f for key in MONITORED for f in _figures(context.instance, key, start, end)]
    summary = summarise(figures)
    key = f"ops/collector_stats/{start:%Y/%m/%d}.parquet"
    write_frame(lake, key, summary)
    metadata: dict[str, Any] = {
        "runs": len(figures),
        "duration_s": watch.seconds(),
        "location": dg.MetadataValue.path(lake.location(key)),
        "report": dg.MetadataValue.md(markdown_report(summary, figures)),
    }
    for asset, p95, rss in zip(
        summary["asset"], summary["duration_p95_s"], summary["peak_rss_max_mib"], strict=True
    ):
        # Numeric entries per asset: the UI plots them across days.
        metadata[f"{asset}_p95_s"] = float(p95)
        metadata[f"{asset}_peak_rss_mib"] = float(rss)
    return dg.MaterializeResult(metadata=metadata)
