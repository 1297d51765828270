"""`Boto3AwsApi` against moto (EC2 catalogue), botocore `Stubber` (SPS, spot price history, Pricing: shapes
validated against the real service models) and a loopback HTTP server (Spot Instance Advisor)."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.retries.standard
import dagster as dg
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.stub import Stubber
from moto import mock_aws
from moto.server import ThreadedMotoServer
from pytest_httpserver import HTTPServer

from spotlake_assets.aws.assets import aws_interruption_frequency
from spotlake_assets.aws.collectors.interruption_frequency import MalformedAdvisorDocument, parse_spot_advisor
from spotlake_assets.aws.models import (
    AwsApiError,
    ConfigLimitExceeded,
    Credential,
    DownloadFailed,
    MalformedResponse,
    Offering,
    OndemandQuote,
    RegionUnavailable,
    SpotPriceQuote,
    SpsScore,
    Throttled,
)
from spotlake_assets.aws.resources import Boto3AwsApi
from spotlake_assets.domain import validation
from spotlake_assets.domain.windows import window_key
from spotlake_assets.storage.lake import LocalLake

DATA = Path(__file__).parent.parent / "data" / "aws"
WINDOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSYNTHETIC"
CREDENTIAL = Credential(index=3, access_key_id="AKIASYNTHETIC0001ABCD", secret_access_key=SECRET)


@pytest.fixture(autouse=True)
def boto_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Fake ambient credentials and no shared config: nothing here may reach, or sign for, a real account.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def api() -> Boto3AwsApi:
    return Boto3AwsApi(max_attempts=2, retry_mode="standard", advisor_backoff_s=0.0, advisor_attempts=3)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's standard/adaptive modes sleep a random exponential delay between attempts; zero keeps the
    # retry tests fast without changing how many attempts botocore makes.
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0)


def stubbed(api: Boto3AwsApi, service: str, region: str, credential: Credential | None = None) -> Stubber:
    """Activate a Stubber on the very client the resource caches, so its methods use the stub."""
    stubber = Stubber(api._client(service, region, credential))
    stubber.activate()
    return stubber


# --- construction, caching, secrets -------------------------------------------------------------------------


def test_is_real_and_creates_no_client_until_used(api: Boto3AwsApi) -> None:
    assert api.simulated is False
    assert api._clients == {}


def test_clients_are_cached_per_service_region_and_credential(api: Boto3AwsApi) -> None:
    east = api._client("ec2", "us-east-1")
    assert api._client("ec2", "us-east-1") is east
    assert api._client("ec2", "eu-west-1") is not east
    signed = api._client("ec2", "us-west-2", CREDENTIAL)
    assert signed is not api._client("ec2", "us-west-2")
    assert signed._request_signer._credentials.access_key == CREDENTIAL.access_key_id
    assert east.meta.config.retries["mode"] == "standard"
    assert east.meta.config.retries["total_max_attempts"] == 2


def test_unknown_retry_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_mode 'eager'"):
        Boto3AwsApi(retry_mode="eager")._client("ec2", "us-east-1")


def test_secret_never_in_repr_str_or_logs(api: Boto3AwsApi, caplog: pytest.LogCaptureFixture) -> None:
    assert SECRET not in repr(CREDENTIAL) and SECRET not in str(CREDENTIAL)
    assert CREDENTIAL.access_key_id[-4:] in CREDENTIAL.label and SECRET not in CREDENTIAL.label
    caplog.set_level(logging.DEBUG)  # botocore's own debug logging included
    stubber = stubbed(api, "ec2", api.sps_region, CREDENTIAL)
    stubber.add_client_error("get_spot_placement_scores", "MaxConfigLimitExceeded", "limit reached")
    with pytest.raises(ConfigLimitExceeded) as caught:
        api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1"], 5, WINDOW)
    # The resource now caches a client keyed by the credential: still nothing printable shows the secret.
    assert api._clients
    for text in (repr(api), str(api), str(caught.value), caplog.text):
        assert SECRET not in text
    assert "credential#3" in caplog.text


# --- EC2 catalogue on moto ----------------------------------------------------------------------------------


def test_regions_availability_zones_and_offerings_on_moto(api: Boto3AwsApi) -> None:
    with mock_aws():
        regions = api.regions()
        assert regions == sorted(regions) and "us-east-1" in regions and "eu-west-1" in regions

        zones = api.availability_zones("us-west-2")
        assert {z.name for z in zones} >= {"us-west-2a", "us-west-2b", "us-west-2c"}
        assert all(z.region == "us-west-2" and z.zone_id.startswith("usw2-az") for z in zones)

        offerings = api.instance_type_offerings("us-west-2")
        assert len(offerings) > 1000
        assert {o.zone_id for o in offerings} <= {z.zone_id for z in zones}
        assert {o.region for o in offerings} == {"us-west-2"}
        assert any(o.instance_type == "m5.large" for o in offerings)
        assert len(set(offerings)) == len(offerings)


def test_regions_through_a_moto_server_endpoint() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        api = Boto3AwsApi(endpoint_url=f"http://{host}:{port}", max_attempts=1)
        assert "us-east-1" in api.regions()
        assert [z.zone_id for z in api.availability_zones("us-east-1")]
    finally:
        server.stop()


def test_regions_drop_regions_not_opted_in(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-east-1") as stubber:
        stubber.add_response(
            "describe_regions",
            {
                "Regions": [
                    {"RegionName": "us-east-1", "OptInStatus": "opt-in-not-required"},
                    {"RegionName": "af-south-1", "OptInStatus": "opted-in"},
                    {"RegionName": "me-south-1", "OptInStatus": "not-opted-in"},
                ]
            },
            {"AllRegions": False},
        )
        assert api.regions() == ["af-south-1", "us-east-1"]


def test_availability_zones_skip_local_zones(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-west-2") as stubber:
        stubber.add_response(
            "describe_availability_zones",
            {
                "AvailabilityZones": [
                    {"ZoneName": "us-west-2b", "ZoneId": "usw2-az1", "ZoneType": "availability-zone"},
                    {"ZoneName": "us-west-2-lax-1a", "ZoneId": "usw2-lax1-az1", "ZoneType": "local-zone"},
                ]
            },
        )
        zones = api.availability_zones("us-west-2")
    assert [(z.name, z.zone_id) for z in zones] == [("us-west-2b", "usw2-az1")]


def test_offerings_read_every_page_and_keep_only_the_regions_zones(api: Boto3AwsApi) -> None:
    params = {"LocationType": "availability-zone-id", "MaxResults": 1000}
    with stubbed(api, "ec2", "us-west-2") as stubber:
        stubber.add_response(
            "describe_availability_zones",
            {
                "AvailabilityZones": [
                    {"ZoneName": "us-west-2a", "ZoneId": "usw2-az2", "ZoneType": "availability-zone"},
                    {"ZoneName": "us-west-2b", "ZoneId": "usw2-az1", "ZoneType": "availability-zone"},
                    {"ZoneName": "us-west-2-lax-1a", "ZoneId": "usw2-lax1-az1", "ZoneType": "local-zone"},
                ]
            },
        )
        stubber.add_response(
            "describe_instance_type_offerings",
            {
                "InstanceTypeOfferings": [
                    {
                        "InstanceType": "m5.large",
                        "LocationType": "availability-zone-id",
                        "Location": "usw2-az2",
                    },
                    {
                        "InstanceType": "m5.large",
                        "LocationType": "availability-zone-id",
                        "Location": "usw2-az1",
                    },
                ],
                "NextToken": "t2",
            },
            params,
        )
        stubber.add_response(
            "describe_instance_type_offerings",
            {
                "InstanceTypeOfferings": [
                    {
                        "InstanceType": "c5.large",
                        "LocationType": "availability-zone-id",
                        "Location": "usw2-az1",
                    },
                    # A Local Zone offering: not an AZ that SPS scores.
                    {
                        "InstanceType": "c5.large",
                        "LocationType": "availability-zone-id",
                        "Location": "usw2-lax1-az1",
                    },
                ]
            },
            {**params, "NextToken": "t2"},
        )
        offerings = api.instance_type_offerings("us-west-2")
        stubber.assert_no_pending_responses()
    assert offerings == [
        Offering("c5.large", "us-west-2", "usw2-az1"),
        Offering("m5.large", "us-west-2", "usw2-az1"),
        Offering("m5.large", "us-west-2", "usw2-az2"),
    ]


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "AuthFailure", "OptInRequired"])
def test_persistent_client_errors_make_the_region_unavailable(api: Boto3AwsApi, code: str) -> None:
    with stubbed(api, "ec2", "ap-east-1") as stubber:
        stubber.add_client_error("describe_availability_zones", code, "not for you", 403)
        with pytest.raises(RegionUnavailable) as caught:
            api.availability_zones("ap-east-1")
    assert caught.value.region == "ap-east-1"
    assert code in caught.value.reason and "DescribeAvailabilityZones" in caught.value.reason


def test_unreachable_endpoint_makes_the_region_unavailable() -> None:
    # Port 9 (discard) on loopback is closed here: the connection is refused at once.
    api = Boto3AwsApi(endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1)
    with pytest.raises(RegionUnavailable) as caught:
        api.instance_type_offerings("eu-north-1")
    assert caught.value.region == "eu-north-1"
    assert "EndpointConnectionError" in caught.value.reason


# --- get_spot_placement_scores ------------------------------------------------------------------------------

SPS_PARAMS = {
    "InstanceTypes": ["m5.large"],
    "RegionNames": ["us-east-1", "eu-west-1"],
    "SingleAvailabilityZone": True,
    "TargetCapacity": 10,
    "TargetCapacityUnitType": "units",
}


def test_spot_placement_scores_reads_every_page(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-west-2", CREDENTIAL) as stubber:
        stubber.add_response(
            "get_spot_placement_scores",
            {
                "SpotPlacementScores": [
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az6", "Score": 9},
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az1", "Score": 3},
                ],
                "NextToken": "page-2",
            },
            SPS_PARAMS,
        )
        stubber.add_response(
            "get_spot_placement_scores",
            {"SpotPlacementScores": [{"Region": "eu-west-1", "AvailabilityZoneId": "euw1-az2", "Score": 1}]},
            {**SPS_PARAMS, "NextToken": "page-2"},
        )
        scores = api.spot_placement_scores(CREDENTIAL, "m5.large", ("us-east-1", "eu-west-1"), 10, WINDOW)
        stubber.assert_no_pending_responses()
    assert scores == [
        SpsScore("m5.large", "us-east-1", "use1-az6", 9),
        SpsScore("m5.large", "us-east-1", "use1-az1", 3),
        SpsScore("m5.large", "eu-west-1", "euw1-az2", 1),
    ]


def test_spot_placement_scores_config_limit(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-west-2", CREDENTIAL) as stubber:
        stubber.add_client_error("get_spot_placement_scores", "MaxConfigLimitExceeded", "50 configurations")
        with pytest.raises(ConfigLimitExceeded, match=r"credential#3\(…ABCD\)"):
            api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1", "eu-west-1"], 10, WINDOW)


def test_spot_placement_scores_throttled(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-west-2", CREDENTIAL) as stubber:
        stubber.add_client_error("get_spot_placement_scores", "RequestLimitExceeded", "slow down", 503)
        with pytest.raises(Throttled, match="RequestLimitExceeded"):
            api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1", "eu-west-1"], 10, WINDOW)


class _RawBody:
    """The raw-response object `AWSResponse` reads its content from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@pytest.mark.parametrize("retry_mode", ["standard", "adaptive"])
