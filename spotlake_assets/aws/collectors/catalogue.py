"""The AWS catalogue: every enabled region's availability zones and instance-type offerings (by AZ id).

It feeds the daily workload (which types to score where) and the AZ name → id map of the spot prices.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from spotlake_assets.aws.models import AvailabilityZone, AwsApiError, Offering, RegionUnavailable
from spotlake_assets.aws.resources import AwsApi

log = logging.getLogger(__name__)


class EmptyCatalogue(RuntimeError):
    """No region could be read, or no region offers anything: a workload built on it would be empty."""


@dataclass(frozen=True)
class CatalogueSnapshot:
    zones: tuple[AvailabilityZone, ...]
    offerings: tuple[Offering, ...]
    # Logical calls: describe_regions, then availability_zones + instance_type_offerings per region
    # attempted (pages and the implementation's own helper calls are not visible through `AwsApi`).
    api_calls: int
    # region → reason, for regions that still failed after retries.
    failed_regions: dict[str, str] = field(default_factory=dict)


def failure_reason(exc: AwsApiError) -> str:
    """What a regional collector records for a region that failed (keyed by region already)."""
    if isinstance(exc, RegionUnavailable):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


def _read_region(api: AwsApi, region: str) -> tuple[list[AvailabilityZone], list[Offering]]:
    return api.availability_zones(region), api.instance_type_offerings(region)


def collect_catalogue(api: AwsApi, workers: int = 8) -> CatalogueSnapshot:
    """Read every region in parallel. A failing region is recorded in ``failed_regions``; the snapshot
    is refused (`EmptyCatalogue`) when no region answers or none offers any instance type."""
    try:
        regions = api.regions()
    except AwsApiError as exc:
        raise EmptyCatalogue(f"AWS catalogue: the list of regions could not be read: {exc}") from exc
    if not regions:
        raise EmptyCatalogue("AWS catalogue: describe_regions returned no enabled region")

    zones: list[AvailabilityZone] = []
    offerings: list[Offering] = []
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(regions)))) as pool:
        futures = {region: pool.submit(_read_region, api, region) for region in regions}
        for region, future in futures.items():
            try:
                region_zones, region_offerings = future.result()
            except AwsApiError as exc:
                failed[region] = failure_reason(exc)
                log.warning("AWS catalogue: region %s failed: %s", region, failed[region])
                continue
            zones.extend(region_zones)
            offerings.extend(region_offerings)

    if len(failed) == len(regions):
        sample = "; ".join(f"{region}: {why}" for region, why in sorted(failed.items())[:5])
        raise EmptyCatalogue(f"AWS catalogue: all {len(regions)} regions failed ({sample})")
    if not offerings:
        raise EmptyCatalogue(
            f"AWS catalogue: no instance-type offerings in any of the {len(regions) - len(failed)} regions "
            f"that answered (failed: {sorted(failed) or 'none'})"
        )
    log.info(
        "AWS catalogue: %s regions, %s zones, %s offerings, %s failed regions",
        len(regions),
        len(zones),
        len(offerings),
        len(failed),
    )
    return CatalogueSnapshot(
        zones=tuple(sorted(zones, key=lambda z: (z.region, z.zone_id))),
        offerings=tuple(sorted(offerings, key=lambda o: (o.region, o.zone_id, o.instance_type))),
        api_calls=1 + 2 * len(regions),
        failed_regions=dict(sorted(failed.items())),
    )
