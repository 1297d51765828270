"""The AWS API resource: one typed interface, a boto3-backed implementation (production) and a simulated
one (`spotlake_assets.aws.simulation`, the embedded default). Collectors only see `AwsApi`."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
import tenacity
from pydantic import PrivateAttr

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    from botocore.exceptions import ClientError

    # Type stubs only (dev dependency): never imported at run time.
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_pricing import PricingClient
    from mypy_boto3_pricing.type_defs import FilterTypeDef

from spotlake_assets.aws.constants import (
    PRICING_REGION,
    SIMULATED_KEY_PREFIX,
    SPOT_ADVISOR_URL,
    SPOT_PRODUCT_DESCRIPTION,
)
from spotlake_assets.aws.models import (
    AvailabilityZone,
    ConfigLimitExceeded,
    Credential,
    CredentialRefused,
    DownloadFailed,
    MalformedResponse,
    Offering,
    OndemandQuote,
    RegionUnavailable,
    SpotPriceQuote,
    SpsScore,
    Throttled,
)
from spotlake_assets.domain import validation
from spotlake_assets.storage.botocore_config import client_config


class AwsApi(dg.ConfigurableResource, ABC):  # type: ignore[type-arg]
    """Every AWS call SpotLake makes. Methods raise the errors of `spotlake_assets.aws.models`.

    ``window_start`` arguments say which 10-minute window a call observes. The real API always answers for
    "now" (collectors only ask it about the current window); the simulation uses it to pick the state of its
    deterministic world.
    """

    @property
    @abstractmethod
    def simulated(self) -> bool:
        """True when answers come from the simulation, never from AWS."""

    @property
    def observes_past(self) -> bool:
        """Whether SPS and the advisor can be asked about a window that is over. AWS cannot: those
        collectors skip past windows in backfills instead of storing today's answer under an old key."""
        return False

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
        """On-demand Linux, shared-tenancy, no-pre-installed-software hourly prices (Pricing API, all
        pages)."""

    @abstractmethod
    def spot_advisor_document(self, window_start: datetime) -> bytes:
        """The Spot Instance Advisor JSON document, as published."""


# Error codes that mean "slow down". botocore's retry modes already back off on them; seeing one here means
# the client's own attempts ran out.
_THROTTLING_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "EC2ThrottledException",
        "SlowDown",
    }
)
_CONFIG_LIMIT_CODE = "MaxConfigLimitExceeded"
# Regions that are usable without asking: the account never has to opt in, or already did.
_ENABLED_OPT_IN_STATUSES = frozenset({"opt-in-not-required", "opted-in"})
# HTTP statuses of the advisor document worth another attempt besides every 5xx: request timeout and
# rate limiting. Any other 4xx (a moved or deleted document, a denied request) answers the same every time.
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
SPS_CALL = "GetSpotPlacementScores"
SPS_SCORE_RANGE = (1, 10)

# Pricing API filters for the on-demand price SpotLake compares spot prices with
# (docs/data-contracts.md#aws-columns).
_ONDEMAND_FILTERS: tuple[tuple[str, str], ...] = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
    ("licenseModel", "No License required"),
)

log = logging.getLogger(__name__)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")).strip()


