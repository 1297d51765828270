"""AWS spot prices for one window: every region's Linux/UNIX price in effect at the window start, keyed by
AZ id (price history speaks AZ names, which differ per account; SpotLake joins on ids)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pandas as pd

from spotlake_assets.aws.collectors.catalogue import failure_reason
from spotlake_assets.aws.collectors.result import RegionalCollection
from spotlake_assets.aws.constants import SPOT_PRICE_COLUMNS
from spotlake_assets.aws.models import AvailabilityZone, AwsApiError, SpotPriceQuote
from spotlake_assets.aws.resources import AwsApi

log = logging.getLogger(__name__)

PRICE_DECIMALS = 5


class UnknownZoneName(AwsApiError):
    """A price quoted for an AZ name the catalogue does not know (a stale catalogue or a new zone)."""


def _rows(
    quotes: Sequence[SpotPriceQuote], zone_ids: dict[str, str], region: str
) -> list[tuple[str, str, float]]:
    unknown = sorted({q.zone_name for q in quotes if q.zone_name not in zone_ids})
    if unknown:
        # Dropping these rows would hide a gap; failing the region makes it explicit.
        raise UnknownZoneName(
            f"{region}: prices quoted for AZ name(s) {', '.join(unknown)} missing from the catalogue "
            f"(known: {', '.join(sorted(zone_ids))})"
        )
    return [(q.instance_type, zone_ids[q.zone_name], q.price) for q in quotes]


def spot_price_frame(rows: Sequence[tuple[str, str, float]]) -> pd.DataFrame:
    """``SPOT_PRICE_COLUMNS`` with SpotPrice float64 rounded to 5 decimals, sorted by (InstanceType, AZ)."""
    frame = pd.DataFrame(
        {
            "InstanceType": pd.Series([r[0] for r in rows], dtype=object),
            "AZ": pd.Series([r[1] for r in rows], dtype=object),
            "SpotPrice": pd.Series([r[2] for r in rows], dtype="float64").round(PRICE_DECIMALS),
        },
        columns=list(SPOT_PRICE_COLUMNS),
    )
    return frame.sort_values(["InstanceType", "AZ"], ignore_index=True)


def collect_spot_prices(
    api: AwsApi, zones: Sequence[AvailabilityZone], window_start: datetime, workers: int = 8
) -> RegionalCollection:
    """Prices of every region of ``zones`` in parallel. A region that fails (any `AwsApiError`, or a quote
    for an AZ name not in ``zones``) is listed in ``failed_regions`` with its reason and contributes no row.

    ``api_calls`` counts regions attempted: one logical `spot_prices` call each (its pages are hidden
    behind `AwsApi`).
    """
    zone_ids: dict[str, dict[str, str]] = defaultdict(dict)
    for zone in zones:
        zone_ids[zone.region][zone.name] = zone.zone_id
    regions = sorted(zone_ids)

    def read(region: str) -> list[tuple[str, str, float]]:
        return _rows(api.spot_prices(region, window_start), zone_ids[region], region)

    rows: list[tuple[str, str, float]] = []
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(regions) or 1))) as pool:
        futures = {region: pool.submit(read, region) for region in regions}
        for region, future in futures.items():
            try:
                rows.extend(future.result())
            except AwsApiError as exc:
                failed[region] = failure_reason(exc)
                log.warning("spot prices: region %s failed: %s", region, failed[region])
    frame = spot_price_frame(rows)
    log.info("spot prices: %s rows from %s regions, %s failed", len(frame), len(regions), len(failed))
    return RegionalCollection(frame=frame, api_calls=len(regions), failed_regions=failed)
