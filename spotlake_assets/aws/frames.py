"""The AWS lake frames, declared once (docs/data-contracts.md#aws-columns): read and write validation and
the column schema every AWS frame asset publishes come from these `FrameType`s.

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


_TYPE = text("InstanceType", "EC2 instance type, e.g. m5.large")
_REGION = text("Region", "region code, e.g. us-east-1")
_AZ = text("AZ", "availability-zone id, e.g. use1-az6 (the same in every account)")

WORKLOAD = FrameType(
    "aws/workload",
    (
        integer("QueryId", "the SPS query's id, unique in the day", low=0),
        _TYPE,
        items("Regions", "the regions one SPS query covers (list of region codes)"),
        integer("AZWeight", "the AZs the query's regions hold", low=1),
        integer("Group", "credential group (50 queries each)", low=0),
    ),
    "One row per SPS query of the day.",
)
ZONES = FrameType(
    "aws/zones",
    (_REGION, text("ZoneName", "AZ name in the collecting account"), text("ZoneId", "AZ id")),
    "The day's availability zones (AZ id → region), the workload's by-product.",
)
SPS = FrameType(
    "aws/sps",
    (
        _TYPE,
        _REGION,
        _AZ,
        number("SPS", "spot placement score at TargetCapacity"),
        number("TargetCapacity", "the window's target capacity"),
        number("T3", "raw, implied by SPS (not read by the merge)"),
        number("T2", "raw, implied by SPS (not read by the merge)"),
    ),
    "The window's spot placement scores, one row per (InstanceType, AZ).",
)
INTERRUPTION_FREQUENCY = FrameType(
    "aws/interruption_frequency",
    (_REGION, _TYPE, number("IF", "SpotLake's IF score (3.0 best … 1.0)")),
    "Spot Instance Advisor interruption buckets per (Region, InstanceType).",
)
SPOT_PRICE = FrameType(
    "aws/spot_price",
    (_TYPE, _AZ, number("SpotPrice", "USD per hour")),
    "The newest spot price per (InstanceType, AZ).",
)
ONDEMAND_PRICE = FrameType(
    "aws/ondemand_price",
    (_REGION, _TYPE, number("OndemandPrice", "USD per hour")),
    "Linux on-demand price per (Region, InstanceType).",
)
MERGED = FrameType(
    "aws/merged",
    (
        _TYPE,
        _REGION,
        _AZ,
        integer(
            "SPS",
            "single-node spot placement score (carried between capacity-1 windows); -1: none",
            low=-1,
            high=10,
        ),
        integer(
            "SPSCapacity",
            "TargetCapacity the published SPS was measured at (1: single-node); -1: no score. Not a feature",
            low=-1,
        ),
        integer("T3", "T3 ladder: the largest capacity scoring 3 or more", low=0),
        integer("T2", "T2 ladder: the largest capacity scoring 2 or more", low=0),
        decimal("IF", "interruption frequency score; -1: unknown", low=-1, high=3),
        decimal("OndemandPrice", "USD per hour, 5 decimals; -1: unknown", low=-1),
        decimal("SpotPrice", "USD per hour, 5 decimals; -1: unknown", low=-1),
        integer("Savings", "int(100 - 100*SpotPrice/OndemandPrice); -1: unknown"),
        timestamp("Time", "the window start (UTC)"),
    ),
    "The window's merged snapshot, unique on (InstanceType, Region, AZ).",
    legacy=with_score_capacity,
)
DELTA = MERGED.with_columns(
    "aws/delta",
    (boolean(CEASED_COLUMN, "the pool left the snapshot; its features are zeroed"),),
    "Rows new or changed since the previous window, plus ceased rows (a merged frame plus Ceased).",
)


# Each frame asset's declared frame, by its name under `aws/` (`ProviderSpec.frames`). The history files
# hold delta rows (strings as plain strings, times in ms) and `latest` the merged snapshot as JSON records.
FRAMES: dict[str, FrameType] = {
    "workload": WORKLOAD,
    "ondemand_price": ONDEMAND_PRICE,
    "sps": SPS,
    "interruption_frequency": INTERRUPTION_FREQUENCY,
    "spot_price": SPOT_PRICE,
    "merged": MERGED,
    "delta": DELTA,
    "history": DELTA,
    "history_daily": DELTA,
    "latest": MERGED,
}
