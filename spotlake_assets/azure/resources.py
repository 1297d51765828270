"""The Azure API resource: one typed interface, an SDK/HTTP-backed implementation (production) and a simulated
one (`spotlake_assets.azure.simulation`, the embedded default). Collectors only see `AzureApi`. Which one an
environment uses is chosen in `spotlake_assets.azure.environment`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import dagster as dg
from pydantic import PrivateAttr

from spotlake_assets.azure.constants import (
    ARM_ENDPOINT,
    ARM_SCOPE,
    AUTHORITY,
    EVICTION_RATE_QUERY,
    PROBE_LOCATION,
    RESOURCE_GRAPH_API_VERSION,
    RETAIL_PRICES_FILTER,
    RETAIL_PRICES_URL,
    SPS_API_VERSION,
)
from spotlake_assets.azure.models import (
    AuthenticationFailed,
    AzureApiError,
    AzureLogin,
    Endpoint,
    EvictionRate,
    InvalidRequestValues,
    MalformedResponse,
    MaxRequestsReached,
    PermanentError,
    PlacementScore,
    PricePageFailed,
    RetailPrice,
    Throttled,
    TransientError,
    checked_placement_score,
)
from spotlake_assets.domain.validation import normalise_name

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.rest import HttpResponse

log = logging.getLogger(__name__)

# Azure's wording when a (subscription, location) has used its SPS requests; matched case-insensitively.
MAX_REQUESTS_MESSAGE = "maximum number of requests"
_INVALID_REGION = re.compile(
    r"The value '([^']+)' provided for the input parameter '(?:[\w.]*\.)?desiredLocations' is not valid",
    re.IGNORECASE,
)
_INVALID_SIZE = re.compile(
    r"The value '([^']+)' provided for the input parameter '(?:[\w.]*\.)?desiredSizes' is not valid",
    re.IGNORECASE,
)
_SUPPORTED_LOCATIONS = re.compile(r"supported locations are '([^']+)'", re.IGNORECASE)
_DEFAULT_RETRY_AFTER_S = 10.0


@dataclass(frozen=True)
class PriceList:
    items: tuple[RetailPrice, ...]
    pages: int


@dataclass(frozen=True)
class EvictionRates:
    items: tuple[EvictionRate, ...]
    pages: int


class AzureApi(dg.ConfigurableResource, ABC):  # type: ignore[type-arg]
    """Every Azure call SpotLake makes. Methods raise the errors of `spotlake_assets.azure.models`.

    ``window_start`` says which 10-minute window a call observes: Azure always answers for "now"; the
    simulation uses it to pick the state of its deterministic world.
    """

    @property
    @abstractmethod
    def simulated(self) -> bool:
        """True when answers come from the simulation, never from Azure."""

    @property
    def observes_past(self) -> bool:
        """Whether SPS, eviction rates and retail prices can be asked about a window that is over. Azure
        cannot: backfills of those collectors skip instead of storing today's answer under an old key."""
        return False

    def now(self, window_start: datetime) -> datetime:
        """The clock the SPS call budget is kept on: the wall clock for Azure."""
        return datetime.now(UTC)

    @abstractmethod
    def retail_prices(self, window_start: datetime, regions: Sequence[str] | None = None) -> PriceList:
        """Every Virtual Machines consumption price item (all pages), optionally restricted to ``regions``."""

    @abstractmethod
    def eviction_rates(self, login: AzureLogin, window_start: datetime) -> EvictionRates:
        """Every spot eviction-rate row of Resource Graph's `spotresources` table (all pages)."""

    @abstractmethod
    def sps_locations(self, login: AzureLogin) -> list[str]:
        """The calling locations that serve the Spot Placement Score API, sorted."""

    @abstractmethod
    def spot_placement_scores(
        self,
        login: AzureLogin,
        endpoint: Endpoint,
        regions: Sequence[str],
        sizes: Sequence[str],
        desired_count: int,
        window_start: datetime,
    ) -> list[PlacementScore]:
        """One Spot Placement Score request (``availabilityZones: true``) sent to ``endpoint``.

        Raises `MaxRequestsReached`, `Throttled` (429 with Retry-After), `InvalidRequestValues` (unknown
        SKUs or locations, named), `TransientError` (timeouts, 5xx), `AuthenticationFailed`,
        `PermanentError` (any other 4xx) and `MalformedResponse` (an answer breaking the documented shape:
        an unknown score or zone label, a missing field). Every returned score went through
        `checked_placement_score`. Never retries by itself: every attempt spends the endpoint's budget,
        so the collector decides.
        """


