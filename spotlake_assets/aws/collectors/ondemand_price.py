"""AWS on-demand prices (Linux, shared tenancy, no pre-installed software) per region, from the Pricing
API; the denominator of SpotLake's Savings column."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from spotlake_assets.aws.collectors.catalogue import failure_reason
from spotlake_assets.aws.collectors.result import RegionalCollection
from spotlake_assets.aws.constants import ONDEMAND_COLUMNS
from spotlake_assets.aws.models import AwsApiError, OndemandQuote
from spotlake_assets.aws.resources import AwsApi

log = logging.getLogger(__name__)

PRICE_DECIMALS = 5


def ondemand_frame(quotes: Sequence[OndemandQuote]) -> pd.DataFrame:
    """``ONDEMAND_COLUMNS`` with OndemandPrice float64 rounded to 5 decimals, sorted by (Region, type)."""
    frame = pd.DataFrame(
        {
            "Region": pd.Series([q.region for q in quotes], dtype=object),
            "InstanceType": pd.Series([q.instance_type for q in quotes], dtype=object),
            "OndemandPrice": pd.Series([q.price for q in quotes], dtype="float64").round(PRICE_DECIMALS),
        },
        columns=list(ONDEMAND_COLUMNS),
    )
    return frame.sort_values(["Region", "InstanceType"], ignore_index=True)


def collect_ondemand_prices(api: AwsApi, regions: Sequence[str], workers: int = 4) -> RegionalCollection:
    """Prices of every region in parallel (the Pricing API throttles early, hence fewer workers). A region
    raising an `AwsApiError` is listed in ``failed_regions`` with its reason and contributes no row.

    ``api_calls`` counts regions attempted: one logical `ondemand_prices` call each (its pages are hidden
    behind `AwsApi`).
    """
    unique = sorted(set(regions))
    quotes: list[OndemandQuote] = []
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique) or 1))) as pool:
        futures = {region: pool.submit(api.ondemand_prices, region) for region in unique}
        for region, future in futures.items():
            try:
                quotes.extend(future.result())
            except AwsApiError as exc:
                failed[region] = failure_reason(exc)
                log.warning("on-demand prices: region %s failed: %s", region, failed[region])
    frame = ondemand_frame(quotes)
    log.info("on-demand prices: %s rows from %s regions, %s failed", len(frame), len(unique), len(failed))
    return RegionalCollection(frame=frame, api_calls=len(unique), failed_regions=failed)
