"""`ops/collector_stats`: one collected day of every collector and merge (AWS and Azure) — duration and peak
RSS per asset, changes, API calls, credentials and the Azure budget — from the event log, with plots.

A day's figures are the materializations of that day's *partitions* (its 144 windows, and the daily assets
keyed by the day), whenever they ran: a backfill or the demo collecting a past day counts for the day it
collected, not the day it happened to run."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import dagster as dg

from spotlake_assets.domain.windows import DAY_KEY_FORMAT, WINDOW, window_key, window_start
from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.orchestration.partitions import PARTITIONS_START_DAY
from spotlake_assets.orchestration.plots import duration_and_rss, lines_over_day
from spotlake_assets.storage.frames import write_frame
from spotlake_assets.storage.lake import LakeResource

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd

    from spotlake_assets.domain.stats import RunFigure

DAILY_ASSETS = {"aws": ("workload", "ondemand_price"), "azure": ("workload",)}
WINDOW_ASSETS = {
    "aws": ("sps", "interruption_frequency", "spot_price", "merged", "delta"),
    "azure": ("sps", "interruption_frequency", "price", "merged", "delta"),
}
MONITORED = tuple(
    dg.AssetKey([provider, name])
    for provider in ("aws", "azure")
    for name in (*DAILY_ASSETS[provider], *WINDOW_ASSETS[provider])
)
WINDOWS_PER_DAY = int(24 * 60 // (WINDOW.total_seconds() // 60))
# end_offset=1: the day in progress can be summarised too (a partial day, recomputed when it closes).
stats_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START_DAY, fmt=DAY_KEY_FORMAT, timezone="UTC", end_offset=1
)


@dataclass(frozen=True)
class Materialized:
    """One materialization of a monitored asset: its partition and plain metadata values."""

    asset: str
    partition: str
    metadata: dict[str, Any]


def day_partitions(day: datetime, key: dg.AssetKey) -> list[str]:
    """The partitions of ``key`` belonging to ``day``: the day itself for a daily asset, else its windows."""
    provider, name = key.path[0], key.path[-1]
    if name in DAILY_ASSETS.get(provider, ()):
        return [day.strftime(DAY_KEY_FORMAT)]
    return [window_key(day + i * WINDOW) for i in range(WINDOWS_PER_DAY)]


def _materialized(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]
) -> list[Materialized]:
    found: list[Materialized] = []
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions),
            limit=500,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            materialization = record.asset_materialization
            if materialization is None or materialization.partition is None:
                continue
            meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            found.append(Materialized(key.to_user_string(), materialization.partition, meta))
        if not page.has_more:
            return found
        cursor = page.cursor


def run_figures(materialized: Iterable[Materialized]) -> "list[RunFigure]":
    from spotlake_assets.domain.stats import RunFigure

    return [
        RunFigure(
            m.asset,
            m.partition,
            float(m.metadata["duration_s"]),
            float(m.metadata.get("peak_rss_mib", 0.0)),
            int(m.metadata.get("rows", 0)),
        )
        for m in materialized
        if "duration_s" in m.metadata
    ]


def newest_per_partition(materialized: Sequence[Materialized]) -> list[Materialized]:
    """The last materialization of each (asset, partition): a rerun replaces what a window counted."""
    newest: dict[tuple[str, str], Materialized] = {}
    for m in materialized:  # ascending: later ones win
        newest[(m.asset, m.partition)] = m
    return list(newest.values())


def window_series(
    materialized: Sequence[Materialized], assets: Sequence[str], fields: Sequence[str]
) -> "pd.Series":
    """Per window start: the sum of ``fields`` over the newest materialization of each of ``assets``."""
    import pandas as pd

    points: dict[datetime, float] = {}
    for m in newest_per_partition(materialized):
        if m.asset not in assets or len(m.partition) <= len("YYYY-MM-DD"):
            continue
        value = sum(float(m.metadata.get(f) or 0) for f in fields)
        start = window_start(m.partition)
        points[start] = points.get(start, 0.0) + value
    return pd.Series(points, dtype="float64").sort_index()


def per_hour(series: "pd.Series") -> "pd.Series":
    """A per-window series summed per UTC hour, labelled "HH"."""
    import pandas as pd

    if series.empty:
        return series
    hours = pd.Series(series.to_numpy(), index=[f"{t:%H}" for t in series.index])
    return hours.groupby(level=0).sum()


def by_time(series: "pd.Series") -> "pd.Series":
    import pandas as pd

    return pd.Series(series.to_numpy(), index=[f"{t:%H:%M}" for t in series.index], dtype="float64")


def day_plots(materialized: Sequence[Materialized], summary: "pd.DataFrame", day: str) -> dict[str, Any]:
    """The day's plots: duration/RSS per asset, changes per hour, API calls and credentials, Azure budget."""
    providers = ("aws", "azure")
    changes = {
        p: per_hour(window_series(materialized, [f"{p}/delta"], ["changed_rows", "removed_rows"]))
        for p in providers
    }
    calls = {
        p: per_hour(window_series(materialized, [f"{p}/{a}" for a in WINDOW_ASSETS[p]], ["api_calls"]))
        for p in providers
    }
    credentials = {
        "aws credentials used": by_time(window_series(materialized, ["aws/sps"], ["credentials_used"])),
        "azure endpoints (subscription, location)": by_time(
            window_series(materialized, ["azure/sps"], ["budget_endpoints"])
        ),
    }
    budget = {
        "calls in the last 62 min": by_time(window_series(materialized, ["azure/sps"], ["budget_used"])),
        "calls left": by_time(window_series(materialized, ["azure/sps"], ["budget_calls_left"])),
    }
    return {
        "plot_duration_rss": duration_and_rss(summary, f"{day}: duration and peak RSS per asset"),
        "plot_changes_per_hour": lines_over_day(
            changes, f"{day}: changed + ceased pools per hour", "rows", kind="bar"
        ),
        "plot_api_calls_per_hour": lines_over_day(calls, f"{day}: API calls per hour", "calls", kind="bar"),
        "plot_credentials": lines_over_day(credentials, f"{day}: credentials per window", "used"),
        "plot_azure_budget": lines_over_day(budget, f"{day}: Azure SPS call budget", "calls"),
    }


