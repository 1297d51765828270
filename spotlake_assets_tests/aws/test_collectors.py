"""Regional collectors over a tiny in-memory `AwsApi`, and the Spot Instance Advisor parser."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import PrivateAttr

from spotlake_assets.aws.collectors.catalogue import CatalogueSnapshot, EmptyCatalogue, collect_catalogue
from spotlake_assets.aws.collectors.interruption_frequency import (
    MalformedAdvisorDocument,
    collect_interruption_frequency,
    parse_spot_advisor,
    uncovered_regions,
)
from spotlake_assets.aws.collectors.ondemand_price import collect_ondemand_prices
from spotlake_assets.aws.collectors.spot_price import collect_spot_prices
from spotlake_assets.aws.constants import IF_COLUMNS, ONDEMAND_COLUMNS, SPOT_PRICE_COLUMNS
from spotlake_assets.aws.models import (
    AvailabilityZone,
    Credential,
    MalformedResponse,
    Offering,
    OndemandQuote,
    RegionUnavailable,
    SpotPriceQuote,
    SpsScore,
    Throttled,
)
from spotlake_assets.aws.resources import AwsApi

DATA = Path(__file__).parent.parent / "data" / "aws"
WINDOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADVISOR = (DATA / "spot_advisor_sample.json").read_bytes()

ZONES = [
    AvailabilityZone("us-east-1", "us-east-1a", "use1-az6"),
    AvailabilityZone("us-east-1", "us-east-1b", "use1-az1"),
    AvailabilityZone("eu-west-1", "eu-west-1a", "euw1-az3"),
    AvailabilityZone("ap-east-1", "ap-east-1a", "ape1-az1"),
]


class TinyAwsApi(AwsApi):
    """Answers from dictionaries; a region listed in ``failures`` raises that error from every method."""

    _zones: list[AvailabilityZone] = PrivateAttr(default_factory=list)
    _offerings: list[Offering] = PrivateAttr(default_factory=list)
    _spot: dict[str, list[SpotPriceQuote]] = PrivateAttr(default_factory=dict)
    _ondemand: dict[str, list[OndemandQuote]] = PrivateAttr(default_factory=dict)
    _failures: dict[str, Exception] = PrivateAttr(default_factory=dict)
    _advisor: bytes = PrivateAttr(default=ADVISOR)
    _advisor_calls: int = PrivateAttr(default=0)

    @classmethod
    def build(cls, **data: Any) -> TinyAwsApi:
        api = cls()
        for name, value in data.items():
            setattr(api, f"_{name}", value)
        return api

    @property
    def simulated(self) -> bool:
        return True

    def _check(self, region: str) -> None:
        if region in self._failures:
            raise self._failures[region]

    def regions(self) -> list[str]:
        return sorted({z.region for z in self._zones} | set(self._failures))

    def availability_zones(self, region: str) -> list[AvailabilityZone]:
        self._check(region)
        return [z for z in self._zones if z.region == region]

    def instance_type_offerings(self, region: str) -> list[Offering]:
        self._check(region)
        return [o for o in self._offerings if o.region == region]

    def spot_placement_scores(
        self,
        credential: Credential,
        instance_type: str,
        regions: Sequence[str],
        capacity: int,
        window_start: datetime,
    ) -> list[SpsScore]:
        raise NotImplementedError

    def spot_prices(self, region: str, window_start: datetime) -> list[SpotPriceQuote]:
        self._check(region)
        return self._spot.get(region, [])

    def ondemand_prices(self, region: str) -> list[OndemandQuote]:
        self._check(region)
        return self._ondemand.get(region, [])

    def spot_advisor_document(self, window_start: datetime) -> bytes:
        self._advisor_calls += 1
        return self._advisor


# --- parse_spot_advisor -------------------------------------------------------------------------------------


def test_parse_spot_advisor_linux_only_scores_from_the_documents_ranges() -> None:
    frame = parse_spot_advisor(ADVISOR)
    assert tuple(frame.columns) == IF_COLUMNS
    assert frame["IF"].dtype == "float64"
    assert frame.to_dict("records") == [
        {"Region": "eu-west-1", "InstanceType": "r6i.2xlarge", "IF": 1.5},
        {"Region": "eu-west-1", "InstanceType": "t3.micro", "IF": 2.0},
        {"Region": "us-east-1", "InstanceType": "c5.xlarge", "IF": 3.0},
        {"Region": "us-east-1", "InstanceType": "m5.large", "IF": 2.5},
        {"Region": "us-east-1", "InstanceType": "p3.2xlarge", "IF": 1.0},
    ]


def test_parse_spot_advisor_follows_the_ranges_list_not_its_order() -> None:
    document = json.loads(ADVISOR)
    # Same labels, indices shuffled: the entries' "r" must be read through the index, not the position.
    document["ranges"] = [
        {"index": 4, "label": "<5%", "dots": 0, "max": 5},
        {"index": 0, "label": ">20%", "dots": 4, "max": 100},
        {"index": 1, "label": "5-10%", "dots": 1, "max": 11},
        {"index": 2, "label": "10-15%", "dots": 2, "max": 16},
        {"index": 3, "label": "15-20%", "dots": 3, "max": 22},
    ]
    frame = parse_spot_advisor(json.dumps(document).encode())
    scores = dict(zip(frame["InstanceType"], frame["IF"], strict=True))
    assert scores["c5.xlarge"] == 1.0  # r=0 → ">20%"
    assert scores["p3.2xlarge"] == 3.0  # r=4 → "<5%"


def test_parse_spot_advisor_empty_regions_gives_a_typed_empty_frame() -> None:
    document = json.loads(ADVISOR)
    document["spot_advisor"] = {}
    frame = parse_spot_advisor(json.dumps(document).encode())
    assert frame.empty and tuple(frame.columns) == IF_COLUMNS and frame["IF"].dtype == "float64"


def _padded_names(document: dict[str, Any]) -> None:
    advisor = document["spot_advisor"]
    advisor["us-east-1 "] = advisor.pop("us-east-1")
    linux = advisor["us-east-1 "]["Linux"]
    linux["m5.large\u200b"] = linux.pop("m5.large")


def test_parse_spot_advisor_normalises_names() -> None:
    # Trailing and zero-width spaces used to make "m5.large\u200b" a type of its own that joined nothing.
    assert parse_spot_advisor(_mutated(_padded_names)).equals(parse_spot_advisor(ADVISOR))


def test_parse_spot_advisor_rejects_names_that_collide_once_normalised() -> None:
    def twice(document: dict[str, Any]) -> None:
        linux = document["spot_advisor"]["us-east-1"]["Linux"]
        linux["m5.large "] = dict(linux["m5.large"])

    with pytest.raises(MalformedAdvisorDocument, match="name the same region and instance type"):
        parse_spot_advisor(_mutated(twice))


def test_uncovered_regions_names_workload_regions_without_advisor_rows() -> None:
    frame = parse_spot_advisor(ADVISOR)
    assert uncovered_regions(frame, ["us-east-1", "eu-west-1"]) == []
    assert uncovered_regions(frame, ["us-east-1", "ap-east-1", "eu-west-1", "af-south-1"]) == [
        "af-south-1",
        "ap-east-1",
    ]


def _mutated(change: Any) -> bytes:
    document = json.loads(ADVISOR)
    change(document)
    return json.dumps(document).encode()


def _set_rate(document: dict[str, Any], value: Any) -> None:
    document["spot_advisor"]["us-east-1"]["Linux"]["m5.large"]["r"] = value


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(b"{not json", "not valid JSON", id="malformed-json"),
        pytest.param(ADVISOR[:-40], r"not valid JSON \(\d+ bytes; truncated\?\)", id="truncated"),
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b"\xff\xfe{}", "not UTF-8|not valid JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "must be an object, not list", id="not-an-object"),
        pytest.param(_mutated(lambda d: d.pop("ranges")), "no 'ranges' key", id="missing-ranges"),
        pytest.param(
            _mutated(lambda d: d.pop("spot_advisor")), "no 'spot_advisor' key", id="missing-advisor"
        ),
        pytest.param(
            _mutated(lambda d: d["ranges"][2].update(label="10-16%")),
            r"ranges\[2\] has unknown bucket label '10-16%'",
            id="unknown-label",
        ),
        pytest.param(
            _mutated(lambda d: d["ranges"][1].pop("label")),
            r"ranges\[1\] must be an object with 'index' and 'label'",
            id="range-without-label",
        ),
        pytest.param(
            _mutated(lambda d: d["ranges"][3].update(index=1)),
            "ranges has index 1 more than once",
            id="duplicate-index",
        ),
        pytest.param(
            _mutated(lambda d: _set_rate(d, 7)),
            r"spot_advisor\['us-east-1'\]\['Linux'\]\['m5.large'\] has range index 7, not one of the ranges",
            id="index-not-in-ranges",
        ),
        pytest.param(_mutated(lambda d: _set_rate(d, "1")), "has range index '1'", id="index-not-int"),
        pytest.param(
            _mutated(lambda d: d["spot_advisor"]["us-east-1"]["Linux"]["m5.large"].pop("r")),
            r"\['m5.large'\] has no 'r'",
            id="missing-r",
        ),
        pytest.param(
            _mutated(lambda d: d["spot_advisor"].update({"us-east-2": []})),
            r"spot_advisor\['us-east-2'\] must be an object",
            id="region-not-an-object",
        ),
        pytest.param(
            _mutated(lambda d: d.update(ranges=[])), "'ranges' must be a non-empty list", id="no-ranges"
        ),
    ],
)
def test_parse_spot_advisor_rejects_bad_documents(document: bytes, message: str) -> None:
    with pytest.raises(MalformedAdvisorDocument, match=message):
        parse_spot_advisor(document)


def test_malformed_advisor_document_is_a_value_error() -> None:
    assert issubclass(MalformedAdvisorDocument, ValueError)


def test_collect_interruption_frequency_one_call() -> None:
    api = TinyAwsApi.build()
    result = collect_interruption_frequency(api, WINDOW)
    assert result.api_calls == 1 and api._advisor_calls == 1
    assert len(result.frame) == 5 and result.failed_regions == {}


# --- spot prices --------------------------------------------------------------------------------------------


def test_spot_prices_map_zone_names_to_ids_and_round() -> None:
    api = TinyAwsApi.build(
        zones=ZONES,
        spot={
            "us-east-1": [
                SpotPriceQuote("m5.large", "us-east-1b", 0.0351234567),
                SpotPriceQuote("m5.large", "us-east-1a", 0.034),
                SpotPriceQuote("c5.xlarge", "us-east-1a", 0.07),
            ],
            "eu-west-1": [SpotPriceQuote("m5.large", "eu-west-1a", 0.04)],
        },
    )
    result = collect_spot_prices(api, ZONES, WINDOW, workers=2)
    assert tuple(result.frame.columns) == SPOT_PRICE_COLUMNS
    assert result.frame["SpotPrice"].dtype == "float64"
    assert result.frame.to_dict("records") == [
        {"InstanceType": "c5.xlarge", "AZ": "use1-az6", "SpotPrice": 0.07},
        {"InstanceType": "m5.large", "AZ": "euw1-az3", "SpotPrice": 0.04},
        {"InstanceType": "m5.large", "AZ": "use1-az1", "SpotPrice": 0.03512},
        {"InstanceType": "m5.large", "AZ": "use1-az6", "SpotPrice": 0.034},
    ]
    assert result.api_calls == 3  # us-east-1, eu-west-1 and ap-east-1 (no quotes) were all asked
    assert result.failed_regions == {}


def test_spot_prices_failing_region_is_reported_not_dropped() -> None:
    api = TinyAwsApi.build(
        zones=ZONES,
        spot={"us-east-1": [SpotPriceQuote("m5.large", "us-east-1a", 0.034)]},
        failures={
            "ap-east-1": RegionUnavailable(
                "ap-east-1", "DescribeSpotPriceHistory: OptInRequired: not enabled"
            ),
            "eu-west-1": Throttled("eu-west-1: DescribeSpotPriceHistory: RequestLimitExceeded"),
        },
    )
    result = collect_spot_prices(api, ZONES, WINDOW)
    assert list(result.frame["AZ"]) == ["use1-az6"]
    assert result.failed_regions == {
        "ap-east-1": "DescribeSpotPriceHistory: OptInRequired: not enabled",
        "eu-west-1": "Throttled: eu-west-1: DescribeSpotPriceHistory: RequestLimitExceeded",
    }
    assert result.api_calls == 3


def test_spot_prices_unknown_zone_name_fails_its_region() -> None:
    api = TinyAwsApi.build(
        zones=ZONES,
        spot={
            "us-east-1": [
                SpotPriceQuote("m5.large", "us-east-1a", 0.034),
                SpotPriceQuote("m5.large", "us-east-1f", 0.031),
            ],
            "eu-west-1": [SpotPriceQuote("m5.large", "eu-west-1a", 0.04)],
        },
    )
    result = collect_spot_prices(api, ZONES, WINDOW)
    assert set(result.failed_regions) == {"us-east-1"}
    assert "us-east-1f" in result.failed_regions["us-east-1"]
    assert list(result.frame["AZ"]) == ["euw1-az3"]


def test_spot_prices_bugs_are_not_swallowed() -> None:
    api = TinyAwsApi.build(zones=ZONES, failures={"eu-west-1": KeyError("a bug")})
    with pytest.raises(KeyError):
        collect_spot_prices(api, ZONES, WINDOW)


def test_spot_prices_no_zones_gives_a_typed_empty_frame() -> None:
    result = collect_spot_prices(TinyAwsApi.build(), [], WINDOW)
    assert result.frame.empty and tuple(result.frame.columns) == SPOT_PRICE_COLUMNS
    assert result.frame["SpotPrice"].dtype == "float64" and result.api_calls == 0


# --- on-demand prices ---------------------------------------------------------------------------------------


def test_ondemand_prices_collected_and_failures_reported() -> None:
    api = TinyAwsApi.build(
        ondemand={
            "us-east-1": [
                OndemandQuote("us-east-1", "m5.large", 0.096),
                OndemandQuote("us-east-1", "c5.xlarge", 0.17),
            ],
            "eu-west-1": [OndemandQuote("eu-west-1", "m5.large", 0.107000001)],
        },
        failures={
            "ap-east-1": RegionUnavailable("ap-east-1", "GetProducts: EndpointConnectionError: unreachable"),
            "sa-east-1": MalformedResponse("GetProducts sa-east-1", "product.attributes", None, "SKU X"),
        },
    )
    result = collect_ondemand_prices(api, ["us-east-1", "eu-west-1", "ap-east-1", "sa-east-1", "us-east-1"])
    assert tuple(result.frame.columns) == ONDEMAND_COLUMNS
    assert result.frame["OndemandPrice"].dtype == "float64"
    assert result.frame.to_dict("records") == [
        {"Region": "eu-west-1", "InstanceType": "m5.large", "OndemandPrice": 0.107},
        {"Region": "us-east-1", "InstanceType": "c5.xlarge", "OndemandPrice": 0.17},
        {"Region": "us-east-1", "InstanceType": "m5.large", "OndemandPrice": 0.096},
    ]
    assert result.failed_regions == {
        "ap-east-1": "GetProducts: EndpointConnectionError: unreachable",
        "sa-east-1": "MalformedResponse: malformed response from GetProducts sa-east-1: field "
        "'product.attributes' = None in row 'SKU X'",
    }
    assert result.api_calls == 4


def test_ondemand_prices_all_regions_failing_still_returns_a_typed_frame() -> None:
    api = TinyAwsApi.build(failures={"us-east-1": RegionUnavailable("us-east-1", "down")})
    result = collect_ondemand_prices(api, ["us-east-1"])
    assert result.frame.empty and tuple(result.frame.columns) == ONDEMAND_COLUMNS
    assert result.failed_regions == {"us-east-1": "down"}


# --- catalogue ----------------------------------------------------------------------------------------------

OFFERINGS = [
    Offering("m5.large", "us-east-1", "use1-az6"),
    Offering("m5.large", "us-east-1", "use1-az1"),
    Offering("c5.xlarge", "eu-west-1", "euw1-az3"),
]


def test_catalogue_collects_every_region_and_reports_failures() -> None:
    api = TinyAwsApi.build(
        zones=ZONES,
        offerings=OFFERINGS,
        failures={"ap-east-1": RegionUnavailable("ap-east-1", "DescribeAvailabilityZones: AuthFailure: no")},
    )
    snapshot = collect_catalogue(api, workers=3)
    assert isinstance(snapshot, CatalogueSnapshot)
    assert {z.region for z in snapshot.zones} == {"us-east-1", "eu-west-1"}
    assert sorted(snapshot.offerings, key=str) == sorted(OFFERINGS, key=str)
    assert snapshot.failed_regions == {"ap-east-1": "DescribeAvailabilityZones: AuthFailure: no"}
    assert snapshot.api_calls == 1 + 2 * 3


def test_catalogue_every_region_failing_is_empty() -> None:
    api = TinyAwsApi.build(
        failures={r: RegionUnavailable(r, "EndpointConnectionError") for r in ("us-east-1", "eu-west-1")}
    )
    with pytest.raises(EmptyCatalogue, match=r"all 2 regions failed.*eu-west-1: EndpointConnectionError"):
        collect_catalogue(api)


def test_catalogue_without_offerings_is_empty() -> None:
    with pytest.raises(EmptyCatalogue, match="no instance-type offerings"):
        collect_catalogue(TinyAwsApi.build(zones=ZONES))


def test_catalogue_without_regions_is_empty() -> None:
    with pytest.raises(EmptyCatalogue, match="no enabled region"):
        collect_catalogue(TinyAwsApi.build())


def test_frames_are_plain_pandas() -> None:
    # The lake writes these frames as Parquet: object strings and float64, no extension dtypes.
    frame = parse_spot_advisor(ADVISOR)
    assert isinstance(frame, pd.DataFrame)
    assert frame["Region"].dtype == object and frame["InstanceType"].dtype == object
