"""The import's hot path: one parsed snapshot to its history window in numpy and pyarrow, without pandas.

A SpotLake month is thousands of snapshots that share almost every key, so a fixed per-snapshot cost (frame
construction, re-factorising the same key strings, aligning dtypes) outweighs the per-row work at reduced
scale. Here each string column has a vocabulary that lives for the whole import: a value gets an id once,
ids never change, and a file whose dictionary equals the previous file's (the usual case) reuses its id map
without looking at a string. Key order comes from each vocabulary's rank of an id (its value's sorted
position), so codes order rows exactly as `normalise_snapshot` and `compute_delta` order them.

The results are the ones of the pandas path, byte for byte: `normalise` keeps and drops the rows
`spotlake_assets.domain.legacy.normalise_snapshot` keeps and drops (same counts by reason), and
`DeltaEncoder.history` returns ``history_table(compute_delta(previous, current, ...))``'s table. What the
fast path does not cover (a previous snapshot read from the lake in another shape, a key space too large to
fold into an int64) raises `NotFast`, and the importer takes the pandas path for that snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from spotlake_assets.domain.delta import CEASED_COLUMN
from spotlake_assets.domain.legacy import _ZONE_ID, LegacyLayout, SnapshotRejected

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_MAX_CODE = 1 << 62
TIME_COLUMN = "Time"


class NotFast(Exception):
    """This snapshot pair needs the pandas path (see the module docstring)."""


class Vocabulary:
    """One string column's values for the whole import: stable ids, and each id's rank in value order."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._ids: dict[str, int] = {}
        self.rank: IntArray = np.empty(0, dtype=np.int64)
        self._arrow: pa.StringArray | None = None
        # The last file dictionary seen and its id per entry (-1: empty), reused while files repeat it.
        self._dictionary: pa.Array | None = None
        self._dictionary_ids: IntArray = np.empty(0, dtype=np.int64)
        self._dictionary_names: BoolArray = np.empty(0, dtype=bool)

    @property
    def size(self) -> int:
        return len(self.values)

    def ids(self, values: Sequence[str | None]) -> IntArray:
        """Ids of ``values`` (None: -1), adding the new ones."""
        out = np.empty(len(values), dtype=np.int64)
        grew = False
        for i, value in enumerate(values):
            if value is None:
                out[i] = -1
                continue
            known = self._ids.get(value)
            if known is None:
                known = self._ids[value] = len(self.values)
                self.values.append(value)
                grew = True
            out[i] = known
        if grew:
            order = np.array(sorted(range(len(self.values)), key=self.values.__getitem__), dtype=np.int64)
            self.rank = np.empty(len(order), dtype=np.int64)
            self.rank[order] = np.arange(len(order), dtype=np.int64)
            self._arrow = None
        return out

    def dictionary_ids(
        self, dictionary: pa.Array, mapping: Mapping[str, str] | None, zone: bool
    ) -> tuple[IntArray, BoolArray]:
        """Ids of a file's dictionary entries as `_clean_categories` cleans them (stripped, ``mapping``
        applied, empty = missing), and which entries are zone *names* (only computed for the zone column)."""
        if self._dictionary is not None and dictionary.equals(self._dictionary):
            return self._dictionary_ids, self._dictionary_names
        cleaned: list[str | None] = []
        for raw in dictionary.to_pylist():
            value = str(raw).strip()
            if mapping:
                value = mapping.get(value, value)
            cleaned.append(value if value != "" else None)
        ids = self.ids(cleaned)
        names = np.array([zone and v is not None and _ZONE_ID.match(v) is None for v in cleaned], dtype=bool)
        self._dictionary, self._dictionary_ids, self._dictionary_names = dictionary, ids, names
        return ids, names

    def arrow(self) -> pa.StringArray:
        if self._arrow is None:
            self._arrow = pa.array(self.values, type=pa.string())
        return self._arrow


