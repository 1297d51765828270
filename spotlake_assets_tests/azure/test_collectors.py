"""Tier 1: price and eviction-rate transforms (filters, twin join, buckets, spelling kept)."""

from __future__ import annotations

import pytest

from spotlake_assets.azure.collectors.interruption_frequency import eviction_frame
from spotlake_assets.azure.collectors.prices import price_frame, split_sku
from spotlake_assets.azure.models import EvictionRate, MalformedResponse
from spotlake_assets_tests.azure.fakes import price


@pytest.mark.parametrize(
    ("sku", "expected"),
    [
        ("Standard_D2s_v5", ("Standard", "D2s_v5")),
        ("Standard_HB120-16rs_v3", ("Standard", "HB120-16rs_v3")),
        ("Standard_NV6ads_A10_v5", ("Standard", "NV6ads_A10_v5")),
        ("Basic_A1", ("Basic", "A1")),
        # Resource Graph's lower-case spelling: the tier is recognised, the size keeps its spelling.
        ("standard_nc24ads_a100_v4", ("Standard", "nc24ads_a100_v4")),
        ("Promo_D2s_v5", None),
        ("D2s_v5", None),
        ("Standard_", None),
    ],
)
def test_split_sku_keeps_azure_spelling(sku: str, expected: tuple[str, str] | None) -> None:
    assert split_sku(sku) == expected


def test_price_frame_joins_linux_spot_to_its_ondemand_twin() -> None:
    items = [
        price("eastus", "Standard_D2s_v5", "D2s v5", 0.096),
        price("eastus", "Standard_D2s_v5", "D2s v5 Spot", 0.0192),
        price("eastus", "Standard_D2s_v5", "D2s v5 Spot", 0.0210, effective="2026-02-01T00:00:00Z"),
        price("eastus", "Standard_D2s_v5", "D2s v5 Low Priority", 0.0190),
        price("eastus", "Standard_D2s_v5", "D2s v5", 0.188, product="Virtual Machines Dsv5 Series Windows"),
        price(
            "eastus", "Standard_D2s_v5", "D2s v5 Spot", 0.05, product="Virtual Machines Dsv5 Series Windows"
        ),
        price("usgovvirginia", "Standard_D2s_v5", "D2s v5 Spot", 0.02, location="US Gov Virginia"),
        price("westus", "Standard_D4s_v5", "D4s v5 Spot", 0.04, location="US West"),  # no on-demand twin
        price("westus", "Standard_M64s_v2", "M64s v2", 6.0, location="US West"),  # not sold as Spot
    ]
    frame, dropped = price_frame(items)
    rows = frame.set_index(["InstanceType", "Region"]).to_dict("index")
    assert list(frame.columns) == [
        "InstanceTier",
        "InstanceType",
        "Region",
        "RegionName",
        "OndemandPrice",
        "SpotPrice",
        "Savings",
    ]
    assert rows[("D2s_v5", "eastus")] == {
        "InstanceTier": "Standard",
        "RegionName": "US East",
        "OndemandPrice": 0.096,
        "SpotPrice": 0.021,
        "Savings": 78,
    }
    assert rows[("D4s_v5", "westus")]["OndemandPrice"] == -1 and rows[("D4s_v5", "westus")]["Savings"] == -1
    assert len(frame) == 2
    assert dropped == {"windows": 2, "low_priority": 1, "sovereign_region": 1, "ondemand_without_spot": 1}


def test_eviction_frame_buckets_and_filters() -> None:
    rows = [
        EvictionRate("eastus", "Standard_D2s_v5", "0-5"),
        EvictionRate("eastus", "Standard_D4s_v5", "20+"),
        EvictionRate("westeurope", "Standard_NC4as_T4_v3", "10-15"),
        EvictionRate("usgovvirginia", "Standard_D2s_v5", "5-10"),
        EvictionRate("eastus", "Standard_D2s_v5", "5-10"),
    ]
    frame, dropped = eviction_frame(rows)
    assert frame.to_dict("records") == [
        {"InstanceTier": "Standard", "InstanceType": "D2s_v5", "Region": "eastus", "IF": 3.0},
        {"InstanceTier": "Standard", "InstanceType": "D4s_v5", "Region": "eastus", "IF": 1.0},
        {"InstanceTier": "Standard", "InstanceType": "NC4as_T4_v3", "Region": "westeurope", "IF": 2.0},
    ]
    assert dropped == {"sovereign_region": 1, "duplicate": 1}


def test_unknown_eviction_bucket_is_loud() -> None:
    with pytest.raises(MalformedResponse, match="unknown bucket label") as raised:
        eviction_frame(
            [EvictionRate("eastus", "Standard_D2s_v5", "0-5"), EvictionRate("eastus", "x", "25-30")]
        )
    assert (raised.value.field, raised.value.value) == ("evictionRate", "25-30")
    assert raised.value.row == "1: eastus/x"


def test_lower_case_skus_are_kept_and_counted_once() -> None:
    rows = [
        EvictionRate("eastus", "standard_nc24ads_a100_v4", "5-10"),
        EvictionRate("eastus", "Standard_NC24ads_A100_v4", "0-5"),  # the same pair, spelled differently
        EvictionRate("eastus", "Promo_D2s_v5", "0-5"),
    ]
    frame, dropped = eviction_frame(rows)
    assert frame.to_dict("records") == [
        {"InstanceTier": "Standard", "InstanceType": "nc24ads_a100_v4", "Region": "eastus", "IF": 2.5}
    ]
    assert dropped == {"duplicate": 1, "sku_without_tier": 1}


def test_prices_keep_the_precision_the_api_returns() -> None:
    items = [
        price("eastus", "Standard_B1ls", "B1ls", 0.0052),
        price("eastus", "Standard_B1ls", "B1ls Spot", 0.002508),
    ]
    frame, _ = price_frame(items)
    row = frame.iloc[0]
    assert (row["SpotPrice"], row["OndemandPrice"]) == (0.002508, 0.0052)  # was 0.00251
    assert row["Savings"] == int(100 - 100 * 0.002508 / 0.0052) == 51
