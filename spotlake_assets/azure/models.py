"""Azure domain models and errors. Frozen dataclasses: what the `AzureApi` resource returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spotlake_assets.azure.constants import SCORES, UNSCORED_STATUSES, ZONES
from spotlake_assets.domain.validation import MalformedResponse as MalformedResponse
from spotlake_assets.domain.validation import normalise_name, parse_label

_SCORE_LABELS = {label: label for label in (*SCORES, *UNSCORED_STATUSES)}
_ZONE_LABELS = {zone: zone for zone in ZONES}


@dataclass(frozen=True)
class AzureLogin:
    """A service principal and the subscriptions it may spend SPS calls from (SpotLake's AzureAuth item).

    The secret never appears in repr, logs or metadata: use `label`.
    """

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    subscriptions: tuple[str, ...]

    @property
    def label(self) -> str:
        """Safe to log: the client id's last 4 characters and the number of subscriptions."""
        return f"azure-login(…{self.client_id[-4:]}, {len(self.subscriptions)} subscriptions)"


@dataclass(frozen=True)
class RetailPrice:
    """One item of the Azure Retail Prices API (the fields SpotLake uses)."""

    arm_region_name: str
    location: str  # the price list's region label, e.g. "US East"
    arm_sku_name: str  # e.g. Standard_D2s_v5
    meter_name: str  # e.g. "D2s v5", "D2s v5 Spot", "D2s v5 Low Priority"
    product_name: str  # e.g. "Virtual Machines Dsv5 Series" (Windows products say so)
    retail_price: float
    price_type: str = "Consumption"
    unit_of_measure: str = "1 Hour"
    effective_start_date: str = ""


@dataclass(frozen=True)
class EvictionRate:
    """One `spotresources` row of type microsoft.compute/skuspotevictionrate/location."""

    location: str
    sku_name: str  # as Azure spells it
    eviction_rate: str  # "0-5", "5-10", "10-15", "15-20", "20+"


@dataclass(frozen=True)
class SpsRequest:
    """One Spot Placement Score request: at most 8 locations x 5 sizes (ARM SKU names)."""

    request_id: int
    regions: tuple[str, ...]
    sizes: tuple[str, ...]
    pairs: int  # (region, size) pairs of the universe this request covers
    batch: int


@dataclass(frozen=True)
class PlacementScore:
    sku: str
    region: str
    availability_zone: str | None  # None for a region without zones
    score: str  # High, Medium, Low, or a status such as DataNotFoundOrStale


@dataclass(frozen=True, order=True)
class Endpoint:
    """Where an SPS request is sent: the budget and quarantine are kept per (subscription, location)."""

    subscription: str
    location: str

    @property
    def label(self) -> str:
        return f"…{self.subscription[-6:]}/{self.location}"


class AzureApiError(Exception):
    """Base class for failures of the Azure API resource."""


class AuthenticationFailed(AzureApiError):
    """The token endpoint refused the service principal (the message never holds the secret)."""


class Throttled(AzureApiError):
    """HTTP 429 without the SPS "maximum number of requests" message: wait ``retry_after_s`` and retry."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class MaxRequestsReached(AzureApiError):
    """ "You have reached the maximum number of requests allowed": quarantine this endpoint."""

    def __init__(self, endpoint: Endpoint, message: str) -> None:
        super().__init__(f"{endpoint.label}: {message}")
        self.endpoint = endpoint


class InvalidRequestValues(AzureApiError):
    """The API named request values it does not accept (unknown SKU or location): learn and drop them."""

    def __init__(self, message: str, regions: tuple[str, ...] = (), sizes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.regions = regions
        self.sizes = sizes


class PermanentError(AzureApiError):
    """A 4xx answer other than throttling (bad request, not found, conflict…): asking again gets the same
    answer, so it fails at once instead of spending retries and budget."""


class TransientError(AzureApiError):
    """A timeout, a dropped connection or a 5xx answer: worth a bounded number of retries."""


class PricePageFailed(AzureApiError):
    """A Retail Prices page that kept failing after its retries: no page may be silently lost."""

    def __init__(self, url: str, reason: str, *, permanent: bool = False) -> None:
        how = "failed (permanent, not retried)" if permanent else "failed after retries"
        super().__init__(f"retail prices page {url} {how}: {reason}")
        self.url = url
        self.reason = reason
        self.permanent = permanent


def checked_placement_score(
    sku: Any, region: Any, zone: Any, score: Any, *, call: str, row: object
) -> PlacementScore:
    """One SPS answer validated where it enters: names normalised, the score a known label (a score or a
    documented status) and the zone one of Azure's zone numbers. Anything else raises `MalformedResponse`
    naming the call, field, value and row, so an unknown label is never dropped or stored verbatim."""
    label = parse_label(score, _SCORE_LABELS, call=call, field="score", row=row)
    checked_zone = (
        None
        if zone is None or zone == ""
        else parse_label(zone, _ZONE_LABELS, call=call, field="availabilityZone", row=row)
    )
    return PlacementScore(
        sku=normalise_name(sku, call=call, field="sku", row=row),
        region=normalise_name(region, call=call, field="region", row=row),
        availability_zone=checked_zone,
        score=str(label),
    )
