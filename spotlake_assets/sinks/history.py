"""The open Parquet history (beyond SpotLake: queryable without Timestream).

Layout in the lake:
- ``history/<provider>/YYYY/MM/DD/HH-MM.parquet``: one window's delta, written once (create-only), zstd,
  sorted by key then time, in one normalised schema (plain strings, ms UTC times) so any set of files reads
  as one dataset;
- ``history_daily/<provider>/YYYY/MM/DD/<day>-<sha256[:16]>.parquet``: a day's windows merged into one file.
  The name is the content's digest, so a file is never rewritten in place: a recompaction that found more
  windows writes a new file;
- ``history_daily/<provider>/manifest.json``: per compacted day, its file, row count and windows. It is
  replaced by compare-and-swap on its ETag, and only after the day file is complete, so a reader that goes
  through the manifest sees a whole day or none of it.

Readers use a compacted day's file plus any window file of that day the manifest does not list (a late
backfill), and the window files of days not compacted yet.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spotlake_assets.domain.scores import SCORE_CAPACITY_COLUMNS
from spotlake_assets.domain.windows import day_start
from spotlake_assets.storage.errors import CorruptLakeFile, LakeKeyNotFound, PreconditionFailed
from spotlake_assets.storage.keys import history_key
from spotlake_assets.storage.lake import LakeResource
from spotlake_assets.storage.state import CAS_ATTEMPTS, Current, Swap, read_current, swap, update

TIME_COLUMN = "Time"
MANIFEST_FORMAT = "spotlake-history-manifest/1"
# Row groups of this many rows let readers skip most of a compacted day by key statistics.
ROW_GROUP_ROWS = 64 * 1024


class HistoryConflict(RuntimeError):
    """History already holds other content for a window or day: history is append-only."""


class ManifestConflict(RuntimeError):
    """The manifest changed between reading and publishing (another writer won); nothing was overwritten."""


class EmptyDay(RuntimeError):
    """A day with no history window to compact."""


class LakeReader(Protocol):
    """What reading the history needs: `LakeResource` and the query command's pyarrow lake both fit."""

    def list_keys(self, prefix: str) -> list[str]: ...

    def read_bytes(self, key: str) -> bytes: ...

    def location(self, key: str) -> str: ...


def _day_path(day: date) -> str:
    return day.strftime("%Y/%m/%d")


def window_prefix(provider: str, day: date) -> str:
    return f"history/{provider}/{_day_path(day)}/"


def manifest_key(provider: str) -> str:
    return f"history_daily/{provider}/manifest.json"


def day_file_key(provider: str, day: date, digest: str) -> str:
    return f"history_daily/{provider}/{_day_path(day)}/{day.isoformat()}-{digest}.parquet"


# --- schema ---------------------------------------------------------------------------------------------


def normalize_table(table: pa.Table) -> pa.Table:
    """One schema for every history file: dictionary columns as plain strings (their index width varies
    with the number of categories), large strings as strings, times as UTC milliseconds, no pandas
    metadata (it would turn strings back into categoricals on read)."""
    fields = []
    for column in table.schema:
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("ms", tz="UTC")
        fields.append(pa.field(column.name, kind))
    schema = pa.schema(fields)
    # Window starts are whole minutes: the cast to ms loses nothing (and `safe` fails loudly if it would).
    return table.cast(schema, safe=True).replace_schema_metadata(None)


def history_table(
    frame: pd.DataFrame, key_columns: Sequence[str], time_column: str = TIME_COLUMN
) -> pa.Table:
    """A delta frame as a normalised history table, sorted by key then time."""
    table = normalize_table(pa.Table.from_pandas(frame, preserve_index=False))
    return sort_history(table, key_columns, time_column)


def sort_history(table: pa.Table, key_columns: Sequence[str], time_column: str = TIME_COLUMN) -> pa.Table:
    order = [(k, "ascending") for k in key_columns]
    if time_column in table.column_names:
        order.append((time_column, "ascending"))
    return table.take(pc.sort_indices(table, sort_keys=order))


def table_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return buffer.getvalue()


def parse_table(data: bytes, location: str) -> pa.Table:
    try:
        return normalize_table(pq.read_table(io.BytesIO(data)))
    except (pa.ArrowException, OSError) as exc:
        raise CorruptLakeFile(location, f"not a readable Parquet file ({exc})") from exc


def read_table(reader: LakeReader, key: str) -> pa.Table:
    return parse_table(reader.read_bytes(key), reader.location(key))


# --- per-window writes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryWrite:
    key: str
    rows: int
    status: str


