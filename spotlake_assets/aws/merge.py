"""The AWS merged snapshot of one window (docs/data-contracts.md#aws-columns): SPS ⋈ spot price ⋈ IF ⋈
on-demand, then the T2/T3 ladder. Pure and vectorised: every key column is factorised once over all inputs and
the joins are integer lookups (see :mod:`spotlake_assets.domain.delta`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from spotlake_assets.aws.constants import (
    IF_COLUMNS,
    MERGED_COLUMNS,
    ONDEMAND_COLUMNS,
    SPOT_PRICE_COLUMNS,
    SPS_COLUMNS,
)
from spotlake_assets.domain.delta import CodeArray, column_codes, require_columns, unique_key_index
from spotlake_assets.domain.ladder import ladder_step, previous_scores
from spotlake_assets.domain.merge import MergeResult
from spotlake_assets.domain.scores import held_capacity, published_capacity

MISSING = -1
PRICE_DECIMALS = 5
POOL_COLUMNS = ("InstanceType", "AZ")
REGION_KEY_COLUMNS = ("InstanceType", "Region")
LADDER_COLUMNS = ("InstanceType", "AZ", "SPS", "T3", "T2")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.intp]


DROPPED_UNKNOWN_AZ = "spot_price: AZ id not in the day's zones"
UNJOINED_IF = "interruption_frequency: no pool of that (InstanceType, Region)"
UNJOINED_ONDEMAND = "ondemand: no pool of that (InstanceType, Region)"


@dataclass(frozen=True)
class AwsMergeDetail:
    """What only the AWS merge knows: the AZ ids of the spot-price rows dropped under
    ``DROPPED_UNKNOWN_AZ`` (their region, hence their row key, is unknown), sorted."""

    unknown_azs: tuple[str, ...]


@dataclass(frozen=True)
class _Codes:
    """Integer codes of every key column of every input, over one sorted vocabulary per column.

    Naming: ``it_*`` InstanceType, ``az_*`` AZ, ``rg_*`` Region; the suffix names the input. The code
    ``len(vocabulary)`` stands for null, so ``n_*`` (vocabulary size + 1) bounds each column's codes.
    """

    types: pd.Index
    azs: pd.Index
    regions: pd.Index
    it_sps: CodeArray
    it_spot: CodeArray
    it_if: CodeArray
    it_od: CodeArray
    it_prev: CodeArray
    az_sps: CodeArray
    az_spot: CodeArray
    az_prev: CodeArray
    az_zone: CodeArray
    rg_sps: CodeArray
    rg_if: CodeArray
    rg_od: CodeArray
    rg_zone: CodeArray

    @classmethod
    def build(
        cls,
        sps: pd.DataFrame,
        interruption_frequency: pd.DataFrame,
        spot_price: pd.DataFrame,
        ondemand: pd.DataFrame,
        previous: pd.DataFrame,
        zone_regions: Mapping[str, str],
    ) -> _Codes:
        zones = pd.DataFrame({"AZ": list(zone_regions), "Region": list(zone_regions.values())}, dtype=object)
        (it_sps, it_spot, it_if, it_od, it_prev), types = column_codes(
            [f["InstanceType"] for f in (sps, spot_price, interruption_frequency, ondemand, previous)]
        )
        (az_sps, az_spot, az_prev, az_zone), azs = column_codes(
            [f["AZ"] for f in (sps, spot_price, previous, zones)]
        )
        (rg_sps, rg_if, rg_od, rg_zone), regions = column_codes(
            [f["Region"] for f in (sps, interruption_frequency, ondemand, zones)]
        )
        for name, column, codes, vocabulary in (
            ("sps", "InstanceType", it_sps, types),
            ("sps", "AZ", az_sps, azs),
            ("sps", "Region", rg_sps, regions),
            ("spot_price", "InstanceType", it_spot, types),
            ("spot_price", "AZ", az_spot, azs),
            ("interruption_frequency", "InstanceType", it_if, types),
            ("interruption_frequency", "Region", rg_if, regions),
            ("ondemand", "InstanceType", it_od, types),
            ("ondemand", "Region", rg_od, regions),
            ("previous", "InstanceType", it_prev, types),
            ("previous", "AZ", az_prev, azs),
            ("zone_regions", "AZ", az_zone, azs),
            ("zone_regions", "Region", rg_zone, regions),
        ):
            nulls = int((codes == len(vocabulary)).sum())
            if nulls:
                raise ValueError(f"{name} has {nulls} rows with a null {column}")
        return cls(
            types, azs, regions, it_sps, it_spot, it_if, it_od, it_prev, az_sps, az_spot, az_prev, az_zone,
            rg_sps, rg_if, rg_od, rg_zone,
        )  # fmt: skip

    @property
    def n_az(self) -> int:
        return len(self.azs) + 1

    @property
    def n_region(self) -> int:
        return len(self.regions) + 1

    @property
    def pool_size(self) -> int:
        return (len(self.types) + 1) * self.n_az

    @property
    def region_key_size(self) -> int:
        return (len(self.types) + 1) * self.n_region

    def pool(self, it: CodeArray, az: CodeArray) -> IntArray:
        """(InstanceType, AZ) codes in ``[0, pool_size)``."""
        return it.astype(np.int64) * self.n_az + az

    def region_key(self, it: CodeArray, region: CodeArray) -> IntArray:
        """(InstanceType, Region) codes in ``[0, region_key_size)``, ordered like the pairs."""
        return it.astype(np.int64) * self.n_region + region

    def az_region(self) -> CodeArray:
        """Region code of each AZ code according to ``zone_regions``; -1 for AZs it does not know."""
        table = np.full(self.n_az, MISSING, dtype=np.int32)
        table[self.az_zone] = self.rg_zone
        return table


@dataclass(frozen=True)
class _Pools:
    """The snapshot's rows as parallel arrays, sorted by (InstanceType, Region, AZ)."""

    it: CodeArray
    region: CodeArray
    az: CodeArray
    sps: IntArray
    spot: FloatArray
    unknown_az_price_rows: int
    unknown_azs: tuple[str, ...]


