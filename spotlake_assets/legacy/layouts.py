"""SpotLake's CSV columns mapped onto our merged snapshots (docs/data-contracts.md#imported-history).

The merged columns come from each provider's constants, so a column added there (a capacity column of ours
that SpotLake's files cannot have) is filled with its default here instead of being forgotten."""

from __future__ import annotations

from spotlake_assets.aws import constants as aws
from spotlake_assets.azure import constants as azure
from spotlake_assets.domain.legacy import LegacyLayout

# Columns of ours SpotLake's files do not have, constant for every imported row: SpotLake's score is the
# single-node one, so the capacity it was read at is 1.
SINGLE_NODE_COLUMNS = ("SPSCapacity", "ScoreCount")

_INT = {"SPS", "T3", "T2", "Savings", "Score", "DesiredCount", *SINGLE_NODE_COLUMNS}
_FLOAT = {"IF", "OndemandPrice", "SpotPrice"}


def _typed(columns: tuple[str, ...], kinds: set[str]) -> tuple[str, ...]:
    return tuple(c for c in columns if c in kinds)


def _defaults(columns: tuple[str, ...], extra: dict[str, int | float | str]) -> dict[str, int | float | str]:
    defaults: dict[str, int | float | str] = {c: 1 for c in SINGLE_NODE_COLUMNS if c in columns}
    for column in columns:
        if column in ("T3", "T2"):
            defaults[column] = 0
        elif column in _INT or column in _FLOAT:
            defaults.setdefault(column, -1)
    defaults.update(extra)
    return defaults


AWS_LAYOUT = LegacyLayout(
    provider=aws.PROVIDER,
    key_columns=aws.KEY_COLUMNS,
    feature_columns=aws.FEATURE_COLUMNS,
    merged_columns=aws.MERGED_COLUMNS,
    required=("InstanceType", "Region", "AZ", "SPS", "IF", "OndemandPrice", "SpotPrice"),
    defaults=_defaults(aws.MERGED_COLUMNS, {}),
    int_columns=_typed(aws.MERGED_COLUMNS, _INT),
    float_columns=_typed(aws.MERGED_COLUMNS, _FLOAT),
    zone_column="AZ",
)

AZURE_LAYOUT = LegacyLayout(
    provider=azure.PROVIDER,
    key_columns=azure.KEY_COLUMNS,
    feature_columns=azure.FEATURE_COLUMNS,
    merged_columns=azure.MERGED_COLUMNS,
    required=("InstanceTier", "InstanceType", "Region", "OndemandPrice", "SpotPrice", "IF"),
    defaults=_defaults(azure.MERGED_COLUMNS, {"AvailabilityZone": azure.NO_ZONE}),
    int_columns=_typed(azure.MERGED_COLUMNS, _INT),
    float_columns=_typed(azure.MERGED_COLUMNS, _FLOAT),
    aliases={"AZ": "AvailabilityZone"},
    copies={"RegionName": "Region"},
)

LAYOUTS = {layout.provider: layout for layout in (AWS_LAYOUT, AZURE_LAYOUT)}
