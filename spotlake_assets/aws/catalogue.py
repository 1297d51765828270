"""The EC2 catalogue behind the simulated AWS cloud: real regions, zones, instance-type offerings and
specifications, snapshotted from moto (see ``data/PROVENANCE.md``). Pure: reads one packaged file, no network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from spotlake_assets.aws.models import AvailabilityZone, Offering

CATALOGUE_FORMAT = "spotlake-aws-catalogue/1"
CATALOGUE_RESOURCE = "data/catalogue.json.gz"

# Fixed salt, independent of any simulation seed: a scaled-down catalogue is the same in every world, so
# small demos and tests always see the same instance types.
_SCALE_SALT = b"spotlake-scale"


class CatalogueError(ValueError):
    """The packaged catalogue snapshot is missing or does not have the expected shape."""


@dataclass(frozen=True)
class Accelerator:
    kind: str  # gpu | neuron | inference | fpga | media
    name: str  # e.g. H100, Inferentia2
    count: float  # devices; fractional for partitioned GPUs (g6f)
    memory_mib: int  # per device


@dataclass(frozen=True)
class InstanceTypeSpec:
    """What `describe_instance_types` says about one instance type (as recorded by moto)."""

    name: str
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]
    manufacturer: str  # Intel, AMD, AWS (Graviton), Apple
    burstable: bool
    bare_metal: bool
    current_generation: bool
    instance_storage: bool
    spot_supported: bool
    accelerators: tuple[Accelerator, ...] = ()

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def size(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Regions, zones and offerings of the simulated cloud. Immutable; shared by every simulated resource.

    ``offerings_by_region`` is sorted by (AZ id, instance type); only types kept at ``scale`` appear in it
    and in ``instance_types``. Regions and zones are never scaled down.
    """

    scale: float
    regions: tuple[str, ...]
    zones: tuple[AvailabilityZone, ...]
    offerings_by_region: Mapping[str, tuple[Offering, ...]]
    instance_types: Mapping[str, InstanceTypeSpec]
    provenance: Mapping[str, Any] = field(repr=False)

    @cached_property
    def _zones_by_name(self) -> Mapping[str, AvailabilityZone]:
        return MappingProxyType({zone.name: zone for zone in self.zones})

    @cached_property
    def _zones_by_id(self) -> Mapping[str, AvailabilityZone]:
        return MappingProxyType({zone.zone_id: zone for zone in self.zones})

    @cached_property
    def zones_by_region(self) -> Mapping[str, tuple[AvailabilityZone, ...]]:
        grouped: dict[str, list[AvailabilityZone]] = {region: [] for region in self.regions}
        for zone in self.zones:
            grouped[zone.region].append(zone)
        return MappingProxyType({region: tuple(zones) for region, zones in grouped.items()})

    @cached_property
    def types_by_zone_id(self) -> Mapping[str, frozenset[str]]:
        grouped: dict[str, set[str]] = {zone.zone_id: set() for zone in self.zones}
        for offerings in self.offerings_by_region.values():
            for offering in offerings:
                grouped[offering.zone_id].add(offering.instance_type)
        return MappingProxyType({zone_id: frozenset(types) for zone_id, types in grouped.items()})

    def zone_by_name(self, name: str) -> AvailabilityZone:
        """The zone called ``name`` (e.g. ``us-east-1a``). Raises KeyError for an unknown name."""
        try:
            return self._zones_by_name[name]
        except KeyError:
            raise KeyError(f"no availability zone named {name!r} in the catalogue") from None

    def zone_by_id(self, zone_id: str) -> AvailabilityZone:
        """The zone with id ``zone_id`` (e.g. ``use1-az6``). Raises KeyError for an unknown id."""
        try:
            return self._zones_by_id[zone_id]
        except KeyError:
            raise KeyError(f"no availability zone with id {zone_id!r} in the catalogue") from None

    @cached_property
    def types_by_region(self) -> Mapping[str, tuple[str, ...]]:
        """Instance types offered in at least one AZ of each region, sorted."""
        return MappingProxyType(
            {
                region: tuple(sorted({offering.instance_type for offering in offerings}))
                for region, offerings in self.offerings_by_region.items()
            }
        )

    def offered_types(self, region: str) -> tuple[str, ...]:
        """Instance types offered in at least one AZ of ``region``, sorted (empty for an unknown region)."""
        return self.types_by_region.get(region, ())

    @property
    def offering_count(self) -> int:
        return sum(len(offerings) for offerings in self.offerings_by_region.values())


