"""The packaged EC2 catalogue against the moto data it was derived from."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import moto
import pytest

from spotlake_assets.aws.catalogue import (
    CATALOGUE_RESOURCE,
    CatalogueError,
    catalogue_from_document,
    load_catalogue,
    type_kept_at_scale,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO_ROOT / "spotlake_assets" / "aws" / CATALOGUE_RESOURCE
MOTO_EC2 = Path(moto.__file__).resolve().parent / "ec2" / "resources"
OFFERINGS = MOTO_EC2 / "instance_type_offerings"


def _read(path: Path) -> Any:
    return json.loads(gzip.decompress(path.read_bytes()))


@cache
def moto_offerings(kind: str) -> dict[str, set[str]]:
    """Location → instance types, straight from moto's files (kind: region, availability-zone[-id])."""
    by_location: dict[str, set[str]] = defaultdict(set)
    for path in sorted((OFFERINGS / kind).glob("*.json.gz")):
        for row in _read(path):
            by_location[row["Location"]].add(row["InstanceType"])
    return dict(by_location)


@cache
def moto_instance_types() -> dict[str, Any]:
    types: dict[str, Any] = _read(MOTO_EC2 / "instance_types.json.gz")  # a JSON object keyed by type name
    return types


def test_full_catalogue_matches_moto_counts() -> None:
    catalogue = load_catalogue()
    by_zone_id = moto_offerings("availability-zone-id")
    moto_types = set().union(*by_zone_id.values())

    assert catalogue.regions == tuple(sorted(moto_offerings("region")))
    assert len(catalogue.regions) == 30
    assert len(catalogue.zones) == len(by_zone_id) == 95
    assert len(catalogue.instance_types) == len(moto_types) == 1395
    assert catalogue.offering_count == sum(len(types) for types in by_zone_id.values())
    assert 60_000 < catalogue.offering_count < 70_000


def test_offerings_are_exactly_motos_by_zone_id() -> None:
    catalogue = load_catalogue()
    ours = {
        (offering.instance_type, offering.zone_id)
        for offerings in catalogue.offerings_by_region.values()
        for offering in offerings
    }
    theirs = {
        (t, zone_id) for zone_id, types in moto_offerings("availability-zone-id").items() for t in types
    }
    assert ours == theirs


def test_offerings_sit_in_their_own_region() -> None:
    catalogue = load_catalogue()
    for region, offerings in catalogue.offerings_by_region.items():
        assert offerings, region
        for offering in offerings:
            assert offering.region == region
            assert catalogue.zone_by_id(offering.zone_id).region == region


def test_zone_names_and_ids_are_unique_and_belong_to_their_region() -> None:
    catalogue = load_catalogue()
    names = [zone.name for zone in catalogue.zones]
    ids = [zone.zone_id for zone in catalogue.zones]
    assert len(set(names)) == len(names)
    assert len(set(ids)) == len(ids)
    for zone in catalogue.zones:
        assert zone.name.startswith(zone.region)
        assert zone.region in catalogue.regions
        assert catalogue.zone_by_name(zone.name) is zone
        assert catalogue.zone_by_id(zone.zone_id) is zone


def test_zone_name_mapping_agrees_with_motos_per_name_offerings() -> None:
    """The name↔id pairing is the recorded account's: a zone offers the same types by name and by id."""
    catalogue = load_catalogue()
    by_name = moto_offerings("availability-zone")
    for zone in catalogue.zones:
        assert catalogue.types_by_zone_id[zone.zone_id] == frozenset(by_name[zone.name]), zone


@pytest.mark.parametrize(
    ("region", "expected_zones"),
    [("us-east-1", 6), ("us-west-1", 2), ("eu-west-2", 4), ("ap-northeast-2", 4), ("eu-north-1", 3)],
)
def test_zone_count_per_region(region: str, expected_zones: int) -> None:
    assert len(load_catalogue().zones_by_region[region]) == expected_zones


def test_unknown_zone_lookups_raise_key_error() -> None:
    catalogue = load_catalogue()
    with pytest.raises(KeyError):
        catalogue.zone_by_name("mars-north-1a")
    with pytest.raises(KeyError):
        catalogue.zone_by_id("mrsn1-az1")
    assert catalogue.offered_types("mars-north-1") == ()


