"""Azure interruption frequency: Resource Graph `spotresources` eviction rates → one IF score per (tier, size,
region), buckets per docs/data-contracts.md#azure-columns (0-5 → 3.0 … 20+ → 1.0). SKU names keep Azure's
spelling, which is sometimes lower case (``standard_nc24ads_a100_v4``): the tier is recognised case-
insensitively here and the size is matched case-insensitively by the merge, which publishes the price list's /
SPS's spelling."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from spotlake_assets.azure.collectors.prices import is_sovereign, split_sku
from spotlake_assets.azure.constants import IF_BUCKETS, IF_COLUMNS
from spotlake_assets.azure.models import AzureLogin, EvictionRate, MalformedResponse
from spotlake_assets.azure.resources import AzureApi

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvictionCollection:
    frame: pd.DataFrame
    api_calls: int
    rows: int
    dropped: dict[str, int]


def eviction_frame(rows: Sequence[EvictionRate]) -> tuple[pd.DataFrame, dict[str, int]]:
    """``IF_COLUMNS`` sorted by key, and drop counts per reason. An unknown bucket label raises
    `MalformedResponse` naming it and its row: a changed vocabulary upstream must be seen, not silently
    turned into missing scores. Rows differing only by the case of their names are one pair (the first
    spelling is kept, the others counted as ``duplicate``)."""
    for position, row in enumerate(rows):
        if row.eviction_rate not in IF_BUCKETS:
            raise MalformedResponse(
                "resource graph eviction rates",
                "evictionRate",
                row.eviction_rate,
                f"{position}: {row.location}/{row.sku_name}",
                f"unknown bucket label (known: {list(IF_BUCKETS)})",
            )
    dropped: dict[str, int] = {}
    kept: dict[tuple[str, str, str], float] = {}
    folded: set[tuple[str, str, str]] = set()
    for row in rows:
        if is_sovereign(row.location, ""):
            dropped["sovereign_region"] = dropped.get("sovereign_region", 0) + 1
            continue
        parts = split_sku(row.sku_name)
        if parts is None:
            dropped["sku_without_tier"] = dropped.get("sku_without_tier", 0) + 1
            continue
        key = (parts[0], parts[1], row.location)
        fold = (parts[0], parts[1].casefold(), row.location.casefold())
        if fold in folded:
            dropped["duplicate"] = dropped.get("duplicate", 0) + 1
            continue
        folded.add(fold)
        kept[key] = IF_BUCKETS[row.eviction_rate]
    ordered = sorted(kept)
    frame = pd.DataFrame(
        {
            "InstanceTier": pd.Series([k[0] for k in ordered], dtype=object),
            "InstanceType": pd.Series([k[1] for k in ordered], dtype=object),
            "Region": pd.Series([k[2] for k in ordered], dtype=object),
            "IF": pd.Series([kept[k] for k in ordered], dtype="float64"),
        },
        columns=list(IF_COLUMNS),
    )
    return frame, dropped


def collect_interruption_frequency(
    api: AzureApi, login: AzureLogin, window_start: datetime
) -> EvictionCollection:
    rates = api.eviction_rates(login, window_start)
    frame, dropped = eviction_frame(rates.items)
    log.info(
        "eviction rates: %s rows from %s (%s pages); dropped %s",
        len(frame),
        len(rates.items),
        rates.pages,
        dropped,
    )
    return EvictionCollection(frame=frame, api_calls=rates.pages, rows=len(rates.items), dropped=dropped)
