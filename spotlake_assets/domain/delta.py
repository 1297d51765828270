"""Keyed row matching and the snapshot delta (docs/data-contracts.md#delta), vectorised.

SpotLake built one ``"a:b:c"`` string per row and walked two sorted lists in Python (about 7 s per 100k
rows). Here every key column is factorised once into integer codes over *all* frames together, the codes
are folded into one int64 per row, and matching is an array lookup on those integers; features are compared
as whole numpy arrays. Categorical key columns are not hashed row by row at all: only their category lists
are aligned.

The key helpers (:func:`column_codes`, :func:`encode_keys`, :class:`KeyIndex`) live here because the delta
is their main user; :mod:`spotlake_assets.domain.ladder` and the provider merges reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import ExtensionDtype

from spotlake_assets.domain.columns import CEASED_COLUMN as CEASED_COLUMN

# Composite codes are built by mixed-radix folding; past this bound the partial key is renumbered densely so
# the product of cardinalities can never overflow int64.
_MAX_RADIX = 1 << 62
# A direct-address table (one intp per possible code) beats hashing, but only while the code range stays
# within a few times the row count; beyond that its memory is not worth it.
_DENSE_FACTOR = 8
_DENSE_MIN_ROWS = 8192
_INT32_ROWS = 1 << 31

IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.int32]
IndexArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
DtypeObj = np.dtype[Any] | ExtensionDtype


def require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise ``ValueError`` naming the ``columns`` that ``frame`` (called ``name`` in the message) lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing} (has {list(frame.columns)})")


def column_codes(columns: Sequence[pd.Series]) -> tuple[list[CodeArray], pd.Index]:
    """Codes for one key column across several frames.

    Equal values share a code and codes follow value order: code ``i`` is ``vocabulary[i]`` (sorted,
    distinct, non-null) and nulls get ``len(vocabulary)``, sorted last. Returns the per-frame codes (int32:
    half the memory of int64, and a column never has 2**31 distinct values) and the vocabulary.
    """
    local: list[tuple[npt.NDArray[np.integer], pd.Index]] = []
    for series in columns:
        if isinstance(series.dtype, pd.CategoricalDtype):
            # Already factorised: only the (small) category list gets hashed below.
            local.append((series.cat.codes.to_numpy(), series.cat.categories))
        else:
            factorized, uniques = pd.factorize(series.to_numpy())
            local.append((factorized, pd.Index(uniques)))
    vocabulary = pd.Index(
        pd.unique(np.concatenate([u.to_numpy(dtype=object) for _, u in local]))
    ).sort_values()
    null_code = len(vocabulary)
    result: list[CodeArray] = []
    for local_codes, local_values in local:
        # Appending the null code lets local code -1 (null) index it directly.
        remap = np.append(vocabulary.get_indexer(local_values), null_code).astype(np.int32)
        result.append(remap[local_codes])
    return result, vocabulary


def encode_keys(frames: Sequence[pd.DataFrame], columns: Sequence[str]) -> tuple[list[IntArray], int]:
    """One int64 per row for the composite key ``columns``, comparable across ``frames``.

    Returns the per-frame codes and ``size``, an exclusive upper bound of every code. Equal key tuples get
    equal codes and code order is the lexicographic order of the tuples (each column's codes follow its
    sorted values), so sorting by code sorts by key. Nulls are a value of their own (they match each
    other), sorted after every other value of their column.
    """
    if not columns:
        raise ValueError("at least one key column is required")
    composite = [np.zeros(len(frame), dtype=np.int64) for frame in frames]
    size = 1
    for column in columns:
        codes, vocabulary = column_codes([frame[column] for frame in frames])
        cardinality = len(vocabulary) + 1
        if size * cardinality >= _MAX_RADIX:
            composite, size = _renumber(composite)
        for partial, column_code in zip(composite, codes, strict=True):
            # In place: the composites are this function's own arrays, and a 100k-row fold would
            # otherwise allocate two temporaries per frame and column.
            partial *= cardinality
            partial += column_code
        size *= cardinality
    return composite, size


def _renumber(codes: Sequence[IntArray]) -> tuple[list[IntArray], int]:
    """Renumber composite codes densely (order kept) so more columns can be folded in."""
    dense, uniques = pd.factorize(np.concatenate(codes), sort=True)
    parts = np.split(dense.astype(np.int64, copy=False), np.cumsum([len(c) for c in codes])[:-1])
    return parts, len(uniques)


class KeyIndex:
    """Where each key code sits in one frame: uniqueness check and lookups for codes in ``[0, size)``.

    Codes already strictly increasing (snapshots are stored sorted by key) are searched in place: no
    table and no copy, which keeps merge and delta within their memory budget. Otherwise a small code
    range gets a direct-address table (int32: half the memory of intp), and a larger one (e.g. an
    unsorted three-column key) a sorted copy searched by bisection rather than a hash table.
    """

    def __init__(self, codes: IntArray, size: int) -> None:
        self._table: CodeArray | None = None
        self._order: IndexArray | None = None
        if len(codes) < 2 or bool((codes[1:] > codes[:-1]).all()):
            self.duplicate_rows: IndexArray = np.empty(0, dtype=np.intp)
            self._sorted = codes
            return
        if size <= _DENSE_FACTOR * max(len(codes), _DENSE_MIN_ROWS) and len(codes) < _INT32_ROWS:
            rows = np.arange(len(codes), dtype=np.int32)
            table = np.full(size, -1, dtype=np.int32)
            table[codes] = rows
            # With a repeated code only one of its rows is in the table, so the others do not read back.
            self.duplicate_rows = np.flatnonzero(table[codes] != rows)
            self._table = table
            return
        self._order = np.argsort(codes, kind="stable")
        codes = codes[self._order]
        repeats = np.flatnonzero(codes[1:] == codes[:-1]) + 1
        self.duplicate_rows = self._order[repeats]
        self._sorted = codes

    def lookup(self, codes: IntArray) -> IndexArray:
        """For each of ``codes``, its row in the indexed frame, or -1. The indexed codes must be unique."""
        if len(self.duplicate_rows):
            raise ValueError("cannot look up keys in a frame with duplicated keys")
        if self._table is not None:
            return self._table[codes].astype(np.intp)
        if len(self._sorted) == 0:
            return np.full(len(codes), -1, dtype=np.intp)
        at = np.minimum(np.searchsorted(self._sorted, codes), len(self._sorted) - 1)
        rows = at if self._order is None else self._order[at]
        return np.where(self._sorted[at] == codes, rows, -1).astype(np.intp, copy=False)


def unique_key_index(
    frame: pd.DataFrame, codes: IntArray, size: int, columns: Sequence[str], name: str, limit: int = 5
) -> KeyIndex:
    """A :class:`KeyIndex` of ``frame``; ``ValueError`` naming the first ``limit`` duplicated keys if any."""
    index = KeyIndex(codes, size)
    if len(index.duplicate_rows):
        subset = frame[list(columns)].iloc[index.duplicate_rows[:limit]]
        shown = ", ".join(str(key) for key in subset.itertuples(index=False, name=None))
        raise ValueError(
            f"{name} has {len(index.duplicate_rows)} rows with duplicated keys {tuple(columns)}: {shown}"
        )
    return index


def _differs(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> BoolArray:
    """Elementwise "differs", where two nulls (NaN, None, NaT, NA) count as equal."""
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        differs: BoolArray = np.not_equal(a, b)
        if a.dtype.kind == "f" and b.dtype.kind == "f":
            differs &= ~(np.isnan(a) & np.isnan(b))
        return differs
    null_a, null_b = pd.isna(a), pd.isna(b)
    differs = null_a != null_b
    both = ~(null_a | null_b)
    differs[both] = np.asarray(a[both] != b[both], dtype=bool)
    return differs


def _stamp(time: datetime, dtype: DtypeObj, n: int) -> pd.Series:
    """``n`` copies of ``time`` in the time column's ``dtype`` (a naive datetime column is read as UTC)."""
    stamp = pd.Timestamp(time)
    if isinstance(dtype, pd.DatetimeTZDtype):
        if stamp.tzinfo is None:
            raise ValueError(f"time {time!r} is naive but the time column is {dtype}")
        return pd.Series(stamp.tz_convert(dtype.tz), index=pd.RangeIndex(n), dtype=dtype)
    if pd.api.types.is_datetime64_dtype(dtype):
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return pd.Series(stamp, index=pd.RangeIndex(n), dtype=dtype)
    return pd.Series([time] * n, dtype=object)


