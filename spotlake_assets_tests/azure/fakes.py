"""A scripted `AzureApi` for collector tests: every answer and failure is chosen by the test."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import PrivateAttr

from spotlake_assets.azure.models import (
    AzureLogin,
    Endpoint,
    EvictionRate,
    InvalidRequestValues,
    MaxRequestsReached,
    PermanentError,
    PlacementScore,
    RetailPrice,
    Throttled,
    TransientError,
)
from spotlake_assets.azure.resources import AzureApi, EvictionRates, PriceList

LOGIN = AzureLogin("tenant", "client-0001", "not-a-secret", ("sub-a", "sub-b"))


class ScriptedAzureApi(AzureApi):
    """Scores every (region, size) High in zone "1"; failures keyed by what the test sets.

    ``busy``: endpoint locations that answer "maximum number of requests"; ``invalid_regions`` and
    ``invalid_sizes``: values rejected one per call, as Azure does; ``throttle_first`` / ``transient_first``:
    how many first calls are throttled (Retry-After ``retry_after_s``) or fail with a 5xx; ``permanent``:
    sizes whose requests answer a 404; ``labels``: the score (or status) answered per size instead of High,
    ``zone`` the zone label answered.
    """

    busy: list[str] = []
    invalid_regions: list[str] = []
    invalid_sizes: list[str] = []
    throttle_first: int = 0
    transient_first: int = 0
    retry_after_s: float = 2.5
    replay_past: bool = True
    permanent: list[str] = []
    labels: dict[str, str] = {}
    zone: str = "1"

    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _calls: list[tuple[Endpoint, tuple[str, ...], tuple[str, ...]]] = PrivateAttr(default_factory=list)

    @property
    def simulated(self) -> bool:
        return True

    @property
    def observes_past(self) -> bool:
        return self.replay_past

    @property
    def calls(self) -> list[tuple[Endpoint, tuple[str, ...], tuple[str, ...]]]:
        return self._calls

    def now(self, window_start: datetime) -> datetime:
        return window_start

    def retail_prices(self, window_start: datetime, regions: Sequence[str] | None = None) -> PriceList:
        return PriceList(items=(), pages=1)

    def eviction_rates(self, login: AzureLogin, window_start: datetime) -> EvictionRates:
        return EvictionRates(items=(EvictionRate("eastus", "Standard_D2s_v5", "0-5"),), pages=1)

    def sps_locations(self, login: AzureLogin) -> list[str]:
        return ["eastus", "westus"]

    def spot_placement_scores(
        self,
        login: AzureLogin,
        endpoint: Endpoint,
        regions: Sequence[str],
        sizes: Sequence[str],
        desired_count: int,
        window_start: datetime,
    ) -> list[PlacementScore]:
        with self._lock:
            self._calls.append((endpoint, tuple(regions), tuple(sizes)))
            number = len(self._calls)
        if endpoint.location in self.busy:
            raise MaxRequestsReached(endpoint, "You have reached the maximum number of requests allowed.")
        if number <= self.throttle_first:
            raise Throttled("HTTP 429", self.retry_after_s)
        if number <= self.throttle_first + self.transient_first:
            raise TransientError("HTTP 503")
        for region in regions:
            if region in self.invalid_regions:
                raise InvalidRequestValues(f"bad {region}", regions=(region,))
        for size in sizes:
            if size in self.invalid_sizes:
                raise InvalidRequestValues(f"bad {size}", sizes=(size,))
            if size in self.permanent:
                raise PermanentError(f"SPS {endpoint.label}: HTTP 404 (permanent, not retried): NotFound")
        return [PlacementScore(s, r, self.zone, self.labels.get(s, "High")) for r in regions for s in sizes]


def price(
    region: str,
    sku: str,
    meter: str,
    value: float,
    product: str = "Virtual Machines Dsv5 Series",
    location: str = "US East",
    effective: str = "2026-01-01T00:00:00Z",
) -> RetailPrice:
    return RetailPrice(region, location, sku, meter, product, value, effective_start_date=effective)
