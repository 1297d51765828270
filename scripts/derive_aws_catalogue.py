"""Derive the simulated AWS cloud's catalogue snapshot from the EC2 data shipped inside moto.

moto records real `describe_instance_type_offerings` answers (per region, per AZ name and per AZ id) and
real `describe_instance_types` specifications. This script condenses them into
``spotlake_assets/aws/data/catalogue.json.gz``: regions, zones (region, name, id), instance-type
specifications and, per AZ id, the offered instance types as indexes into one interned type list.

Usage (from the repository root, with the dev extras installed)::

    .venv/bin/python scripts/derive_aws_catalogue.py            # (re)write the snapshot
    .venv/bin/python scripts/derive_aws_catalogue.py --check    # exit 1 if the snapshot is stale

See ``spotlake_assets/aws/data/PROVENANCE.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import moto
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend

FORMAT = "spotlake-aws-catalogue/1"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "spotlake_assets" / "aws" / "data" / "catalogue.json.gz"
MOTO_ROOT = Path(moto.__file__).resolve().parent
OFFERINGS_DIR = MOTO_ROOT / "ec2" / "resources" / "instance_type_offerings"
INSTANCE_TYPES_FILE = MOTO_ROOT / "ec2" / "resources" / "instance_types.json.gz"

# One accelerator kind per type: inf1/inf2 list the same chips under both NeuronInfo and
# InferenceAcceleratorInfo, so the first kind present wins and nothing is counted twice.
ACCELERATOR_SOURCES = (
    ("gpu", "GpuInfo", "Gpus"),
    ("neuron", "NeuronInfo", "NeuronDevices"),
    ("inference", "InferenceAcceleratorInfo", "Accelerators"),
    ("fpga", "FpgaInfo", "Fpgas"),
    ("media", "MediaAcceleratorInfo", "Accelerators"),
)


def _read_json_gz(path: Path) -> Any:
    return json.loads(gzip.decompress(path.read_bytes()))


def _relative(path: Path) -> str:
    return "moto/" + path.relative_to(MOTO_ROOT).as_posix()


def _offerings(kind: str, region: str) -> dict[str, set[str]]:
    """Location (region, AZ name or AZ id) → offered instance types, for one region file."""
    by_location: dict[str, set[str]] = defaultdict(set)
    for row in _read_json_gz(OFFERINGS_DIR / kind / f"{region}.json.gz"):
        by_location[row["Location"]].add(row["InstanceType"])
    return by_location


def _zone_mapping(
    region: str, by_name: dict[str, set[str]], by_id: dict[str, set[str]]
) -> tuple[dict[str, str], list[str]]:
    """Map the region's AZ names to AZ ids.

    Name↔id pairing is account-specific. moto's recorded offerings come from one account, so where the
    per-name and per-id type sets match exactly once, that pairing is the recorded account's truth.
    Identical sets (ambiguous) fall back to moto's own `describe_availability_zones` table. Returns the
    mapping and the names where it disagrees with that table (reported as provenance).
    """
    moto_table = {zone.name: zone.zone_id for zone in RegionsAndZonesBackend.zones.get(region, [])}
    mapping: dict[str, str] = {}
    for name, types in sorted(by_name.items()):
        candidates = sorted(zone_id for zone_id, id_types in by_id.items() if id_types == types)
        if len(candidates) == 1:
            mapping[name] = candidates[0]
        elif moto_table.get(name) in candidates:
            mapping[name] = moto_table[name]
        else:
            raise SystemExit(f"{region}: cannot map zone {name} to an id (candidates {candidates})")
    if len(set(mapping.values())) != len(mapping) or set(mapping.values()) != set(by_id):
        raise SystemExit(f"{region}: zone mapping is not a bijection: {mapping} vs ids {sorted(by_id)}")
    disagreements = sorted(name for name, zone_id in mapping.items() if moto_table.get(name) != zone_id)
    return mapping, disagreements


def _accelerators(spec: dict[str, Any]) -> list[list[Any]]:
    for kind, info_key, list_key in ACCELERATOR_SOURCES:
        info = spec.get(info_key)
        if not info:
            continue
        devices = []
        for device in info.get(list_key, []):
            count = float(device.get("Count", 0))
            if count == 0 and "GpuPartitionSize" in device:
                # Fractional GPUs (g6f, gr6f) report Count 0 and a partition of one logical GPU.
                count = float(device.get("LogicalGpuCount", 1)) * float(device["GpuPartitionSize"])
            devices.append(
                [kind, device["Name"], count, int(device.get("MemoryInfo", {}).get("SizeInMiB", 0))]
            )
        return devices
    return []


def _spec_row(spec: dict[str, Any]) -> list[Any]:
    processor = spec["ProcessorInfo"]
    return [
        int(spec["VCpuInfo"]["DefaultVCpus"]),
        int(spec["MemoryInfo"]["SizeInMiB"]),
        "/".join(processor["SupportedArchitectures"]),
        processor.get("Manufacturer", "unknown"),
        int(bool(spec["BurstablePerformanceSupported"])),
        int(bool(spec["BareMetal"])),
        int(bool(spec["CurrentGeneration"])),
        int(bool(spec["InstanceStorageSupported"])),
        int("spot" in spec["SupportedUsageClasses"]),
        _accelerators(spec),
    ]


def _sources_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(_relative(path).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def derive(generated_on: str) -> dict[str, Any]:
    regions = sorted(
        path.name.removesuffix(".json.gz") for path in (OFFERINGS_DIR / "region").glob("*.json.gz")
    )
    specs = _read_json_gz(INSTANCE_TYPES_FILE)

    zones: list[list[str]] = []
    types_by_zone_id: dict[str, set[str]] = {}
    disagreements: dict[str, list[str]] = {}
    all_types: set[str] = set()
    for region in regions:
        by_region = _offerings("region", region)
        by_name = _offerings("availability-zone", region)
        by_id = _offerings("availability-zone-id", region)
        mapping, disagree = _zone_mapping(region, by_name, by_id)
        if disagree:
            disagreements[region] = disagree
        for name in sorted(mapping):
            zones.append([region, name, mapping[name]])
        types_by_zone_id.update(by_id)
        region_types = set().union(*by_id.values()) if by_id else set()
        if region_types != by_region.get(region, set()):
            raise SystemExit(f"{region}: per-AZ offerings do not add up to the regional offerings")
        all_types |= region_types

    missing_specs = sorted(all_types - set(specs))
    if missing_specs:
        raise SystemExit(f"no specification in moto for {missing_specs[:10]}")
    type_names = sorted(all_types)
    index = {name: position for position, name in enumerate(type_names)}
    offerings = {
        zone_id: sorted(index[name] for name in types_by_zone_id[zone_id])
        for zone_id in sorted(types_by_zone_id)
    }

    sources = [INSTANCE_TYPES_FILE] + [
        OFFERINGS_DIR / kind / f"{region}.json.gz"
        for kind in ("region", "availability-zone", "availability-zone-id")
        for region in regions
    ]
    return {
        "format": FORMAT,
        "provenance": {
            "source": "moto (real EC2 describe_instance_type_offerings / describe_instance_types recordings)",
            "moto_version": moto.__version__,
            "generated_on": generated_on,
            "generator": "scripts/derive_aws_catalogue.py",
            "source_paths": [
                _relative(INSTANCE_TYPES_FILE),
                _relative(OFFERINGS_DIR / "region") + "/*.json.gz",
                _relative(OFFERINGS_DIR / "availability-zone") + "/*.json.gz",
                _relative(OFFERINGS_DIR / "availability-zone-id") + "/*.json.gz",
            ],
            "sources_sha256": _sources_digest(sources),
            "zone_mapping": (
                "AZ name→id recovered by matching each AZ name's offered types with each AZ id's; "
                "ties resolved with moto's describe_availability_zones table"
            ),
            "zone_mapping_differs_from_moto_table": disagreements,
            "counts": {
                "regions": len(regions),
                "zones": len(zones),
                "instance_types": len(type_names),
                "offerings": sum(len(types) for types in offerings.values()),
            },
        },
        "regions": regions,
        "zones": zones,
        "instance_types": type_names,
        "spec_columns": [
            "vcpus",
            "memory_mib",
            "architectures",
            "manufacturer",
            "burstable",
            "bare_metal",
            "current_generation",
            "instance_storage",
            "spot_supported",
            "accelerators[kind,name,count,memory_mib]",
        ],
        "specs": [_spec_row(specs[name]) for name in type_names],
        "offerings": offerings,
    }


def encode(document: dict[str, Any]) -> bytes:
    text = json.dumps(document, separators=(",", ":"), sort_keys=False)
    # mtime=0 keeps the bytes reproducible: regenerating from the same moto gives the same file.
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--generated-on",
        default=datetime.now(UTC).date().isoformat(),
        help="date recorded as provenance (default: today, UTC)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the existing snapshot (ignoring the date) instead of writing it",
    )
    args = parser.parse_args(argv)

    if args.check:
        existing = json.loads(gzip.decompress(args.output.read_bytes()))
        fresh = derive(existing["provenance"]["generated_on"])
        if existing != fresh:
            print(f"{args.output} is stale: rerun scripts/derive_aws_catalogue.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date (moto {fresh['provenance']['moto_version']})")
        return 0

    document = derive(args.generated_on)
    payload = encode(document)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(payload)
    counts = document["provenance"]["counts"]
    print(
        f"wrote {args.output} ({len(payload):,} bytes): {counts['regions']} regions, "
        f"{counts['zones']} zones, {counts['instance_types']} instance types, "
        f"{counts['offerings']:,} instance-type x AZ offerings"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
