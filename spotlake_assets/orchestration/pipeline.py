"""The part of every provider's pipeline that is identical: merged snapshot → delta → sinks.

`orchestration/provider.build_provider` calls it with the spec's `ChangeSpec`; it adds, for a provider:
- `<provider>/delta`: rows new or changed since the previous window, plus `Ceased` rows;
- `<provider>/history`: the delta of each window as one create-only Parquet object (the open history);
- `<provider>/timestream`: the delta as Timestream multi-measure records (upserted by a deterministic
  Version, rejections reported and checked);
- `<provider>/latest`: `latest_data/latest_<provider>.json`, written after both sinks, newest window only;
- `<provider>/history_daily`: a day's history compacted into one file and published in the manifest.
"""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from spotlake_assets.domain.windows import DAY_KEY_FORMAT, WINDOW, previous_window_key, window_start
from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.orchestration.partitions import PARTITIONS_START, collection_partitions
from spotlake_assets.orchestration.plots import change_share
from spotlake_assets.orchestration.reporting import (
    MERGE_CHAIN_BACKFILL_POLICY,
    WindowResult,
    materialize_windows,
    run_metadata,
    unique_keys_check,
)
from spotlake_assets.sinks.timestream import TimestreamSink, WriteReport
from spotlake_assets.storage.errors import CorruptLakeFile, LakeKeyNotFound
from spotlake_assets.storage.frame_types import FrameType
from spotlake_assets.storage.frames import Required, read_frame, write_frame
from spotlake_assets.storage.keys import delta_key, latest_key, merged_key
from spotlake_assets.storage.lake import LakeResource

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd

    from spotlake_assets.sinks.records import TimestreamMapping

log = logging.getLogger(__name__)

__all__ = [
    "ChangeSpec",
    "PreviousState",
    "build_change_assets",
    "read_previous_merged",
    "read_previous_state",
]

WINDOWS_PER_DAY = 24 * 60 // int(WINDOW.total_seconds() // 60)
# Rejections listed one by one in metadata; the reason counts always cover all of them.
MAX_LISTED_REJECTIONS = 200

# `on_cron` without its "every dependency updated since the tick" part: the windows of a closed day were all
# written before 00:30, so that part would never hold and the day would never be compacted.
# Typed loosely: dagster's stubs disagree on the key type of these two builtins.
_LATEST_DAY: dg.AutomationCondition[Any] = dg.AutomationCondition.in_latest_time_window()
_TICK: dg.AutomationCondition[Any] = dg.AutomationCondition.cron_tick_passed("30 0 * * *", "UTC")
COMPACTION_CONDITION = (_LATEST_DAY & _TICK.since_last_handled()).with_label(
    "on_cron(30 0 * * *, UTC), closed day"
)

# Compaction runs on closed days only (no end_offset): a day still collecting would be compacted twice.
history_day_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START[:10], fmt=DAY_KEY_FORMAT, timezone="UTC"
)


@dataclass(frozen=True)
class ChangeSpec:
    """What delta and the sinks read of a provider's contract (`orchestration/provider.ProviderSpec`)."""

    provider: str
    key_columns: tuple[str, ...]
    feature_columns: tuple[str, ...]
    # The resource whose `simulated` flag labels this provider's data.
    api_resource_key: str
    # How the delta maps onto the provider's Timestream table; None: `default_mapping` (SpotLake's for AWS).
    timestream: "TimestreamMapping | None" = None
    # The provider's declared merged and delta frames (`<p>/frames.py`): every read and write of them is
    # checked (and a snapshot from before a column existed is filled, `FrameType.legacy`); None: unchecked.
    merged_frame: FrameType | None = None
    delta_frame: FrameType | None = None

    @property
    def merged_required(self) -> Required:
        return self.merged_frame if self.merged_frame is not None else ()

    @property
    def delta_required(self) -> Required:
        return self.delta_frame if self.delta_frame is not None else ()

    def timestream_mapping(self) -> "TimestreamMapping":
        from spotlake_assets.sinks.records import default_mapping

        if self.timestream is not None:
            return self.timestream
        return default_mapping(self.provider, self.key_columns, self.feature_columns)