def _numbers(series: pd.Series) -> FloatArray:
    """As float64 with nulls as NaN (handles nullable and object columns)."""
    return pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)


def _gather(values: FloatArray, positions: IndexArray) -> FloatArray:
    """``values`` at ``positions``, NaN where the position is -1 (no match)."""
    if len(values) == 0:
        return np.full(len(positions), np.nan)
    # take() then where() beats boolean-mask indexing; position -1 reads the last value, then masked out.
    return np.where(positions >= 0, values.take(positions), np.nan)


def _filled(values: FloatArray) -> FloatArray:
    return np.where(np.isnan(values), float(MISSING), values)


def _price(values: FloatArray) -> FloatArray:
    """Missing as -1, known rounded to 5 decimals (numpy rounding, as pandas' ``Series.round``)."""
    return np.round(_filled(values), PRICE_DECIMALS)


def _savings(spot: FloatArray, ondemand: FloatArray) -> IntArray:
    """``int(100 - 100*spot/ondemand)`` (truncated like Python's int) where both are known, else -1."""
    savings = np.full(len(spot), MISSING, dtype=np.int64)
    known = (spot >= 0) & (ondemand > 0)
    # Same operation order as the scalar formula, so results are bit-identical to SpotLake's.
    savings[known] = np.trunc(100.0 - 100.0 * spot[known] / ondemand[known]).astype(np.int64)
    return savings


def _categorical(codes: CodeArray, vocabulary: pd.Index) -> pd.Categorical:
    """Rows ``codes`` over ``vocabulary``, keeping only the categories used (sorted, as the codes are).

    The snapshot's string columns are categorical: a window repeats ~1.4k instance types, ~30 regions and
    ~100 AZ ids over ~100k rows, so codes + small vocabularies are smaller, survive Parquet as dictionaries,
    and let the next window's ladder and the delta match keys without hashing strings again.
    """
    used = np.bincount(codes, minlength=len(vocabulary)) > 0
    dense = (np.cumsum(used) - 1).astype(np.int32)
    # pandas-stubs 2.3 types `codes` as Sequence[int]; pandas itself takes any integer array.
    return pd.Categorical.from_codes(dense[codes], categories=vocabulary[used])  # type: ignore[arg-type]


