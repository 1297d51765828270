"""The Azure merged snapshot of one window: SPS ⋈ price ⋈ eviction rate, then the T2/T3 ladder. Pure and
vectorised: key columns are factorised once over all inputs and joins are integer lookups (see
:mod:`spotlake_assets.domain.delta`).

Rows, keyed by (InstanceTier, InstanceType, Region, AvailabilityZone):

- every SPS row of the window (an AZ, or ``Single`` for a region without zones);
- rows of the previous snapshot with a real AZ whose (tier, size, region) has no SPS row this window but is
  still priced or rated (a request the budget could not cover this window): carried with Score -1, their
  T2/T3 history kept, prices and IF refreshed — so a missed window does not reset the ladder;
- one ``N/A`` row per priced or rated (tier, size, region) with no AZ row at all (SpotLake's outer join).

Names are matched case-insensitively: Resource Graph spells some SKUs in lower case
(``standard_nc24ads_a100_v4``) while the price list and SPS use Azure's canonical spelling
(``Standard_NC24ads_A100_v4``). Before joining, every (tier, size, region) spelling is mapped to the first one
found in price, SPS, the previous snapshot, then IF, so the output keeps the price list's / SPS's spelling;
``respelled`` counts the rows whose names were mapped, per input. ``coverage`` says how many scored pairs
found a price and how many priced or scored pairs found an eviction rate (a collapse fails a blocking check).

Values: price and IF are joined on (tier, size, region); missing numbers are -1 — an SPS row without a price
is kept (SpotLake dropped it). Prices keep the precision the API returned (no rounding). ``Score`` is the
single-node score: refreshed in desired-count-1 windows and carried in the others (a row without one yet
shows the window's score); -1 where this window has no score. ``ScoreCount`` is the DesiredCount the
published Score was measured at (:mod:`spotlake_assets.domain.scores`): 1 for the single-node score, a
carried score's own count (a previous snapshot without the column reads as 1), the window's count for a row
without a single-node score yet, -1 without a score — so ``DesiredCount 25`` beside ``Score 3`` is no longer
read as the score at 25.
T3/T2 follow the ladder of :mod:`spotlake_assets.domain.ladder` (``ladder_step``) on the full key — never on
``DesiredCount`` — with success High (T3) and Medium or better (T2). ``DesiredCount`` is the window's count
on scored rows and -1 elsewhere; ``Savings`` is ``int(100 - 100*Spot/OnDemand)`` or -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from spotlake_assets.azure.constants import (
    IF_COLUMNS,
    KEY_COLUMNS,
    MERGED_COLUMNS,
    MISSING,
    NO_ZONE,
    PAIR_COLUMNS,
    PRICE_COLUMNS,
    SPS_COLUMNS,
)
from spotlake_assets.domain.delta import CodeArray, KeyIndex, column_codes, require_columns, unique_key_index
from spotlake_assets.domain.ladder import ladder_step, previous_scores
from spotlake_assets.domain.merge import MergeResult
from spotlake_assets.domain.scores import held_capacity, published_capacity

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class JoinCoverage:
    """How well the window's inputs joined, on distinct (tier, size, region) pairs."""

    scored_pairs: int  # pairs with an SPS row
    scored_priced: int  # of those, pairs with a price
    market_pairs: int  # pairs with an SPS row or a price
    market_rated: int  # of those, pairs with an eviction rate

    @property
    def price_fraction(self) -> float:
        return self.scored_priced / self.scored_pairs if self.scored_pairs else 1.0

    @property
    def if_fraction(self) -> float:
        return self.market_rated / self.market_pairs if self.market_pairs else 1.0

    def problems(
        self, min_price: float, min_if: float, *, price_present: bool = True, if_present: bool = True
    ) -> list[str]:
        """Why the join collapsed (empty when it did not). An input that is missing altogether is an
        explicit gap reported elsewhere (``inputs_complete``), so its coverage is not judged here."""
        found = []
        if price_present and self.scored_pairs and self.price_fraction < min_price:
            found.append(
                f"price coverage {self.scored_priced}/{self.scored_pairs} scored pairs "
                f"({self.price_fraction:.1%}) is below {min_price:.0%}"
            )
        if if_present and self.market_pairs and self.if_fraction < min_if:
            found.append(
                f"IF coverage {self.market_rated}/{self.market_pairs} priced or scored pairs "
                f"({self.if_fraction:.1%}) is below {min_if:.0%}"
            )
        return found


