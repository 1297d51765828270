"""Azure prices: Retail Prices API items → one row per (tier, size, region) with the Linux Spot price and its
on-demand twin (docs/data-contracts.md#azure-columns).

Prices keep the precision the API returns (SpotLake does too): no rounding, so a Spot price of 0.002508
stays 0.002508.

Kept: consumption meters priced per hour, Linux (products not named Windows), Spot meters (``"<size> Spot"``)
joined to the on-demand meter of the same region, SKU and base meter name. Dropped, and counted: Windows,
Low Priority, expired meters, sovereign and government regions, SKUs without a tier prefix, on-demand meters
with no Spot twin (not sold as Spot). A Spot meter without an on-demand twin is kept with OndemandPrice -1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from spotlake_assets.azure.constants import (
    MISSING,
    PRICE_COLUMNS,
    SOVEREIGN_LOCATION_PREFIXES,
    SOVEREIGN_REGION_MARKERS,
    SPOT_METER_SUFFIX,
)
from spotlake_assets.azure.merge import savings
from spotlake_assets.azure.models import RetailPrice
from spotlake_assets.azure.resources import AzureApi

log = logging.getLogger(__name__)

TIERS = ("Standard", "Basic")
_TIER_BY_FOLD = {tier.casefold(): tier for tier in TIERS}


@dataclass(frozen=True)
class PriceCollection:
    frame: pd.DataFrame
    api_calls: int
    items: int
    dropped: dict[str, int] = field(default_factory=dict)


def split_sku(arm_sku_name: str) -> tuple[str, str] | None:
    """``Standard_D2s_v5`` → (``Standard``, ``D2s_v5``); None without a tier.

    The tier is matched case-insensitively and returned in its canonical spelling, because Resource Graph
    spells some SKUs in lower case (``standard_nc24ads_a100_v4``); the size keeps Azure's spelling and is
    matched case-insensitively where frames are joined (`spotlake_assets.azure.merge`)."""
    tier, sep, name = arm_sku_name.partition("_")
    canonical = _TIER_BY_FOLD.get(tier.casefold())
    if not sep or not name or canonical is None:
        return None
    return canonical, name


def is_sovereign(region: str, location: str) -> bool:
    return location.startswith(SOVEREIGN_LOCATION_PREFIXES) or any(
        m in region for m in SOVEREIGN_REGION_MARKERS
    )


def empty_price_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InstanceTier": pd.Series(dtype=object),
            "InstanceType": pd.Series(dtype=object),
            "Region": pd.Series(dtype=object),
            "RegionName": pd.Series(dtype=object),
            "OndemandPrice": pd.Series(dtype="float64"),
            "SpotPrice": pd.Series(dtype="float64"),
            "Savings": pd.Series(dtype="int64"),
        },
        columns=list(PRICE_COLUMNS),
    )


def price_frame(items: Sequence[RetailPrice]) -> tuple[pd.DataFrame, dict[str, int]]:
    """``PRICE_COLUMNS`` from raw items, sorted by (InstanceTier, InstanceType, Region), and drop counts."""
    dropped: dict[str, int] = {}
    if not items:
        return empty_price_frame(), dropped
    raw = pd.DataFrame(
        {
            "region": [i.arm_region_name for i in items],
            "location": [i.location for i in items],
            "sku": [i.arm_sku_name for i in items],
            "meter": [i.meter_name for i in items],
            "product": [i.product_name for i in items],
            "price": np.fromiter((i.retail_price for i in items), dtype=np.float64, count=len(items)),
            "type": [i.price_type for i in items],
            "unit": [i.unit_of_measure for i in items],
            "effective": [i.effective_start_date for i in items],
        }
    )

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal raw
        count = int(mask.sum())
        if count:
            dropped[reason] = dropped.get(reason, 0) + count
            raw = raw[~mask]

    drop((raw["type"] != "Consumption") | (raw["unit"] != "1 Hour"), "not_hourly_consumption")
    drop((raw["sku"] == "") | (raw["region"] == ""), "no_sku_or_region")
    drop(raw["product"].str.contains("Windows", regex=False), "windows")
    drop(raw["meter"].str.contains("Low Priority", regex=False), "low_priority")
    drop(raw["meter"].str.contains("Expired", regex=False), "expired")
    sovereign = raw["location"].str.startswith(SOVEREIGN_LOCATION_PREFIXES) | raw["region"].str.contains(
        "|".join(SOVEREIGN_REGION_MARKERS), regex=True
    )
    drop(sovereign, "sovereign_region")

    is_spot = raw["meter"].str.endswith(SPOT_METER_SUFFIX)
    raw = raw.assign(base=raw["meter"].where(~is_spot, raw["meter"].str[: -len(SPOT_METER_SUFFIX)]))
    key = ["region", "sku", "base"]
    # Several items per meter differ by effective date: the newest one is in effect.
    raw = raw.sort_values([*key, "effective"], kind="stable")
    spot = raw[is_spot.loc[raw.index]].drop_duplicates(key, keep="last")
    ondemand = raw[~is_spot.loc[raw.index]].drop_duplicates(key, keep="last")
    joined = spot.merge(ondemand[[*key, "price"]], on=key, how="left", suffixes=("_spot", "_od"))
    no_spot = len(ondemand) - int(ondemand.set_index(key).index.isin(spot.set_index(key).index).sum())
    if no_spot:
        dropped["ondemand_without_spot"] = no_spot
    # One row per (region, SKU): a SKU listed under several meters keeps its first meter name, in order.
    joined = joined.sort_values(["region", "sku", "base"], kind="stable")
    duplicated = joined.duplicated(["region", "sku"], keep="first")
    if duplicated.any():
        dropped["duplicate_meters"] = int(duplicated.sum())
        joined = joined[~duplicated]
    split = [split_sku(s) for s in joined["sku"]]
    has_tier = np.array([p is not None for p in split], dtype=bool)
    if (~has_tier).any():
        dropped["sku_without_tier"] = int((~has_tier).sum())
    joined = joined[has_tier]
    parts = [p for p in split if p is not None]
    spot_price = joined["price_spot"].to_numpy(dtype=np.float64)
    od = joined["price_od"].to_numpy(dtype=np.float64, na_value=np.nan)
    od = np.where(np.isnan(od), float(MISSING), od)
    frame = pd.DataFrame(
        {
            "InstanceTier": pd.Series([p[0] for p in parts], dtype=object),
            "InstanceType": pd.Series([p[1] for p in parts], dtype=object),
            "Region": pd.Series(joined["region"].to_numpy(), dtype=object),
            "RegionName": pd.Series(joined["location"].to_numpy(), dtype=object),
            "OndemandPrice": od,
            "SpotPrice": spot_price,
            "Savings": savings(spot_price, od),
        },
        columns=list(PRICE_COLUMNS),
    )
    return frame.sort_values(["InstanceTier", "InstanceType", "Region"], ignore_index=True), dropped


def collect_prices(
    api: AzureApi, window_start: datetime, regions: Sequence[str] | None = None
) -> PriceCollection:
    """All Linux Spot prices (optionally of ``regions`` only). `PricePageFailed` propagates: a lost page
    must fail the asset rather than silently drop a region's prices."""
    listing = api.retail_prices(window_start, regions)
    frame, dropped = price_frame(listing.items)
    log.info(
        "retail prices: %s rows from %s items (%s pages); dropped %s",
        len(frame),
        len(listing.items),
        listing.pages,
        dropped,
    )
    return PriceCollection(frame=frame, api_calls=listing.pages, items=len(listing.items), dropped=dropped)