@dataclass(frozen=True)
class PreviousState:
    """The previous window's merged snapshot, or why there is none (then this is a first window)."""

    frame: "pd.DataFrame | None"
    first_window_reason: str | None


def read_previous_state(
    lake: LakeResource, provider: str, partition_key: str, required: Required = ()
) -> PreviousState:
    """The previous merged snapshot (checked against ``required``); a missing or unreadable one is an
    explicit, logged first window."""
    key = merged_key(provider, previous_window_key(partition_key))
    try:
        return PreviousState(read_frame(lake, key, required), None)
    except LakeKeyNotFound:
        reason = f"no previous merged snapshot at {lake.location(key)}"
        log.warning(
            "%s %s: %s; treating as the first window (every row is new)", provider, partition_key, reason
        )
    except CorruptLakeFile as exc:
        reason = f"previous merged snapshot unreadable: {exc}"
        log.error(
            "%s %s: %s; treating as the first window (every row is new)", provider, partition_key, reason
        )
    return PreviousState(None, reason)


def read_previous_merged(
    lake: LakeResource, provider: str, partition_key: str, required: Required = ()
) -> "pd.DataFrame | None":
    """The previous window's merged snapshot (checked against ``required``), or None (logged) when this is
    the first window."""
    key = merged_key(provider, previous_window_key(partition_key))
    try:
        return read_frame(lake, key, required)
    except LakeKeyNotFound:
        log.warning(
            "%s %s: no previous merged snapshot at %s; treating as the first window",
            provider,
            partition_key,
            lake.location(key),
        )
        return None


class TimestreamConfig(dg.Config):
    # Bump to overwrite a window already in Timestream with corrected values (a higher Version wins).
    revision: int = 0


def _simulated(context: dg.AssetExecutionContext, spec: ChangeSpec) -> bool:
    return bool(getattr(context.resources, spec.api_resource_key).simulated)


def _timestream_check(report: WriteReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="no_rejected_records",
        passed=not report.rejected,
        metadata={
            "rejected": len(report.rejected),
            "reasons": dg.MetadataValue.json(report.reasons()),
            "target": report.target,
        },
    )