def test_throttling_is_retried_by_botocore_then_reported(no_backoff: None, retry_mode: str) -> None:
    # Stubber answers before botocore's retry handler runs, so to see the retries themselves this test
    # answers at the HTTP layer (before-send) with EC2's throttling error, every time.
    api = Boto3AwsApi(max_attempts=3, retry_mode=retry_mode)
    client = api._client("ec2", api.sps_region, CREDENTIAL)
    attempts: list[str] = []
    body = (
        b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
        b"</Message></Error></Errors><RequestID>synthetic</RequestID></Response>"
    )

    def throttle(request: Any, **_: Any) -> AWSResponse:
        attempts.append(request.url)
        return AWSResponse(request.url, 503, HTTPHeaders(), _RawBody(body))

    client.meta.events.register("before-send.ec2.GetSpotPlacementScores", throttle)
    with pytest.raises(Throttled, match="RequestLimitExceeded"):
        api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1"], 1, WINDOW)
    assert len(attempts) == 3


def test_spot_placement_scores_without_zone_id_is_malformed(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-west-2", CREDENTIAL) as stubber:
        stubber.add_response(
            "get_spot_placement_scores", {"SpotPlacementScores": [{"Region": "eu-west-1", "Score": 7}]}
        )
        with pytest.raises(MalformedResponse, match=r"'AvailabilityZoneId' = None.*m5\.large.*eu-west-1"):
            api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1", "eu-west-1"], 10, WINDOW)


# --- describe_spot_price_history ----------------------------------------------------------------------------


def _price(instance_type: str, zone: str, price: str, at: datetime) -> dict[str, Any]:
    return {
        "InstanceType": instance_type,
        "AvailabilityZone": zone,
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": price,
        "Timestamp": at,
    }


def test_spot_prices_keep_the_newest_record_at_or_before_the_window(api: Boto3AwsApi) -> None:
    params = {
        "ProductDescriptions": ["Linux/UNIX"],
        "StartTime": WINDOW,
        "EndTime": WINDOW,
        "MaxResults": 1000,
    }
    with stubbed(api, "ec2", "us-east-1") as stubber:
        stubber.add_response(
            "describe_spot_price_history",
            {
                "SpotPriceHistory": [
                    _price("m5.large", "us-east-1a", "0.041000", WINDOW - timedelta(hours=3)),
                    _price("m5.large", "us-east-1a", "0.035200", WINDOW - timedelta(minutes=5)),
                    _price("m5.large", "us-east-1b", "0.038000", WINDOW),
                ],
                "NextToken": "more",
            },
            params,
        )
        stubber.add_response(
            "describe_spot_price_history",
            {
                "SpotPriceHistory": [
                    # Published after the window started: not the price in effect at its start.
                    _price("m5.large", "us-east-1a", "0.900000", WINDOW + timedelta(minutes=1)),
                    _price("c5.xlarge", "us-east-1a", "0.070100", WINDOW - timedelta(days=2)),
                ]
            },
            {**params, "NextToken": "more"},
        )
        quotes = api.spot_prices("us-east-1", WINDOW)
        stubber.assert_no_pending_responses()
    assert quotes == [
        SpotPriceQuote("c5.xlarge", "us-east-1a", 0.0701),
        SpotPriceQuote("m5.large", "us-east-1a", 0.0352),
        SpotPriceQuote("m5.large", "us-east-1b", 0.038),
    ]


def test_spot_prices_failure_is_region_unavailable(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "me-central-1") as stubber:
        stubber.add_client_error("describe_spot_price_history", "AuthFailure", "not enabled", 401)
        with pytest.raises(RegionUnavailable, match="me-central-1: DescribeSpotPriceHistory: AuthFailure"):
            api.spot_prices("me-central-1", WINDOW)


# --- Pricing get_products -----------------------------------------------------------------------------------


def _product(instance_type: str, usd: str | None, sku: str, **attributes: str) -> str:
    document = json.loads((DATA / "pricing_product_sample.json").read_text())
    document["product"]["sku"] = sku
    document["product"]["attributes"]["instanceType"] = instance_type
    document["product"]["attributes"].update(attributes)
    ondemand = document["terms"]["OnDemand"]
    (term,) = ondemand.values()
    (dimension,) = term["priceDimensions"].values()
    if usd is None:
        del document["terms"]["OnDemand"]
    else:
        dimension["pricePerUnit"]["USD"] = usd
    return json.dumps(document)


PRICING_PARAMS = {
    "ServiceCode": "AmazonEC2",
    "Filters": [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        {"Type": "TERM_MATCH", "Field": "licenseModel", "Value": "No License required"},
    ],
    "FormatVersion": "aws_v1",
    "MaxResults": 100,
}


def test_ondemand_prices_read_every_page_and_skip_unpriced_products(api: Boto3AwsApi) -> None:
    with stubbed(api, "pricing", "us-east-1") as stubber:
        stubber.add_response(
            "get_products",
            {
                "FormatVersion": "aws_v1",
                "PriceList": [
                    (DATA / "pricing_product_sample.json").read_text(),  # m5.large, 0.096
                    _product("c5.metal", "0.0000000000", "SKUZERO"),
                    _product("r5.large", None, "SKUNOONDEMAND"),
                ],
                "NextToken": "p2",
            },
            PRICING_PARAMS,
        )
        stubber.add_response(
            "get_products",
            {
                "FormatVersion": "aws_v1",
                "PriceList": [
                    _product("c5.xlarge", "0.1920000000", "SKUC5XL"),
                    _product("p5.48xlarge", "31.4640000000", "SKUBLOCK", marketoption="CapacityBlock"),
                ],
            },
            {**PRICING_PARAMS, "NextToken": "p2"},
        )
        quotes = api.ondemand_prices("eu-west-1")
        stubber.assert_no_pending_responses()
    assert quotes == [
        OndemandQuote("eu-west-1", "c5.xlarge", 0.192),
        OndemandQuote("eu-west-1", "m5.large", 0.096),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ('{"product": {"sku": "SKUCUT", "attr', "not JSON"),
        ('["a list"]', "not a JSON object"),
        (json.dumps({"product": {"sku": "SKUNOATTR"}}), "'product.attributes'.*SKU SKUNOATTR"),
        (
            _product("m5.large", "about a dime", "SKUTEXT"),
            r"'pricePerUnit\.USD' = 'about a dime'.*SKU SKUTEXT",
        ),
    ],
)
def test_ondemand_prices_malformed_item(api: Boto3AwsApi, item: str, message: str) -> None:
    with stubbed(api, "pricing", "us-east-1") as stubber:
        stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [item]})
        with pytest.raises(MalformedResponse, match=message):
            api.ondemand_prices("eu-west-1")


