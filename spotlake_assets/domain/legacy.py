"""SpotLake's published snapshots in our merged schema (docs/data-contracts.md#imported-history). Pure.

SpotLake publishes one CSV per 10-minute collection (``…/DD/HH-MM-SS.csv[.gz]``), each the full merged
snapshot at that time. This module names the window a file belongs to, checks it belongs to the month being
imported, and turns a parsed file into the merged frame the live pipeline would have written for that window,
counting every row it leaves out with its reason. Gaps between snapshots are listed, never filled.

Mapping (`LegacyLayout`): columns SpotLake wrote are kept with their values (its -1 sentinels stay -1);
optional columns an older file lacks get the layout's default (T2/T3 → 0, an absent score → -1, an absent
Azure zone → ``N/A``); an empty numeric cell gets the same default; ``Savings`` is truncated to an int as ours
is; ``Time`` is the window start, not the second the collector wrote; a constant column of ours
(``SPSCapacity`` / ``ScoreCount``, the score's capacity: SpotLake's SPS is the single-node score) is 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, cast

from spotlake_assets.domain.windows import WINDOW

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# ``…/2024-03/07/13-40-02.csv.gz`` (the zip) or ``…/2024/03/07/13-40-02.csv`` (the bucket).
_SNAPSHOT_NAME = re.compile(
    r"(?:(?P<year>\d{4})[-/](?P<month>\d{2})/)?(?P<day>\d{2})/"
    r"(?P<hour>\d{2})-(?P<minute>\d{2})-(?P<second>\d{2})\.csv(?:\.gz)?$"
)
# AWS zone ids (``use1-az6``) versus zone names (``us-east-1a``): names differ per account, ids do not.
_ZONE_ID = re.compile(r"^[a-z]{2,}[0-9]+-az[0-9]+$")
WINDOWS_PER_DAY = int(timedelta(days=1) / WINDOW)


class SnapshotRejected(ValueError):
    """A whole file that cannot be imported (the caller counts it as a skipped file and a gap)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class LegacyLayout:
    """How one provider's SpotLake CSV maps onto our merged snapshot."""

    provider: str
    key_columns: tuple[str, ...]
    feature_columns: tuple[str, ...]
    merged_columns: tuple[str, ...]
    # Columns a file must have.
    required: tuple[str, ...]
    # Columns ours has and SpotLake's may lack (or leave empty): the value used then.
    defaults: Mapping[str, int | float | str]
    int_columns: tuple[str, ...]
    float_columns: tuple[str, ...]
    # SpotLake spelling -> ours.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # The AWS zone column, whose names are mapped to ids where a map is known.
    zone_column: str | None = None
    # Columns of ours that are copies of another when SpotLake has no such column (Azure RegionName).
    copies: Mapping[str, str] = field(default_factory=dict)

    @property
    def string_columns(self) -> tuple[str, ...]:
        numeric = {*self.int_columns, *self.float_columns, "Time"}
        return tuple(c for c in self.merged_columns if c not in numeric)

    def source_columns(self) -> tuple[str, ...]:
        """Every column worth reading from a file, in SpotLake's spelling and ours."""
        ours = tuple(c for c in self.merged_columns if c != "Time")
        return (*ours, *self.aliases)


@dataclass(frozen=True)
class SnapshotName:
    """Where a file sits in the month: its window start (UTC) and the collection second it was written."""

    window: datetime
    written: datetime


