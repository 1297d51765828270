"""The part of every provider's pipeline that is identical: merged snapshot → delta → sinks.

Provider packages build their own collectors and `merged` asset; this factory adds, for a provider:
- `<provider>/delta`: rows new or changed since the previous window, plus `Ceased` rows;
- `history/<provider>`: the delta of each window as one Parquet object (the local history sink);
- `latest/<provider>`: `latest_data/latest_<provider>.json`, SpotLake's record layout, newest window only.
"""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from spotlake_assets.core.delta import compute_delta
from spotlake_assets.core.metrics import Stopwatch
from spotlake_assets.core.partitions import collection_partitions
from spotlake_assets.core.reporting import run_metadata, unique_keys_check
from spotlake_assets.core.windows import previous_window_key, window_start
from spotlake_assets.lake.errors import LakeKeyNotFound, PreconditionFailed
from spotlake_assets.lake.frames import read_frame, write_frame
from spotlake_assets.lake.keys import delta_key, history_key, latest_key, merged_key
from spotlake_assets.lake.resources import LakeResource

log = logging.getLogger(__name__)

LATEST_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class ProviderSpec:
    provider: str
    key_columns: tuple[str, ...]
    feature_columns: tuple[str, ...]
    # The resource whose `simulated` flag labels this provider's data.
    api_resource_key: str


class HistoryConflict(RuntimeError):
    """A window's history object exists with other content: history is append-only."""


def read_previous_merged(lake: LakeResource, provider: str, partition_key: str) -> pd.DataFrame | None:
    """The previous window's merged snapshot, or None (logged) when this is the first window."""
    key = merged_key(provider, previous_window_key(partition_key))
    try:
        return read_frame(lake, key)
    except LakeKeyNotFound:
        log.warning(
            "%s %s: no previous merged snapshot at %s; treating as the first window",
            provider,
            partition_key,
            lake.location(key),
        )
        return None


def latest_records_json(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    out["Time"] = pd.to_datetime(out["Time"], utc=True).dt.strftime(LATEST_TIME_FORMAT)
    return json.dumps(out.to_dict(orient="records"), separators=(",", ":")).encode()


def latest_time(data: bytes) -> pd.Timestamp | None:
    records = json.loads(data)
    if not records:
        return None
    return pd.Timestamp(records[0]["Time"], tz="UTC")


def build_change_assets(spec: ProviderSpec) -> Sequence[dg.AssetsDefinition]:
    provider = spec.provider
    merged = dg.AssetKey([provider, "merged"])
    delta_asset_key = dg.AssetKey([provider, "delta"])
    history_asset_key = dg.AssetKey(["history", provider])

    @dg.asset(
        key=delta_asset_key,
        group_name=provider,
        partitions_def=collection_partitions,
        deps=[merged],
        kinds={"pandas", "parquet"},
        required_resource_keys={"lake", spec.api_resource_key},
        description=(
            f"{provider} rows new or changed since the previous window (features: "
            f"{', '.join(spec.feature_columns)}), plus rows that disappeared, zeroed with Ceased=True. "
            "Idempotent: a pure function of two merged snapshots, written to a deterministic key."
        ),
        check_specs=[dg.AssetCheckSpec("unique_keys", asset=delta_asset_key)],
    )
    def delta(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        watch = Stopwatch()
        lake: LakeResource = context.resources.lake
        current = read_frame(lake, merged_key(provider, context.partition_key))
        previous = read_previous_merged(lake, provider, context.partition_key)
        changes = compute_delta(previous, current, spec.key_columns, spec.feature_columns)
        key = delta_key(provider, context.partition_key)
        write_frame(lake, key, changes)
        ceased = int(changes["Ceased"].sum())
        return dg.MaterializeResult(
            metadata=run_metadata(
                watch,
                rows=len(changes),
                api_calls=0,
                simulated=getattr(context.resources, spec.api_resource_key).simulated,
                location=lake.location(key),
                changed_rows=len(changes) - ceased,
                removed_rows=ceased,
                first_window=previous is None,
            ),
            check_results=[unique_keys_check(changes, spec.key_columns)],
        )

    @dg.asset(
        key=history_asset_key,
        group_name=provider,
        partitions_def=collection_partitions,
        deps=[delta_asset_key],
        kinds={"parquet"},
        required_resource_keys={"lake", spec.api_resource_key},
        description=(
            f"Local history sink: each window's {provider} delta as one Parquet object. Idempotent: a "
            "create-only write under a deterministic key; a rerun with identical rows is a no-op, and "
            "different rows for a written window fail loudly instead of rewriting history."
        ),
    )
    def history(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        watch = Stopwatch()
        lake: LakeResource = context.resources.lake
        changes = read_frame(lake, delta_key(provider, context.partition_key))
        key = history_key(provider, context.partition_key)
        status = "written"
        try:
            write_frame(lake, key, changes, create_only=True)
        except PreconditionFailed:
            existing = read_frame(lake, key)
            if not existing.reset_index(drop=True).equals(changes.reset_index(drop=True)):
                raise HistoryConflict(
                    f"{lake.location(key)} already holds a different delta for {context.partition_key};"
                    " history is append-only (delete the object deliberately to rewrite it)"
                ) from None
            status = "already written (identical)"
        return dg.MaterializeResult(
            metadata=run_metadata(
                watch,
                rows=len(changes),
                api_calls=0,
                simulated=getattr(context.resources, spec.api_resource_key).simulated,
                location=lake.location(key),
                status=status,
            )
        )

    @dg.asset(
        key=dg.AssetKey(["latest", provider]),
        group_name=provider,
        partitions_def=collection_partitions,
        deps=[merged, history_asset_key],
        kinds={"json"},
        required_resource_keys={"lake", spec.api_resource_key},
        description=(
            f"latest_data/latest_{provider}.json: the newest merged {provider} snapshot in SpotLake's record "
            "layout, replaced atomically after the history sink. A backfill of an older window never "
            "replaces a newer one (compare-and-swap on the object's ETag)."
        ),
    )
    def latest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        watch = Stopwatch()
        lake: LakeResource = context.resources.lake
        snapshot = read_frame(lake, merged_key(provider, context.partition_key))
        key = latest_key(provider)
        this_window = pd.Timestamp(window_start(context.partition_key))
        head = lake.head(key)
        status = "replaced"
        if head is not None:
            held = latest_time(lake.read_bytes(key))
            if held is not None and held > this_window:
                status = f"kept newer window {held.isoformat()}"
        if status == "replaced":
            data = latest_records_json(snapshot)
            try:
                if head is None:
                    lake.write_bytes(key, data, create_only=True)
                else:
                    lake.write_bytes(key, data, if_match=head.etag)
            except PreconditionFailed as exc:
                raise RuntimeError(
                    f"{lake.location(key)} changed while {context.partition_key} was being published;"
                    " retry the run to re-evaluate which window is newest"
                ) from exc
        return dg.MaterializeResult(
            metadata=run_metadata(
                watch,
                rows=len(snapshot),
                api_calls=0,
                simulated=getattr(context.resources, spec.api_resource_key).simulated,
                location=lake.location(key),
                status=status,
            )
        )

    return [delta, history, latest]
