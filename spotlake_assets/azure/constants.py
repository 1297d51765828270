"""Azure constants: names, API limits and column contracts (docs/data-contracts.md#azure-columns)."""

from __future__ import annotations

from datetime import timedelta

PROVIDER = "azure"

# Spot Placement Score API: one request scores at most 8 locations x 5 sizes.
MAX_LOCATIONS_PER_REQUEST = 8
MAX_SIZES_PER_REQUEST = 5
# Azure refuses a (subscription, calling location) that made 10 requests within about an hour; SpotLake keeps
# strictly below that over 62 minutes (a margin on Azure's own clock), and so do we.
CALLS_PER_ENDPOINT = 9
BUDGET_HORIZON = timedelta(minutes=62)
# A (subscription, location) that answered "maximum number of requests" rests for one whole horizon.
QUARANTINE = BUDGET_HORIZON

SPS_API_VERSION = "2025-06-05"
RESOURCE_GRAPH_API_VERSION = "2024-04-01"
ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
AUTHORITY = "https://login.microsoftonline.com"
RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"
RETAIL_PRICES_FILTER = "serviceName eq 'Virtual Machines' and priceType eq 'Consumption'"
# Any name that is not a location: Azure answers it with the list of locations that serve the SPS API.
PROBE_LOCATION = "spotlake-probe-location"

EVICTION_RATE_QUERY = """spotresources
| where type =~ 'microsoft.compute/skuspotevictionrate/location'
| project location = location, props = parse_json(properties)
| project location = location, skuName = tostring(props.skuName), evictionRate = tostring(props.evictionRate)
| where isnotempty(skuName) and isnotempty(evictionRate) and isnotempty(location)
| order by location asc, skuName asc"""

# Resource Graph eviction-rate buckets → SpotLake's IF score.
IF_BUCKETS: dict[str, float] = {"0-5": 3.0, "5-10": 2.5, "10-15": 2.0, "15-20": 1.5, "20+": 1.0}
# Spot Placement Score labels → SpotLake's Score.
SCORES: dict[str, int] = {"High": 3, "Medium": 2, "Low": 1}
# Documented answers that are not a score (KnownPlacementScoreValue): kept out of the data and counted.
UNSCORED_STATUSES = ("DataNotFoundOrStale", "InsufficientQuota", "RestrictedSkuNotAvailable")
# Azure numbers the availability zones of a region 1..3.
ZONES = ("1", "2", "3")

# Retail price rows of sovereign and government clouds: not offered to SpotLake's public-cloud users.
SOVEREIGN_LOCATION_PREFIXES = ("US Gov", "US DoD", "US Sec", "China", "Germany", "DE Central", "DE Northeast")
SOVEREIGN_REGION_MARKERS = ("usgov", "usdod", "ussec", "china", "germanycentral", "germanynortheast")
SPOT_METER_SUFFIX = " Spot"

# The AvailabilityZone of a region-level row (price or eviction rate with no SPS row), as SpotLake fills it;
# and of an SPS score for a region without zones.
NO_ZONE = "N/A"
REGIONAL_ZONE = "Single"
MISSING = -1

# The blocking `join_coverage` check of azure/merged: below these fractions a join has collapsed (a renamed
# or respelled column, a wrong region vocabulary) rather than thinned. Every scored pair was planned from
# the price list, so nearly all should be priced; Resource Graph rates fewer SKUs than are sold, so the IF
# floor is lower.
MIN_PRICE_COVERAGE = 0.5  # of the scored (tier, size, region) pairs, the share with a price
MIN_IF_COVERAGE = 0.25  # of the priced or scored pairs, the share with an eviction rate

WORKLOAD_COLUMNS = ("RequestId", "Regions", "Sizes", "Pairs", "Batch")
UNIVERSE_COLUMNS = ("InstanceTier", "InstanceType", "Region", "RegionName", "Planned")
ENDPOINT_COLUMNS = ("Location",)
SPS_COLUMNS = (
    "DesiredCount",
    "Region",
    "RegionName",
    "InstanceTier",
    "InstanceType",
    "AvailabilityZone",
    "Score",
    "T3",
    "T2",
)
PRICE_COLUMNS = (
    "InstanceTier",
    "InstanceType",
    "Region",
    "RegionName",
    "OndemandPrice",
    "SpotPrice",
    "Savings",
)
IF_COLUMNS = ("InstanceTier", "InstanceType", "Region", "IF")
MERGED_COLUMNS = (
    "InstanceTier",
    "InstanceType",
    "Region",
    "RegionName",
    "AvailabilityZone",
    "DesiredCount",
    "Score",
    # The DesiredCount the published Score was measured at (domain/scores.py); not a feature.
    "ScoreCount",
    "T3",
    "T2",
    "IF",
    "OndemandPrice",
    "SpotPrice",
    "Savings",
    "Time",
)
KEY_COLUMNS = ("InstanceTier", "InstanceType", "Region", "AvailabilityZone")
PAIR_COLUMNS = ("InstanceTier", "InstanceType", "Region")
FEATURE_COLUMNS = ("Score", "T3", "T2", "IF", "SpotPrice", "OndemandPrice")