@dg.asset(
    key=["ops", "collector_stats"],
    group_name="ops",
    partitions_def=stats_partitions,
    kinds={"python", "parquet"},
    description=(
        "Per collected day (its windows' partitions, whenever they ran) and asset, AWS and Azure: runs, "
        "p95/max duration and peak RSS of the collectors and the merge, read from Dagster's event log; a "
        "narrow table, plots of duration/RSS, changes per hour, API calls, credentials and the Azure budget. "
        "Idempotent: recomputed whole for the day, deterministic key."
    ),
)
def collector_stats(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from spotlake_assets.domain.stats import markdown_report, summarise

    watch = Stopwatch()
    start = context.partition_time_window.start
    materialized = [
        m for key in MONITORED for m in _materialized(context.instance, key, day_partitions(start, key))
    ]
    figures = run_figures(materialized)
    summary = summarise(figures)
    key = f"ops/collector_stats/{start:%Y/%m/%d}.parquet"
    write_frame(lake, key, summary)
    metadata: dict[str, Any] = {
        "runs": len(figures),
        "windows": len({m.partition for m in materialized if m.asset.endswith("/delta")}),
        "duration_s": watch.seconds(),
        "location": dg.MetadataValue.path(lake.location(key)),
        "report": dg.MetadataValue.md(markdown_report(summary)),
    }
    for asset, p95, rss in zip(
        summary["asset"], summary["duration_p95_s"], summary["peak_rss_max_mib"], strict=True
    ):
        # Numeric entries per asset: the UI plots them across days.
        metadata[f"{asset}_p95_s"] = float(p95)
        metadata[f"{asset}_peak_rss_mib"] = float(rss)
    metadata.update(day_plots(materialized, summary, start.strftime(DAY_KEY_FORMAT)))
    return dg.MaterializeResult(metadata=metadata)