def write_window_history(
    lake: LakeResource, provider: str, partition_key: str, frame: pd.DataFrame, key_columns: Sequence[str]
) -> HistoryWrite:
    """Write a window's delta once, create-only. A rerun (or a concurrent writer) with the same rows is a
    no-op, and so is one whose only difference is a score-capacity column the stored file predates
    (`domain.scores`: readers fill it); different rows raise `HistoryConflict` and leave the stored object
    as it is."""
    table = history_table(frame, key_columns)
    data = table_bytes(table)
    key = history_key(provider, partition_key)
    try:
        lake.write_bytes(key, data, create_only=True)
    except PreconditionFailed:
        existing = lake.read_bytes(key)
        stored = read_table(lake, key) if existing != data else table
        if _predates_score_capacity(stored, table):
            return HistoryWrite(key, stored.num_rows, "already written (before the score-capacity columns)")
        if not stored.equals(table):
            raise HistoryConflict(
                f"{lake.location(key)} already holds a different delta for {provider} {partition_key} "
                "(another run wrote this window first); history is append-only: delete the object "
                "deliberately to rewrite it"
            ) from None
        return HistoryWrite(key, table.num_rows, "already written (identical)")
    return HistoryWrite(key, table.num_rows, "written")


def _predates_score_capacity(stored: pa.Table, table: pa.Table) -> bool:
    """``stored`` is ``table`` written before its score-capacity columns existed."""
    added = [c for c in table.column_names if c not in stored.column_names]
    if not added or not set(added) <= set(SCORE_CAPACITY_COLUMNS.values()):
        return False
    return bool(stored.equals(table.drop_columns(added)))


# --- manifest -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayEntry:
    day: str
    key: str
    rows: int
    sha256: str
    windows: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rows": self.rows,
            "sha256": self.sha256,
            "windows": list(self.windows),
        }


