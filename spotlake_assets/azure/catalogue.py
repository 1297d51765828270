"""The authored catalogue behind the simulated Azure: regions, VM families and sizes, and the rules that say
which size is offered in which region and zone (see ``data/PROVENANCE.md``). Pure: one packaged file, no
network. Everything here is SYNTHETIC except the naming conventions, which follow Azure's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

CATALOGUE_FORMAT = "spotlake-azure-catalogue/1"
CATALOGUE_RESOURCE = "data/catalogue.json"
ZONE_NAMES = ("1", "2", "3")

# Availability rules (authored; documented in PROVENANCE.md). A family of reach R is offered in regions of
# tier <= R, minus a per-(family, region) gap drawn at the family's gap rate (half of it in tier-1 regions).
# Sizes of 64+ vCPUs skip half of the tier-3/4 regions; in zonal regions a size is in all three zones except
# for a deterministic share that is in two only (more for scarce families).
_LARGE_VCPUS = 64
_LARGE_GAP = 0.5
_TWO_ZONE_RATE = 0.15
_SCARCE_TWO_ZONE_RATE = 0.5

# Fixed salts independent of any simulation seed: the catalogue is the same in every simulated world.
_AVAILABILITY_SALT = "spotlake-azure-availability"
_SCALE_SALT = "spotlake-azure-scale"


class CatalogueError(ValueError):
    """The packaged catalogue is missing or does not have the expected shape."""


@dataclass(frozen=True)
class RegionSpec:
    code: str  # ARM name, e.g. eastus
    location: str  # the price list's label, e.g. "US East"
    tier: int  # 1 flagship … 4 restricted or newly opened
    zones: int  # 0 (no availability zones) or 3
    price_factor: float
    sps_endpoint: bool  # serves the Spot Placement Score API as a calling location

    @property
    def sovereign(self) -> bool:
        return self.code.startswith(("usgov", "usdod"))


@dataclass(frozen=True)
class SizeSpec:
    arm_sku_name: str  # e.g. Standard_D2s_v5
    tier: str  # Standard or Basic
    name: str  # e.g. D2s_v5 (Azure's spelling, as after the tier's underscore)
    series: str
    product: str  # e.g. "Virtual Machines Dsv5 Series"
    vcpus: int
    ondemand_usd: float  # Linux, in a price_factor 1.0 region
    spot: bool  # whether Azure sells it as Spot at all
    availability: float  # family's capacity offset for the score model (higher = easier to get)

    @property
    def meter_name(self) -> str:
        return self.name.replace("_", " ")


@dataclass(frozen=True, eq=False)
class AzureCatalogue:
    """Regions, sizes and offerings (``(arm_sku_name, region) → zones``; empty zones = regional only)."""

    scale: float
    regions: tuple[RegionSpec, ...]
    sizes: Mapping[str, SizeSpec]
    offerings: Mapping[tuple[str, str], tuple[str, ...]]
    sps_invalid_regions: frozenset[str]
    sps_invalid_sizes: frozenset[str]

    @property
    def region_by_code(self) -> Mapping[str, RegionSpec]:
        return {r.code: r for r in self.regions}

    @property
    def sps_endpoints(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.regions if r.sps_endpoint)


def unit(*parts: object) -> float:
    """A stable uniform number in [0, 1) from ``parts`` (blake2b; never Python's salted ``hash()``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _field(row: Any, columns: list[str], name: str, where: str) -> Any:
    if not isinstance(row, list) or len(row) != len(columns):
        raise CatalogueError(f"{where}: expected {len(columns)} values {columns}, got {row!r}")
    return row[columns.index(name)]


def _region(row: Any, columns: list[str]) -> RegionSpec:
    where = f"region {row!r}"
    return RegionSpec(
        code=str(_field(row, columns, "code", where)),
        location=str(_field(row, columns, "location", where)),
        tier=int(_field(row, columns, "tier", where)),
        zones=int(_field(row, columns, "zones", where)),
        price_factor=float(_field(row, columns, "price_factor", where)),
        sps_endpoint=bool(_field(row, columns, "sps_endpoint", where)),
    )


def _sizes(row: Any, columns: list[str]) -> tuple[tuple[SizeSpec, ...], int, float]:
    where = f"family {row[0] if isinstance(row, list) and row else row!r}"
    series = str(_field(row, columns, "series", where))
    tier = str(_field(row, columns, "tier", where))
    product = f"Virtual Machines {_field(row, columns, 'product', where)}"
    per_vcpu = float(_field(row, columns, "usd_per_vcpu", where))
    spot = bool(_field(row, columns, "spot", where))
    availability = float(_field(row, columns, "availability", where))
    sizes: list[SizeSpec] = []
    for entry in _field(row, columns, "sizes", where):
        parts = str(entry).split(":")
        if len(parts) not in (2, 3):
            raise CatalogueError(f"{where}: size {entry!r} is not NAME:VCPUS[:PRICE_MULTIPLIER]")
        name, vcpus = parts[0], int(parts[1])
        multiplier = float(parts[2]) if len(parts) == 3 else 1.0
        sizes.append(
            SizeSpec(
                arm_sku_name=f"{tier}_{name}",
                tier=tier,
                name=name,
                series=series,
                product=product,
                vcpus=vcpus,
                ondemand_usd=round(vcpus * per_vcpu * multiplier, 4),
                spot=spot,
                availability=availability,
            )
        )
    reach = int(_field(row, columns, "reach", where))
    gap_rate = float(_field(row, columns, "gap_rate", where))
    return tuple(sizes), reach, gap_rate


def _zones_for(size: SizeSpec, region: RegionSpec) -> tuple[str, ...]:
    if region.zones == 0:
        return ()
    two_zone_rate = _SCARCE_TWO_ZONE_RATE if size.availability < 0 else _TWO_ZONE_RATE
    if unit(_AVAILABILITY_SALT, "zones", size.arm_sku_name, region.code) >= two_zone_rate:
        return ZONE_NAMES
    dropped = int(unit(_AVAILABILITY_SALT, "dropped", size.arm_sku_name, region.code) * 3)
    return tuple(z for i, z in enumerate(ZONE_NAMES) if i != dropped)


def _document() -> dict[str, Any]:
    try:
        text = resources.files("spotlake_assets.azure").joinpath(CATALOGUE_RESOURCE).read_text("utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"cannot read {CATALOGUE_RESOURCE}: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != CATALOGUE_FORMAT:
        raise CatalogueError(f"{CATALOGUE_RESOURCE} is not a {CATALOGUE_FORMAT} document")
    if document.get("synthetic") is not True:
        raise CatalogueError(f"{CATALOGUE_RESOURCE} must be labelled synthetic")
    return document


@lru_cache(maxsize=8)
def load_catalogue(scale: float = 1.0) -> AzureCatalogue:
    """The catalogue, keeping a deterministic ``scale`` fraction of sizes (regions are never scaled down)."""
    if not 0.0 < scale <= 1.0:
        raise CatalogueError(f"scale must be in (0, 1], got {scale}")
    document = _document()
    regions = tuple(_region(row, document["region_columns"]) for row in document["regions"])
    sizes: dict[str, SizeSpec] = {}
    offerings: dict[tuple[str, str], tuple[str, ...]] = {}
    invalid_sizes: set[str] = set()
    for row in document["families"]:
        family_sizes, reach, gap_rate = _sizes(row, document["family_columns"])
        series = family_sizes[0].series if family_sizes else "?"
        for size in family_sizes:
            if size.arm_sku_name in sizes:
                raise CatalogueError(f"size {size.arm_sku_name} is listed twice")
            if scale < 1.0 and unit(_SCALE_SALT, size.arm_sku_name) >= scale:
                continue
            sizes[size.arm_sku_name] = size
            if size.name.endswith("_Promo"):
                # Promotional SKUs are priced but unknown to the Spot Placement Score API.
                invalid_sizes.add(size.arm_sku_name)
            for region in regions:
                if region.tier > reach:
                    continue
                rate = gap_rate / 2 if region.tier == 1 else gap_rate
                if unit(_AVAILABILITY_SALT, "family", series, region.code) < rate:
                    continue
                large_gap = region.tier >= 3 and size.vcpus >= _LARGE_VCPUS
                if (
                    large_gap
                    and unit(_AVAILABILITY_SALT, "large", size.arm_sku_name, region.code) < _LARGE_GAP
                ):
                    continue
                offerings[size.arm_sku_name, region.code] = _zones_for(size, region)
    return AzureCatalogue(
        scale=scale,
        regions=regions,
        sizes=MappingProxyType(sizes),
        offerings=MappingProxyType(dict(sorted(offerings.items()))),
        sps_invalid_regions=frozenset(document.get("sps_invalid_regions", [])),
        sps_invalid_sizes=frozenset(invalid_sizes),
    )
