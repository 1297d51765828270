"""Tier 2: the SDK/HTTP-backed `AzureSdkApi` against loopback servers (no Azure reachable here).

The token endpoint runs over local TLS (a `trustme` CA passed as ``ca_bundle``), exactly as MSAL needs it;
ARM and the Retail Prices API run on a plain-HTTP `pytest-httpserver`, with ``allow_http`` letting the
bearer-token policy send its token there. One test also runs ARM over TLS.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from spotlake_assets.azure.collectors.interruption_frequency import collect_interruption_frequency
from spotlake_assets.azure.collectors.prices import price_frame
from spotlake_assets.azure.collectors.sps import scores_frame
from spotlake_assets.azure.merge import merge_snapshot
from spotlake_assets.azure.models import (
    AuthenticationFailed,
    AzureApiError,
    AzureLogin,
    Endpoint,
    InvalidRequestValues,
    MalformedResponse,
    MaxRequestsReached,
    PermanentError,
    PlacementScore,
    PricePageFailed,
    RetailPrice,
    Throttled,
    TransientError,
)
from spotlake_assets.azure.resources import AzureSdkApi, invalid_values, retry_after_seconds

SECRET = "s3cret-value-never-logged"
LOGIN = AzureLogin("tenant-1", "client-1234", SECRET, ("sub-a", "sub-b"))
START = datetime(2026, 3, 1, tzinfo=UTC)
SPS_PATH = "/subscriptions/sub-a/providers/Microsoft.Compute/locations/eastus/placementScores/spot/generate"
ENDPOINT = Endpoint("sub-a", "eastus")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_path(ca: trustme.CA) -> Iterator[str]:
    with ca.cert_pem.tempfile() as path:
        yield path


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[HTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    base = f"https://127.0.0.1:{server.port}"
    server.expect_request("/tenant-1/v2.0/.well-known/openid-configuration").respond_with_json(
        {
            "token_endpoint": f"{base}/tenant-1/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/tenant-1/oauth2/v2.0/authorize",
            "issuer": f"{base}/tenant-1/v2.0",
        }
    )
    server.expect_request("/tenant-1/oauth2/v2.0/token", method="POST").respond_with_json(
        {"access_token": "token-1", "expires_in": 3600, "token_type": "Bearer"}
    )
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def api(tls_server: HTTPServer, httpserver: HTTPServer, ca_path: str) -> AzureSdkApi:
    return AzureSdkApi(
        arm_endpoint=httpserver.url_for("").rstrip("/"),
        authority=f"https://127.0.0.1:{tls_server.port}",
        retail_prices_url=httpserver.url_for("/api/retail/prices"),
        ca_bundle=ca_path,
        allow_http=True,
        page_retries=2,
        page_backoff_s=0.0,
        connect_timeout_s=2.0,
        read_timeout_s=5.0,
    )


def scores_body(*scores: tuple[str, str, str | None, str]) -> dict[str, Any]:
    return {
        "desiredLocations": ["eastus"],
        "desiredSizes": [{"sku": "Standard_D2s_v5"}],
        "desiredCount": 10,
        "availabilityZones": True,
        "placementScores": [
            {
                "sku": s,
                "region": r,
                **({"availabilityZone": z} if z else {}),
                "score": v,
                "isQuotaAvailable": True,
            }
            for s, r, z, v in scores
        ],
    }


def call(api: AzureSdkApi) -> list[Any]:
    return api.spot_placement_scores(LOGIN, ENDPOINT, ["eastus", "westus"], ["Standard_D2s_v5"], 10, START)


def test_token_flow_and_request_body(
    api: AzureSdkApi, tls_server: HTTPServer, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    expected_body = {
        "availabilityZones": True,
        "desiredCount": 10,
        "desiredLocations": ["eastus", "westus"],
        "desiredSizes": [{"sku": "Standard_D2s_v5"}],
    }
    httpserver.expect_request(
        SPS_PATH,
        method="POST",
        query_string={"api-version": "2025-06-05"},
        json=expected_body,
        headers={"Authorization": "Bearer token-1"},
    ).respond_with_json(
        scores_body(("Standard_D2s_v5", "eastus", "1", "High"), ("Standard_D2s_v5", "westus", None, "Low"))
    )
    first, second = call(api), call(api)
    assert [(s.region, s.availability_zone, s.score) for s in first] == [
        ("eastus", "1", "High"),
        ("westus", None, "Low"),
    ]
    assert second == first
    token_requests = [r for r, _ in tls_server.log if r.path.endswith("/token")]
    assert len(token_requests) == 1  # the token is cached between calls
    form = token_requests[0].form
    assert form["grant_type"] == "client_credentials" and form["client_id"] == "client-1234"
    assert form["scope"] == "https://management.azure.com/.default"
    assert SECRET not in caplog.text and SECRET not in repr(LOGIN)


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "check"),
    [
        (
            429,
            {"error": {"code": "TooManyRequests", "message": "Slow down"}},
            {"Retry-After": "120"},
            Throttled,
            lambda e: e.retry_after_s == 120,
        ),
        (
            429,
            {
                "error": {
                    "code": "TooManyRequests",
                    "message": "You have reached the maximum number of requests allowed.",
                }
            },
            {},
            MaxRequestsReached,
            lambda e: e.endpoint == ENDPOINT,
        ),
        (
            400,
            {
                "error": {
                    "code": "InvalidParameter",
                    "message": "The value 'Standard_Nope' provided for the input "
                    "parameter 'SpotPlacementRecommenderInput.desiredSizes' is not valid.",
                }
            },
            {},
            InvalidRequestValues,
            lambda e: e.sizes == ("Standard_Nope",) and e.regions == (),
        ),
        (
            400,
            {
                "error": {
                    "code": "InvalidParameter",
                    "message": "The value 'westus' provided for the input "
                    "parameter 'desiredLocations' is not valid.",
                }
            },
            {},
            InvalidRequestValues,
            lambda e: e.regions == ("westus",),
        ),
        (
            503,
            {"error": {"code": "ServiceUnavailable", "message": "try later"}},
            {},
            TransientError,
            lambda e: True,
        ),
        (
            403,
            {"error": {"code": "AuthorizationFailed", "message": "no"}},
            {},
            AuthenticationFailed,
            lambda e: True,
        ),
        # Permanent: failed at once, the status and Azure's message on the first line (old code: a generic
        # AzureApiError the collector turned into a silently uncovered request).
        (
            404,
            {
                "error": {
                    "code": "SubscriptionNotFound",
                    "message": "The subscription 'sub-a' could not be found.",
                }
            },
            {},
            PermanentError,
            lambda e: (
                str(e).startswith("SPS …sub-a/eastus: HTTP 404 (permanent, not retried)")
                and "could not be found" in str(e)
            ),
        ),
        (
            400,
            {"error": {"code": "BadRequest", "message": "desiredCount must be positive"}},
            {},
            PermanentError,
            lambda e: "HTTP 400" in str(e).splitlines()[0],
        ),
    ],
)
def test_sps_errors_map_to_typed_exceptions(
    api: AzureSdkApi,
    httpserver: HTTPServer,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    error: type[AzureApiError],
    check: Callable[[AzureApiError], bool],
) -> None:
    httpserver.expect_request(SPS_PATH, method="POST").respond_with_json(body, status=status, headers=headers)
    with pytest.raises(error) as raised:
        call(api)
    assert check(raised.value)
    assert len(httpserver.log) == 1  # never retried by the client: each attempt spends budget


def test_sps_over_tls_with_a_private_ca(tls_server: HTTPServer, ca_path: str) -> None:
    tls_server.expect_request(SPS_PATH, method="POST").respond_with_json(
        scores_body(("Standard_D2s_v5", "eastus", "2", "Medium"))
    )
    base = f"https://127.0.0.1:{tls_server.port}"
    api = AzureSdkApi(arm_endpoint=base, authority=base, ca_bundle=ca_path)
    assert [s.score for s in call(api)] == ["Medium"]


def test_unreachable_endpoint_is_transient(tls_server: HTTPServer, ca_path: str) -> None:
    api = AzureSdkApi(
        arm_endpoint="http://127.0.0.1:9",
        authority=f"https://127.0.0.1:{tls_server.port}",
        ca_bundle=ca_path,
        allow_http=True,
        connect_timeout_s=1.0,
    )
    with pytest.raises(TransientError):
        call(api)


def test_sps_locations_probe_parses_azure_list(api: AzureSdkApi, httpserver: HTTPServer) -> None:
    message = (
        "The provided location 'spotlake-probe-location' is not available for resource type "
        "'Microsoft.Compute/locations/placementScores'. List of available regions for the resource type is "
        "'eastus,westus'. The supported locations are 'westus2, eastus, uksouth'."
    )
    httpserver.expect_request(
        "/subscriptions/sub-a/providers/Microsoft.Compute/locations/spotlake-probe-location/placementScores/spot/generate"
    ).respond_with_json(
        {"error": {"code": "LocationNotAvailableForResourceType", "message": message}}, status=400
    )
    assert api.sps_locations(LOGIN) == ["eastus", "uksouth", "westus2"]


def test_resource_graph_paging_by_skip_token(api: AzureSdkApi, httpserver: HTTPServer) -> None:
    bodies: list[dict[str, Any]] = []
    failures = {"page2": 1}

    def handler(request: Request) -> Response:
        body = json.loads(request.get_data())
        bodies.append(body)
        token = body.get("options", {}).get("$skipToken")
        if token == "page2" and failures["page2"]:
            failures["page2"] -= 1
            return Response(
                json.dumps({"error": {"code": "InternalServerError", "message": "x"}}),
                status=500,
                content_type="application/json",
            )
        pages = {
            None: ([("eastus", "Standard_D2s_v5", "0-5"), ("eastus", "Standard_D4s_v5", "5-10")], "page2"),
            "page2": ([("westeurope", "Standard_D2s_v5", "20+")], "page3"),
            "page3": ([("uksouth", "Standard_E2s_v5", "10-15")], None),
        }
        rows, following = pages[token]
        answer: dict[str, Any] = {
            "totalRecords": 4,
            "count": len(rows),
            "resultTruncated": "false",
            "data": [{"location": loc, "skuName": sku, "evictionRate": rate} for loc, sku, rate in rows],
        }
        if following:
            answer["$skipToken"] = following
        return Response(json.dumps(answer), content_type="application/json")

    httpserver.expect_request(
        "/providers/Microsoft.ResourceGraph/resources",
        method="POST",
        query_string={"api-version": "2024-04-01"},
    ).respond_with_handler(handler)
    rates = api.eviction_rates(LOGIN, START)
    assert rates.pages == 3
    assert [(r.location, r.sku_name, r.eviction_rate) for r in rates.items] == [
        ("eastus", "Standard_D2s_v5", "0-5"),
        ("eastus", "Standard_D4s_v5", "5-10"),
        ("westeurope", "Standard_D2s_v5", "20+"),
        ("uksouth", "Standard_E2s_v5", "10-15"),
    ]
    assert (
        "skuspotevictionrate" in bodies[0]["query"] and bodies[0]["options"]["resultFormat"] == "objectArray"
    )
    assert bodies[0]["subscriptions"] == ["sub-a", "sub-b"]
    assert [b["options"].get("$skipToken") for b in bodies] == [None, "page2", "page2", "page3"]


def price_item(region: str, meter: str, value: float) -> dict[str, Any]:
    return {
        "currencyCode": "USD",
        "retailPrice": value,
        "unitPrice": value,
        "armRegionName": region,
        "location": "US East",
        "effectiveStartDate": "2026-01-01T00:00:00Z",
        "meterName": meter,
        "productName": "Virtual Machines Dsv5 Series",
        "skuName": meter,
        "serviceName": "Virtual Machines",
        "armSkuName": "Standard_D2s_v5",
        "type": "Consumption",
        "unitOfMeasure": "1 Hour",
    }


def serve_prices(httpserver: HTTPServer, fail_page: int, failures: int) -> list[str]:
    seen: list[str] = []
    remaining = {"failures": failures}
    base = httpserver.url_for("/api/retail/prices")

    def handler(request: Request) -> Response:
        seen.append(request.query_string.decode())
        assert "serviceName eq 'Virtual Machines' and priceType eq 'Consumption'" in request.args["$filter"]
        page = int(request.args.get("$skip", "0")) // 1000
        if page == fail_page and remaining["failures"]:
            remaining["failures"] -= 1
            return Response("upstream timeout", status=503)
        items = [price_item("eastus", "D2s v5", 0.096), price_item("eastus", "D2s v5 Spot", 0.02)][
            page : page + 1
        ]
        link = f"{base}?currencyCode='USD'&$filter={request.args['$filter']}&$skip={(page + 1) * 1000}"
        body = {
            "BillingCurrency": "USD",
            "Items": items,
            "NextPageLink": link if page < 2 else None,
            "Count": 1,
        }
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/api/retail/prices", method="GET").respond_with_handler(handler)
    return seen


def test_retail_prices_follow_next_page_link_and_retry_a_failing_page(
    api: AzureSdkApi, httpserver: HTTPServer
) -> None:
    seen = serve_prices(httpserver, fail_page=1, failures=2)
    listing = api.retail_prices(START)
    assert listing.pages == 3 and [i.meter_name for i in listing.items] == ["D2s v5", "D2s v5 Spot"]
    assert len(seen) == 5  # three pages, the second one twice more after failing
    assert not any("$skip=3000" in q for q in seen)  # never probes past the last page


def test_a_page_that_keeps_failing_fails_with_its_url(api: AzureSdkApi, httpserver: HTTPServer) -> None:
    serve_prices(httpserver, fail_page=1, failures=100)
    with pytest.raises(PricePageFailed) as raised:
        api.retail_prices(START)
    assert "$skip=1000" in raised.value.url and "503" in raised.value.reason


def test_region_chains_run_separately(api: AzureSdkApi, httpserver: HTTPServer) -> None:
    seen = serve_prices(httpserver, fail_page=-1, failures=0)
    listing = api.retail_prices(START, ["eastus", "westus"])
    assert listing.pages == 6
    filters = {q.split("$filter=")[1].split("&")[0] for q in seen}
    assert any("eastus" in f for f in filters) and any("westus" in f for f in filters)


@pytest.mark.parametrize(
    ("message", "regions", "sizes"),
    [
        (
            "The value 'Standard_X' provided for the input parameter "
            "'SpotPlacementRecommenderInput.desiredSizes' is not valid.",
            (),
            ("Standard_X",),
        ),
        ("The value 'mars' provided for the input parameter 'desiredLocations' is not valid.", ("mars",), ()),
        ("Something else entirely", (), ()),
    ],
)
def test_invalid_values_parsing(message: str, regions: tuple[str, ...], sizes: tuple[str, ...]) -> None:
    assert invalid_values(message) == (regions, sizes)


@pytest.mark.parametrize(
    ("header", "seconds"), [({"Retry-After": "7"}, 7.0), ({}, 10.0), ({"Retry-After": "x"}, 10.0)]
)
def test_retry_after(header: dict[str, str], seconds: float) -> None:
    assert retry_after_seconds(header) == seconds


def test_a_refused_login_is_an_authentication_failure_without_the_secret(
    tls_server: HTTPServer, httpserver: HTTPServer, ca_path: str
) -> None:
    tls_server.clear()
    base = f"https://127.0.0.1:{tls_server.port}"
    tls_server.expect_request("/tenant-1/v2.0/.well-known/openid-configuration").respond_with_json(
        {
            "token_endpoint": f"{base}/tenant-1/oauth2/v2.0/token",
            "issuer": f"{base}/tenant-1/v2.0",
            "authorization_endpoint": f"{base}/tenant-1/oauth2/v2.0/authorize",
        }
    )
    tls_server.expect_request("/tenant-1/oauth2/v2.0/token", method="POST").respond_with_json(
        {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."},
        status=401,
    )
    api = AzureSdkApi(
        arm_endpoint=httpserver.url_for("").rstrip("/"), authority=base, ca_bundle=ca_path, allow_http=True
    )
    with pytest.raises(AuthenticationFailed) as raised:
        call(api)
    assert "client-1234"[-4:] in str(raised.value) and SECRET not in str(raised.value)
    assert httpserver.log == []  # nothing reached ARM without a token


@pytest.mark.parametrize(
    ("entry", "field", "value"),
    [
        (("Standard_D2s_v5", "westus", "1", "VeryHigh"), "score", "VeryHigh"),  # old code: dropped
        (("Standard_D2s_v5", "westus", "eastus-az1", "High"), "availabilityZone", "eastus-az1"),  # stored
        (("Standard_D2s_v5\u200b ", "westus", "1", ""), "score", ""),
        (("Standard D2s v5", "westus", "1", "High"), "sku", "Standard D2s v5"),
    ],
)
def test_an_sps_answer_outside_the_vocabulary_is_malformed_naming_call_field_value_and_row(
    api: AzureSdkApi, httpserver: HTTPServer, entry: tuple[str, str, str, str], field: str, value: str
) -> None:
    body = scores_body(("Standard_D2s_v5", "eastus", "1", "High"), entry)
    httpserver.expect_request(SPS_PATH, method="POST").respond_with_json(body)
    with pytest.raises(MalformedResponse) as raised:
        call(api)
    error = raised.value
    assert (error.call, error.field, error.value, error.row) == (
        "SPS …sub-a/eastus",
        field,
        value,
        "placementScores[1]",
    )
    assert len(httpserver.log) == 1


def test_documented_statuses_are_kept_as_unscored_answers(api: AzureSdkApi, httpserver: HTTPServer) -> None:
    body = scores_body(
        ("Standard_D2s_v5", "eastus", "1", "high"),
        ("Standard_D2s_v5", "westus", None, "RestrictedSkuNotAvailable"),
        ("Standard_D2s_v5", "westus", None, "DataNotFoundOrStale"),
    )
    httpserver.expect_request(SPS_PATH, method="POST").respond_with_json(body)
    answers = call(api)
    assert [a.score for a in answers] == ["High", "RestrictedSkuNotAvailable", "DataNotFoundOrStale"]


def test_a_permanent_price_error_is_not_retried_and_says_so(api: AzureSdkApi, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/retail/prices", method="GET").respond_with_json(
        {"Error": {"Code": "NotFound", "Message": "no such API version"}}, status=404
    )
    with pytest.raises(PricePageFailed) as raised:
        api.retail_prices(START)
    assert raised.value.permanent and "failed (permanent, not retried): HTTP 404" in str(raised.value)
    assert len(httpserver.log) == 1  # page_retries=2 were not spent on it


def test_resource_graph_404_is_permanent(api: AzureSdkApi, httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/providers/Microsoft.ResourceGraph/resources", method="POST"
    ).respond_with_json({"error": {"code": "NotFound", "message": "gone"}}, status=404)
    with pytest.raises(PermanentError, match="HTTP 404"):
        api.eviction_rates(LOGIN, START)
    assert len(httpserver.log) == 1


def test_lower_case_resource_graph_skus_reach_the_merged_snapshot(
    api: AzureSdkApi, httpserver: HTTPServer
) -> None:
    """Azure returns some skuName values in lower case: they used to be dropped as 'sku without tier', so
    IF was empty and -1 everywhere while every check passed."""
    rows = [
        ("eastus", "standard_nc24ads_a100_v4", "10-15"),
        ("eastus", "standard_d2s_v5", "0-5"),
        ("westus", "Standard_D2s_v5", "5-10"),
    ]
    httpserver.expect_request(
        "/providers/Microsoft.ResourceGraph/resources", method="POST"
    ).respond_with_json(
        {
            "totalRecords": 3,
            "count": 3,
            "resultTruncated": "false",
            "data": [{"location": loc, "skuName": sku, "evictionRate": rate} for loc, sku, rate in rows],
        }
    )
    rates = collect_interruption_frequency(api, LOGIN, START)
    assert len(rates.frame) == 3 and rates.dropped == {}
    prices, _ = price_frame(
        [
            RetailPrice("eastus", "US East", sku, meter, "Virtual Machines", value)
            for sku, meter, value in [
                ("Standard_NC24ads_A100_v4", "NC24ads A100 v4", 3.673),
                ("Standard_NC24ads_A100_v4", "NC24ads A100 v4 Spot", 0.734611),
                ("Standard_D2s_v5", "D2s v5", 0.096),
                ("Standard_D2s_v5", "D2s v5 Spot", 0.002508),
            ]
        ]
    )
    answers = [
        PlacementScore("Standard_NC24ads_A100_v4", "eastus", "1", "High"),
        PlacementScore("Standard_D2s_v5", "eastus", "2", "Medium"),
    ]
    sps = scores_frame(answers, 1, {"eastus": "US East"})
    merged = merge_snapshot(sps, prices, rates.frame, None, START, 1)
    frame = merged.frame.set_index(["InstanceType", "Region"])
    assert frame.loc[("NC24ads_A100_v4", "eastus"), "IF"] == 2.0
    assert frame.loc[("D2s_v5", "eastus"), "IF"] == 3.0
    assert frame.loc[("D2s_v5", "eastus"), "SpotPrice"] == 0.002508
    assert set(merged.frame["InstanceType"]) == {"NC24ads_A100_v4", "D2s_v5"}  # the price list's spelling
    assert merged.detail.coverage.if_fraction == 1.0 and merged.detail.coverage.problems(0.5, 0.25) == []