@dataclass(frozen=True)
class AzureMergeDetail:
    """What only the Azure merge knows (its ``MergeResult`` has no ``dropped`` or ``unjoined`` reasons: every
    input row reaches a row, an unmatched price or rate as an ``N/A`` row)."""

    sps_rows: int
    carried_rows: int  # AZ rows kept from the previous window without a score this window
    regional_rows: int  # N/A rows: priced or rated pairs without any AZ row
    unpriced_rows: int  # rows with a score but no price (kept with -1 prices)
    coverage: JoinCoverage
    respelled: dict[str, int]  # "<input>.<column>" → rows whose names were respelled


def savings(spot: FloatArray, ondemand: FloatArray) -> IntArray:
    """``int(100 - 100*spot/ondemand)`` where both are known (on-demand > 0), else -1."""
    result = np.full(len(spot), MISSING, dtype=np.int64)
    known = (spot >= 0) & (ondemand > 0)
    result[known] = np.trunc(100.0 - 100.0 * spot[known] / ondemand[known]).astype(np.int64)
    return result


def _numbers(series: pd.Series) -> FloatArray:
    return pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)


def _gather(values: FloatArray, positions: IndexArray) -> FloatArray:
    if len(values) == 0:
        return np.full(len(positions), np.nan)
    return np.where(positions >= 0, values.take(positions), np.nan)


def _filled(values: FloatArray) -> FloatArray:
    return np.where(np.isnan(values), float(MISSING), values)


def _categorical(codes: npt.NDArray[np.integer], vocabulary: pd.Index) -> pd.Categorical:
    """Rows ``codes`` over ``vocabulary``, keeping only the categories used (sorted, as the codes are)."""
    used = np.bincount(codes, minlength=len(vocabulary))[: len(vocabulary)] > 0
    dense = (np.cumsum(used) - 1).astype(np.int32)
    return pd.Categorical.from_codes(dense[codes], categories=vocabulary[used])


def _empty_previous() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object) for c in (*KEY_COLUMNS, "RegionName", "Score", "T3", "T2")}
    )


def _check_nulls(name: str, column: str, codes: CodeArray, vocabulary: pd.Index) -> None:
    nulls = int((codes == len(vocabulary)).sum())
    if nulls:
        raise ValueError(f"{name} has {nulls} rows with a null {column}")