def test_ondemand_prices_throttled_after_retries(api: Boto3AwsApi) -> None:
    with stubbed(api, "pricing", "us-east-1") as stubber:
        stubber.add_client_error("get_products", "ThrottlingException", "Rate exceeded", 400)
        with pytest.raises(Throttled, match="eu-west-1: GetProducts: ThrottlingException"):
            api.ondemand_prices("eu-west-1")


# --- Spot Instance Advisor over HTTP ------------------------------------------------------------------------


class _AdvisorServer:
    """A loopback HTTP server answering each GET with the next scripted (status, body)."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self.answers = list(answers)
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                status, body = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/spot-advisor-data.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _AdvisorServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


ADVISOR = (DATA / "spot_advisor_sample.json").read_bytes()


def _advisor_api(url: str) -> Boto3AwsApi:
    return Boto3AwsApi(advisor_url=url, advisor_timeout_s=5, advisor_attempts=3, advisor_backoff_s=0)


def test_advisor_document_downloaded() -> None:
    with _AdvisorServer([(200, ADVISOR)]) as server:
        document = _advisor_api(server.url).spot_advisor_document(WINDOW)
    assert document == ADVISOR
    assert len(parse_spot_advisor(document)) == 5


def test_advisor_truncated_body_is_rejected_by_the_parser() -> None:
    with _AdvisorServer([(200, ADVISOR[: len(ADVISOR) // 2])]) as server:
        document = _advisor_api(server.url).spot_advisor_document(WINDOW)
    with pytest.raises(MalformedAdvisorDocument, match="not valid JSON"):
        parse_spot_advisor(document)


def test_advisor_server_error_is_retried() -> None:
    with _AdvisorServer([(503, b"busy"), (200, ADVISOR)]) as server:
        document = _advisor_api(server.url).spot_advisor_document(WINDOW)
        assert server.requests == 2
    assert document == ADVISOR


def test_advisor_persistent_server_error_gives_up_after_the_attempts() -> None:
    with _AdvisorServer([(503, b"busy")]) as server:
        with pytest.raises(AwsApiError, match="503"):
            _advisor_api(server.url).spot_advisor_document(WINDOW)
        assert server.requests == 3


def test_advisor_client_error_is_not_retried() -> None:
    with _AdvisorServer([(404, b"no such key")]) as server:
        with pytest.raises(AwsApiError, match="404"):
            _advisor_api(server.url).spot_advisor_document(WINDOW)
        assert server.requests == 1


# --- validation where SPS answers enter ---------------------------------------------------------------------


@pytest.mark.parametrize("score", [11, 0])
def test_spot_placement_score_outside_1_to_10_is_malformed(api: Boto3AwsApi, score: int) -> None:
    # The model does not bound Score, so the Stubber accepts both answers, as AWS's parser would.
    with stubbed(api, "ec2", "us-west-2", CREDENTIAL) as stubber:
        stubber.add_response(
            "get_spot_placement_scores",
            {
                "SpotPlacementScores": [
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az6", "Score": score}
                ]
            },
            {**SPS_PARAMS, "RegionNames": ["us-east-1"]},
        )
        with pytest.raises(MalformedResponse) as caught:
            api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1"], 10, WINDOW)
    error = caught.value
    assert (error.call, error.field, error.value) == ("GetSpotPlacementScores", "Score", score)
    answer = {"Region": "us-east-1", "AvailabilityZoneId": "use1-az6", "Score": score}
    assert error.row == {"InstanceType": "m5.large", **answer}
    assert str(error).startswith(f"malformed response from GetSpotPlacementScores: field 'Score' = {score}")
    assert isinstance(error, validation.MalformedResponse)  # permanent: the step fails, nothing retries it


def test_spot_placement_score_for_a_region_not_queried_is_malformed(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-west-2", CREDENTIAL) as stubber:
        stubber.add_response(
            "get_spot_placement_scores",
            {"SpotPlacementScores": [{"Region": "eu-west-1", "AvailabilityZoneId": "euw1-az1", "Score": 3}]},
        )
        with pytest.raises(MalformedResponse, match=r"'Region' = 'eu-west-1'.*not one of the queried"):
            api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1"], 10, WINDOW)


def test_an_empty_score_element_is_malformed_naming_the_call(api: Boto3AwsApi) -> None:
    # EC2 answers in XML and botocore converts <score/> with int() while parsing, before the Stubber's
    # level: answer at the HTTP layer so the real parser runs.
    client = api._client("ec2", api.sps_region, CREDENTIAL)
    body = (
        b'<GetSpotPlacementScoresResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        b"<requestId>synthetic</requestId><spotPlacementScoreSet><item><region>us-east-1</region>"
        b"<availabilityZoneId>use1-az6</availabilityZoneId><score/></item></spotPlacementScoreSet>"
        b"</GetSpotPlacementScoresResponse>"
    )

    def answer(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, HTTPHeaders(), _RawBody(body))

    client.meta.events.register("before-send.ec2.GetSpotPlacementScores", answer)
    with pytest.raises(MalformedResponse) as caught:
        api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1"], 1, WINDOW)
    assert caught.value.call == "GetSpotPlacementScores"
    assert "invalid literal for int()" in str(caught.value)
    assert str(caught.value).startswith("malformed response from GetSpotPlacementScores")


# --- names normalised at every parser -----------------------------------------------------------------------

PADDED = "m5.large\u200b "  # a trailing zero-width space and a space


def test_sps_names_are_normalised(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "us-west-2", CREDENTIAL) as stubber:
        stubber.add_response(
            "get_spot_placement_scores",
            {
                "SpotPlacementScores": [
                    {"Region": "us-east-1 ", "AvailabilityZoneId": "use1-az6\u200b", "Score": 4}
                ]
            },
        )
        scores = api.spot_placement_scores(CREDENTIAL, "m5.large", ["us-east-1"], 10, WINDOW)
    assert scores == [SpsScore("m5.large", "us-east-1", "use1-az6", 4)]


def test_spot_price_names_are_normalised(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "eu-west-1") as stubber:
        stubber.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [_price(PADDED, "eu-west-1a\u200b", "0.04", WINDOW - timedelta(hours=1))]},
        )
        quotes = api.spot_prices("eu-west-1", WINDOW)
    assert quotes == [SpotPriceQuote("m5.large", "eu-west-1a", 0.04)]


def test_ondemand_names_are_normalised(api: Boto3AwsApi) -> None:
    with stubbed(api, "pricing", "us-east-1") as stubber:
        stubber.add_response(
            "get_products", {"FormatVersion": "aws_v1", "PriceList": [_product(PADDED, "0.096", "SKU1")]}
        )
        assert api.ondemand_prices("eu-west-1") == [OndemandQuote("eu-west-1", "m5.large", 0.096)]


def test_offering_names_are_normalised(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "eu-west-1") as stubber:
        stubber.add_response(
            "describe_availability_zones",
            {
                "AvailabilityZones": [
                    {"ZoneName": "eu-west-1a", "ZoneId": "euw1-az1 ", "ZoneType": "availability-zone"}
                ]
            },
        )
        stubber.add_response(
            "describe_instance_type_offerings",
            {
                "InstanceTypeOfferings": [
                    {"InstanceType": PADDED, "LocationType": "availability-zone-id", "Location": "euw1-az1"}
                ]
            },
        )
        assert api.instance_type_offerings("eu-west-1") == [Offering("m5.large", "eu-west-1", "euw1-az1")]


def test_a_name_with_inner_space_is_malformed(api: Boto3AwsApi) -> None:
    with stubbed(api, "ec2", "eu-west-1") as stubber:
        stubber.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [_price("m5 large", "eu-west-1a", "0.04", WINDOW - timedelta(hours=1))]},
        )
        with pytest.raises(MalformedResponse, match=r"'InstanceType' = 'm5 large'.*contains whitespace"):
            api.spot_prices("eu-west-1", WINDOW)


# --- the advisor download: retry only what can succeed ------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 410])
def test_advisor_permanent_client_error_fails_at_once_naming_url_and_status(
    httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_request("/spot-advisor-data.json").respond_with_data("no such key", status=status)
    url = httpserver.url_for("/spot-advisor-data.json")
    with pytest.raises(DownloadFailed) as caught:
        _advisor_api(url).spot_advisor_document(WINDOW)
    assert len(httpserver.log) == 1
    assert caught.value.permanent and caught.value.status == status
    assert str(caught.value).startswith(f"{url}: HTTP {status}")


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_advisor_timeouts_throttling_and_server_errors_are_retried(
    httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_ordered_request("/spot-advisor-data.json").respond_with_data("busy", status=status)
    httpserver.expect_ordered_request("/spot-advisor-data.json").respond_with_data(ADVISOR)
    assert (
        _advisor_api(httpserver.url_for("/spot-advisor-data.json")).spot_advisor_document(WINDOW) == ADVISOR
    )
    assert len(httpserver.log) == 2


def test_advisor_transient_errors_that_persist_are_not_permanent(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/spot-advisor-data.json").respond_with_data("busy", status=503)
    with pytest.raises(DownloadFailed) as caught:
        _advisor_api(httpserver.url_for("/spot-advisor-data.json")).spot_advisor_document(WINDOW)
    assert not caught.value.permanent and len(httpserver.log) == 3


def test_advisor_asset_fails_at_once_on_a_404(httpserver: HTTPServer, local_lake: LocalLake) -> None:
    """A permanent 404 used to cost two step retries (181 s) and surface as a bare RetryRequested."""
    httpserver.expect_request("/spot-advisor-data.json").respond_with_data("no such key", status=404)
    url = httpserver.url_for("/spot-advisor-data.json")
    now = datetime.now(UTC)
    current = window_key(now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0))
    context = dg.build_asset_context(partition_key=current)
    with pytest.raises(dg.Failure) as caught:
        events = aws_interruption_frequency(context, aws_api=_advisor_api(url), lake=local_lake)
        assert isinstance(events, Iterator)  # a generator asset invoked directly yields its events lazily
        list(events)
    assert caught.value.description is not None
    assert caught.value.description.startswith(f"spot advisor document unavailable: {url}: HTTP 404")
    assert caught.value.allow_retries is False
    assert len(httpserver.log) == 1
    assert local_lake.list_keys("rawdata/") == []


def test_the_real_api_refuses_simulated_credentials_before_sending(boto_env: None) -> None:
    from spotlake_assets.aws.models import CredentialRefused
    from spotlake_assets.aws.simulation import simulated_credentials

    (fake,) = simulated_credentials(1, seed=7)
    with pytest.raises(CredentialRefused, match="is a simulated credential"):
        Boto3AwsApi().spot_placement_scores(fake, "m5.large", ["us-east-1"], 1, datetime.now(UTC))