@dataclass
class Snapshot:
    """One normalised snapshot as arrays: string columns as vocabulary ids, numbers as int64/float64,
    rows sorted and unique by key (``codes``, valid while ``version`` is the encoder's)."""

    n: int
    strings: dict[str, IntArray]
    numbers: dict[str, npt.NDArray[Any]]
    codes: IntArray
    version: int
    rows_in: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    unmapped_zone_names: int = 0


def _single_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


class DeltaEncoder:
    """Normalises parsed snapshots and computes their history windows (module docstring)."""

    def __init__(self, layout: LegacyLayout, zone_ids: Mapping[str, str] | None = None) -> None:
        self.layout = layout
        self.zone_ids = zone_ids
        self.vocabularies = {c: Vocabulary() for c in layout.string_columns}
        self._sizes: tuple[int, ...] = ()
        self.version = 0
        numbers = {c: pa.int64() for c in layout.int_columns}
        numbers.update({c: pa.float64() for c in layout.float_columns})
        self.schema = pa.schema(
            [
                pa.field(c, pa.timestamp("ms", tz="UTC") if c == TIME_COLUMN else numbers.get(c, pa.string()))
                for c in layout.merged_columns
            ]
            + [pa.field(CEASED_COLUMN, pa.bool_())]
        )

    # --- keys ---------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        sizes = tuple(self.vocabularies[c].size for c in self.layout.key_columns)
        if sizes != self._sizes:
            self._sizes = sizes
            self.version += 1

    def _fold(self, strings: Mapping[str, IntArray], n: int) -> IntArray:
        """Key codes ordering rows by key value; the vocabularies' current ranks (ids must be >= 0)."""
        codes = np.zeros(n, dtype=np.int64)
        size = 1
        for column in self.layout.key_columns:
            vocabulary = self.vocabularies[column]
            cardinality = vocabulary.size + 1
            size *= cardinality
            if size >= _MAX_CODE:
                raise NotFast("the key space does not fold into an int64")
            codes *= cardinality
            codes += vocabulary.rank[strings[column]]
        return codes

    def codes(self, snapshot: Snapshot) -> IntArray:
        if snapshot.version != self.version:
            # Vocabularies only grow and keep value order: the rows stay sorted, only the codes move.
            snapshot.codes = self._fold(snapshot.strings, snapshot.n)
            snapshot.version = self.version
        return snapshot.codes

    # --- normalisation ------------------------------------------------------------------------------

    def normalise(self, table: pa.Table) -> Snapshot:
        """`normalise_snapshot` of ``table`` (one parsed file), as a `Snapshot`."""
        layout = self.layout
        names = [layout.aliases.get(c, c) for c in table.column_names]
        present = dict(zip(names, table.columns, strict=True))
        missing = [c for c in layout.required if c not in present]
        if missing:
            raise SnapshotRejected("snapshot", f"missing columns {missing} (has {names})")
        rows_in = table.num_rows
        dropped: dict[str, int] = {}
        keep = np.ones(rows_in, dtype=bool)
        strings: dict[str, IntArray] = {}
        unmapped = 0
        for column in layout.string_columns:
            source = column if column in present else layout.copies.get(column)
            vocabulary = self.vocabularies[column]
            zone = column == layout.zone_column
            if source is not None and source in present:
                array = _single_chunk(present[source])
                if not pa.types.is_dictionary(array.type):
                    array = array.cast(pa.string()).dictionary_encode()
                ids, zone_names = vocabulary.dictionary_ids(
                    array.dictionary, self.zone_ids if zone else None, zone
                )
                indices = array.indices.to_numpy(zero_copy_only=False)
                if array.indices.null_count:
                    indices = np.where(
                        array.indices.is_null().to_numpy(zero_copy_only=False), -1, indices
                    ).astype(np.int64)
                lookup = np.append(ids, -1)
                values = lookup[indices]
                if zone:
                    unmapped = int(np.append(zone_names, False)[indices].sum())
            else:
                default = pa.array([str(layout.defaults[column])], type=pa.string())
                ids, zone_names = vocabulary.dictionary_ids(default, self.zone_ids if zone else None, zone)
                values = np.full(rows_in, ids[0], dtype=np.int64)
                if zone:
                    unmapped = rows_in if zone_names[0] else 0
            if column in layout.key_columns:
                empty = values < 0
                if empty.any():
                    dropped[f"missing_key:{column}"] = int((empty & keep).sum())
                    keep &= ~empty
            strings[column] = values
        numbers: dict[str, npt.NDArray[Any]] = {}
        for column in layout.int_columns:
            default = layout.defaults[column]
            if column not in present:
                numbers[column] = np.full(rows_in, int(default), dtype=np.int64)
                continue
            raw = self._floats(present[column])
            filled = np.where(np.isnan(raw), float(default), raw)
            if column == "Savings":
                numbers[column] = np.trunc(filled).astype(np.int64)
                continue
            fractional = filled != np.trunc(filled)
            if fractional.any():
                dropped[f"non_integer:{column}"] = int((fractional & keep).sum())
                keep &= ~fractional
            numbers[column] = filled.astype(np.int64)
        for column in layout.float_columns:
            if column not in present:
                numbers[column] = np.full(rows_in, float(layout.defaults[column]))
                continue
            raw = self._floats(present[column])
            numbers[column] = np.where(np.isnan(raw), float(layout.defaults[column]), raw)
        if not keep.all():
            strings = {c: v[keep] for c, v in strings.items()}
            numbers = {c: v[keep] for c, v in numbers.items()}
        n = int(keep.sum())
        self._refresh()
        codes = self._fold(strings, n)
        if n > 1 and not bool((codes[1:] > codes[:-1]).all()):
            order = np.argsort(codes, kind="stable")
            ordered = codes[order]
            first = np.ones(n, dtype=bool)
            first[1:] = ordered[1:] != ordered[:-1]
            if not first.all():
                dropped["duplicate_key"] = int((~first).sum())
            rows = order[first]
            strings = {c: v[rows] for c, v in strings.items()}
            numbers = {c: v[rows] for c, v in numbers.items()}
            codes, n = ordered[first], len(rows)
        return Snapshot(n, strings, numbers, codes, self.version, rows_in, dropped, unmapped)

    @staticmethod
    def _floats(column: pa.ChunkedArray) -> FloatArray:
        array = _single_chunk(column)
        if array.type != pa.float64():
            array = array.cast(pa.float64())
        values: FloatArray = array.to_numpy(zero_copy_only=False)
        if array.null_count:
            values = np.where(array.is_null().to_numpy(zero_copy_only=False), np.nan, values)
        return values

    def from_frame(self, frame: pd.DataFrame) -> Snapshot:
        """A previous snapshot read from the lake (pandas), when it has the merged schema our own snapshots
        have (every merged column, our number dtypes, unique non-null keys); else `NotFast`."""
        layout = self.layout
        if any(c not in frame.columns for c in layout.merged_columns):
            raise NotFast("the previous snapshot lacks merged columns")
        n = len(frame)
        strings: dict[str, IntArray] = {}
        for column in layout.string_columns:
            series = frame[column]
            if isinstance(series.dtype, pd.CategoricalDtype):
                categories = list(series.cat.categories)
                if not all(isinstance(c, str) for c in categories):
                    raise NotFast(f"previous {column} has categories that are not strings")
                local = series.cat.codes.to_numpy().astype(np.int64)
            elif series.dtype == object and all(isinstance(v, str) for v in series.dropna()):
                local, uniques = pd.factorize(series.to_numpy())
                categories = [str(c) for c in uniques]
                local = local.astype(np.int64)
            else:
                raise NotFast(f"previous {column} is {series.dtype}")
            ids = np.append(self.vocabularies[column].ids(categories), -1)[local]
            if column in layout.key_columns and bool((ids < 0).any()):
                raise NotFast(f"previous {column} has empty keys")
            strings[column] = ids
        numbers: dict[str, npt.NDArray[Any]] = {}
        for columns, dtype in ((layout.int_columns, np.int64), (layout.float_columns, np.float64)):
            for column in columns:
                if frame[column].dtype != dtype:
                    raise NotFast(f"previous {column} is {frame[column].dtype}")
                numbers[column] = frame[column].to_numpy()
        self._refresh()
        codes = self._fold(strings, n)
        if n > 1 and not bool((codes[1:] > codes[:-1]).all()):
            raise NotFast("the previous snapshot is not sorted and unique by key")
        return Snapshot(n, strings, numbers, codes, self.version)

    # --- delta --------------------------------------------------------------------------------------

    def history(self, previous: Snapshot | None, current: Snapshot, window: datetime) -> pa.Table:
        """``history_table(compute_delta(previous, current, keys, features, time=window), keys)``."""
        layout = self.layout
        current_codes = self.codes(current)
        if previous is None or previous.n == 0:
            changed_rows = np.arange(current.n)
            ceased_rows = np.empty(0, dtype=np.int64)
            previous_codes = np.empty(0, dtype=np.int64)
        else:
            previous_codes = self.codes(previous)
            at = np.minimum(np.searchsorted(previous_codes, current_codes), previous.n - 1)
            matched = previous_codes[at] == current_codes
            changed = ~matched
            matched_rows = np.flatnonzero(matched)
            matched_previous = at[matched_rows]
            differs = np.zeros(len(matched_rows), dtype=bool)
            for feature in layout.feature_columns:
                a = current.numbers[feature][matched_rows]
                b = previous.numbers[feature][matched_previous]
                d = a != b
                if a.dtype.kind == "f":
                    d &= ~(np.isnan(a) & np.isnan(b))
                differs |= d
            changed[matched_rows] = differs
            present = np.zeros(previous.n, dtype=bool)
            present[matched_previous] = True
            changed_rows = np.flatnonzero(changed)
            ceased_rows = np.flatnonzero(~present)
        head, tail = len(changed_rows), len(ceased_rows)
        order: npt.NDArray[np.intp] | None = None
        if tail:
            order = np.argsort(
                np.concatenate([current_codes[changed_rows], previous_codes[ceased_rows]]), kind="stable"
            )
        features = set(layout.feature_columns)

        def stack(values: npt.NDArray[Any], ceased: npt.NDArray[Any] | None) -> npt.NDArray[Any]:
            picked = values[changed_rows]
            if order is None or ceased is None:
                return picked
            return np.concatenate([picked, ceased])[order]

        arrays: list[pa.Array] = []
        n = head + tail
        for column in layout.merged_columns:
            if column == TIME_COLUMN:
                stamp = np.datetime64(pd.Timestamp(window).tz_convert("UTC").tz_localize(None), "ms")
                arrays.append(
                    pa.array(np.full(n, stamp, dtype="datetime64[ms]"), type=pa.timestamp("ms", tz="UTC"))
                )
            elif column in current.strings:
                ceased_ids = previous.strings[column][ceased_rows] if previous is not None and tail else None
                ids = stack(current.strings[column], ceased_ids)
                nulls = ids < 0
                indices = pa.array(ids, mask=nulls) if nulls.any() else pa.array(ids)
                arrays.append(self.vocabularies[column].arrow().take(indices))
            else:
                values = current.numbers[column]
                ceased_values = None
                if previous is not None and tail:
                    ceased_values = (
                        np.zeros(tail, dtype=values.dtype)
                        if column in features
                        else previous.numbers[column][ceased_rows]
                    )
                arrays.append(pa.array(stack(values, ceased_values)))
        ceased_flags = np.zeros(n, dtype=bool)
        if order is not None:
            ceased_flags[head:] = True
            ceased_flags = ceased_flags[order]
        arrays.append(pa.array(ceased_flags))
        return pa.Table.from_arrays(arrays, schema=self.schema)