def _pools(codes: _Codes, sps: pd.DataFrame, spot_price: pd.DataFrame) -> _Pools:
    """Every SPS row, then the spot-price rows no SPS row claimed (Region from ``zone_regions``), sorted."""
    sps_pool = codes.pool(codes.it_sps, codes.az_sps)
    unique_key_index(sps, sps_pool, codes.pool_size, POOL_COLUMNS, "sps")
    spot_pools = unique_key_index(
        spot_price, codes.pool(codes.it_spot, codes.az_spot), codes.pool_size, POOL_COLUMNS, "spot_price"
    )
    spot_of_sps = spot_pools.lookup(sps_pool)
    claimed = np.zeros(len(spot_price), dtype=bool)
    claimed[spot_of_sps[spot_of_sps >= 0]] = True
    extra = np.flatnonzero(~claimed)
    extra_region = codes.az_region()[codes.az_spot[extra]]
    known = extra_region >= 0
    unknown_azs = tuple(sorted(str(a) for a in codes.azs[np.unique(codes.az_spot[extra[~known]])]))
    extra, extra_region = extra[known], extra_region[known]

    it = np.concatenate([codes.it_sps, codes.it_spot[extra]])
    region = np.concatenate([codes.rg_sps, extra_region])
    az = np.concatenate([codes.az_sps, codes.az_spot[extra]])
    # Codes follow the sorted vocabularies, so this composite orders rows by (InstanceType, Region, AZ); the
    # stable sort is near-linear on inputs already grouped by instance type, as collectors write them.
    order = np.argsort(codes.region_key(it, region) * codes.n_az + az, kind="stable")
    scores = np.concatenate([_numbers(sps["SPS"]), np.full(len(extra), np.nan)])
    spot_values = _numbers(spot_price["SpotPrice"])
    spot = np.concatenate([_gather(spot_values, spot_of_sps), spot_values[extra]])
    return _Pools(
        it=it[order],
        region=region[order],
        az=az[order],
        sps=_filled(scores[order]).astype(np.int64),
        spot=_price(spot[order]),
        unknown_az_price_rows=int((~known).sum()),
        unknown_azs=unknown_azs,
    )


def _region_level(
    codes: _Codes, pools: _Pools, frame: pd.DataFrame, it: CodeArray, region: CodeArray, name: str, value: str
) -> FloatArray:
    """``frame[value]`` (keyed by InstanceType, Region) for every pool; NaN where the frame has no row."""
    index = unique_key_index(
        frame, codes.region_key(it, region), codes.region_key_size, REGION_KEY_COLUMNS, name
    )
    return _gather(_numbers(frame[value]), index.lookup(codes.region_key(pools.it, pools.region)))