# --- pure helpers of the SDK implementation (tested directly) ---------------------------------------------


def invalid_values(message: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(regions, sizes) an SPS error message names as not valid."""
    regions = tuple(dict.fromkeys(_INVALID_REGION.findall(message)))
    sizes = tuple(dict.fromkeys(_INVALID_SIZE.findall(message)))
    return regions, sizes


def supported_locations(message: str) -> list[str]:
    found = _SUPPORTED_LOCATIONS.search(message)
    if not found:
        return []
    return sorted({name.strip() for name in found.group(1).split(",") if name.strip()})


def retry_after_seconds(headers: Mapping[str, str]) -> float:
    """Seconds to wait from a 429's ``Retry-After`` (delta-seconds or an HTTP date); a default if absent."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return _DEFAULT_RETRY_AFTER_S
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_AFTER_S
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def error_message(body: bytes) -> str:
    """The ``error.message`` of an ARM error body, or the body itself (truncated) when it is not one."""
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except ValueError:
        return text[:2000]
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict):
            parts = [str(error.get("code", "")), str(error.get("message", ""))]
            for detail in error.get("details") or []:
                if isinstance(detail, dict):
                    parts.append(str(detail.get("message", "")))
            return ": ".join(p for p in parts if p)
    return text[:2000]


def parse_placement_scores(document: Any, where: str) -> list[PlacementScore]:
    """The scores of one SPS answer, each validated by `checked_placement_score` (`MalformedResponse`
    naming the call, field, value and entry for anything outside the documented vocabulary)."""
    if not isinstance(document, dict) or not isinstance(document.get("placementScores"), list):
        value = document.get("placementScores") if isinstance(document, dict) else document
        raise MalformedResponse(where, "placementScores", value, reason="not a list")
    scores: list[PlacementScore] = []
    for position, entry in enumerate(document["placementScores"]):
        row = f"placementScores[{position}]"
        if not isinstance(entry, dict):
            raise MalformedResponse(where, row, entry, reason="not an object")
        scores.append(
            checked_placement_score(
                entry.get("sku"),
                entry.get("region"),
                entry.get("availabilityZone"),
                entry.get("score"),
                call=where,
                row=row,
            )
        )
    return scores


_PRICE_FIELDS = ("armRegionName", "location", "armSkuName", "meterName", "productName", "retailPrice")


def parse_price_page(document: Any, url: str) -> tuple[list[RetailPrice], str | None]:
    """One Retail Prices page → (items, NextPageLink or None)."""
    call = f"retail prices page {url}"
    if not isinstance(document, dict) or not isinstance(document.get("Items"), list):
        value = document.get("Items") if isinstance(document, dict) else document
        raise MalformedResponse(call, "Items", value, reason="not a list")
    items: list[RetailPrice] = []
    for position, item in enumerate(document["Items"]):
        row = f"Items[{position}]"
        if not isinstance(item, dict):
            raise MalformedResponse(call, row, item, reason="not an object")
        missing = [name for name in _PRICE_FIELDS if name not in item]
        if missing:
            raise MalformedResponse(call, missing[0], None, row, f"missing (needs {list(_PRICE_FIELDS)})")
        try:
            price = float(item["retailPrice"])
        except (TypeError, ValueError) as exc:
            raise MalformedResponse(call, "retailPrice", item["retailPrice"], row, "not a number") from exc
        items.append(
            RetailPrice(
                arm_region_name=str(item["armRegionName"] or ""),
                location=str(item["location"] or ""),
                arm_sku_name=str(item["armSkuName"] or ""),
                meter_name=str(item["meterName"] or ""),
                product_name=str(item["productName"] or ""),
                retail_price=price,
                price_type=str(item.get("type", "Consumption")),
                unit_of_measure=str(item.get("unitOfMeasure", "1 Hour")),
                effective_start_date=str(item.get("effectiveStartDate", "")),
            )
        )
    link = document.get("NextPageLink")
    if link is not None and not isinstance(link, str):
        raise MalformedResponse(call, "NextPageLink", link, reason="not a string")
    return items, link or None


def _permanent(status: int) -> bool:
    """A 4xx that asking again cannot fix (throttling and request timeouts can be waited out)."""
    return 400 <= status < 500 and status not in (408, 429)


