"""The Azure lake frames, declared once (docs/data-contracts.md#azure-columns): read and write validation
and the column schema every Azure frame asset publishes come from these `FrameType`s.

Raw inputs are typed by dtype and nulls only: their values were validated by the collectors' parsers before
they were stored, and a window's score range is the merged asset's blocking ``scores_in_range`` check (its
metadata names the offenders), so damaged input fails a check, not a read. The frames computed here (merged,
delta) carry their ranges too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotlake_assets.domain.columns import CEASED_COLUMN
from spotlake_assets.storage.frame_types import (
    FrameType,
    boolean,
    decimal,
    integer,
    items,
    number,
    text,
    timestamp,
)

if TYPE_CHECKING:
    import pandas as pd


def with_score_capacity(frame: pd.DataFrame) -> pd.DataFrame:
    """`domain.scores.with_score_capacity`, imported on first read: loading the definitions skips pandas."""
    from spotlake_assets.domain.scores import with_score_capacity as fill

    return fill(frame)


_TIER = text("InstanceTier", "Standard or Basic")
_TYPE = text("InstanceType", "VM size, e.g. Standard_D2s_v5")
_REGION = text("Region", "region code, e.g. eastus")
_REGION_NAME = text("RegionName", "display name, e.g. East US")
_ZONE = text("AvailabilityZone", "1, 2, 3; Single for a region without zones; N/A for a region-level row")

WORKLOAD = FrameType(
    "azure/workload",
    (
        integer("RequestId", "the SPS request's id, unique in the day", low=0),
        items("Regions", "the locations one request scores (at most 8)"),
        items("Sizes", "the sizes one request scores (at most 5)"),
        integer("Pairs", "planned (size, location) pairs the request covers", low=0),
        integer("Batch", "checkpoint batch", low=0),
    ),
    "One row per Spot Placement Score request of the day.",
)
UNIVERSE = FrameType(
    "azure/workload_universe",
    (_TIER, _TYPE, _REGION, _REGION_NAME, boolean("Planned", "the pair is in the day's request plan")),
    "The day's sellable (tier, size, region) universe from the Retail Prices API.",
)
SPS = FrameType(
    "azure/sps",
    (
        number("DesiredCount", "the window's desired count"),
        _REGION,
        _REGION_NAME,
        _TIER,
        _TYPE,
        _ZONE,
        number("Score", "High 3, Medium 2, Low 1"),
        number("T3", "raw, implied by Score"),
        number("T2", "raw, implied by Score"),
    ),
    "The window's spot placement scores, one row per (tier, size, region, zone).",
)
INTERRUPTION_FREQUENCY = FrameType(
    "azure/interruption_frequency",
    (_TIER, _TYPE, _REGION, number("IF", "SpotLake's IF score (3.0 best … 1.0)")),
    "Resource Graph eviction-rate buckets per (tier, size, region).",
)
PRICE = FrameType(
    "azure/price",
    (
        _TIER,
        _TYPE,
        _REGION,
        _REGION_NAME,
        number("OndemandPrice", "USD per hour; -1: unknown"),
        number("SpotPrice", "USD per hour; -1: unknown"),
        number("Savings", "int(100 - 100*Spot/OnDemand); -1: unknown"),
    ),
    "Retail spot and on-demand prices per (tier, size, region).",
)
MERGED = FrameType(
    "azure/merged",
    (
        _TIER,
        _TYPE,
        _REGION,
        _REGION_NAME,
        _ZONE,
        integer(
            "DesiredCount", "the window's desired count on rows scored this window; -1 elsewhere", low=-1
        ),
        integer("Score", "single-node score (carried between count-1 windows); -1: none", low=-1, high=3),
        integer(
            "ScoreCount",
            "DesiredCount the published Score was measured at (1: single-node); -1: no score. Not a feature",
            low=-1,
        ),
        integer("T3", "T3 ladder: the largest count scoring High", low=0),
        integer("T2", "T2 ladder: the largest count scoring Medium or better", low=0),
        decimal("IF", "interruption frequency score; -1: unknown", low=-1, high=3),
        decimal("OndemandPrice", "USD per hour; -1: unknown", low=-1),
        decimal("SpotPrice", "USD per hour; -1: unknown", low=-1),
        integer("Savings", "int(100 - 100*Spot/OnDemand); -1: unknown"),
        timestamp("Time", "the window start (UTC)"),
    ),
    "The window's merged snapshot, unique on (InstanceTier, InstanceType, Region, AvailabilityZone).",
    legacy=with_score_capacity,
)
DELTA = MERGED.with_columns(
    "azure/delta",
    (boolean(CEASED_COLUMN, "the pool left the snapshot; its features are zeroed"),),
    "Rows new or changed since the previous window, plus ceased rows (a merged frame plus Ceased).",
)

# Each frame asset's declared frame, by its name under `azure/` (`ProviderSpec.frames`). The history files
# hold delta rows (strings as plain strings, times in ms) and `latest` the merged snapshot as JSON records.
FRAMES: dict[str, FrameType] = {
    "workload": WORKLOAD,
    "sps": SPS,
    "interruption_frequency": INTERRUPTION_FREQUENCY,
    "price": PRICE,
    "merged": MERGED,
    "delta": DELTA,
    "history": DELTA,
    "history_daily": DELTA,
    "latest": MERGED,
}
