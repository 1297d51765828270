"""Which AMI and which size a launch uses: `ami_for(region, instance_type)` from the day's architecture and
AMI tables (`aws/instance_architectures`, `aws/amis`), and the smallest size of a family. Pure functions of
those frames; `AmiLookup.load` reads them from the lake."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from spotlake_assets.aws_single.constants import (
    AMI_COLUMNS,
    ARCHITECTURE_COLUMNS,
    amis_key,
    architectures_key,
)
from spotlake_assets.storage.frames import read_frame
from spotlake_assets.storage.lake import LakeResource

# x86_64 first: the wider choice of software when a type supports both (none does today, but be definite).
PREFERRED_ARCHITECTURES = ("x86_64", "arm64")


class NoImage(LookupError):
    """No Amazon Linux 2023 AMI for the type's architecture in the region (or the type is unknown)."""


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def specs_frame(rows: list[tuple[str, tuple[str, ...], int, int]]) -> pd.DataFrame:
    """InstanceType, Family, Architectures (comma-separated), VCpus, MemoryMiB; one row per type."""
    frame = pd.DataFrame(rows, columns=["InstanceType", "Architectures", "VCpus", "MemoryMiB"])
    frame["Architectures"] = frame["Architectures"].map(",".join)
    frame.insert(1, "Family", frame["InstanceType"].map(family_of))
    return frame.drop_duplicates("InstanceType").sort_values("InstanceType", ignore_index=True)


@dataclass(frozen=True)
class AmiLookup:
    architectures: pd.DataFrame  # ARCHITECTURE_COLUMNS (+ VCpus, MemoryMiB)
    amis: pd.DataFrame  # AMI_COLUMNS

    @classmethod
    def load(cls, lake: LakeResource, day: str) -> AmiLookup:
        return cls(
            read_frame(lake, architectures_key(day), ARCHITECTURE_COLUMNS),
            read_frame(lake, amis_key(day), AMI_COLUMNS),
        )

    def architecture_of(self, instance_type: str) -> str:
        rows = self.architectures.loc[self.architectures["InstanceType"] == instance_type, "Architectures"]
        if rows.empty:
            raise NoImage(f"{instance_type}: not in the day's instance architectures")
        supported = str(rows.iloc[0]).split(",")
        for architecture in PREFERRED_ARCHITECTURES:
            if architecture in supported:
                return architecture
        raise NoImage(f"{instance_type}: no Amazon Linux 2023 build for {supported}")

    def ami_for(self, region: str, instance_type: str) -> str:
        """The current Amazon Linux 2023 AMI id for ``instance_type`` in ``region``."""
        architecture = self.architecture_of(instance_type)
        match = self.amis.loc[(self.amis["Region"] == region) & (self.amis["Architecture"] == architecture)]
        if match.empty:
            raise NoImage(f"no {architecture} AMI recorded for {region}")
        return str(match["ImageId"].iloc[0])

    def smallest_of_family(self, instance_type: str) -> str:
        """The smallest size (fewest vCPUs, then least memory) of ``instance_type``'s family, same
        architectures; the type itself when the table has no sizes."""
        frame = self.architectures
        if "VCpus" not in frame.columns:
            return instance_type
        own = frame.loc[frame["InstanceType"] == instance_type]
        if own.empty:
            return instance_type
        same = frame.loc[
            (frame["Family"] == family_of(instance_type))
            & (frame["Architectures"] == own["Architectures"].iloc[0])
            & (frame["VCpus"] > 0)
        ]
        if same.empty:
            return instance_type
        return str(same.sort_values(["VCpus", "MemoryMiB", "InstanceType"]).iloc[0]["InstanceType"])