def merge_snapshot(
    sps: pd.DataFrame,
    price: pd.DataFrame,
    interruption_frequency: pd.DataFrame,
    previous: pd.DataFrame | None,
    time: datetime,
    desired_count: int,
) -> MergeResult[AzureMergeDetail]:
    """The window's snapshot (``MERGED_COLUMNS``, sorted by key, categorical string columns); see the module
    docstring. Raises ``ValueError`` for missing columns, null keys, duplicated keys, a ``DesiredCount`` in
    ``sps`` other than ``desired_count``, or a naive ``time``."""
    require_columns(sps, SPS_COLUMNS, "sps")
    require_columns(price, PRICE_COLUMNS, "price")
    require_columns(interruption_frequency, IF_COLUMNS, "interruption_frequency")
    prev = _empty_previous() if previous is None else previous
    require_columns(prev, (*KEY_COLUMNS, "RegionName", "Score", "T3", "T2"), "previous")
    stamp = pd.Timestamp(time)
    if stamp.tzinfo is None:
        raise ValueError(f"time {time!r} must be timezone-aware (windows are UTC)")
    _check_desired_count(sps, desired_count)

    frames, respelled = canonical_spellings(
        {"sps": sps, "price": price, "interruption_frequency": interruption_frequency, "previous": prev}
    )
    sps, price, interruption_frequency, prev = (
        frames["sps"],
        frames["price"],
        frames["interruption_frequency"],
        frames["previous"],
    )
    codes = _Codes.build(frames)
    coverage = _coverage(codes)
    rows = _rows(codes, _numbers(sps["Score"]))
    # Each step keeps only what later steps read, and the codes and row keys are dropped before the
    # per-row columns pile up: the peak is then about the output plus a few arrays, not twice it.
    positions = (
        KeyIndex(codes.pairs[3] * codes.n_az + codes.az_prev, codes.pair_size * codes.n_az).lookup(rows.key)
        if len(prev)
        else np.full(len(rows.raw), -1, dtype=np.intp)
    )
    columns = _key_columns(codes, rows, _region_names(frames, codes.regions, codes.vocab["Region"]))
    price_at = unique_key_index(price, codes.pairs[1], codes.pair_size, PAIR_COLUMNS, "price").lookup(
        rows.pair
    )
    rate_at = unique_key_index(
        interruption_frequency, codes.pairs[2], codes.pair_size, PAIR_COLUMNS, "interruption_frequency"
    ).lookup(rows.pair)
    raw, carried_rows, regional_rows = rows.raw, rows.carried, rows.regional
    del codes, rows
    ondemand = _filled(_gather(_numbers(price["OndemandPrice"]), price_at))
    spot = _filled(_gather(_numbers(price["SpotPrice"]), price_at))
    rate = _filled(_gather(_numbers(interruption_frequency["IF"]), rate_at))
    del price_at, rate_at
    observed = raw >= 1
    carried_scores = np.zeros(len(raw), dtype=bool)
    if desired_count == 1 or not len(prev):
        published = raw
    else:
        held = _filled(_numbers(prev["Score"])).astype(np.int64)
        carried_score = np.where(positions >= 0, held.take(np.maximum(positions, 0)), MISSING)
        carried_scores = observed & (carried_score >= 1)
        published = np.where(carried_scores, carried_score, raw)
        del held, carried_score
    score_count = published_capacity(
        desired_count,
        observed,
        carried_scores,
        held_capacity(prev, "Score") if carried_scores.any() else np.empty(0, dtype=np.int64),
        positions,
    )
    del carried_scores
    # The ladder of core.ladder, on the positions already found (re-encoding the keys would cost a copy).
    prior = prev if len(prev) else None
    t3 = ladder_step(previous_scores(prior, "T3", positions), desired_count, raw == 3, observed)
    t2 = ladder_step(previous_scores(prior, "T2", positions), desired_count, raw >= 2, observed)
    del positions
    n = len(raw)
    merged = pd.DataFrame(
        {
            **columns,
            "DesiredCount": np.where(observed, desired_count, MISSING).astype(np.int64),
            "Score": published.astype(np.int64, copy=False),
            "ScoreCount": score_count,
            "T3": t3,
            "T2": t2,
            "IF": rate,
            "OndemandPrice": ondemand,
            "SpotPrice": spot,
            "Savings": savings(spot, ondemand),
            "Time": pd.Series(stamp.tz_convert("UTC"), index=pd.RangeIndex(n), dtype="datetime64[ns, UTC]"),
        },
        columns=list(MERGED_COLUMNS),
        # The arrays are fresh and owned here: no defensive copy (and no block consolidation) needed.
        copy=False,
    )
    return MergeResult(
        frame=merged,
        dropped={},
        unjoined={},
        detail=AzureMergeDetail(
            sps_rows=len(sps),
            carried_rows=carried_rows,
            regional_rows=regional_rows,
            unpriced_rows=int((observed & (spot < 0)).sum()),
            coverage=coverage,
            respelled=respelled,
        ),
    )