def _check_scale(scale: float) -> float:
    # `not 0 < scale` also rejects NaN.
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"catalogue scale must be in (0, 1], got {scale!r}")
    return float(scale)


def type_kept_at_scale(instance_type: str, scale: float) -> bool:
    """Whether ``instance_type`` belongs to the catalogue scaled to ``scale``.

    A stable hash gives each type a fixed point in [0, 1); the type is kept when that point is below
    ``scale``. So subsets are nested (every type of the 5% catalogue is in the 10% one) and independent
    of Python's per-process hash salt.
    """
    digest = hashlib.blake2b(instance_type.encode(), digest_size=8, key=_SCALE_SALT).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < _check_scale(scale)


@cache
def _packaged_document() -> dict[str, Any]:
    raw = resources.files("spotlake_assets.aws").joinpath(CATALOGUE_RESOURCE).read_bytes()
    return json.loads(gzip.decompress(raw))  # type: ignore[no-any-return]


def _spec(name: str, row: Sequence[Any]) -> InstanceTypeSpec:
    vcpus, memory_mib, architectures, manufacturer, burstable, metal, current, storage, spot, accel = row
    return InstanceTypeSpec(
        name=name,
        vcpus=int(vcpus),
        memory_mib=int(memory_mib),
        architectures=tuple(str(architectures).split("/")),
        manufacturer=str(manufacturer),
        burstable=bool(burstable),
        bare_metal=bool(metal),
        current_generation=bool(current),
        instance_storage=bool(storage),
        spot_supported=bool(spot),
        accelerators=tuple(
            Accelerator(kind=str(kind), name=str(device), count=float(count), memory_mib=int(memory))
            for kind, device, count, memory in accel
        ),
    )


def catalogue_from_document(document: Mapping[str, Any], scale: float = 1.0) -> Catalogue:
    """Build a `Catalogue` from the snapshot's decoded JSON (the format written by
    ``scripts/derive_aws_catalogue.py``). Raises `CatalogueError` on a malformed document."""
    scale = _check_scale(scale)
    if document.get("format") != CATALOGUE_FORMAT:
        raise CatalogueError(f"catalogue format {document.get('format')!r}, expected {CATALOGUE_FORMAT!r}")
    try:
        regions = tuple(str(region) for region in document["regions"])
        zones = tuple(
            AvailabilityZone(region=str(region), name=str(name), zone_id=str(zone_id))
            for region, name, zone_id in document["zones"]
        )
        type_names: list[str] = [str(name) for name in document["instance_types"]]
        specs_rows: list[Sequence[Any]] = document["specs"]
        offerings_doc: Mapping[str, Sequence[int]] = document["offerings"]
        provenance: Mapping[str, Any] = document["provenance"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogueError(f"malformed catalogue document: {exc!r}") from exc
    if len(specs_rows) != len(type_names):
        raise CatalogueError(f"{len(type_names)} instance types but {len(specs_rows)} specifications")

    kept = [scale >= 1.0 or type_kept_at_scale(name, scale) for name in type_names]
    specs = {
        name: _spec(name, row) for name, row, keep in zip(type_names, specs_rows, kept, strict=True) if keep
    }

    region_of_zone = {zone.zone_id: zone.region for zone in zones}
    by_region: dict[str, list[Offering]] = {region: [] for region in regions}
    for zone_id in sorted(offerings_doc):
        region = region_of_zone.get(zone_id)
        if region is None or region not in by_region:
            raise CatalogueError(f"offerings for zone id {zone_id!r}, which no listed region owns")
        by_region[region].extend(
            Offering(instance_type=type_names[index], region=region, zone_id=zone_id)
            for index in sorted(offerings_doc[zone_id], key=type_names.__getitem__)
            if kept[index]
        )
    return Catalogue(
        scale=scale,
        regions=regions,
        zones=zones,
        offerings_by_region=MappingProxyType({region: tuple(rows) for region, rows in by_region.items()}),
        instance_types=MappingProxyType(specs),
        provenance=MappingProxyType(dict(provenance)),
    )


@lru_cache(maxsize=8)
def _load(scale: float) -> Catalogue:
    return catalogue_from_document(_packaged_document(), scale)


def load_catalogue(scale: float = 1.0) -> Catalogue:
    """The packaged catalogue, keeping a deterministic ``scale`` fraction of instance types (cached).

    ``scale=1.0`` is the full snapshot (30 regions, 95 zones, 1,395 types, ~64k offerings); e.g. 0.05 keeps
    about 5% of the types, chosen by a stable hash (`type_kept_at_scale`). Raises ValueError outside (0, 1].
    """
    return _load(_check_scale(scale))
