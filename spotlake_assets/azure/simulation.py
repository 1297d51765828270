"""The simulated Azure: the embedded default `AzureApi` that demos and tests run on without a subscription.

Everything is SIMULATED. The catalogue (regions, sizes, which size is offered in which region and zone) is
authored (``data/catalogue.json``, see ``data/PROVENANCE.md``); placement scores, prices, eviction rates,
the SPS request limit, busy endpoints and throttling come from a synthetic model that is a pure function of
(seed, scale, inputs, window). Stable hashes (blake2b) are used throughout, never Python's salted ``hash()``.

How the world behaves, and why:

* Placement scores: each (size, region, zone) has a long-run capacity built from its family's availability,
  the region's tier, the size's vCPUs and per-pair and per-zone offsets. A noise term is piecewise constant
  over epochs of ``SCORE_EPOCH_WINDOWS`` windows with a per-pair phase, so only a few percent of scores move
  between consecutive windows. Larger desired counts score lower (monotonically). Sizes not offered in a
  region answer ``RestrictedSkuNotAvailable``; regions without zones answer one regional score.
* Prices: the on-demand Linux price follows the size's vCPUs and family rate times the region's factor (not
  seeded, like a public price list); Windows adds a licence per vCPU; Spot is on-demand x (1 - discount)
  with the discount in [45%, 91%], redrawn once a day per pair at its own phase; Low Priority is listed too.
  Sovereign regions are in the list, as they are in Azure's, so the collector has to drop them.
* Eviction rates: buckets worse for scarce pairs, moving about once a day for one pair in ten.
* Limits: Azure refuses a (subscription, calling location) that has made 10 requests within the hour with
  "You have reached the maximum number of requests allowed."; a seeded share of endpoints is busy (used by
  someone else) for a whole hour; a seeded share of requests is throttled (429) or fails (5xx) on its first
  attempt. Promotional SKUs and two restricted regions are priced but rejected by the SPS API, one named
  value per error, as Azure does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from statistics import NormalDist

from pydantic import Field, PrivateAttr

from spotlake_assets.azure.catalogue import AzureCatalogue, SizeSpec, load_catalogue, unit
from spotlake_assets.azure.constants import MAX_LOCATIONS_PER_REQUEST, MAX_SIZES_PER_REQUEST
from spotlake_assets.azure.models import (
    AuthenticationFailed,
    AzureLogin,
    Endpoint,
    EvictionRate,
    InvalidRequestValues,
    MaxRequestsReached,
    PermanentError,
    PlacementScore,
    PricePageFailed,
    RetailPrice,
    Throttled,
    TransientError,
)
from spotlake_assets.azure.resources import AzureApi, EvictionRates, PriceList
from spotlake_assets.domain.windows import WINDOW

WINDOW_SECONDS = int(WINDOW.total_seconds())
WINDOWS_PER_DAY = 144
PAGE_SIZE = 1000

SCORE_EPOCH_WINDOWS = 30
SCORE_NOISE = 0.9
HIGH, MEDIUM = 7.0, 5.9
# Azure's own window for the SPS request limit, and the count it refuses at.
AZURE_LIMIT_WINDOW = timedelta(minutes=60)
AZURE_LIMIT = 10
WINDOWS_LICENSE_PER_VCPU = 0.046
LOW_PRIORITY_FACTOR = 0.2
MIN_DISCOUNT, MAX_DISCOUNT = 0.45, 0.91
_TIER_BONUS = {1: 0.5, 2: 0.1, 3: -0.4, 4: -0.8}
_EVICTION_LABELS = ("0-5", "5-10", "10-15", "15-20", "20+")
# A run starts a few seconds into its window: the clock the budget is kept on in the simulation.
_RUN_OFFSET = timedelta(seconds=30)


def window_index(moment: datetime) -> int:
    return int(moment.timestamp()) // WINDOW_SECONDS


class SimulatedAzureWorld:
    """The deterministic world of one (seed, scale): scores, prices and eviction rates by window."""

    def __init__(self, seed: int, scale: float) -> None:
        self.seed = seed
        self.catalogue: AzureCatalogue = load_catalogue(scale)
        self._regions = self.catalogue.region_by_code

    # -- capacity model -----------------------------------------------------------------------------------
    def _base(self, size: SizeSpec, region: str) -> float:
        tier = self._regions[region].tier
        pair = (unit(self.seed, "pair", size.arm_sku_name, region) - 0.5) * 1.6
        return 7.0 + size.availability + _TIER_BONUS[tier] - 0.22 * math.log2(max(size.vcpus, 1)) + pair

    def latent(self, sku: str, region: str, zone: str | None, window: int) -> float:
        size = self.catalogue.sizes[sku]
        phase = int(unit(self.seed, "phase", sku, region, zone) * SCORE_EPOCH_WINDOWS)
        epoch = (window + phase) // SCORE_EPOCH_WINDOWS
        noise = (unit(self.seed, "noise", sku, region, zone, epoch) - 0.5) * 2 * SCORE_NOISE
        zone_offset = (unit(self.seed, "zone", sku, region, zone) - 0.5) * 0.6
        return self._base(size, region) + zone_offset + noise

    def score(self, sku: str, region: str, zone: str | None, desired_count: int, window: int) -> str:
        value = self.latent(sku, region, zone, window) - 0.45 * math.log(max(desired_count, 1))
        return "High" if value >= HIGH else "Medium" if value >= MEDIUM else "Low"

    # -- prices ---------------------------------------------------------------------------------------------
    def spot_discount(self, sku: str, region: str, window: int) -> float:
        size = self.catalogue.sizes[sku]
        base = 0.55 + 0.08 * size.availability + 0.2 * unit(self.seed, "discount", sku, region)
        phase = int(unit(self.seed, "price-phase", sku, region) * WINDOWS_PER_DAY)
        day = (window + phase) // WINDOWS_PER_DAY
        drift = (unit(self.seed, "price-drift", sku, region, day) - 0.5) * 0.08
        return min(MAX_DISCOUNT, max(MIN_DISCOUNT, base + drift))

    def price_items(self, window: int, regions: Sequence[str] | None) -> list[RetailPrice]:
        wanted = None if regions is None else set(regions)
        effective = "2026-01-01T00:00:00Z"
        items: list[RetailPrice] = []
        for (sku, region), _zones in self.catalogue.offerings.items():
            if wanted is not None and region not in wanted:
                continue
            size = self.catalogue.sizes[sku]
            spec = self._regions[region]
            ondemand = round(size.ondemand_usd * spec.price_factor, 4)
            windows = round(ondemand + WINDOWS_LICENSE_PER_VCPU * size.vcpus, 4)
            meter = size.meter_name
            common = {"arm_region_name": region, "location": spec.location, "arm_sku_name": sku}
            items.append(
                RetailPrice(
                    **common,
                    meter_name=meter,
                    product_name=size.product,
                    retail_price=ondemand,
                    effective_start_date=effective,
                )
            )
            items.append(
                RetailPrice(
                    **common,
                    meter_name=meter,
                    product_name=f"{size.product} Windows",
                    retail_price=windows,
                    effective_start_date=effective,
                )
            )
            if not size.spot:
                continue
            keep = 1.0 - self.spot_discount(sku, region, window)
            items.append(
                RetailPrice(
                    **common,
                    meter_name=f"{meter} Spot",
                    product_name=size.product,
                    retail_price=round(ondemand * keep, 6),
                    effective_start_date=effective,
                )
            )
            items.append(
                RetailPrice(
                    **common,
                    meter_name=f"{meter} Spot",
                    product_name=f"{size.product} Windows",
                    retail_price=round(windows * keep, 6),
                    effective_start_date=effective,
                )
            )
            items.append(
                RetailPrice(
                    **common,
                    meter_name=f"{meter} Low Priority",
                    product_name=size.product,
                    retail_price=round(ondemand * LOW_PRIORITY_FACTOR, 6),
                    effective_start_date=effective,
                )
            )
        return items

    # -- eviction rates -------------------------------------------------------------------------------------
    def eviction_rows(self, window: int) -> list[EvictionRate]:
        day = window // WINDOWS_PER_DAY
        rows: list[EvictionRate] = []
        for (sku, region), _zones in self.catalogue.offerings.items():
            size = self.catalogue.sizes[sku]
            if not size.spot:
                continue
            jitter = (unit(self.seed, "evict", sku, region) - 0.5) * 1.2
            bucket = math.floor((8.4 - self._base(size, region)) / 0.8 + jitter + 0.5)
            wobble = unit(self.seed, "evict-day", sku, region, day)
            bucket += -1 if wobble < 0.05 else 1 if wobble < 0.10 else 0
            label = _EVICTION_LABELS[min(4, max(0, bucket))]
            rows.append(EvictionRate(location=region, sku_name=sku, eviction_rate=label))
        return rows


@lru_cache(maxsize=4)
def simulated_world(seed: int, scale: float) -> SimulatedAzureWorld:
    """The shared world for (seed, scale): Dagster builds a fresh resource per run, the world is reused."""
    return SimulatedAzureWorld(seed, scale)


# A call's latency is log-normal around the median (p90 2.8x, p99 6.4x), capped at 20x; same as AWS's.
LATENCY_SIGMA = 0.8
LATENCY_CAP = 20.0
_NORMAL = NormalDist()


def call_latency_s(median_ms: float, *parts: object) -> float:
    """The seeded latency of the call ``parts`` identify, in seconds (0 when ``median_ms`` is 0)."""
    if median_ms <= 0.0:
        return 0.0
    u = min(max(unit("latency", *parts), 1e-12), 1.0 - 1e-12)
    return median_ms / 1000.0 * min(math.exp(LATENCY_SIGMA * _NORMAL.inv_cdf(u)), LATENCY_CAP)


class SimulatedAzureApi(AzureApi):
    """SIMULATED Azure (the embedded default, no subscription needed). ``simulated`` is always True.

    The request limit is enforced per (subscription, calling location) in memory, i.e. per resource instance
    (per Dagster run), on the simulation's clock (`now`: 30 s into the window). The collector's persisted
    budget is what keeps requests below it; busy endpoints and throttling exercise quarantine and retries.

    Latency: ``latency_ms`` > 0 makes every call (each price or eviction page, each SPS request) wait a seeded
    log-normal time around that median, outside any lock; 0 (the default, and in tests) waits not at all.
    """

    seed: int = Field(default=7, description="Seed of the simulated world: same seed, same answers.")
    scale: float = Field(default=1.0, gt=0.0, le=1.0, description="Fraction of VM sizes kept.")
    throttle_rate: float = Field(default=0.01, ge=0.0, le=1.0, description="Requests throttled once (429).")
    transient_rate: float = Field(default=0.005, ge=0.0, le=1.0, description="Requests failing once (5xx).")
    busy_endpoint_rate: float = Field(
        default=0.03,
        ge=0.0,
        le=1.0,
        description="Endpoints busy for a whole hour (maximum number of requests).",
    )
    throttle_retry_after_s: float = Field(default=0.0, ge=0.0, description="Retry-After of simulated 429s.")
    failing_price_regions: list[str] = Field(
        default=[], description="Regions whose price chain keeps failing (a lost page fails the asset)."
    )
    replay_past: bool = Field(
        default=True,
        description="Answer for past windows from the deterministic world (the demo collects yesterday).",
    )
    latency_ms: float = Field(
        default=0.0,
        ge=0.0,
        description="Median simulated latency of each call (ms), with a long tail; 0: none.",
    )

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: dict[Endpoint, list[datetime]] = PrivateAttr(default_factory=dict)
    _attempts: dict[tuple[object, ...], int] = PrivateAttr(default_factory=dict)
    _sps_calls: int = PrivateAttr(default=0)

    @property
    def simulated(self) -> bool:
        return True

    @property
    def sps_calls(self) -> int:
        """SPS requests answered or refused by this resource (simulation only: for benchmarks)."""
        return self._sps_calls

    def _wait(self, pages: int, *call: object) -> None:
        """One latency per page of a paged answer (each page is an HTTP round trip)."""
        delay = sum(call_latency_s(self.latency_ms, self.seed, *call, page) for page in range(pages))
        if delay > 0.0:
            time.sleep(delay)

    @property
    def observes_past(self) -> bool:
        return self.replay_past

    @property
    def world(self) -> SimulatedAzureWorld:
        return simulated_world(self.seed, self.scale)

    def now(self, window_start: datetime) -> datetime:
        return window_start + _RUN_OFFSET

    def retail_prices(self, window_start: datetime, regions: Sequence[str] | None = None) -> PriceList:
        for region in sorted(set(regions or ()) & set(self.failing_price_regions)):
            url = f"https://prices.azure.com/api/retail/prices?$filter=armRegionName eq '{region}'&$skip=1000"
            raise PricePageFailed(url, "HTTP 503: simulated outage (failing_price_regions)")
        items = self.world.price_items(window_index(window_start), regions)
        chains = len(regions) if regions else 1
        pages = max(chains, math.ceil(len(items) / PAGE_SIZE))
        # The pages of one chain follow each other's nextPageLink; chains (regions) are independent calls.
        self._wait(
            math.ceil(pages / chains), "retail_prices", window_index(window_start), tuple(regions or ())
        )
        return PriceList(items=tuple(items), pages=pages)

    def eviction_rates(self, login: AzureLogin, window_start: datetime) -> EvictionRates:
        rows = self.world.eviction_rows(window_index(window_start))
        pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
        self._wait(pages, "eviction_rates", window_index(window_start))
        return EvictionRates(items=tuple(rows), pages=pages)

    def sps_locations(self, login: AzureLogin) -> list[str]:
        self._wait(1, "sps_locations")
        return sorted(self.world.catalogue.sps_endpoints)

    def spot_placement_scores(
        self,
        login: AzureLogin,
        endpoint: Endpoint,
        regions: Sequence[str],
        sizes: Sequence[str],
        desired_count: int,
        window_start: datetime,
    ) -> list[PlacementScore]:
        world = self.world
        catalogue = world.catalogue
        if endpoint.subscription not in login.subscriptions:
            raise AuthenticationFailed(f"{endpoint.label}: subscription not granted to {login.label}")
        if endpoint.location not in catalogue.sps_endpoints:
            raise PermanentError(
                f"{endpoint.label}: supported locations are '{', '.join(catalogue.sps_endpoints)}'"
            )
        if not regions or not sizes:
            raise PermanentError("InvalidParameter: desiredLocations and desiredSizes must not be empty")
        if len(regions) > MAX_LOCATIONS_PER_REQUEST or len(sizes) > MAX_SIZES_PER_REQUEST:
            raise PermanentError(
                f"InvalidParameter: at most {MAX_LOCATIONS_PER_REQUEST} locations and "
                f"{MAX_SIZES_PER_REQUEST} sizes per request, got {len(regions)} x {len(sizes)}"
            )
        window = window_index(window_start)
        request_key = (tuple(regions), tuple(sizes), desired_count, window)
        with self._lock:
            self._sps_calls += 1
            attempt = self._attempts.get(request_key, 0)
        self._wait(1, "sps", endpoint.subscription, endpoint.location, *request_key, attempt)
        self._admit(endpoint, tuple(regions), tuple(sizes), desired_count, window_start, window)
        for region in regions:
            if region in catalogue.sps_invalid_regions or region not in world._regions:
                raise InvalidRequestValues(
                    f"InvalidParameter: The value '{region}' provided for the input parameter "
                    "'desiredLocations' is not valid.",
                    regions=(region,),
                )
        for sku in sizes:
            if sku in catalogue.sps_invalid_sizes or sku not in catalogue.sizes:
                raise InvalidRequestValues(
                    f"InvalidParameter: The value '{sku}' provided for the input parameter "
                    "'SpotPlacementRecommenderInput.desiredSizes' is not valid.",
                    sizes=(sku,),
                )
        scores: list[PlacementScore] = []
        for region in regions:
            for sku in sizes:
                zones = catalogue.offerings.get((sku, region))
                if zones is None or not catalogue.sizes[sku].spot:
                    scores.append(PlacementScore(sku, region, None, "RestrictedSkuNotAvailable"))
                    continue
                for zone in zones or (None,):
                    scores.append(
                        PlacementScore(
                            sku, region, zone, world.score(sku, region, zone, desired_count, window)
                        )
                    )
        return scores

    def _admit(
        self,
        endpoint: Endpoint,
        regions: tuple[str, ...],
        sizes: tuple[str, ...],
        desired_count: int,
        window_start: datetime,
        window: int,
    ) -> None:
        """Count the call against the endpoint, then refuse it like Azure would."""
        moment = self.now(window_start)
        hour = int(moment.timestamp()) // 3600
        with self._lock:
            recent = [t for t in self._calls.get(endpoint, []) if moment - AZURE_LIMIT_WINDOW < t <= moment]
            recent.append(moment)
            self._calls[endpoint] = recent
            request_key = (regions, sizes, desired_count, window)
            attempt = self._attempts.get(request_key, 0)
            self._attempts[request_key] = attempt + 1
            if len(self._attempts) > 200_000:  # a long-lived resource must not grow without bound
                self._attempts.clear()
        busy = (
            unit(self.seed, "busy", endpoint.subscription, endpoint.location, hour) < self.busy_endpoint_rate
        )
        if busy or len(recent) >= AZURE_LIMIT:
            raise MaxRequestsReached(endpoint, "You have reached the maximum number of requests allowed.")
        if attempt == 0 and unit(self.seed, "throttle", *request_key) < self.throttle_rate:
            raise Throttled(f"{endpoint.label}: HTTP 429 (simulated)", self.throttle_retry_after_s)
        if attempt == 0 and unit(self.seed, "transient", *request_key) < self.transient_rate:
            raise TransientError(f"{endpoint.label}: HTTP 503 (simulated)")


__all__ = ["SimulatedAzureApi", "SimulatedAzureWorld", "simulated_world", "window_index"]
