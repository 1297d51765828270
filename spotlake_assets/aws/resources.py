"""The AWS API resource: one typed interface, a boto3-backed implementation (production) and a simulated
one (`spotlake_assets.aws.simulation`, the embedded default). Collectors only see `AwsApi`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from spotlake_assets.aws.models import (
    AvailabilityZone,
    Credential,
    Offering,
    OndemandQuote,
    SpotPriceQuote,
    SpsScore,
)


class AwsApi(dg.ConfigurableResource, ABC):  # type: ignore[misc]
    """Every AWS call SpotLake makes. Methods raise the errors of `spotlake_assets.aws.models`.

    ``window_start`` arguments say which 10-minute window a call observes. The real API always answers for
    "now" (collectors only ask it about the current window); the simulation uses it to pick the state of its
    deterministic world.
    """

    @property
    @abstractmethod
    def simulated(self) -> bool:
        """True when answers come from the simulation, never from AWS."""

    @abstractmethod
    def regions(self) -> list[str]:
        """Enabled regions, sorted."""

    @abstractmethod
    def availability_zones(self, region: str) -> list[AvailabilityZone]:
        """The region's availability zones with their names and ids."""

    @abstractmethod
    def instance_type_offerings(self, region: str) -> list[Offering]:
        """Instance types offered per AZ id in ``region``."""

    @abstractmethod
    def spot_placement_scores(
        self,
        credential: Credential,
        instance_type: str,
        regions: Sequence[str],
        capacity: int,
        window_start: datetime,
    ) -> list[SpsScore]:
        """One `get_spot_placement_scores(SingleAvailabilityZone=True)` call (all pages) with ``credential``.

        Raises `ConfigLimitExceeded` on `MaxConfigLimitExceeded`, `Throttled` when throttling persists after
        the client's own retries, `MalformedResponse` when a score lacks its AZ id.
        """

    @abstractmethod
    def spot_prices(self, region: str, window_start: datetime) -> list[SpotPriceQuote]:
        """Linux/UNIX spot prices in effect at ``window_start`` (all pages), by AZ name."""

    @abstractmethod
    def ondemand_prices(self, region: str) -> list[OndemandQuote]:
        """On-demand Linux, shared-tenancy, no-pre-installed-software hourly prices (Pricing API, all pages)."""

    @abstractmethod
    def spot_advisor_document(self, window_start: datetime) -> bytes:
        """The Spot Instance Advisor JSON document, as published."""
