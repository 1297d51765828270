"""Metadata every asset reports, and the asset checks shared by providers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.storage.frames import write_frame
from spotlake_assets.storage.lake import LakeResource


def run_metadata(
    watch: Stopwatch,
    *,
    rows: int,
    api_calls: int,
    simulated: bool,
    location: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "rows": dg.MetadataValue.int(rows),
        "duration_s": dg.MetadataValue.float(watch.seconds()),
        "peak_rss_mib": dg.MetadataValue.float(watch.peak_rss_mib()),
        "api_calls": dg.MetadataValue.int(api_calls),
        "simulated": dg.MetadataValue.bool(simulated),
    }
    if location is not None:
        metadata["location"] = dg.MetadataValue.path(location)
    metadata.update(extra)
    return metadata


def unique_keys_check(
    frame: pd.DataFrame, keys: Sequence[str], name: str = "unique_keys"
) -> dg.AssetCheckResult:
    duplicated = frame.duplicated(list(keys), keep=False)
    examples = frame.loc[duplicated, list(keys)].head(5).to_dict("records")
    return dg.AssetCheckResult(
        check_name=name,
        passed=not bool(duplicated.any()),
        metadata={"duplicate_rows": int(duplicated.sum()), "examples": str(examples)},
    )


def range_check(
    frame: pd.DataFrame, column: str, low: int, high: int, name: str, allowed: Sequence[int] = ()
) -> dg.AssetCheckResult:
    values = frame[column]
    bad = ~(values.between(low, high) | values.isin(list(allowed)))
    return dg.AssetCheckResult(
        check_name=name,
        passed=not bool(bad.any()),
        metadata={"out_of_range": int(bad.sum()), "examples": str(values[bad].head(5).tolist())},
    )


def regions_check(
    failed: Mapping[str, str], attempted: int, name: str = "all_regions_collected"
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failed,
        metadata={
            "regions_attempted": attempted,
            "regions_failed": len(failed),
            "failures": dg.MetadataValue.json(dict(sorted(failed.items()))),
        },
    )


def skip_unobserved(
    context: dg.AssetExecutionContext, asset_key: dg.AssetKey, check_names: Sequence[str], reason: str
) -> Iterator[dg.AssetObservation | dg.AssetCheckResult]:
    """Events of a collector that declines a window it cannot observe (a backfill of a "now"-only API).

    Nothing is materialized, so downstream steps of the run are skipped rather than fed invented data;
    the reason lands in the run log, on an observation, and on each check (as a warning).
    """
    context.log.warning("%s %s skipped: %s", asset_key.to_user_string(), context.partition_key, reason)
    yield dg.AssetObservation(
        asset_key=asset_key, partition=context.partition_key, metadata={"skipped": True, "reason": reason}
    )
    for name in check_names:
        yield dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=name,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"skipped": True, "reason": reason},
        )


def write_if_guarded(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    key: str,
    frame: pd.DataFrame,
    guards: list[dg.AssetCheckResult],
) -> bool:
    """Write ``frame`` only when every blocking guard passed. A frame that failed one must not reach the
    lake either: the lake sensor and the next window's merge and delta read what is there."""
    failed = [str(g.check_name) for g in guards if not g.passed]
    if failed:
        context.log.error("%s not written: blocking checks failed: %s", lake.location(key), ", ".join(failed))
        return False
    write_frame(lake, key, frame)
    return True
