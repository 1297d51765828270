"""AWS domain models and errors. Frozen dataclasses: what the `AwsApi` resource returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from spotlake_assets.domain import validation


@dataclass(frozen=True)
class AvailabilityZone:
    region: str
    name: str  # e.g. us-east-1a (differs per account)
    zone_id: str  # e.g. use1-az6 (the same in every account)


@dataclass(frozen=True)
class Offering:
    """An instance type offered in an availability zone (by AZ id)."""

    instance_type: str
    region: str
    zone_id: str


@dataclass(frozen=True)
class SpsQuery:
    """One `get_spot_placement_scores` call: one instance type over regions totalling ≤ 10 AZs."""

    query_id: int
    instance_type: str
    regions: tuple[str, ...]
    az_weight: int
    group: int


@dataclass(frozen=True)
class SpsScore:
    instance_type: str
    region: str
    zone_id: str
    score: int


@dataclass(frozen=True)
class SpotPriceQuote:
    instance_type: str
    zone_name: str
    price: float


@dataclass(frozen=True)
class OndemandQuote:
    region: str
    instance_type: str
    price: float


@dataclass(frozen=True)
class Credential:
    """One AWS account's access key. The secret never appears in repr, logs or metadata."""

    index: int
    access_key_id: str
    secret_access_key: str = field(repr=False)

    @property
    def label(self) -> str:
        """Safe to log: the pool index and the last 4 characters of the key id."""
        return f"credential#{self.index}(…{self.access_key_id[-4:]})"


class AwsApiError(Exception):
    """Base class for failures of the AWS API resource."""


class CredentialRefused(ValueError):
    """A credential this API will not sign with (a simulated one sent to the real AWS): a configuration
    mistake, so it is never retried."""


class ConfigLimitExceeded(AwsApiError):
    """`MaxConfigLimitExceeded`: the account has used its 50 SPS configurations for 24 hours."""


class Throttled(AwsApiError):
    """`RequestLimitExceeded` (or another throttling code) still returned after the client's own retries."""


class MalformedResponse(AwsApiError, validation.MalformedResponse):
    """An API answer that breaks its documented contract, naming the call, field, value and row.

    Both an `AwsApiError` (a regional collector records the region as an explicit gap) and the shared
    `validation.MalformedResponse` (permanent: never retried, never checkpointed)."""

    @classmethod
    def from_validation(cls, exc: validation.MalformedResponse) -> MalformedResponse:
        """The AWS flavour of an error raised by the shared validators, so regional collectors catch it."""
        return cls(exc.call, exc.field, exc.value, exc.row, exc.reason)


class DownloadFailed(AwsApiError):
    """An HTTP download that failed after its retries. ``permanent`` when another attempt cannot succeed
    (a 4xx other than 408/429): the caller fails at once instead of retrying the step."""

    def __init__(self, url: str, reason: str, *, status: int | None, permanent: bool) -> None:
        kind = "permanent, not retried" if permanent else "transient, retries exhausted"
        super().__init__(f"{url}: {reason} ({kind})")
        self.url, self.reason, self.status, self.permanent = url, reason, status, permanent


class RegionUnavailable(AwsApiError):
    """A region whose calls keep failing (opt-in region not enabled, endpoint down, …)."""

    def __init__(self, region: str, reason: str) -> None:
        super().__init__(f"{region}: {reason}")
        self.region = region
        self.reason = reason
