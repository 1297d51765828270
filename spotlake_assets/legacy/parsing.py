"""One SpotLake file's bytes as a frame: gunzip (ISA-L's, twice zlib's speed), then pyarrow's CSV reader
on one thread (the per-core figure is what the import is sized by), strings dictionary-encoded so keys
arrive as pandas categoricals.

A file that cannot be read whole (a truncated gzip, a CSV that ends mid-row, a missing column) is rejected as
a whole (`SnapshotRejected`); a row whose number is not a number is dropped and counted by column.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from isal import igzip, isal_zlib

from spotlake_assets.domain.legacy import LegacyLayout, SnapshotRejected, missing_columns

# What a damaged gzip raises: the stdlib's errors and ISA-L's own (stubbed as a plain name).
_GZIP_ERRORS = cast(
    "tuple[type[Exception], ...]",
    (EOFError, gzip.BadGzipFile, zlib.error, isal_zlib.error, OSError),
)
# Row numbers quoted per file when numbers do not parse; the counts cover every row.
MAX_QUOTED_ROWS = 5


@dataclass(frozen=True)
class ParsedTable:
    """A file as pyarrow read it (the import's hot path); ``frame`` is set when it was read leniently."""

    table: pa.Table
    dropped: dict[str, int]
    bad_rows: tuple[int, ...] = ()
    frame: pd.DataFrame | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.frame if self.frame is not None else self.table.to_pandas()


@dataclass(frozen=True)
class ParsedFile:
    frame: pd.DataFrame
    # Rows dropped while parsing (a non-numeric number), by "non_numeric:<column>".
    dropped: dict[str, int]
    # 1-based data rows (header excluded) that were dropped, the first few.
    bad_rows: tuple[int, ...] = ()


def decompress(name: str, data: bytes) -> bytes:
    if not name.endswith(".gz"):
        return data
    try:
        return cast(bytes, igzip.decompress(data))  # type: ignore[no-untyped-call]
    except _GZIP_ERRORS as exc:
        raise SnapshotRejected(name, f"truncated or corrupt gzip ({exc})") from None


def _header(name: str, text: bytes) -> list[str]:
    end = text.find(b"\n")
    line = (text if end < 0 else text[:end]).decode("utf-8-sig", errors="replace").strip()
    if not line:
        raise SnapshotRejected(name, "empty file (no CSV header)")
    return [c.strip().strip('"') for c in line.split(",")]


def parse_snapshot(name: str, data: bytes, layout: LegacyLayout) -> ParsedFile:
    """The file's columns that ``layout`` knows, numbers as float64 (an int column may be written ``3.0``)."""
    parsed = parse_snapshot_table(name, data, layout)
    return ParsedFile(parsed.to_frame(), parsed.dropped, parsed.bad_rows)


def parse_snapshot_table(name: str, data: bytes, layout: LegacyLayout) -> ParsedTable:
    """`parse_snapshot` as a pyarrow table (strings dictionary-encoded), without building a frame."""
    text = decompress(name, data)
    header = _header(name, text)
    if not text.endswith(b"\n"):
        # SpotLake's writer ends every row with a line break: a file cut short ends mid-row, and a row cut
        # inside its last column would otherwise parse as a shorter, wrong value.
        raise SnapshotRejected(name, "truncated CSV (the last row has no line end)")
    missing = missing_columns(header, layout)
    if missing:
        raise SnapshotRejected(name, f"missing columns {missing} (has {header})")
    wanted = set(layout.source_columns())
    include = [c for c in header if c in wanted]
    numeric = {*layout.int_columns, *layout.float_columns}
    numbers = [c for c in include if layout.aliases.get(c, c) in numeric]
    types: dict[str, pa.DataType] = {c: pa.float64() for c in numbers}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in include if c not in types})
    try:
        table = _read(text, include, types)
    except pa.ArrowInvalid as exc:
        if "conversion error" not in str(exc).lower():
            raise SnapshotRejected(name, f"not a readable CSV ({exc})") from None
        lenient = _parse_leniently(name, text, include, numbers)
        return ParsedTable(
            pa.Table.from_pandas(lenient.frame, preserve_index=False),
            lenient.dropped,
            lenient.bad_rows,
            lenient.frame,
        )
    return ParsedTable(table, {})


def _read(text: bytes, include: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        pa.py_buffer(text),
        # One block for the whole file: no block boundaries to stitch, no oversized buffer for a small one.
        read_options=pacsv.ReadOptions(use_threads=False, block_size=max(len(text) + 1, 1 << 16)),
        # Only an empty cell is missing: pyarrow's default markers (N/A, NA, NULL, nan, ...) include values
        # SpotLake writes as data, such as Azure's "N/A" zone of a region-level row.
        convert_options=pacsv.ConvertOptions(
            include_columns=include, column_types=types, strings_can_be_null=True, null_values=[""]
        ),
    )


def _parse_leniently(name: str, text: bytes, include: list[str], numbers: list[str]) -> ParsedFile:
    """Numbers read as text, converted column by column; rows where a non-empty cell is not a number go."""
    types: dict[str, pa.DataType] = {c: pa.string() for c in numbers}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in include if c not in types})
    try:
        frame = _read(text, include, types).to_pandas()
    except pa.ArrowInvalid as exc:
        raise SnapshotRejected(name, f"not a readable CSV ({exc})") from None
    bad = np.zeros(len(frame), dtype=bool)
    dropped: dict[str, int] = {}
    for column in numbers:
        raw = frame[column]
        converted = pd.to_numeric(raw, errors="coerce")
        invalid = (converted.isna() & raw.notna() & (raw.astype(str).str.strip() != "")).to_numpy()
        if invalid.any():
            dropped[f"non_numeric:{column}"] = int((invalid & ~bad).sum())
            bad |= invalid
        frame[column] = converted.astype(np.float64)
    rows = tuple(int(i) + 1 for i in np.flatnonzero(bad)[:MAX_QUOTED_ROWS])
    return ParsedFile(frame.loc[~bad].reset_index(drop=True), dropped, rows)