# Whose spelling wins when names differ only by case: the price list's (the plan and SPS come from it),
# then SPS's, then the published history's; Resource Graph's last.
_SPELLING_PRIORITY = ("price", "sps", "previous", "interruption_frequency")


def _distinct_names(series: pd.Series) -> list[str]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        values = list(series.cat.categories)
    else:
        values = list(pd.unique(series.to_numpy()))
    return [v for v in values if isinstance(v, str)]


def canonical_spellings(frames: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """``frames`` with every (tier, size, region) name replaced by its canonical spelling (the first
    case-insensitive match in `_SPELLING_PRIORITY` order), and how many rows of each input changed.
    Frames that need no change are returned as they are (no copy)."""
    out = dict(frames)
    respelled: dict[str, int] = {}
    for column in PAIR_COLUMNS:
        canonical: dict[str, str] = {}
        for name in _SPELLING_PRIORITY:
            for value in _distinct_names(frames[name][column]):
                canonical.setdefault(value.casefold(), value)
        for name, frame in out.items():
            changes = {
                v: canonical[v.casefold()]
                for v in _distinct_names(frame[column])
                if canonical[v.casefold()] != v
            }
            if not changes:
                continue
            values = frame[column].astype(object)
            respelled[f"{name}.{column}"] = int(values.isin(list(changes)).sum())
            out[name] = frame.assign(**{column: values.replace(changes)})
    return out, respelled


def _coverage(codes: _Codes) -> JoinCoverage:
    scored, priced, rated = (np.unique(codes.pairs[i]) for i in range(3))
    market = np.union1d(scored, priced)
    return JoinCoverage(
        scored_pairs=len(scored),
        scored_priced=int(np.isin(scored, priced).sum()),
        market_pairs=len(market),
        market_rated=int(np.isin(market, rated).sum()),
    )


def _check_desired_count(sps: pd.DataFrame, desired_count: int) -> None:
    counts = _numbers(sps["DesiredCount"])
    if (counts != desired_count).any():
        raise ValueError(f"sps holds DesiredCount {sorted(set(counts.tolist()))}, expected {desired_count}")


@dataclass(frozen=True)
class _Codes:
    """Integer codes of every input's keys over shared sorted vocabularies (the null code sorts last).

    ``pairs[i]``: (tier, size, region) composite of input i (sps, price, interruption_frequency, previous),
    ordered like the tuples; ``az_*``: AvailabilityZone codes; ``na``: the code of ``N/A``.
    """

    pairs: tuple[IntArray, IntArray, IntArray, IntArray]
    regions: list[CodeArray]
    vocab: dict[str, pd.Index]
    azs: pd.Index
    az_sps: CodeArray
    az_prev: CodeArray
    na: int
    n_type: int
    n_region: int
    n_az: int
    pair_size: int

    @classmethod
    def build(cls, frames: dict[str, pd.DataFrame]) -> _Codes:
        vocab: dict[str, pd.Index] = {}
        per_column: dict[str, list[CodeArray]] = {}
        for column in PAIR_COLUMNS:
            per_column[column], vocab[column] = column_codes([f[column] for f in frames.values()])
            for name, column_code in zip(frames, per_column[column], strict=True):
                _check_nulls(name, column, column_code, vocab[column])
        (az_sps, az_prev, az_na), azs = column_codes(
            [
                frames["sps"]["AvailabilityZone"],
                frames["previous"]["AvailabilityZone"],
                pd.Series([NO_ZONE], dtype=object),
            ]
        )
        _check_nulls("sps", "AvailabilityZone", az_sps, azs)
        _check_nulls("previous", "AvailabilityZone", az_prev, azs)
        n_tier, n_type, n_region = (len(vocab[c]) + 1 for c in PAIR_COLUMNS)
        pairs = tuple(
            (per_column["InstanceTier"][i].astype(np.int64) * n_type + per_column["InstanceType"][i])
            * n_region
            + per_column["Region"][i]
            for i in range(4)
        )
        n_az = len(azs) + 1
        codes = cls(
            pairs=pairs,  # type: ignore[arg-type]
            regions=per_column["Region"],
            vocab=vocab,
            azs=azs,
            az_sps=az_sps,
            az_prev=az_prev,
            na=int(az_na[0]),
            n_type=n_type,
            n_region=n_region,
            n_az=n_az,
            pair_size=n_tier * n_type * n_region,
        )
        unique_key_index(frames["sps"], pairs[0] * n_az + az_sps, codes.pair_size * n_az, KEY_COLUMNS, "sps")
        return codes


@dataclass(frozen=True)
class _Rows:
    """The snapshot's rows sorted by key: pair and AZ codes, composite key, this window's score (-1: none)."""

    pair: IntArray
    az: CodeArray
    key: IntArray
    raw: IntArray
    carried: int
    regional: int


def _rows(codes: _Codes, scores: FloatArray) -> _Rows:
    sps_pair, price_pair, if_pair, prev_pair = codes.pairs
    scored = np.zeros(codes.pair_size, dtype=bool)
    scored[sps_pair] = True
    market = np.zeros(codes.pair_size, dtype=bool)
    market[price_pair] = True
    market[if_pair] = True
    carried = (codes.az_prev != codes.na) & ~scored[prev_pair] & market[prev_pair]
    scored[prev_pair[carried]] = True  # now: pairs with an AZ row
    regional = np.flatnonzero(market & ~scored)
    pair = np.concatenate([sps_pair, prev_pair[carried], regional])
    az = np.concatenate(
        [codes.az_sps, codes.az_prev[carried], np.full(len(regional), codes.na, dtype=np.int32)]
    )
    raw = np.concatenate([scores, np.full(len(pair) - len(scores), float(MISSING))]).astype(np.int64)
    # Codes follow the sorted vocabularies, so this composite orders rows by the key columns.
    key = pair * codes.n_az + az
    order = np.argsort(key, kind="stable")
    return _Rows(pair[order], az[order], key[order], raw[order], int(carried.sum()), len(regional))


def _key_columns(codes: _Codes, rows: _Rows, names: list[str]) -> dict[str, pd.Categorical]:
    region = rows.pair % codes.n_region
    kind = (rows.pair // codes.n_region) % codes.n_type
    tier = rows.pair // (codes.n_region * codes.n_type)
    name_vocab = pd.Index(sorted(set(names)))
    name_code = name_vocab.get_indexer(pd.Index(names))
    return {
        "InstanceTier": _categorical(tier, codes.vocab["InstanceTier"]),
        "InstanceType": _categorical(kind, codes.vocab["InstanceType"]),
        "Region": _categorical(region, codes.vocab["Region"]),
        "RegionName": _categorical(name_code[region], name_vocab),
        "AvailabilityZone": _categorical(rows.az, codes.azs),
    }


def _region_names(
    frames: dict[str, pd.DataFrame], region_codes: list[CodeArray], regions: pd.Index
) -> list[str]:
    """Display name per region code: from SPS, then price, then the previous snapshot; else the code."""
    names: list[str | None] = [None] * (len(regions) + 1)
    for (name, frame), codes in zip(frames.items(), region_codes, strict=True):
        if name == "interruption_frequency" or not len(frame):
            continue
        labels = frame["RegionName"].to_numpy(dtype=object)
        # One representative row per region is enough: the name is a property of the region.
        first = np.unique(codes, return_index=True)[1]
        for position in first:
            code = int(codes[position])
            if names[code] is None and isinstance(labels[position], str) and labels[position]:
                names[code] = labels[position]
    return [
        n if n is not None else (str(regions[i]) if i < len(regions) else "") for i, n in enumerate(names)
    ]
