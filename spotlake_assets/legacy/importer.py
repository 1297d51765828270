"""A month of SpotLake snapshots into our history, one day at a time, resumable after a kill.

Per day, in two phases:

1. **Read and check** every snapshot of the day, one file at a time: parse, normalise
   (`spotlake_assets.domain.legacy`), delta against the previous snapshot (our `compute_delta`), keep the
   delta's history bytes (a day of deltas is small; a snapshot is dropped as soon as the next one is read).
   Nothing is written in this phase, so a bad file can never leave half a day behind. Normalisation and
   delta run on arrays (`spotlake_assets.legacy.snapshots`, the same bytes as the pandas functions): a
   snapshot's fixed cost, not its rows, is what a reduced-scale month is made of.
2. **Write**, in an order that keeps readers whole: the compacted day file (content-named, create-only), the
   manifest entry (compare-and-swap: from here readers see the whole day), the window files (create-only, as
   the live `history/<p>` asset writes them, so a later compaction finds the same day), the merged snapshot
   of the day's last window (the next day's, or the first collected window's, previous snapshot), then the
   day's checkpoint ``state/legacy/<p>/YYYY/MM/DD.json``.

A kill anywhere repeats only unfinished days: every write is create-only or compare-and-swap with the same
bytes, so a retry writes nothing twice and ends with the history an uninterrupted import writes. A day with
a checkpoint is skipped. A window the live pipeline already collected wins: its merged snapshot becomes the
previous one for the next window, and an imported snapshot that differs is reported as a conflict, not
written. Windows without a snapshot are gaps: recorded in the checkpoint, never filled; the next snapshot's
delta is taken against the last one seen, so a pool that changed during a gap shows the change at the next
snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.domain.legacy import (
    WINDOWS_PER_DAY,
    LegacyLayout,
    Normalised,
    SnapshotName,
    SnapshotRejected,
    find_gaps,
    month_days,
    normalise_snapshot,
    snapshot_name,
)
from spotlake_assets.domain.windows import WINDOW, window_key
from spotlake_assets.legacy.parsing import parse_snapshot_table
from spotlake_assets.legacy.snapshots import DeltaEncoder, NotFast, Snapshot
from spotlake_assets.legacy.sources import (
    SnapshotFile,
    SnapshotSource,
    is_snapshot_name,
    is_synthetic_marker,
)
from spotlake_assets.sinks.history import (
    DayEntry,
    HistoryConflict,
    ManifestConflict,
    day_file_key,
    history_table,
    normalize_table,
    parse_table,
    publish_day,
    read_manifest_for_update,
    sort_history,
    table_bytes,
    window_prefix,
)
from spotlake_assets.storage.errors import LakeKeyNotFound, PreconditionFailed
from spotlake_assets.storage.frames import frame_to_parquet, read_frame
from spotlake_assets.storage.keys import history_key, merged_key
from spotlake_assets.storage.lake import LakeResource

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "spotlake-legacy-day/1"
MANIFEST_ATTEMPTS = 10
# Called with the name of each step just done ("day_file 2024-03-01", "window 2024-03-01-00:10", …): the
# kill-and-resume test and benchmark stop the import there.
StepHook = Callable[[str], None]


class LegacyImportError(RuntimeError):
    """The import cannot go on (too many unreadable files); nothing of the current day was written."""


def checkpoint_key(provider: str, day: date) -> str:
    return f"state/legacy/{provider}/{day:%Y/%m/%d}.json"


def _no_hook(_: str) -> None:
    return None


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"file": self.name, "reason": self.reason}


@dataclass(frozen=True)
class DayResult:
    """What one day's import did; stored as its checkpoint (no wall-clock time: a retry writes the same)."""

    provider: str
    day: date
    windows: tuple[str, ...]
    rows_in: int
    history_rows: int
    gaps: tuple[dict[str, Any], ...]
    skipped: tuple[Skipped, ...]
    dropped: Mapping[str, int]
    conflicts: tuple[dict[str, str], ...]
    last_window: str | None
    day_file: str | None
    unmapped_zone_names: int = 0
    resumed: bool = False

    @property
    def windows_count(self) -> int:
        return len(self.windows)

    @property
    def gap_windows(self) -> int:
        return sum(int(g["windows"]) for g in self.gaps)

    def to_bytes(self) -> bytes:
        document = {
            "format": CHECKPOINT_FORMAT,
            "provider": self.provider,
            "day": self.day.isoformat(),
            "windows": list(self.windows),
            "rows_in": self.rows_in,
            "history_rows": self.history_rows,
            "gaps": list(self.gaps),
            "skipped_files": [s.as_json() for s in self.skipped],
            "dropped_rows": dict(sorted(self.dropped.items())),
            "conflicts": list(self.conflicts),
            "last_window": self.last_window,
            "day_file": self.day_file,
            "unmapped_zone_names": self.unmapped_zone_names,
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, location: str) -> DayResult:
        try:
            d = json.loads(data)
            if d.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {d.get('format')!r}")
            return cls(
                provider=str(d["provider"]),
                day=date.fromisoformat(d["day"]),
                windows=tuple(d["windows"]),
                rows_in=int(d["rows_in"]),
                history_rows=int(d["history_rows"]),
                gaps=tuple(d["gaps"]),
                skipped=tuple(Skipped(s["file"], s["reason"]) for s in d["skipped_files"]),
                dropped={str(k): int(v) for k, v in d["dropped_rows"].items()},
                conflicts=tuple(d["conflicts"]),
                last_window=d["last_window"],
                day_file=d["day_file"],
                unmapped_zone_names=int(d.get("unmapped_zone_names", 0)),
                resumed=True,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LegacyImportError(f"{location} is not a legacy import checkpoint ({exc})") from exc


def read_day_checkpoint(lake: LakeResource, provider: str, day: date) -> DayResult | None:
    key = checkpoint_key(provider, day)
    try:
        data = lake.read_bytes(key)
    except LakeKeyNotFound:
        return None
    return DayResult.from_bytes(data, lake.location(key))


@dataclass
class MonthPlan:
    """A month's files by day (window order), and the files left out before any day is read."""

    days: dict[date, list[tuple[SnapshotName, SnapshotFile]]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    # Per day: files naming a window another file of the day already names (the first by name is read).
    duplicates: dict[date, list[Skipped]] = field(default_factory=dict)
    # The month was written by the synthetic generator, not by SpotLake.
    synthetic: bool = False


def plan_month(files: Sequence[SnapshotFile], month: date) -> MonthPlan:
    plan = MonthPlan()
    seen: dict[datetime, str] = {}
    for file in sorted(files, key=lambda f: f.name):
        if is_synthetic_marker(file.name):
            plan.synthetic = True
        if not is_snapshot_name(file.name):
            continue
        try:
            name = snapshot_name(file.name, month)
        except SnapshotRejected as exc:
            plan.skipped.append(Skipped(file.name, exc.reason))
            continue
        day = name.window.date()
        first = seen.get(name.window)
        if first is not None:
            reason = f"duplicated snapshot: window {window_key(name.window)} is already read from {first}"
            plan.duplicates.setdefault(day, []).append(Skipped(file.name, reason))
            continue
        seen[name.window] = file.name
        plan.days.setdefault(day, []).append((name, file))
    for entries in plan.days.values():
        entries.sort(key=lambda e: e[0].window)
    return plan


@dataclass
class MonthReport:
    provider: str
    month: date
    days: list[DayResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Days of the month without a single file: whole-day gaps, not checkpointed.
    missing_days: list[date] = field(default_factory=list)
    synthetic: bool = False

    def gaps(self) -> list[dict[str, Any]]:
        whole = [
            {"first": f"{d.isoformat()}T00:00:00+00:00", "last": f"{d.isoformat()}T23:50:00+00:00",
             "windows": WINDOWS_PER_DAY}
            for d in self.missing_days
        ]  # fmt: skip
        return sorted([*whole, *(g for d in self.days for g in d.gaps)], key=lambda g: str(g["first"]))

    def to_bytes(self) -> bytes:
        """The month's lake record: every gap, skipped file, dropped row count, conflict (deterministic)."""
        document = {
            "format": "spotlake-legacy-month/1",
            "provider": self.provider,
            "month": f"{self.month:%Y-%m}",
            "synthetic": self.synthetic,
            "days_imported": [d.day.isoformat() for d in self.days],
            "missing_days": [d.isoformat() for d in self.missing_days],
            "windows": self.total("windows_count"),
            "rows_in": self.total("rows_in"),
            "history_rows": self.total("history_rows"),
            "gaps": self.gaps(),
            "skipped_files": [s.as_json() for s in self.all_skipped()],
            "dropped_rows": self.dropped(),
            "conflicts": [c for d in self.days for c in d.conflicts],
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @property
    def imported_days(self) -> list[DayResult]:
        return [d for d in self.days if not d.resumed]

    def total(self, attribute: str, *, imported_only: bool = False) -> int:
        days = self.imported_days if imported_only else self.days
        return sum(int(getattr(d, attribute)) for d in days)

    def all_skipped(self) -> list[Skipped]:
        return [*self.skipped, *(s for d in self.days for s in d.skipped)]

    def dropped(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for d in self.days:
            for reason, n in d.dropped.items():
                totals[reason] = totals.get(reason, 0) + n
        return dict(sorted(totals.items()))


def _same_snapshot(a: pd.DataFrame, b: pd.DataFrame, columns: Sequence[str]) -> bool:
    shared = [c for c in columns if c in a.columns and c in b.columns]

    def table(f: pd.DataFrame) -> pa.Table:
        return normalize_table(pa.Table.from_pandas(f[shared], preserve_index=False))

    return len(a) == len(b) and bool(table(a).equals(table(b)))


@dataclass
class _Window:
    key: str
    data: bytes | None  # None: a collected window wins, nothing of ours is written
    rows: int
    # ``data`` as the table `parse_table` reads back from it (what `compact_day` concatenates).
    table: pa.Table | None = None


class _Snapshot:
    """One snapshot of the day: its arrays for the fast path (`spotlake_assets.legacy.snapshots`), and its
    merged frame as `normalise_snapshot` makes it, built only when needed (the day's last snapshot, a
    collected window to compare with, a pair the fast path does not cover)."""

    def __init__(
        self,
        snapshot: Snapshot | None,
        frame: pd.DataFrame | None = None,
        make_frame: Callable[[], Normalised] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self._frame = frame
        self._make_frame = make_frame
        self._tried = snapshot is not None
        self.rows_in = self.unmapped = 0
        self.dropped: list[tuple[str, int]] = []

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> _Snapshot:
        """A previous snapshot read from the lake (its arrays made on first use)."""
        return cls(None, frame)

    @classmethod
    def read(
        cls,
        name: str,
        data: bytes,
        layout: LegacyLayout,
        window: datetime,
        zone_ids: Mapping[str, str] | None,
        encoder: DeltaEncoder,
    ) -> _Snapshot:
        """Parse and normalise one file; `SnapshotRejected` when it cannot be imported."""
        parsed = parse_snapshot_table(name, data, layout)
        if parsed.bad_rows:
            log.warning("%s: rows %s (first ones) dropped: %s", name, parsed.bad_rows, parsed.dropped)

        def normalised() -> Normalised:
            return normalise_snapshot(parsed.to_frame(), layout, window, zone_ids)

        try:
            snapshot = encoder.normalise(parsed.table)
        except NotFast:
            normal = normalised()
            result = cls(None, normal.frame)
            result._tried = True
            result.rows_in, result.unmapped = normal.rows_in, normal.unmapped_zone_names
            result.dropped = [*parsed.dropped.items(), *normal.dropped.items()]
            return result
        result = cls(snapshot, make_frame=normalised)
        result.rows_in, result.unmapped = snapshot.rows_in, snapshot.unmapped_zone_names
        result.dropped = [*parsed.dropped.items(), *snapshot.dropped.items()]
        return result

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            assert self._make_frame is not None
            self._frame = self._make_frame().frame
            self._make_frame = None
        return self._frame

    def arrays(self, encoder: DeltaEncoder) -> Snapshot:
        if not self._tried:
            self._tried = True
            with contextlib.suppress(NotFast):
                self.snapshot = encoder.from_frame(self.frame())
        if self.snapshot is None:
            raise NotFast("no arrays for this snapshot")
        return self.snapshot


def _history_table(
    encoder: DeltaEncoder, previous: _Snapshot | None, current: _Snapshot, window: datetime
) -> pa.Table:
    """The window's history table: ``history_table(compute_delta(previous, current))``, on arrays when the
    pair allows it (`spotlake_assets.legacy.snapshots`), else on the frames."""
    layout = encoder.layout
    try:
        before = None if previous is None else previous.arrays(encoder)
        return encoder.history(before, current.arrays(encoder), window)
    except NotFast:
        frame = None if previous is None else previous.frame()
        changes = compute_delta(
            frame, current.frame(), layout.key_columns, layout.feature_columns, time=window
        )
        return history_table(changes, layout.key_columns)


def _previous_snapshot(lake: LakeResource, provider: str, window: str | None) -> pd.DataFrame | None:
    if window is None:
        return None
    try:
        return read_frame(lake, merged_key(provider, window))
    except LakeKeyNotFound:
        log.warning("%s: no merged snapshot for %s; the next window starts a new series", provider, window)
        return None


def import_day(
    lake: LakeResource,
    source: SnapshotSource,
    layout: LegacyLayout,
    day: date,
    entries: Sequence[tuple[SnapshotName, SnapshotFile]],
    previous_window: str | None,
    *,
    duplicates: Sequence[Skipped] = (),
    zone_ids: Mapping[str, str] | None = None,
    skipped_budget: int | None = None,
    on_step: StepHook = _no_hook,
) -> DayResult:
    """Import one day (module docstring); returns what is also stored as the day's checkpoint."""
    provider = layout.provider
    previous = _previous_snapshot(lake, provider, previous_window)
    day_path = f"{day:%Y/%m/%d}"
    existing_history = {
        k.rsplit("/", 1)[-1].removesuffix(".parquet"): k for k in lake.list_keys(window_prefix(provider, day))
    }
    existing_merged = set(lake.list_keys(f"merged/{provider}/{day_path}/"))
    skipped = list(duplicates)
    dropped: dict[str, int] = {}
    conflicts: list[dict[str, str]] = []
    windows: list[_Window] = []
    encoder = DeltaEncoder(layout, zone_ids)
    last_window = previous_window
    before = None if previous is None else _Snapshot.of_frame(previous)
    last: _Snapshot | None = None
    rows_in = unmapped = 0
    # Phase 1: read and check everything, write nothing.
    for name, file in entries:
        pk = window_key(name.window)
        try:
            current = _Snapshot.read(file.name, source.read(file), layout, name.window, zone_ids, encoder)
        except SnapshotRejected as exc:
            skipped.append(Skipped(file.name, exc.reason))
            continue
        for reason, n in current.dropped:
            dropped[reason] = dropped.get(reason, 0) + n
        rows_in += current.rows_in
        unmapped += current.unmapped
        collected_key = merged_key(provider, pk) if existing_merged else ""
        if collected_key in existing_merged:
            collected = read_frame(lake, collected_key)
            if not _same_snapshot(collected, current.frame(), layout.merged_columns):
                conflicts.append(
                    {"window": pk, "reason": "collected merged snapshot differs; collected kept"}
                )
                windows.append(_Window(pk, None, 0))
                before, last_window, last = _Snapshot.of_frame(collected), pk, None
                continue
        history = _history_table(encoder, before, current, name.window)
        rows = history.num_rows
        table: pa.Table | None = history
        data: bytes | None = table_bytes(history)
        hm = name.window.strftime("%H-%M")
        if hm in existing_history:
            stored = lake.read_bytes(existing_history[hm])
            location = lake.location(existing_history[hm])
            if stored != data and not parse_table(stored, location).equals(table):
                conflicts.append({"window": pk, "reason": "collected history window differs; collected kept"})
                data = table = None
        windows.append(_Window(pk, data, rows, table))
        before, last_window, last = current, pk, current
    if skipped_budget is not None and len(skipped) > skipped_budget:
        shown = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:10])
        raise LegacyImportError(
            f"{provider} {day}: {len(skipped)} files cannot be imported, more than the {skipped_budget} the "
            f"import may still skip (max_skipped_files); nothing of {day} was written. First ones: {shown}"
        )
    on_step(f"read {day}")
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    covered = [datetime.strptime(w.key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) for w in windows]
    covered += [start + timedelta(hours=int(h[:2]), minutes=int(h[3:])) for h in existing_history]
    gaps = tuple(g.as_json() for g in find_gaps(covered, start, start + WINDOWS_PER_DAY * WINDOW))
    ours = any(w.data is not None for w in windows)
    # A day whose every window was collected already (or has no snapshot) has nothing of ours to publish.
    day_file = _write_day(lake, layout, day, windows, existing_history, on_step) if ours else None
    if last is not None and last_window is not None:
        # Already there: written by an earlier attempt (same bytes), or collected: that one is the record.
        with contextlib.suppress(PreconditionFailed):
            lake.write_bytes(
                merged_key(provider, last_window), frame_to_parquet(last.frame()), create_only=True
            )
    on_step(f"merged {day}")
    result = DayResult(
        provider=provider,
        day=day,
        windows=tuple(w.key for w in windows if w.data is not None),
        rows_in=rows_in,
        history_rows=sum(w.rows for w in windows if w.data is not None),
        gaps=gaps,
        skipped=tuple(skipped),
        dropped=dropped,
        conflicts=tuple(conflicts),
        last_window=last_window,
        day_file=day_file,
        unmapped_zone_names=unmapped,
    )
    lake.write_bytes(checkpoint_key(provider, day), result.to_bytes())
    on_step(f"checkpoint {day}")
    return result


def _write_day(
    lake: LakeResource,
    layout: LegacyLayout,
    day: date,
    windows: Sequence[_Window],
    existing_history: Mapping[str, str],
    on_step: StepHook,
) -> str:
    """Phase 2: day file, manifest, window files; returns the day file's key."""
    provider = layout.provider
    # Windows already stored (collected, or ours from an attempt that was killed) as `compact_day` reads them.
    stored = {hm: parse_table(lake.read_bytes(k), lake.location(k)) for hm, k in existing_history.items()}
    for w in windows:
        if w.table is not None:
            stored.setdefault(w.key[-5:].replace(":", "-"), w.table)
    # The day as `compact_day` builds it from the window files, so the live compaction finds this very file.
    tables = [stored[hm] for hm in sorted(stored)]
    merged = sort_history(pa.concat_tables(tables, promote_options="default"), layout.key_columns)
    data = table_bytes(merged)
    digest = hashlib.sha256(data).hexdigest()
    entry = DayEntry(
        day=day.isoformat(),
        key=day_file_key(provider, day, digest[:16]),
        rows=merged.num_rows,
        sha256=digest,
        windows=tuple(sorted(stored)),
    )
    # Named by its content: an existing file is this one.
    with contextlib.suppress(PreconditionFailed):
        lake.write_bytes(entry.key, data, create_only=True)
    on_step(f"day_file {day}")
    for attempt in range(MANIFEST_ATTEMPTS):
        manifest = read_manifest_for_update(lake, provider)
        published = manifest.days.get(entry.day)
        if published is not None and not set(published.windows) <= set(entry.windows):
            raise HistoryConflict(
                f"the manifest lists {provider} {day} windows "
                f"{sorted(set(published.windows) - set(entry.windows))} whose history files are gone"
            )
        try:
            publish_day(lake, manifest, entry)
            break
        except ManifestConflict:
            if attempt == MANIFEST_ATTEMPTS - 1:
                raise
    on_step(f"manifest {day}")
    for w in windows:
        if w.data is None:
            continue
        # Compared in phase 1: an existing object is the same delta, or a collected one that wins.
        with contextlib.suppress(PreconditionFailed):
            lake.write_bytes(history_key(provider, w.key), w.data, create_only=True)
        on_step(f"window {w.key}")
    return entry.key


def import_month(
    lake: LakeResource,
    source: SnapshotSource,
    layout: LegacyLayout,
    month: date,
    *,
    zone_ids: Mapping[str, str] | None = None,
    max_skipped_files: int = 50,
    on_step: StepHook = _no_hook,
) -> MonthReport:
    """Import every day of ``month`` not imported yet, oldest first (module docstring)."""
    provider = layout.provider
    plan = plan_month(source.files(), month)
    report = MonthReport(provider, month, skipped=list(plan.skipped), synthetic=plan.synthetic)
    if plan.synthetic:
        log.warning(
            "%s %s: a synthetic month (not SpotLake's data): its import is labelled simulated",
            provider,
            f"{month:%Y-%m}",
        )
    days = month_days(month)
    previous_window = _window_before(lake, provider, days[0])
    for day in days:
        done = read_day_checkpoint(lake, provider, day)
        if done is None and day not in plan.days and day not in plan.duplicates:
            # Nothing published for this day (yet): no checkpoint, so a later, fuller archive is imported.
            report.missing_days.append(day)
            continue
        if done is None:
            used = len(report.all_skipped())
            done = import_day(
                lake,
                source,
                layout,
                day,
                plan.days.get(day, []),
                previous_window,
                duplicates=plan.duplicates.get(day, []),
                zone_ids=zone_ids,
                skipped_budget=max(0, max_skipped_files - used),
                on_step=on_step,
            )
            log.info(
                "%s %s: %d windows, %d rows, %d gap windows, %d files skipped",
                provider,
                day,
                len(done.windows),
                done.rows_in,
                done.gap_windows,
                len(done.skipped),
            )
        report.days.append(done)
        previous_window = done.last_window
    lake.write_bytes(month_record_key(provider, month), report.to_bytes())
    return report


def _window_before(
    lake: LakeResource, provider: str, first_day: date, look_back_days: int = 31
) -> str | None:
    """The last imported window before ``first_day`` (a previous month's import), or None."""
    for back in range(1, look_back_days + 1):
        done = read_day_checkpoint(lake, provider, first_day - timedelta(days=back))
        if done is not None:
            return done.last_window
    return None


def month_record_key(provider: str, month: date) -> str:
    return f"state/legacy/{provider}/{month:%Y/%m}/month.json"