@dataclass(frozen=True)
class Manifest:
    provider: str
    days: Mapping[str, DayEntry] = field(default_factory=dict)
    # The stored object's ETag when read for an update; None when there is no manifest yet.
    etag: str | None = None

    def with_day(self, entry: DayEntry) -> Manifest:
        return replace(self, days={**self.days, entry.day: entry})

    def to_bytes(self) -> bytes:
        document = {
            "format": MANIFEST_FORMAT,
            "provider": self.provider,
            "days": {day: self.days[day].as_json() for day in sorted(self.days)},
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()


def parse_manifest(data: bytes, provider: str, location: str, etag: str | None = None) -> Manifest:
    try:
        document = json.loads(data)
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        days = {
            day: DayEntry(
                day=day,
                key=str(entry["key"]),
                rows=int(entry["rows"]),
                sha256=str(entry["sha256"]),
                windows=tuple(str(w) for w in entry["windows"]),
            )
            for day, entry in document["days"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptLakeFile(location, f"not a history manifest ({exc})") from exc
    return Manifest(provider=provider, days=days, etag=etag)


def load_manifest(reader: LakeReader, provider: str) -> Manifest:
    """The manifest as readers see it (an empty one when no day was compacted yet)."""
    key = manifest_key(provider)
    try:
        data = reader.read_bytes(key)
    except LakeKeyNotFound:
        return Manifest(provider)
    return parse_manifest(data, provider, reader.location(key))


def read_manifest_for_update(lake: LakeResource, provider: str) -> Manifest:
    """The manifest with the ETag a compare-and-swap must match (taken before the body: if the object changes
    in between, the swap is refused rather than a newer manifest being overwritten)."""
    current = read_current(lake, manifest_key(provider), _manifest_decoder(provider))
    return replace(current.value or Manifest(provider), etag=current.etag)


def _manifest_decoder(provider: str) -> Callable[[bytes, str], Manifest]:
    return lambda data, location: parse_manifest(data, provider, location)


def _manifest_conflict(lake: LakeResource, provider: str, day: str, etag: str | None) -> ManifestConflict:
    expected = "no manifest" if etag is None else f"ETag {etag}"
    return ManifestConflict(
        f"{lake.location(manifest_key(provider))} changed while {provider} {day} was being published "
        f"(expected {expected}): another writer won; nothing was overwritten, rerun the compaction to "
        "publish on top of the new manifest"
    )


def publish_day(lake: LakeResource, manifest: Manifest, entry: DayEntry) -> str:
    """Add or replace ``entry`` in the manifest by one compare-and-swap against ``manifest.etag``.

    Returns "published" or "already published"; raises `ManifestConflict` when another writer changed
    the manifest since ``manifest`` was read (the loser writes nothing).
    """
    if manifest.days.get(entry.day) == entry:
        return "already published"
    try:
        swap(lake, manifest_key(manifest.provider), manifest.with_day(entry).to_bytes(), manifest.etag)
    except PreconditionFailed as exc:
        raise _manifest_conflict(lake, manifest.provider, entry.day, manifest.etag) from exc
    return "published"


# --- compaction -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compaction:
    entry: DayEntry
    file_status: str
    manifest_status: str
    manifest_attempts: int
    input_bytes: int
    output_bytes: int


def day_window_keys(reader: LakeReader, provider: str, day: date) -> list[str]:
    return [k for k in reader.list_keys(window_prefix(provider, day)) if k.endswith(".parquet")]


def _window_name(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".parquet")


def compact_day(
    lake: LakeResource,
    provider: str,
    day_key: str,
    key_columns: Sequence[str],
    *,
    manifest_attempts: int = CAS_ATTEMPTS,
) -> Compaction:
    """Merge a day's window files into one file and publish it in the manifest.

    Idempotent: the day file is named by its content and written create-only, and publishing an entry
    the manifest already holds is a no-op. A lost compare-and-swap is retried from a fresh read
    (`spotlake_assets.storage.state`) at most ``manifest_attempts`` times in all, then `ManifestConflict` is
    raised. Raises `EmptyDay` for a day without windows and `HistoryConflict` when the manifest already
    lists windows this compaction did not find (history files are never deleted, so that means the lake
    was tampered with).
    """
    day = day_start(day_key)
    keys = day_window_keys(lake, provider, day)
    if not keys:
        raise EmptyDay(
            f"no {provider} history windows for {day_key} under {lake.location(window_prefix(provider, day))}"
        )
    # One GET per window file: its size is reported, then it is parsed from the same bytes.
    payloads = [lake.read_bytes(k) for k in keys]
    tables = [parse_table(data, lake.location(k)) for k, data in zip(keys, payloads, strict=True)]
    merged = sort_history(pa.concat_tables(tables, promote_options="default"), key_columns)
    data = table_bytes(merged)
    digest = hashlib.sha256(data).hexdigest()
    entry = DayEntry(
        day=day_key,
        key=day_file_key(provider, day, digest[:16]),
        rows=merged.num_rows,
        sha256=digest,
        windows=tuple(_window_name(k) for k in keys),
    )
    try:
        lake.write_bytes(entry.key, data, create_only=True)
        file_status = "written"
    except PreconditionFailed:
        # Same name, same digest: the file is this content (a rerun, or a concurrent compaction).
        if hashlib.sha256(lake.read_bytes(entry.key)).hexdigest() != digest:
            raise HistoryConflict(
                f"{lake.location(entry.key)} exists with other content than its name says"
            ) from None
        file_status = "already written (identical)"
    seen: list[str | None] = []

    def add_day(current: Current[Manifest]) -> Swap[str]:
        manifest = current.value or Manifest(provider)
        seen.append(current.etag)
        published = manifest.days.get(day_key)
        if published is not None and not set(published.windows) <= set(entry.windows):
            lost = sorted(set(published.windows) - set(entry.windows))
            raise HistoryConflict(
                f"the manifest lists {provider} {day_key} windows {lost} whose history files are gone; "
                "refusing to publish a day with fewer windows"
            )
        if published == entry:
            return Swap(None, "already published")
        return Swap(manifest.with_day(entry).to_bytes(), "published")

    try:
        done = update(
            lake, manifest_key(provider), _manifest_decoder(provider), add_day, attempts=manifest_attempts
        )
    except PreconditionFailed as exc:
        raise _manifest_conflict(lake, provider, day_key, seen[-1]) from exc
    return Compaction(entry, file_status, done.result, done.attempts, sum(map(len, payloads)), len(data))


# --- reads ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistorySources:
    """The files that hold a provider's history for a range of days."""

    keys: tuple[str, ...]
    compacted_days: tuple[str, ...]
    window_files: int

    def describe(self) -> str:
        return f"{len(self.compacted_days)} compacted days + {self.window_files} window files"


def history_sources(reader: LakeReader, provider: str, first_day: date, last_day: date) -> HistorySources:
    """Files to read for ``first_day``..``last_day`` (inclusive), through the manifest."""
    manifest = load_manifest(reader, provider)
    keys: list[str] = []
    compacted: list[str] = []
    windows = 0
    day = first_day
    while day <= last_day:
        entry = manifest.days.get(day.isoformat())
        window_keys = day_window_keys(reader, provider, day)
        if entry is not None:
            keys.append(entry.key)
            compacted.append(entry.day)
            window_keys = [k for k in window_keys if _window_name(k) not in set(entry.windows)]
        keys.extend(window_keys)
        windows += len(window_keys)
        day += timedelta(days=1)
    return HistorySources(tuple(keys), tuple(compacted), windows)


def read_history(
    reader: LakeReader, provider: str, start: datetime, end: datetime, time_column: str = TIME_COLUMN
) -> pa.Table | None:
    """Every history row with ``start <= time <= end`` (None when there is none), normalised."""
    sources = history_sources(reader, provider, start.date(), end.date())
    tables = [read_table(reader, k) for k in sources.keys]
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="default")
    times = table[time_column]
    mask = pc.and_(
        pc.greater_equal(times, pa.scalar(pd.Timestamp(start), times.type)),
        pc.less_equal(times, pa.scalar(pd.Timestamp(end), times.type)),
    )
    return table.filter(mask)
