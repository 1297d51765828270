"""AWS constants: names, limits and column contracts (docs/data-contracts.md#aws-columns)."""

from __future__ import annotations

PROVIDER = "aws"

# SPS: one query covers one instance type over regions totalling at most this many AZs.
MAX_AZS_PER_QUERY = 10
# Queries per credential group; AWS allows 50 distinct SPS configurations per account per 24 hours.
QUERIES_PER_GROUP = 50
CONFIGS_PER_CREDENTIAL_PER_DAY = 50

SPOT_PRODUCT_DESCRIPTION = "Linux/UNIX"
SPOT_ADVISOR_URL = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"
PRICING_REGION = "us-east-1"

# Spot Instance Advisor interruption buckets → SpotLake's IF score.
IF_BUCKETS: dict[str, float] = {"<5%": 3.0, "5-10%": 2.5, "10-15%": 2.0, "15-20%": 1.5, ">20%": 1.0}

WORKLOAD_COLUMNS = ("QueryId", "InstanceType", "Regions", "AZWeight", "Group")
SPS_COLUMNS = ("InstanceType", "Region", "AZ", "SPS", "TargetCapacity", "T3", "T2")
IF_COLUMNS = ("Region", "InstanceType", "IF")
SPOT_PRICE_COLUMNS = ("InstanceType", "AZ", "SpotPrice")
ONDEMAND_COLUMNS = ("Region", "InstanceType", "OndemandPrice")
MERGED_COLUMNS = (
    "InstanceType",
    "Region",
    "AZ",
    "SPS",
    # The TargetCapacity the published SPS was measured at (domain/scores.py); not a feature.
    "SPSCapacity",
    "T3",
    "T2",
    "IF",
    "OndemandPrice",
    "SpotPrice",
    "Savings",
    "Time",
)
KEY_COLUMNS = ("InstanceType", "Region", "AZ")
# Access key ids of the simulated credential pool start with this; the boto3 resource refuses them.
SIMULATED_KEY_PREFIX = "SIMULATED"
FEATURE_COLUMNS = ("SPS", "T3", "T2", "IF", "SpotPrice", "OndemandPrice")