@contextmanager
def _region_errors(region: str, operation: str) -> Iterator[None]:
    """Turn botocore failures of a regional call into the resource's errors.

    Reaching here means botocore's retry mode already gave up, so the failure is persistent for this run.
    Parameter validation errors are bugs in this module and propagate unchanged.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    try:
        yield
    except ClientError as exc:
        code = _error_code(exc)
        if code in _THROTTLING_CODES:
            raise Throttled(f"{region}: {operation}: {code} persisted after the client's retries") from exc
        raise RegionUnavailable(region, f"{operation}: {code}: {_error_message(exc)}") from exc
    except ParamValidationError:
        raise
    except BotoCoreError as exc:
        raise RegionUnavailable(region, f"{operation}: {type(exc).__name__}: {exc}") from exc


def _name(value: Any, *, call: str, field: str, row: Any) -> str:
    """An identifier from an answer, normalised (`validation.normalise_name`), or the AWS flavour of
    `MalformedResponse` so that regional collectors record the region as a gap."""
    if value is None:
        raise MalformedResponse(call, field, value, row, "missing")
    try:
        return validation.normalise_name(value, call=call, field=field, row=row)
    except validation.MalformedResponse as exc:
        raise MalformedResponse.from_validation(exc) from None


def sps_score(instance_type: str, item: Mapping[str, Any], queried: Sequence[str]) -> SpsScore:
    """One entry of a `GetSpotPlacementScores` answer → a validated `SpsScore`.

    The one parser of SPS answers (the boto3 and the simulated resource both call it), before anything is
    checkpointed: the score must be an integer in 1..10, the region one of those queried and the AZ id
    present (SingleAvailabilityZone=True must name the AZ); names are normalised. Anything else raises
    `MalformedResponse` naming the call, field, value and row.
    """
    row = {"InstanceType": instance_type, **item}
    region = _name(item.get("Region"), call=SPS_CALL, field="Region", row=row)
    if region not in queried:
        raise MalformedResponse(
            SPS_CALL, "Region", item.get("Region"), row, f"not one of the queried regions {sorted(queried)}"
        )
    zone_id = _name(item.get("AvailabilityZoneId"), call=SPS_CALL, field="AvailabilityZoneId", row=row)
    try:
        score = validation.parse_int_in_range(
            item.get("Score"), *SPS_SCORE_RANGE, call=SPS_CALL, field="Score", row=row
        )
    except validation.MalformedResponse as exc:
        raise MalformedResponse.from_validation(exc) from None
    return SpsScore(instance_type=instance_type, region=region, zone_id=zone_id, score=score)


def _as_utc(moment: datetime) -> datetime:
    # Window starts are UTC; a naive datetime is read as UTC rather than as the machine's local time.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_CLIENT_STATUSES or 500 <= status <= 599


def _is_retryable_download_error(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return _is_retryable_status(exc.code)
    # URLError (DNS, refused connection) and timeouts are OSErrors; IncompleteRead (a connection cut
    # mid-body) is an HTTPException.
    return isinstance(exc, OSError | http.client.HTTPException)


def _ondemand_price(item: str, region: str) -> OndemandQuote | None:
    """One Pricing API ``PriceList`` item → a quote; None for products without a usable on-demand price.

    Raises `MalformedResponse` naming the SKU (when it can be read) for items that break the documented
    shape.
    """
    call = f"GetProducts {region}"
    try:
        product_doc = json.loads(item)
    except (TypeError, ValueError) as exc:
        raise MalformedResponse(call, "PriceList item", str(item)[:80], None, f"not JSON: {exc}") from exc
    if not isinstance(product_doc, dict):
        raise MalformedResponse(call, "PriceList item", str(item)[:80], None, "not a JSON object")
    product = product_doc.get("product")
    sku = product.get("sku", "?") if isinstance(product, dict) else "?"
    row = f"SKU {sku}"
    if not isinstance(product, dict) or not isinstance(product.get("attributes"), dict):
        raise MalformedResponse(call, "product.attributes", None, row, "no product.attributes")
    attributes = product["attributes"]
    instance_type = _name(
        attributes.get("instanceType"), call=call, field="product.attributes.instanceType", row=row
    )
    # Capacity Blocks and similar offers share the filters above but are not the plain on-demand rate.
    if attributes.get("marketoption", "OnDemand") != "OnDemand":
        return None
    terms = product_doc.get("terms", {})
    if not isinstance(terms, dict):
        raise MalformedResponse(call, "terms", terms, row, "not an object")
    ondemand_terms = terms.get("OnDemand") or {}
    if not isinstance(ondemand_terms, dict):
        raise MalformedResponse(call, "terms.OnDemand", ondemand_terms, row, "not an object")
    for term_code, term in ondemand_terms.items():
        dimensions = term.get("priceDimensions") if isinstance(term, dict) else None
        if not isinstance(dimensions, dict):
            raise MalformedResponse(
                call, f"terms.OnDemand.{term_code}.priceDimensions", dimensions, row, "has no priceDimensions"
            )
        for rate_code, dimension in dimensions.items():
            unit_price = dimension.get("pricePerUnit") if isinstance(dimension, dict) else None
            if not isinstance(unit_price, dict):
                raise MalformedResponse(
                    call, f"priceDimensions.{rate_code}.pricePerUnit", unit_price, row, "has no pricePerUnit"
                )
            usd = unit_price.get("USD")
            if usd is None:
                continue
            try:
                price = float(usd)
            except (TypeError, ValueError) as exc:
                raise MalformedResponse(call, "pricePerUnit.USD", usd, row, "is not a number") from exc
            if price > 0:
                return OndemandQuote(region=region, instance_type=instance_type, price=price)
    return None


class Boto3AwsApi(AwsApi):
    """`AwsApi` on the real AWS APIs through boto3 (production).

    Throttling back-off belongs to botocore's retry mode (``retry_mode``, ``max_attempts``): this class never
    loops on AWS calls itself. Clients are created on first use, never at import or construction, and cached
    per (service, region, credential); botocore clients are thread-safe once built, but building them from
    one session is not, hence the lock. Calls other than SPS use the ambient credential chain (environment,
    instance profile); SPS calls sign with the pool credential they are given (its secret is handed to
    botocore only, and logs name the credential by its `label`).
    """

    region_name: str = "us-east-1"  # where describe_regions is asked
    sps_region: str = "us-west-2"  # endpoint of get_spot_placement_scores (RegionNames says what it scores)
    pricing_region: str = PRICING_REGION
    endpoint_url: str | None = None  # a moto server in tests; None for AWS
    max_attempts: int = 8  # per call, the first attempt included
    retry_mode: str = "adaptive"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    advisor_url: str = SPOT_ADVISOR_URL
    advisor_timeout_s: float = 30.0
    advisor_attempts: int = 4
    advisor_backoff_s: float = 1.0  # first wait of the advisor download's exponential back-off

    _clients: dict[tuple[str, str, Credential | None], Any] = PrivateAttr(default_factory=dict)
    _session: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def simulated(self) -> bool:
        return False

    def _client(self, service: str, region: str, credential: Credential | None = None) -> Any:
        """The cached botocore client for ``service`` in ``region`` (signed with ``credential`` if given).

        Tests activate a `botocore.stub.Stubber` on the client this returns: the resource then uses it.
        """
        import boto3

        key = (service, region, credential)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = client_config(
                    retry_mode=self.retry_mode,
                    max_attempts=self.max_attempts,
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                )
                if self._session is None:
                    self._session = boto3.session.Session()
                # One session for every credential: it caches the parsed service models, so a client per
                # pool credential costs ~40 ms instead of the ~400 ms of a session (and model) per key.
                # Keys passed to client() override the ambient chain for that client only.
                signing: dict[str, str] = (
                    {}
                    if credential is None
                    else {
                        "aws_access_key_id": credential.access_key_id,
                        "aws_secret_access_key": credential.secret_access_key,
                    }
                )
                client = self._session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=config, **signing
                )
                self._clients[key] = client
                log.debug(
                    "created %s client in %s for %s",
                    service,
                    region,
                    credential.label if credential else "the ambient credentials",
                )
            return client

    def _ec2(self, region: str, credential: Credential | None = None) -> EC2Client:
        return cast("EC2Client", self._client("ec2", region, credential))

    def _pricing(self) -> PricingClient:
        return cast("PricingClient", self._client("pricing", self.pricing_region))

    def regions(self) -> list[str]:
        # Without AllRegions, EC2 lists only the regions this account can use; the status check also drops
        # any region a future API version would list before its opt-in completes.
        with _region_errors(self.region_name, "DescribeRegions"):
            answer = self._ec2(self.region_name).describe_regions(AllRegions=False)
        return sorted(
            _name(region.get("RegionName"), call="DescribeRegions", field="RegionName", row=region)
            for region in answer.get("Regions", [])
            if region.get("OptInStatus", "opt-in-not-required") in _ENABLED_OPT_IN_STATUSES
        )

    def availability_zones(self, region: str) -> list[AvailabilityZone]:
        with _region_errors(region, "DescribeAvailabilityZones"):
            answer = self._ec2(region).describe_availability_zones()
        zones: list[AvailabilityZone] = []
        for zone in answer.get("AvailabilityZones", []):
            # Local and Wavelength zones are not scored by SPS with SingleAvailabilityZone.
            if zone.get("ZoneType", "availability-zone") != "availability-zone":
                continue
            call = f"DescribeAvailabilityZones {region}"
            name = _name(zone.get("ZoneName"), call=call, field="ZoneName", row=zone)
            zone_id = _name(zone.get("ZoneId"), call=call, field="ZoneId", row=zone)
            zones.append(AvailabilityZone(region=region, name=name, zone_id=zone_id))
        return sorted(zones, key=lambda z: z.zone_id)

    def instance_type_offerings(self, region: str) -> list[Offering]:
        """Offerings per AZ id, restricted to the region's availability zones (one extra
        DescribeAvailabilityZones call: offerings in Local/Wavelength zones are dropped)."""
        zone_ids = {zone.zone_id for zone in self.availability_zones(region)}
        offerings: set[Offering] = set()
        with _region_errors(region, "DescribeInstanceTypeOfferings"):
            pages = self._ec2(region).get_paginator("describe_instance_type_offerings")
            for page in pages.paginate(
                LocationType="availability-zone-id", PaginationConfig={"PageSize": 1000}
            ):
                for item in page.get("InstanceTypeOfferings", []):
                    call = f"DescribeInstanceTypeOfferings {region}"
                    zone_id = _name(item.get("Location"), call=call, field="Location", row=item)
                    instance_type = _name(item.get("InstanceType"), call=call, field="InstanceType", row=item)
                    if zone_id in zone_ids:
                        offerings.add(Offering(instance_type=instance_type, region=region, zone_id=zone_id))
        return sorted(offerings, key=lambda o: (o.instance_type, o.zone_id))

    def spot_placement_scores(
        self,
        credential: Credential,
        instance_type: str,
        regions: Sequence[str],
        capacity: int,
        window_start: datetime,
    ) -> list[SpsScore]:
        """See `AwsApi.spot_placement_scores`. ``window_start`` is ignored: AWS only scores "now"."""
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        if credential.access_key_id.startswith(SIMULATED_KEY_PREFIX):
            # A simulated pool wired to the real API (a misconfigured resource set): say so before AWS does.
            raise CredentialRefused(
                f"{credential.label} is a simulated credential: the real AWS API does not sign with it"
            )
        scores: list[SpsScore] = []
        try:
            pages = self._ec2(self.sps_region, credential).get_paginator("get_spot_placement_scores")
            for page in pages.paginate(
                InstanceTypes=[instance_type],
                RegionNames=list(regions),
                SingleAvailabilityZone=True,
                TargetCapacity=capacity,
                TargetCapacityUnitType="units",
            ):
                for item in page.get("SpotPlacementScores", []):
                    scores.append(sps_score(instance_type, item, regions))
        except MalformedResponse:
            raise
        except ClientError as exc:
            code = _error_code(exc)
            if code == _CONFIG_LIMIT_CODE:
                raise ConfigLimitExceeded(f"{credential.label}: {code}: {_error_message(exc)}") from exc
            if code in _THROTTLING_CODES:
                raise Throttled(f"{credential.label}: {code} persisted after the client's retries") from exc
            raise RegionUnavailable(
                self.sps_region,
                f"GetSpotPlacementScores with {credential.label}: {code}: {_error_message(exc)}",
            ) from exc
        except ParamValidationError:
            raise
        except BotoCoreError as exc:
            raise RegionUnavailable(
                self.sps_region,
                f"GetSpotPlacementScores with {credential.label}: {type(exc).__name__}: {exc}",
            ) from exc
        except ValueError as exc:
            # botocore's XML parser converts scalars itself: an empty <score/> fails in int() before any
            # item reaches sps_score, and asking again would get the same answer.
            raise MalformedResponse(
                SPS_CALL,
                "response body",
                f"{type(exc).__name__}: {exc}",
                {"InstanceType": instance_type, "RegionNames": list(regions), "TargetCapacity": capacity},
                "botocore could not parse the answer",
            ) from exc
        return scores

    def spot_prices(self, region: str, window_start: datetime) -> list[SpotPriceQuote]:
        """The price in effect at ``window_start`` per (instance type, AZ name).

        With StartTime = EndTime AWS returns every record whose validity covers that instant, which can be
        several per pair; the newest one at or before the instant is the price then in force.
        """
        moment = _as_utc(window_start)
        newest: dict[tuple[str, str], tuple[datetime, float]] = {}
        with _region_errors(region, "DescribeSpotPriceHistory"):
            pages = self._ec2(region).get_paginator("describe_spot_price_history")
            for page in pages.paginate(
                ProductDescriptions=[SPOT_PRODUCT_DESCRIPTION],
                StartTime=moment,
                EndTime=moment,
                PaginationConfig={"PageSize": 1000},
            ):
                for record in page.get("SpotPriceHistory", []):
                    call = f"DescribeSpotPriceHistory {region}"
                    instance_type = _name(
                        record.get("InstanceType"), call=call, field="InstanceType", row=record
                    )
                    zone_name = _name(
                        record.get("AvailabilityZone"), call=call, field="AvailabilityZone", row=record
                    )
                    pair = (instance_type, zone_name)
                    try:
                        stamp = _as_utc(record["Timestamp"])
                        price = float(record["SpotPrice"])
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        raise MalformedResponse(
                            call, "Timestamp/SpotPrice", repr(exc), record, "no usable time or price"
                        ) from exc
                    if stamp > moment:
                        continue
                    current = newest.get(pair)
                    if current is None or stamp > current[0]:
                        newest[pair] = (stamp, price)
        return [
            SpotPriceQuote(instance_type=instance_type, zone_name=zone_name, price=price)
            for (instance_type, zone_name), (_, price) in sorted(newest.items())
        ]

    def ondemand_prices(self, region: str) -> list[OndemandQuote]:
        filters: list[FilterTypeDef] = [
            {"Type": "TERM_MATCH", "Field": field, "Value": value}
            for field, value in (("regionCode", region), *_ONDEMAND_FILTERS)
        ]
        quotes: dict[str, OndemandQuote] = {}
        with _region_errors(region, "GetProducts"):
            pages = self._pricing().get_paginator("get_products")
            for page in pages.paginate(
                ServiceCode="AmazonEC2",
                Filters=filters,
                FormatVersion="aws_v1",
                PaginationConfig={"PageSize": 100},
            ):
                for item in page.get("PriceList", []):
                    quote = _ondemand_price(item, region)
                    if quote is None:
                        continue
                    known = quotes.get(quote.instance_type)
                    if known is None:
                        quotes[quote.instance_type] = quote
                    elif known.price != quote.price:
                        # Keep the first; a second distinct price means the filters no longer isolate one
                        # product per type, which the lead should hear about.
                        log.warning(
                            "pricing %s: %s has several on-demand prices (%s, %s); keeping the first",
                            region,
                            quote.instance_type,
                            known.price,
                            quote.price,
                        )
        return [quotes[name] for name in sorted(quotes)]

    def spot_advisor_document(self, window_start: datetime) -> bytes:
        """GET the advisor JSON. ``window_start`` is ignored: the advisor publishes only its current view.

        Network errors, timeouts and 408/429/5xx answers are retried with exponential back-off,
        ``advisor_attempts`` in all; any other HTTP error fails at once. Either way `DownloadFailed` names
        the URL and the status, and says whether another attempt could succeed (``permanent``). The body
        is returned as is: parsing, and the rejection of truncated documents, belong to
        `parse_spot_advisor`.
        """
        url = self.advisor_url
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.advisor_attempts),
            wait=tenacity.wait_exponential(multiplier=self.advisor_backoff_s, max=30),
            retry=tenacity.retry_if_exception(_is_retryable_download_error),
            before_sleep=lambda state: log.warning(
                "spot advisor download attempt %s failed: %s",
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
            reraise=True,
        )
        try:
            return retrying(self._download, url)
        except urllib.error.HTTPError as exc:
            raise DownloadFailed(
                url,
                f"HTTP {exc.code} {exc.reason}",
                status=exc.code,
                permanent=not _is_retryable_status(exc.code),
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadFailed(url, f"{type(exc).__name__}: {exc}", status=None, permanent=False) from exc

    def _download(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self.advisor_timeout_s) as response:
            body: bytes = response.read()
        log.info("spot advisor document: %s bytes from %s", len(body), url)
        return body
