"""Azure domain models and errors. Frozen dataclasses: what the `AzureApi` resource returns."""

from __future__ import annotations

from dataclasses import dataclass, field


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


class MalformedResponse(AzureApiError):
    """An answer that does not match the documented shape (names what was wrong)."""


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


class TransientError(AzureApiError):
    """A timeout, a dropped connection or a 5xx answer: worth a bounded number of retries."""


class PricePageFailed(AzureApiError):
    """A Retail Prices page that kept failing after its retries: no page may be silently lost."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"retail prices page {url} failed after retries: {reason}")
        self.url = url
        self.reason = reason
