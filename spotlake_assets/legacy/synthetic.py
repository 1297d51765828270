"""A synthetic month in SpotLake's exact published layout, for tests and the benchmark (never real data).

``aws/YYYY/aws-YYYY-MM.zip`` holding ``aws-YYYY-MM/DD/HH-MM-SS.csv.gz`` (``layout="zip"``), the same tree
unzipped (``"tree"``), or the bucket's ``rawdata/aws/YYYY/MM/DD/HH-MM-SS.csv.gz`` (``"rawdata"``). Each file
is the full snapshot at that time with SpotLake's columns. Deterministic from ``seed``: pools drift (about 1%
of them change a score or a price per snapshot, a few appear or disappear), a few snapshots are missing
(gaps), the collection second wanders (``HH-MM-03``), some files are plain ``.csv``, and one file is a
truncated gzip. A marker file at the month's root (``SYNTHETIC_MARKER``) labels the import simulated.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from spotlake_assets.domain.legacy import WINDOWS_PER_DAY, month_days
from spotlake_assets.domain.windows import WINDOW
from spotlake_assets.legacy.sources import SYNTHETIC_MARKER

AWS_COLUMNS = (
    "Time", "InstanceType", "Region", "AZ", "SPS", "T3", "T2", "IF", "OndemandPrice", "SpotPrice", "Savings",
)  # fmt: skip
AZURE_COLUMNS = (
    "InstanceTier", "InstanceType", "Region", "AvailabilityZone", "Score", "T3", "T2",
    "OndemandPrice", "SpotPrice", "Savings", "IF", "Time",
)  # fmt: skip
_REGIONS = {
    "aws": [
        ("us-east-1", "use1"), ("us-west-2", "usw2"), ("eu-west-1", "euw1"), ("ap-northeast-1", "apne1"),
        ("eu-central-1", "euc1"), ("ap-southeast-2", "apse2"), ("sa-east-1", "sae1"),
        ("ca-central-1", "cac1"),
    ],
    "azure": [
        ("eastus", ""), ("westeurope", ""), ("japaneast", ""), ("westus2", ""), ("northeurope", ""),
        ("australiaeast", ""), ("brazilsouth", ""), ("canadacentral", ""),
    ],
}  # fmt: skip
_LADDER = np.array([0, 1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50])
_IF = np.array([1.0, 1.5, 2.0, 2.5, 3.0])


@dataclass
class SyntheticMonth:
    location: Path
    files: int = 0
    rows: int = 0
    windows: list[datetime] = field(default_factory=list)
    gaps: list[datetime] = field(default_factory=list)
    malformed: str | None = None


class _Pools:
    """Every pool's current values; `step` drifts them by one snapshot."""

    def __init__(self, provider: str, pools: int, seed: int) -> None:
        self.provider = provider
        self.rng = np.random.default_rng(seed)
        regions = _REGIONS[provider]
        zones_per_region = 4
        types_needed = max(1, -(-pools // (len(regions) * zones_per_region)))
        families = ["m5", "m6i", "c5", "c6g", "r5", "r6i", "t3", "i3", "g4dn", "x2idn", "m7g", "c7i"]
        sizes = ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"]
        names = [f"{f}{g if g else ''}.{s}" for g in range(99) for f in families for s in sizes]
        if provider == "azure":
            names = [f"D{i}s_v{v}" for v in range(2, 99) for i in (2, 4, 8, 16, 32, 48, 64, 96)]
        types = names[:types_needed]
        rows = [
            (t, region, f"{short}-az{z}" if provider == "aws" else str(z))
            for t in types
            for region, short in regions
            for z in range(1, zones_per_region + 1)
        ][:pools]
        self.types = np.array([r[0] for r in rows], dtype=object)
        self.regions = np.array([r[1] for r in rows], dtype=object)
        self.zones = np.array([r[2] for r in rows], dtype=object)
        n = len(rows)
        rng = self.rng
        self.score = rng.integers(1, 4 if provider == "azure" else 11, n)
        self.t3 = _LADDER[rng.integers(0, len(_LADDER), n)]
        self.t2 = np.maximum(self.t3, _LADDER[rng.integers(0, len(_LADDER), n)])
        self.interruption = _IF[rng.integers(0, len(_IF), n)]
        self.ondemand = np.round(rng.uniform(0.02, 8.0, n), 5)
        self.spot = np.round(self.ondemand * rng.uniform(0.2, 0.9, n), 5)
        self.alive = rng.random(n) > 0.01

    def step(self) -> None:
        rng, n = self.rng, len(self.types)
        changed = rng.random(n) < 0.01
        k = int(changed.sum())
        self.score[changed] = rng.integers(1, 4 if self.provider == "azure" else 11, k)
        self.t3[changed] = _LADDER[rng.integers(0, len(_LADDER), k)]
        self.t2[changed] = np.maximum(self.t3[changed], _LADDER[rng.integers(0, len(_LADDER), k)])
        repriced = rng.random(n) < 0.005
        self.spot[repriced] = np.round(self.spot[repriced] * rng.uniform(0.95, 1.05, int(repriced.sum())), 5)
        # A few pools disappear and a few come back; the share alive stays near its start (99%) all month,
        # as SpotLake's pool count does, instead of drifting towards half.
        flip = rng.random(n)
        self.alive = np.where(self.alive, flip >= 0.0005, flip < 0.05)

    def table(self, written: datetime, legacy_columns: bool) -> pa.Table:
        live = self.alive
        od, spot = self.ondemand[live], self.spot[live]
        savings = np.trunc(100 - 100 * spot / od).astype(np.int64)
        columns: dict[str, pa.Array] = {
            "Time": pa.array(np.full(int(live.sum()), written.strftime("%Y-%m-%d %H:%M:%S"), dtype=object)),
            "InstanceType": pa.array(self.types[live]),
            "Region": pa.array(self.regions[live]),
            "IF": pa.array(self.interruption[live]),
            "OndemandPrice": pa.array(od),
            "SpotPrice": pa.array(spot),
            "Savings": pa.array(savings),
        }
        if self.provider == "aws":
            columns |= {"AZ": pa.array(self.zones[live]), "SPS": pa.array(self.score[live])}
            order: tuple[str, ...] = AWS_COLUMNS
        else:
            columns |= {
                "InstanceTier": pa.array(np.full(int(live.sum()), "Standard", dtype=object)),
                "AvailabilityZone": pa.array(self.zones[live]),
                "Score": pa.array(self.score[live]),
            }
            order = AZURE_COLUMNS
        if not legacy_columns:
            columns |= {"T3": pa.array(self.t3[live]), "T2": pa.array(self.t2[live])}
        return pa.table({c: columns[c] for c in order if c in columns})


def csv_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(quoting_style="none"))
    return bytes(sink.getvalue().to_pybytes())


def _windows(month: date, days: int | None) -> Iterator[datetime]:
    for day in month_days(month)[:days]:
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        for i in range(WINDOWS_PER_DAY):
            yield start + i * WINDOW


def write_synthetic_month(
    target: Path,
    provider: str,
    month: date,
    *,
    pools: int = 2000,
    seed: int = 15,
    days: int | None = None,
    layout: str = "zip",
    gaps: int = 3,
    malformed: bool = True,
    plain_csv_every: int = 37,
    legacy_columns: bool = False,
) -> SyntheticMonth:
    """Write a month (its first ``days`` days) under ``target``; see the module docstring."""
    stem = f"{provider}-{month:%Y-%m}"
    windows = list(_windows(month, days))
    rng = np.random.default_rng([seed, 1])
    # Gaps: runs of 1-3 missing snapshots, away from each day's first and last window.
    missing: set[datetime] = set()
    for _ in range(gaps):
        at = int(rng.integers(1, max(2, len(windows) - 4)))
        missing.update(windows[at : at + int(rng.integers(1, 4))])
    broken = windows[len(windows) // 2 + 1] if malformed else None
    state = _Pools(provider, pools, seed)
    if layout == "zip":
        location = target / provider / f"{month:%Y}" / f"{stem}.zip"
    elif layout == "tree":
        location = target / stem
    elif layout == "rawdata":
        location = target / "rawdata" / provider / f"{month:%Y}" / f"{month:%m}"
    else:
        raise ValueError(f"layout {layout!r} is not zip, tree or rawdata")
    location.parent.mkdir(parents=True, exist_ok=True)
    result = SyntheticMonth(location)
    archive = zipfile.ZipFile(location, "w", zipfile.ZIP_STORED) if layout == "zip" else None
    marker = (
        f"Synthetic {provider} month {month:%Y-%m} written by spotlake_assets.legacy.synthetic (seed {seed}, "
        f"{pools} pools): simulated data, not SpotLake's.\n"
    ).encode()
    try:
        if archive is not None:
            archive.writestr(
                zipfile.ZipInfo(f"{stem}/{SYNTHETIC_MARKER}", date_time=(2000, 1, 1, 0, 0, 0)), marker
            )
        else:
            location.mkdir(parents=True, exist_ok=True)
            (location / SYNTHETIC_MARKER).write_bytes(marker)
        for index, window in enumerate(windows):
            if index:
                state.step()
            if window in missing:
                result.gaps.append(window)
                continue
            written = window + timedelta(seconds=int(rng.integers(0, 8)))
            table = state.table(written, legacy_columns)
            data = csv_bytes(table)
            # The broken file is always a gzip: its truncation is what a reader must detect.
            plain = (
                plain_csv_every > 0 and index % plain_csv_every == plain_csv_every - 1 and window != broken
            )
            suffix = ".csv" if plain else ".csv.gz"
            if not plain:
                data = gzip.compress(data, compresslevel=1, mtime=0)
            if window == broken:
                data = data[: len(data) // 2]
            name = f"{written:%d}/{written:%H-%M-%S}{suffix}"
            if archive is not None:
                member = f"{stem}/{name}"
                archive.writestr(zipfile.ZipInfo(member, date_time=(2000, 1, 1, 0, 0, 0)), data)
            else:
                member = name
                path = location / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            if window == broken:
                result.malformed = member
            else:
                result.windows.append(window)
                result.rows += table.num_rows
            result.files += 1
    finally:
        if archive is not None:
            archive.close()
    return result