def retail_prices_url(base: str, region: str | None) -> str:
    flt = RETAIL_PRICES_FILTER + (f" and armRegionName eq '{region}'" if region else "")
    return f"{base}?currencyCode='USD'&$filter={quote(flt, safe=chr(39))}"


class AzureSdkApi(AzureApi):
    """`AzureApi` on Azure through azure-core pipelines, azure-identity and azure-mgmt-resourcegraph.

    Endpoints are configuration so tests run the same code against a loopback server: ``arm_endpoint``,
    ``authority`` (the token endpoint's host), ``retail_prices_url``; ``ca_bundle`` trusts a private CA and
    ``allow_http`` (loopback tests only) lets the bearer-token policy send a token over plain HTTP.
    Clients are created on first use, never at import or construction, and cached per login.
    """

    arm_endpoint: str = ARM_ENDPOINT
    authority: str = AUTHORITY
    retail_prices_url: str = RETAIL_PRICES_URL
    ca_bundle: str | None = None
    allow_http: bool = False
    sps_api_version: str = SPS_API_VERSION
    resource_graph_api_version: str = RESOURCE_GRAPH_API_VERSION
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 50.0
    # Retail Prices and Resource Graph: retries of one page (5xx, 429, timeouts) with exponential back-off.
    page_retries: int = 5
    page_backoff_s: float = 0.8
    price_workers: int = 8
    # Used when the probe for SPS calling locations cannot parse Azure's answer.
    fallback_sps_locations: list[str] = []

    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _credentials: dict[AzureLogin, TokenCredential] = PrivateAttr(default_factory=dict)
    _clients: dict[tuple[str, AzureLogin | None], Any] = PrivateAttr(default_factory=dict)

    @property
    def simulated(self) -> bool:
        return False

    # -- clients -------------------------------------------------------------------------------------------
    def _transport_options(self) -> dict[str, Any]:
        return {"connection_verify": self.ca_bundle} if self.ca_bundle else {}

    def _call_options(self, authenticated: bool = True) -> dict[str, Any]:
        options: dict[str, Any] = {
            "connection_timeout": self.connect_timeout_s,
            "read_timeout": self.read_timeout_s,
        }
        # Only the bearer-token policy reads this option; without it the transport would receive it.
        if self.allow_http and authenticated:
            options["enforce_https"] = False
        return options

    def credential(self, login: AzureLogin) -> TokenCredential:
        """The login's `ClientSecretCredential` (cached: it caches its token until shortly before expiry)."""
        from azure.identity import ClientSecretCredential

        with self._lock:
            credential = self._credentials.get(login)
            if credential is None:
                credential = ClientSecretCredential(
                    login.tenant_id,
                    login.client_id,
                    login.client_secret,
                    authority=self.authority,
                    # Instance discovery asks login.microsoftonline.com about the authority: only for Azure's.
                    disable_instance_discovery=self.authority.rstrip("/") != AUTHORITY,
                    **self._transport_options(),
                )
                self._credentials[login] = credential
                log.debug("created a client-secret credential for %s", login.label)
            return credential

    def _client(self, kind: str, login: AzureLogin | None) -> Any:
        from azure.core import PipelineClient
        from azure.core.pipeline import policies

        with self._lock:
            client = self._clients.get((kind, login))
        if client is not None:
            return client
        common = [policies.HeadersPolicy(), policies.UserAgentPolicy(user_agent="spotlake-assets")]
        if kind == "prices":
            client = PipelineClient(
                base_url=self.retail_prices_url,
                policies=[
                    *common,
                    policies.RetryPolicy(
                        retry_total=self.page_retries, retry_backoff_factor=self.page_backoff_s
                    ),
                    policies.HttpLoggingPolicy(),
                ],
                **self._transport_options(),
            )
        elif kind == "sps":
            assert login is not None
            client = PipelineClient(
                base_url=self.arm_endpoint,
                # No RetryPolicy: every attempt spends the endpoint's budget, so the collector retries.
                policies=[
                    *common,
                    policies.BearerTokenCredentialPolicy(self.credential(login), ARM_SCOPE),
                    policies.HttpLoggingPolicy(),
                ],
                **self._transport_options(),
            )
        elif kind == "graph":
            assert login is not None
            from azure.mgmt.resourcegraph import ResourceGraphClient

            client = ResourceGraphClient(
                self.credential(login),
                base_url=self.arm_endpoint,
                credential_scopes=[ARM_SCOPE],
                retry_total=self.page_retries,
                retry_backoff_factor=self.page_backoff_s,
                **self._transport_options(),
            )
        else:
            raise ValueError(f"unknown client kind {kind!r}")
        with self._lock:
            return self._clients.setdefault((kind, login), client)

    # -- retail prices -------------------------------------------------------------------------------------
    def _price_chain(self, region: str | None) -> tuple[list[RetailPrice], int]:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        client = self._client("prices", None)
        url: str | None = retail_prices_url(self.retail_prices_url, region)
        seen: set[str] = set()
        items: list[RetailPrice] = []
        pages = 0
        while url is not None:
            if url in seen:
                raise MalformedResponse(
                    "retail prices", "NextPageLink", url, reason="repeats an earlier page"
                )
            seen.add(url)
            try:
                response = client.send_request(HttpRequest("GET", url), **self._call_options(False))
            except AzureError as exc:
                raise PricePageFailed(url, f"{type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if status != 200:
                # RetryPolicy already retried 408/429/5xx; any other 4xx was not retried, because asking
                # again gets the same answer. Either way a lost page must stop the asset.
                raise PricePageFailed(
                    url, f"HTTP {status}: {error_message(response.read())}", permanent=_permanent(status)
                )
            try:
                document = response.json()
            except ValueError as exc:
                raise PricePageFailed(url, f"body is not JSON: {exc}") from exc
            page_items, url = parse_price_page(document, url)
            items.extend(page_items)
            pages += 1
        return items, pages

    def retail_prices(self, window_start: datetime, regions: Sequence[str] | None = None) -> PriceList:
        """GET the price list following ``NextPageLink`` until it is absent (never guessing ``$skip``).

        One page follows from the previous one, so concurrency comes from independent chains: with
        ``regions``, one chain per region (``armRegionName eq …``) runs in parallel. Each page is retried
        by the pipeline's RetryPolicy; a page that still fails raises `PricePageFailed` with its URL.
        """
        chains: list[str | None] = list(regions) if regions else [None]
        workers = max(1, min(self.price_workers, len(chains)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prices") as pool:
            results = list(pool.map(self._price_chain, chains))
        items = tuple(item for chain_items, _ in results for item in chain_items)
        pages = sum(p for _, p in results)
        log.info("retail prices: %s items in %s pages over %s chains", len(items), pages, len(chains))
        return PriceList(items=items, pages=pages)

    # -- Resource Graph ------------------------------------------------------------------------------------
    def eviction_rates(self, login: AzureLogin, window_start: datetime) -> EvictionRates:
        """The eviction-rate query, paged by ``$skipToken`` until Resource Graph returns none."""
        from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

        client = self._client("graph", login)
        rows: list[EvictionRate] = []
        token: str | None = None
        seen: set[str] = set()
        pages = 0
        while True:
            request = QueryRequest(
                query=EVICTION_RATE_QUERY,
                subscriptions=list(login.subscriptions),
                options=QueryRequestOptions(result_format="objectArray", skip_token=token),
            )
            with _arm_errors("resource graph eviction rates"):
                answer = client.resources(
                    request, api_version=self.resource_graph_api_version, **self._call_options()
                )
            pages += 1
            data = answer.data
            call = f"resource graph eviction rates page {pages}"
            if not isinstance(data, list):
                raise MalformedResponse(call, "data", type(data).__name__, reason="not a list of objects")
            for position, entry in enumerate(data):
                row = f"data[{position}]"
                if not isinstance(entry, dict):
                    raise MalformedResponse(call, row, entry, reason="not an object")
                rows.append(
                    EvictionRate(
                        normalise_name(entry.get("location"), call=call, field="location", row=row),
                        # Spelling kept (Azure returns some in lower case): matching folds case later.
                        normalise_name(entry.get("skuName"), call=call, field="skuName", row=row),
                        normalise_name(entry.get("evictionRate"), call=call, field="evictionRate", row=row),
                    )
                )
            token = answer.skip_token
            if not token:
                break
            if token in seen:
                raise MalformedResponse(
                    "resource graph eviction rates", "$skipToken", token, reason=f"repeats after page {pages}"
                )
            seen.add(token)
        log.info("resource graph: %s eviction-rate rows in %s pages", len(rows), pages)
        return EvictionRates(items=tuple(rows), pages=pages)

    # -- Spot Placement Scores -----------------------------------------------------------------------------
    def _sps_url(self, endpoint: Endpoint) -> str:
        return (
            f"{self.arm_endpoint.rstrip('/')}/subscriptions/{quote(endpoint.subscription)}/providers/"
            f"Microsoft.Compute/locations/{quote(endpoint.location)}/placementScores/spot/generate"
            f"?api-version={self.sps_api_version}"
        )

    def _post(self, login: AzureLogin, endpoint: Endpoint, body: dict[str, Any]) -> HttpResponse:
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
        from azure.core.rest import HttpRequest

        client = self._client("sps", login)
        request = HttpRequest("POST", self._sps_url(endpoint), json=body)
        try:
            response: HttpResponse = client.send_request(request, **self._call_options())
        except ClientAuthenticationError as exc:
            raise AuthenticationFailed(f"{login.label}: token request refused: {exc.message}") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientError(f"{endpoint.label}: {type(exc).__name__}: {exc}") from exc
        response.read()
        return response

    def sps_locations(self, login: AzureLogin) -> list[str]:
        """Ask an SPS endpoint that does not exist: Azure's error lists the locations that do."""
        if not login.subscriptions:
            raise AzureApiError(f"{login.label}: no subscriptions to call the SPS API from")
        probe = Endpoint(login.subscriptions[0], PROBE_LOCATION)
        body = {
            "availabilityZones": False,
            "desiredCount": 1,
            "desiredLocations": ["eastus"],
            "desiredSizes": [{"sku": "Standard_D2s_v5"}],
        }
        response = self._post(login, probe, body)
        if response.status_code in (401, 403):
            raise AuthenticationFailed(f"{login.label}: HTTP {response.status_code} from the SPS probe")
        found = supported_locations(error_message(response.content))
        if found:
            return found
        if self.fallback_sps_locations:
            log.warning(
                "SPS location probe gave no list (HTTP %s); using the configured ones", response.status_code
            )
            return sorted(self.fallback_sps_locations)
        raise MalformedResponse(
            "SPS location probe",
            "error.message",
            error_message(response.content)[:200],
            reason=f"HTTP {response.status_code} without a list of supported locations",
        )

    def spot_placement_scores(
        self,
        login: AzureLogin,
        endpoint: Endpoint,
        regions: Sequence[str],
        sizes: Sequence[str],
        desired_count: int,
        window_start: datetime,
    ) -> list[PlacementScore]:
        body = {
            "availabilityZones": True,
            "desiredCount": desired_count,
            "desiredLocations": list(regions),
            "desiredSizes": [{"sku": sku} for sku in sizes],
        }
        response = self._post(login, endpoint, body)
        status = response.status_code
        where = f"SPS {endpoint.label}"
        if status == 200:
            try:
                document = response.json()
            except ValueError as exc:
                raise MalformedResponse(
                    where, "body", response.text()[:200], reason=f"not JSON ({exc})"
                ) from exc
            return parse_placement_scores(document, where)
        message = error_message(response.content)
        if MAX_REQUESTS_MESSAGE in message.lower():
            raise MaxRequestsReached(endpoint, message)
        if status == 429:
            raise Throttled(f"{where}: HTTP 429: {message}", retry_after_seconds(response.headers))
        if status in (401, 403):
            raise AuthenticationFailed(f"{where}: HTTP {status}: {message}")
        if status == 408 or status >= 500:
            raise TransientError(f"{where}: HTTP {status}: {message}")
        bad_regions, bad_sizes = invalid_values(message)
        if bad_regions or bad_sizes:
            raise InvalidRequestValues(f"{where}: {message}", regions=bad_regions, sizes=bad_sizes)
        if _permanent(status):
            raise PermanentError(f"{where}: HTTP {status} (permanent, not retried): {message}")
        raise AzureApiError(f"{where}: HTTP {status}: {message}")


@contextmanager
def _arm_errors(operation: str) -> Iterator[None]:
    """SDK exceptions (already retried by the client's RetryPolicy) → the resource's errors."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ClientAuthenticationError as exc:
        raise AuthenticationFailed(f"{operation}: {exc.message}") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        if status in (408, 429) or status >= 500:
            raise TransientError(f"{operation}: HTTP {status}: {exc.message}") from exc
        if _permanent(status):
            raise PermanentError(
                f"{operation}: HTTP {status} (permanent, not retried): {exc.message}"
            ) from exc
        raise AzureApiError(f"{operation}: HTTP {status}: {exc.message}") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientError(f"{operation}: {type(exc).__name__}: {exc}") from exc