def merge_snapshot(
    sps: pd.DataFrame,
    interruption_frequency: pd.DataFrame,
    spot_price: pd.DataFrame,
    ondemand: pd.DataFrame,
    zone_regions: Mapping[str, str],
    time: datetime,
    previous: pd.DataFrame | None,
    capacity: int,
) -> MergeResult[AwsMergeDetail]:
    """Merge one window's AWS inputs into the snapshot of ``MERGED_COLUMNS`` and apply the T2/T3 ladder.

    Rows (pools) are the union of SPS rows and spot-price rows on (InstanceType, AZ): SPS rows keep their
    Region; a price-only row takes its Region from ``zone_regions`` (AZ id → region) and is dropped and
    counted in the result when its AZ is unknown. IF and on-demand are region-level attributes joined on
    (InstanceType, Region): they fill the pools but cannot create rows — a row needs an AZ, which they do not
    have. That is the one deliberate reading of the contract's "outer join" for them
    (docs/data-contracts.md#aws-columns).

    Values: missing SPS/IF/prices are -1; prices are rounded to 5 decimals; ``Savings`` is
    ``int(100 - 100*SpotPrice/OndemandPrice)`` from the rounded prices when both are known and on-demand
    is > 0, else -1; ``Time`` is ``time`` for every row. ``T3``/``T2`` follow
    :mod:`spotlake_assets.domain.ladder` against ``previous`` (the previous window's snapshot, matched on
    (InstanceType, AZ)) with success ``SPS >= 3`` / ``SPS >= 2``; rows without SPS (price-only) keep their
    previous scores (0 when new). The raw ``T3``/``T2`` of ``sps`` are implied by SPS and not read.

    ``SPS`` is the single-node score: taken from ``sps`` in capacity-1 windows and carried from
    ``previous`` in the others, so a pool's published score does not swing with the capacity cycle. A pool
    with no single-node score yet (new, or first window) shows this window's score until capacity 1 comes
    round; a pool without an SPS row this window shows -1. ``SPSCapacity`` says which TargetCapacity the
    published SPS was measured at (:mod:`spotlake_assets.domain.scores`): 1 for the single-node score, the
    carried score's own capacity (a ``previous`` without the column reads as 1), this window's capacity for
    a pool without a single-node score yet, -1 where SPS is -1. T2 counts "Medium or better" (SPS ≥ 2) on the
    ladder — with SpotLake's raw ``SPS == 2`` a pool scoring 3 at small capacities would lose its T2 at every
    small capacity and flip back, making every cycle look like a change.

    Dtypes: InstanceType, Region, AZ ``category`` of str (sorted categories); SPS, SPSCapacity, T3, T2,
    Savings int64; IF, OndemandPrice, SpotPrice float64; Time ``datetime64[ns, UTC]``. Rows are sorted by
    (InstanceType, Region, AZ), which is unique.

    Raises ``ValueError`` for missing input columns, null keys, a ``TargetCapacity`` other than
    ``capacity``, a naive ``time``, or duplicated keys: (InstanceType, AZ) in ``sps``, ``spot_price`` and
    ``previous``; (InstanceType, Region) in ``interruption_frequency`` and ``ondemand``.

    The result counts what was left out: spot-price rows dropped for an unknown AZ (``dropped``, their AZ
    ids in ``detail``), and IF / on-demand rows that joined no pool (``unjoined``).
    """
    require_columns(sps, SPS_COLUMNS, "sps")
    require_columns(interruption_frequency, IF_COLUMNS, "interruption_frequency")
    require_columns(spot_price, SPOT_PRICE_COLUMNS, "spot_price")
    require_columns(ondemand, ONDEMAND_COLUMNS, "ondemand")
    if previous is None:
        previous = pd.DataFrame({c: pd.Series(dtype=object) for c in LADDER_COLUMNS})
    require_columns(previous, LADDER_COLUMNS, "previous")
    stamp = pd.Timestamp(time)
    if stamp.tzinfo is None:
        raise ValueError(f"time {time!r} must be timezone-aware (windows are UTC)")
    target = _numbers(sps["TargetCapacity"])
    if (target != capacity).any():
        raise ValueError(f"sps holds TargetCapacity {sorted(set(target.tolist()))}, expected {capacity}")

    codes = _Codes.build(sps, interruption_frequency, spot_price, ondemand, previous, zone_regions)
    pools = _pools(codes, sps, spot_price)
    interruption = _filled(
        _region_level(
            codes, pools, interruption_frequency, codes.it_if, codes.rg_if, "interruption_frequency", "IF"
        )
    )
    ondemand_price = _price(
        _region_level(codes, pools, ondemand, codes.it_od, codes.rg_od, "ondemand", "OndemandPrice")
    )
    previous_pools = unique_key_index(
        previous, codes.pool(codes.it_prev, codes.az_prev), codes.pool_size, POOL_COLUMNS, "previous"
    )
    positions = previous_pools.lookup(codes.pool(pools.it, pools.az))
    observed = pools.sps >= 0
    if capacity == 1:
        published_sps = pools.sps
        carried_rows = np.zeros(len(observed), dtype=bool)
    else:
        held = previous["SPS"].to_numpy(dtype=np.float64, na_value=MISSING).astype(np.int64)
        carried = np.where(positions >= 0, held.take(positions) if len(held) else MISSING, MISSING)
        carried_rows = observed & (carried >= 0)
        published_sps = np.where(carried_rows, carried, pools.sps)
    sps_capacity = published_capacity(
        capacity,
        observed,
        carried_rows,
        held_capacity(previous, "SPS") if carried_rows.any() else np.empty(0, dtype=np.int64),
        positions,
    )
    frame = pd.DataFrame(
        {
            "InstanceType": _categorical(pools.it, codes.types),
            "Region": _categorical(pools.region, codes.regions),
            "AZ": _categorical(pools.az, codes.azs),
            "SPS": published_sps,
            "SPSCapacity": sps_capacity,
            "T3": ladder_step(previous_scores(previous, "T3", positions), capacity, pools.sps >= 3, observed),
            "T2": ladder_step(previous_scores(previous, "T2", positions), capacity, pools.sps >= 2, observed),
            "IF": interruption,
            "OndemandPrice": ondemand_price,
            "SpotPrice": pools.spot,
            "Savings": _savings(pools.spot, ondemand_price),
            "Time": pd.Series(
                stamp.tz_convert("UTC"), index=pd.RangeIndex(len(pools.sps)), dtype="datetime64[ns, UTC]"
            ),
        },
        columns=list(MERGED_COLUMNS),
        # The arrays are fresh and owned here: no defensive copy (and no block consolidation) needed.
        copy=False,
    )
    pooled = np.zeros(codes.region_key_size, dtype=bool)
    pooled[codes.region_key(pools.it, pools.region)] = True
    return MergeResult(
        frame,
        dropped={DROPPED_UNKNOWN_AZ: pools.unknown_az_price_rows},
        unjoined={
            UNJOINED_IF: int((~pooled[codes.region_key(codes.it_if, codes.rg_if)]).sum()),
            UNJOINED_ONDEMAND: int((~pooled[codes.region_key(codes.it_od, codes.rg_od)]).sum()),
        },
        detail=AwsMergeDetail(pools.unknown_azs),
    )