@pytest.mark.parametrize(
    "instance_type", ["m5.large", "t3.nano", "p5.48xlarge", "mac2.metal", "c7g.16xlarge"]
)
def test_specs_match_moto(instance_type: str) -> None:
    spec = load_catalogue().instance_types[instance_type]
    raw = moto_instance_types()[instance_type]
    assert spec.vcpus == raw["VCpuInfo"]["DefaultVCpus"]
    assert spec.memory_mib == raw["MemoryInfo"]["SizeInMiB"]
    assert spec.spot_supported == ("spot" in raw["SupportedUsageClasses"])
    assert spec.bare_metal == raw["BareMetal"]
    assert spec.burstable == raw["BurstablePerformanceSupported"]
    assert spec.family == instance_type.split(".")[0]


def test_accelerators_are_recorded_once() -> None:
    specs = load_catalogue().instance_types
    (gpus,) = specs["p5.48xlarge"].accelerators
    assert (gpus.kind, gpus.name, gpus.count) == ("gpu", "H100", 8.0)
    # inf2 appears under both NeuronInfo and InferenceAcceleratorInfo in moto: counted once.
    assert len(specs["inf2.xlarge"].accelerators) == 1
    assert specs["m5.large"].accelerators == ()
    assert not specs["mac2.metal"].spot_supported
    assert specs["m5.large"].spot_supported


@pytest.mark.parametrize("scale", [0.01, 0.05, 0.2, 0.5])
def test_scaled_catalogue_keeps_about_that_fraction(scale: float) -> None:
    full = load_catalogue()
    scaled = load_catalogue(scale)
    total = len(full.instance_types)
    kept = len(scaled.instance_types)
    # Binomial(total, scale): allow five standard deviations.
    tolerance = 5 * math.sqrt(total * scale * (1 - scale))
    assert abs(kept - total * scale) <= tolerance
    assert kept > 0
    assert scaled.regions == full.regions
    assert scaled.zones == full.zones


@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_scaled_catalogue_keeps_every_offering_of_its_types(scale: float) -> None:
    full = load_catalogue()
    scaled = load_catalogue(scale)
    kept = set(scaled.instance_types)
    expected = {
        (o.instance_type, o.zone_id)
        for offerings in full.offerings_by_region.values()
        for o in offerings
        if o.instance_type in kept
    }
    actual = {
        (o.instance_type, o.zone_id) for offerings in scaled.offerings_by_region.values() for o in offerings
    }
    assert actual == expected


def test_scaled_subsets_are_deterministic_and_nested() -> None:
    document = _read(SNAPSHOT)
    small = catalogue_from_document(document, 0.05)
    again = catalogue_from_document(document, 0.05)
    larger = load_catalogue(0.1)
    assert set(small.instance_types) == set(again.instance_types)
    assert small.offerings_by_region == again.offerings_by_region
    assert set(small.instance_types) <= set(larger.instance_types)
    assert all(type_kept_at_scale(name, 0.05) for name in small.instance_types)


def test_loading_is_cached() -> None:
    assert load_catalogue() is load_catalogue(1.0)
    assert load_catalogue(0.05) is load_catalogue(0.05)


@pytest.mark.parametrize("scale", [0.0, -0.1, 1.0001, 2.0, math.nan, math.inf])
def test_scale_outside_unit_interval_is_rejected(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        load_catalogue(scale)


def test_malformed_document_is_rejected() -> None:
    document = _read(SNAPSHOT)
    with pytest.raises(CatalogueError, match="format"):
        catalogue_from_document({**document, "format": "something-else/9"})
    with pytest.raises(CatalogueError):
        catalogue_from_document({**document, "specs": document["specs"][:-1]})
    with pytest.raises(CatalogueError, match="zone id"):
        catalogue_from_document({**document, "offerings": {**document["offerings"], "mrsn1-az1": [0]}})


def test_snapshot_is_compact_and_records_provenance() -> None:
    assert SNAPSHOT.stat().st_size < 300_000
    provenance = load_catalogue().provenance
    assert provenance["moto_version"] == moto.__version__, "moto moved: rerun scripts/derive_aws_catalogue.py"
    assert provenance["counts"]["instance_types"] == 1395
    assert any("availability-zone-id" in path for path in provenance["source_paths"])
    assert len(provenance["sources_sha256"]) == 64
    assert provenance["generated_on"]


def test_snapshot_is_what_the_script_derives_from_installed_moto() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "derive_aws_catalogue.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