def snapshot_name(name: str, month: date) -> SnapshotName:
    """The window of the file ``name`` (a path ending ``DD/HH-MM-SS.csv[.gz]``) in ``month``.

    `SnapshotRejected` when the name is not a snapshot, names no real time, or names another month (the year
    and month of the path, when it has them, must be ``month``'s too)."""
    match = _SNAPSHOT_NAME.search(name)
    if match is None:
        raise SnapshotRejected(name, "not a snapshot file (expected …/DD/HH-MM-SS.csv or .csv.gz)")
    year = int(match["year"]) if match["year"] else month.year
    month_number = int(match["month"]) if match["month"] else month.month
    if (year, month_number) != (month.year, month.month):
        raise SnapshotRejected(
            name, f"outside the month: the path names {year:04d}-{month_number:02d}, importing {month:%Y-%m}"
        )
    try:
        written = datetime(
            year,
            month_number,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise SnapshotRejected(name, f"outside the month: not a real time ({exc})") from None
    window = written.replace(minute=written.minute - written.minute % 10, second=0)
    return SnapshotName(window=window, written=written)


@dataclass(frozen=True)
class Normalised:
    frame: pd.DataFrame
    rows_in: int
    # Rows left out, by reason ("missing_key:Region", "non_integer:SPS", "duplicate_key").
    dropped: Mapping[str, int]
    # Rows kept with a zone *name* for which no id was known (AWS).
    unmapped_zone_names: int = 0


def missing_columns(columns: Sequence[str], layout: LegacyLayout) -> list[str]:
    present = {layout.aliases.get(c, c) for c in columns}
    return [c for c in layout.required if c not in present]


def _clean_categories(series: pd.Series, mapping: Mapping[str, str] | None = None) -> pd.Series:
    """A categorical of stripped names (and ``mapping`` applied) with **sorted** categories, so its codes
    order rows as its values do; only the category list is touched."""
    import numpy as np
    import pandas as pd

    values = series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category")
    categories = pd.Index(values.cat.categories.astype(str).str.strip())
    if mapping:
        categories = pd.Index([mapping.get(c, c) for c in categories])
    categories = categories.where(categories != "", None)
    codes, uniques = pd.factorize(categories, sort=True, use_na_sentinel=True)
    remap = np.append(codes, -1).astype(np.int32)
    return pd.Series(
        # pandas-stubs want a Sequence; an int array is what from_codes is made for.
        pd.Categorical.from_codes(
            cast("Sequence[int]", remap[values.cat.codes.to_numpy()]), categories=pd.Index(uniques)
        ),
        index=series.index,
        name=series.name,
    )


def normalise_snapshot(
    frame: pd.DataFrame,
    layout: LegacyLayout,
    window: datetime,
    zone_ids: Mapping[str, str] | None = None,
) -> Normalised:
    """``frame`` (one parsed SpotLake file) as our merged snapshot of ``window``.

    Columns are exactly ``layout.merged_columns`` with our dtypes (keys categorical, scores int64, prices
    float64, ``Time`` the window start in UTC), sorted and unique on the key. Dropped, counted by reason:
    rows with an empty key, an integer column holding a fraction, or a key already seen in the file (the
    first row is kept). `SnapshotRejected` when a required column is missing."""
    import numpy as np
    import pandas as pd

    rows_in = len(frame)
    frame = frame.rename(columns={a: o for a, o in layout.aliases.items() if a in frame.columns})
    missing = [c for c in layout.required if c not in frame.columns]
    if missing:
        raise SnapshotRejected("snapshot", f"missing columns {missing} (has {list(frame.columns)})")
    dropped: dict[str, int] = {}
    keep = np.ones(rows_in, dtype=bool)
    out: dict[str, pd.Series | np.ndarray] = {}
    unmapped = 0
    for column in layout.string_columns:
        if column not in frame.columns:
            source = layout.copies.get(column)
            if source is not None and source in frame.columns:
                frame[column] = frame[source]
            else:
                frame[column] = pd.Categorical([str(layout.defaults[column])] * rows_in)
        mapping = zone_ids if column == layout.zone_column else None
        values = _clean_categories(frame[column], mapping)
        empty = values.isna().to_numpy()
        if column in layout.key_columns and empty.any():
            dropped[f"missing_key:{column}"] = int((empty & keep).sum())
            keep &= ~empty
        if column == layout.zone_column:
            names = np.array([_ZONE_ID.match(str(c)) is None for c in values.cat.categories], dtype=bool)
            codes = values.cat.codes.to_numpy()
            unmapped = int(np.append(names, False)[codes].sum())
        out[column] = values
    for column in layout.int_columns:
        default = layout.defaults[column]
        if column not in frame.columns:
            out[column] = np.full(rows_in, int(default), dtype=np.int64)
            continue
        raw = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        filled = np.where(np.isnan(raw), float(default), raw)
        if column == "Savings":
            # Ours is an int percentage; SpotLake's older files wrote it with decimals.
            out[column] = np.trunc(filled).astype(np.int64)
            continue
        fractional = filled != np.trunc(filled)
        if fractional.any():
            dropped[f"non_integer:{column}"] = int((fractional & keep).sum())
            keep &= ~fractional
        out[column] = filled.astype(np.int64)
    for column in layout.float_columns:
        if column not in frame.columns:
            out[column] = np.full(rows_in, float(layout.defaults[column]))
            continue
        raw = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        out[column] = np.where(np.isnan(raw), float(layout.defaults[column]), raw)
    result = pd.DataFrame({c: out[c] for c in layout.merged_columns if c != "Time"})
    if not keep.all():
        result = result.loc[keep].reset_index(drop=True)
    result, duplicates = _sorted_unique(result, layout.key_columns)
    if duplicates:
        dropped["duplicate_key"] = duplicates
    stamp = pd.Timestamp(window).tz_convert("UTC") if window.tzinfo else pd.Timestamp(window, tz="UTC")
    result["Time"] = pd.Series(stamp, index=result.index, dtype="datetime64[ns, UTC]")
    result = result[list(layout.merged_columns)]
    return Normalised(result, rows_in, dropped, unmapped)


def _sorted_unique(frame: pd.DataFrame, key_columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """``frame`` sorted by key with the first row of each key only; returns how many rows were dropped.

    The key columns' categories are sorted (`_clean_categories`), so their codes folded into one integer
    order rows by key without hashing any value; `encode_keys` takes over if the fold could overflow."""
    import numpy as np

    from spotlake_assets.domain.delta import encode_keys

    codes = np.zeros(len(frame), dtype=np.int64)
    size = 1
    for column in key_columns:
        categorical = frame[column].cat
        cardinality = len(categorical.categories) + 1
        size *= cardinality
        if size >= 1 << 62:
            (codes,), _ = encode_keys([frame], list(key_columns))
            break
        codes *= cardinality
        codes += categorical.codes.to_numpy()
    if len(codes) < 2 or bool((codes[1:] > codes[:-1]).all()):
        return frame, 0
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return frame.take(order[first]).reset_index(drop=True), int((~first).sum())


@dataclass(frozen=True)
class Gap:
    """Windows with no snapshot, ``first`` to ``last`` inclusive."""

    first: datetime
    last: datetime

    @property
    def windows(self) -> int:
        return int((self.last - self.first) / WINDOW) + 1

    def as_json(self) -> dict[str, str | int]:
        return {"first": self.first.isoformat(), "last": self.last.isoformat(), "windows": self.windows}


def find_gaps(windows: Sequence[datetime], start: datetime, end: datetime) -> list[Gap]:
    """The runs of windows in ``[start, end)`` that are not in ``windows``, oldest first."""
    present = sorted({w for w in windows if start <= w < end})
    gaps: list[Gap] = []
    expected = start
    for window in [*present, end]:
        if window > expected:
            gaps.append(Gap(expected, window - WINDOW))
        expected = window + WINDOW
    return gaps


def month_days(month: date) -> list[date]:
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return [first + timedelta(days=i) for i in range((following - first).days)]