def _window_time(times: pd.Series, time_column: str) -> datetime:
    """The one time of the current snapshot (every row of a window carries the window start)."""
    if times.empty:
        raise ValueError(f"current has no rows to read {time_column!r} from for ceased rows: pass time=")
    first, last = times.min(), times.max()
    if first != last:
        raise ValueError(f"current holds several {time_column!r} values ({first} … {last}): pass time=")
    return pd.Timestamp(first)


def _zeros(dtype: DtypeObj, n: int) -> pd.Series:
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return pd.Series(np.zeros(n), dtype=dtype)
    return pd.Series([0] * n, dtype=object)


def _align_dtypes(head: pd.DataFrame, tail: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give ``tail`` the dtypes of ``head`` (categoricals get the union of both category lists)."""
    for name, dtype in head.dtypes.items():
        other = tail[name]
        if isinstance(dtype, pd.CategoricalDtype):
            extra = other.cat.categories if isinstance(other.dtype, pd.CategoricalDtype) else other.dropna()
            union = pd.CategoricalDtype(
                dtype.categories.union(pd.Index(extra.unique())), ordered=dtype.ordered
            )
            if union != dtype:
                head[name] = head[name].astype(union)
            tail[name] = other.astype(union)
        elif other.dtype != dtype:
            tail[name] = other.astype(dtype)
    return head, tail


def compute_delta(
    previous: pd.DataFrame | None,
    current: pd.DataFrame,
    key_columns: Sequence[str],
    feature_columns: Sequence[str],
    *,
    time: datetime | None = None,
    time_column: str = "Time",
) -> pd.DataFrame:
    """The rows to publish for ``current`` given the ``previous`` snapshot.

    Output rows, sorted by key (``key_columns`` order, values ascending) and indexed 0..n-1:

    - rows of ``current`` whose key is absent from ``previous`` (all of them if ``previous`` is None);
    - rows of ``current`` where any of ``feature_columns`` differs from the previous row with the same key
      (values compared as stored: floats exactly, two nulls equal). Other columns (time, Savings…) never
      make a row changed;
    - rows of ``previous`` whose key is absent from ``current`` ("ceased"): previous values, except every
      feature is 0 and ``time_column`` (if ``current`` has it) holds the current window's time: ``time``
      if given, else the single value of ``current[time_column]``. Pass ``time`` (the window start) when
      ``current`` may be empty: a window where everything ceased has no row to read the time from, and
      ``ValueError`` says so rather than guessing.

    Columns are exactly ``current``'s, with its dtypes (a categorical's categories may grow by the ceased
    rows' values), plus a bool ``Ceased`` column, True only for ceased rows; an empty result keeps that
    schema. Keys must be unique in both frames (``ValueError`` names duplicates) and ``previous`` must have
    every column of ``current``.
    """
    keys, features = list(key_columns), list(feature_columns)
    require_columns(current, [*keys, *features], "current")
    if CEASED_COLUMN in current.columns:
        raise ValueError(f"current already has a {CEASED_COLUMN!r} column")
    if previous is None:
        previous = current.iloc[:0]
    require_columns(previous, list(current.columns), "previous")

    (previous_codes, current_codes), size = encode_keys([previous, current], keys)
    previous_index = unique_key_index(previous, previous_codes, size, keys, "previous")
    unique_key_index(current, current_codes, size, keys, "current")
    positions = previous_index.lookup(current_codes)
    changed = positions < 0
    matched_rows = np.flatnonzero(~changed)
    matched_previous = positions[matched_rows]
    del positions  # the peak is reached below, with the feature columns gathered
    differs = np.zeros(len(matched_rows), dtype=bool)
    for feature in features:
        differs |= _differs(
            current[feature].to_numpy()[matched_rows], previous[feature].to_numpy()[matched_previous]
        )
    changed[matched_rows] = differs
    present = np.zeros(len(previous), dtype=bool)
    present[matched_previous] = True
    changed_rows = np.flatnonzero(changed)
    ceased_rows = np.flatnonzero(~present)

    head = current.take(changed_rows).reset_index(drop=True)
    tail = previous.take(ceased_rows)[list(current.columns)].reset_index(drop=True)
    for feature in features:
        tail[feature] = _zeros(head[feature].dtype, len(tail))
    if time_column in tail.columns and len(tail):
        window = time if time is not None else _window_time(current[time_column], time_column)
        tail[time_column] = _stamp(window, head[time_column].dtype, len(tail))
    head, tail = _align_dtypes(head, tail)
    head[CEASED_COLUMN] = np.zeros(len(head), dtype=bool)
    tail[CEASED_COLUMN] = np.ones(len(tail), dtype=bool)
    # pd.concat of an empty part can change dtypes; there is nothing to stack then anyway.
    parts = [part for part in (head, tail) if len(part)] or [head]
    delta = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    order = np.argsort(
        np.concatenate([current_codes[changed_rows], previous_codes[ceased_rows]]), kind="stable"
    )
    return delta.take(order).reset_index(drop=True)