def build_change_assets(spec: ChangeSpec) -> Sequence[dg.AssetsDefinition]:
    provider = spec.provider
    merged = dg.AssetKey([provider, "merged"])
    delta_asset_key = dg.AssetKey([provider, "delta"])
    # Keyed under the provider so every node of a group graph has its own label (the UI shows the last key
    # part); the lake paths (storage/keys.py, sinks/history.py) stay history/<p>/…, history_daily/<p>/….
    history_asset_key = dg.AssetKey([provider, "history"])
    timestream_asset_key = dg.AssetKey([provider, "timestream"])
    latest_asset_key = dg.AssetKey([provider, "latest"])
    daily_asset_key = dg.AssetKey([provider, "history_daily"])
    mapping = spec.timestream_mapping()

    @dg.asset(
        key=delta_asset_key,
        group_name=provider,
        partitions_def=collection_partitions,
        # One merge-chain step at a time per provider across runs: each delta reads the previous window.
        pool=f"{provider}_merge",
        backfill_policy=MERGE_CHAIN_BACKFILL_POLICY,
        deps=[merged],
        kinds={"pandas", "parquet"},
        required_resource_keys={"lake", spec.api_resource_key},
        description=(
            f"{provider} rows new or changed since the previous window (features: "
            f"{', '.join(spec.feature_columns)}), plus rows that disappeared, zeroed with Ceased=True. "
            "A missing or unreadable previous snapshot is an explicit first window (logged, in metadata). "
            "Idempotent: a pure function of two merged snapshots, written to a deterministic key."
        ),
        # Blocking: duplicated keys would publish two versions of one pool in the same window.
        check_specs=[
            dg.AssetCheckSpec(
                "unique_keys",
                asset=delta_asset_key,
                blocking=True,
                description="One row per pool in the delta; blocking: the sinks do not publish otherwise.",
            )
        ],
    )
    def delta(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake

        def one_window(pk: str) -> WindowResult:
            from spotlake_assets.domain.delta import compute_delta

            watch = Stopwatch()
            current = read_frame(lake, merged_key(provider, pk), spec.merged_required)
            previous = read_previous_state(lake, provider, pk, spec.merged_required)
            changes = compute_delta(
                previous.frame, current, spec.key_columns, spec.feature_columns, time=window_start(pk)
            )
            key = delta_key(provider, pk)
            write_frame(lake, key, changes, frame_type=spec.delta_frame)
            ceased = int(changes["Ceased"].sum())
            return WindowResult(
                metadata=run_metadata(
                    watch,
                    rows=len(changes),
                    api_calls=0,
                    simulated=_simulated(context, spec),
                    location=lake.location(key),
                    changed_rows=len(changes) - ceased,
                    removed_rows=ceased,
                    first_window=previous.frame is None,
                    first_window_reason=previous.first_window_reason or "",
                )
                # Drawn after the figures are taken: plotting is not counted in duration or peak RSS.
                | {
                    "plot_changed_share": change_share(
                        len(changes) - ceased, ceased, len(current) + ceased, f"{provider}/delta {pk}"
                    )
                },
                checks=[unique_keys_check(changes, spec.key_columns)],
            )

        return materialize_windows(context, one_window, blocking={"unique_keys"})

    @dg.asset(
        key=history_asset_key,
        group_name=provider,
        partitions_def=collection_partitions,
        # One merge-chain step at a time per provider across runs: each delta reads the previous window.
        pool=f"{provider}_merge",
        backfill_policy=MERGE_CHAIN_BACKFILL_POLICY,
        deps=[delta_asset_key],
        kinds={"parquet"},
        required_resource_keys={"lake", spec.api_resource_key},
        description=(
            f"The open history: each window's {provider} delta as one Parquet object "
            f"(history/{provider}/YYYY/MM/DD/HH-MM.parquet, zstd, sorted by key then time). Idempotent: a "
            "create-only write under a deterministic key; a rerun with identical rows is a no-op, and "
            "different rows for a written window fail loudly instead of rewriting history."
        ),
    )
    def history(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake

        def one_window(pk: str) -> WindowResult:
            from spotlake_assets.sinks.history import write_window_history

            watch = Stopwatch()
            changes = read_frame(lake, delta_key(provider, pk), spec.delta_required)
            written = write_window_history(lake, provider, pk, changes, spec.key_columns)
            return WindowResult(
                metadata=run_metadata(
                    watch,
                    rows=written.rows,
                    api_calls=0,
                    simulated=_simulated(context, spec),
                    location=lake.location(written.key),
                    status=written.status,
                )
            )

        return materialize_windows(context, one_window)

    @dg.asset(
        key=timestream_asset_key,
        group_name=provider,
        partitions_def=collection_partitions,
        # One merge-chain step at a time per provider across runs: each delta reads the previous window.
        pool=f"{provider}_merge",
        backfill_policy=MERGE_CHAIN_BACKFILL_POLICY,
        deps=[delta_asset_key],
        kinds={"timestream"},
        required_resource_keys={"lake", "timestream", spec.api_resource_key},
        description=(
            f"The window's {provider} delta in Timestream table {mapping.table!r} (SpotLake-compatible "
            f"MULTI measure {mapping.measure_name!r}; dimensions {', '.join(mapping.dimensions)}), at most "
            "100 records per WriteRecords, parallel writers, time = window start. Idempotent: every record "
            "carries a Version derived from the partition (plus `revision`), so a rerun upserts. Rejected "
            "records are listed with their reasons and fail the blocking check, so latest is not updated."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "no_rejected_records",
                asset=timestream_asset_key,
                blocking=True,
                description="Timestream rejected none of the window's records; blocking: latest waits.",
            )
        ],
    )
    def timestream(context: dg.AssetExecutionContext, config: TimestreamConfig) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake
        sink: TimestreamSink = context.resources.timestream

        def one_window(pk: str) -> WindowResult:
            from spotlake_assets.sinks.records import build_records, window_version

            watch = Stopwatch()
            changes = read_frame(lake, delta_key(provider, pk), spec.delta_required)
            version = window_version(pk, config.revision)
            report = sink.write(build_records(changes, mapping, window_start(pk), version))
            return WindowResult(
                metadata=run_metadata(
                    watch,
                    rows=len(changes),
                    api_calls=report.calls,
                    simulated=_simulated(context, spec),
                    target=report.target,
                    local_sink=sink.local,
                    version=version,
                    records_ingested=report.ingested,
                    records_resent=report.resent,
                    records_rejected=len(report.rejected),
                    rejection_reasons=dg.MetadataValue.json(report.reasons()),
                    rejected_records=dg.MetadataValue.json(
                        [r.as_metadata() for r in report.rejected[:MAX_LISTED_REJECTIONS]]
                    ),
                ),
                checks=[_timestream_check(report)],
            )

        # Blocking in a range too: latest must not move past a window whose records were rejected.
        return materialize_windows(context, one_window, blocking={"no_rejected_records"})

    @dg.asset(
        key=latest_asset_key,
        group_name=provider,
        partitions_def=collection_partitions,
        # One merge-chain step at a time per provider across runs: each delta reads the previous window.
        pool=f"{provider}_merge",
        backfill_policy=MERGE_CHAIN_BACKFILL_POLICY,
        deps=[merged, history_asset_key, timestream_asset_key],
        kinds={"json"},
        required_resource_keys={"lake", spec.api_resource_key},
        description=(
            f"latest_data/latest_{provider}.json: the newest merged {provider} snapshot in SpotLake's record "
            "layout, replaced atomically once the history and Timestream sinks succeeded. A backfill of an "
            "older window never replaces a newer one (compare-and-swap on the object's ETag)."
        ),
    )
    def latest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake

        def one_window(pk: str) -> WindowResult:
            from spotlake_assets.sinks.latest import publish_latest

            watch = Stopwatch()
            snapshot = read_frame(lake, merged_key(provider, pk), spec.merged_required)
            written = publish_latest(lake, provider, window_start(pk), snapshot, f"{provider} {pk}")
            return WindowResult(
                metadata=run_metadata(
                    watch,
                    rows=len(snapshot),
                    api_calls=0,
                    simulated=_simulated(context, spec),
                    location=lake.location(latest_key(provider)),
                    status=written.status,
                )
            )

        return materialize_windows(context, one_window)

    @dg.asset(
        key=daily_asset_key,
        group_name=provider,
        partitions_def=history_day_partitions,
        kinds={"parquet"},
        required_resource_keys={"lake", spec.api_resource_key},
        # Its lineage: a day reads that day's 144 history windows. The jobs of the merge chain select the
        # window assets only (`provider.build_provider`), since one job cannot mix partitionings.
        deps=[history_asset_key],
        automation_condition=COMPACTION_CONDITION,
        description=(
            f"A closed day of {provider} history (every history/{provider}/YYYY/MM/DD/*.parquet window) "
            "compacted into one content-named file, then published in "
            f"history_daily/{provider}/manifest.json by compare-and-swap, so readers see a whole day or "
            "none. Idempotent: the file is create-only under its digest, and an entry already published is "
            "not rewritten; a late window makes a rerun publish a new file."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "day_complete",
                asset=daily_asset_key,
                description=f"The compacted day holds all {WINDOWS_PER_DAY} windows (WARN otherwise).",
            )
        ],
    )
    def history_daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from spotlake_assets.sinks.history import compact_day

        watch = Stopwatch()
        lake: LakeResource = context.resources.lake
        done = compact_day(lake, provider, context.partition_key, spec.key_columns)
        windows = len(done.entry.windows)
        return dg.MaterializeResult(
            metadata=run_metadata(
                watch,
                rows=done.entry.rows,
                api_calls=0,
                simulated=_simulated(context, spec),
                location=lake.location(done.entry.key),
                windows=windows,
                file_status=done.file_status,
                manifest_status=done.manifest_status,
                manifest_attempts=done.manifest_attempts,
                input_bytes=done.input_bytes,
                output_bytes=done.output_bytes,
            ),
            check_results=[
                dg.AssetCheckResult(
                    check_name="day_complete",
                    passed=windows == WINDOWS_PER_DAY,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"windows": windows, "expected": WINDOWS_PER_DAY},
                )
            ],
        )

    return [delta, history, timestream, latest, history_daily]
