"""Metadata every asset reports, and the asset checks shared by providers."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.storage.frame_types import FrameType
from spotlake_assets.storage.frames import write_frame
from spotlake_assets.storage.lake import LakeResource

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd


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
    context.log.warning(
        "%s %s skipped (a real cloud cannot observe the past): %s",
        asset_key.to_user_string(),
        context.partition_key,
        reason,
    )
    yield dg.AssetObservation(
        asset_key=asset_key,
        partition=context.partition_key,
        metadata={
            "skipped": True,
            "replay": "skipped: the real API cannot observe a past window",
            "reason": reason,
        },
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
    frame_type: FrameType | None = None,
) -> bool:
    """Write ``frame`` only when every blocking guard passed (and it satisfies ``frame_type``). A frame that
    failed one must not reach the lake either: the lake sensor and the next window's merge and delta read
    what is there."""
    failed = [str(g.check_name) for g in guards if not g.passed]
    if failed:
        context.log.error("%s not written: blocking checks failed: %s", lake.location(key), ", ".join(failed))
        return False
    write_frame(lake, key, frame, frame_type=frame_type)
    return True


# One run of the merge chain may cover a range of windows: a backfill with `BackfillPolicy.single_run()`
# (asset backfill from the Catalog, or the merge job's Partitions tab). Each window is still processed on its
# own, oldest first, because each one reads the window before it.
MERGE_CHAIN_BACKFILL_POLICY = dg.BackfillPolicy.single_run()


@dataclass(frozen=True)
class WindowResult:
    """What an asset of the merge chain reports for one window."""

    metadata: Mapping[str, Any]
    checks: Sequence[dg.AssetCheckResult] = ()


def run_windows(context: dg.AssetExecutionContext) -> list[str]:
    """The windows of this run, oldest first: one for a window run, several for a single-run backfill."""
    return sorted(context.partition_keys)


def _plain(value: Any) -> Any:
    raw = value.value if isinstance(value, dg.MetadataValue) else value
    return raw if isinstance(raw, bool | int | float | str) else str(raw)


def materialize_windows(
    context: dg.AssetExecutionContext,
    one_window: Callable[[str], WindowResult],
    blocking: Collection[str] = (),
) -> dg.MaterializeResult[None]:
    """``one_window`` for each window of the run, oldest first, as one materialization.

    A single window reports its own metadata and checks unchanged. A range reports the windows' figures
    summed and listed (``per_window``) and each check passed only if it passed for every window; a window
    whose ``blocking`` check fails stops the range there (later windows would read its missing output), with
    the windows before it already written, so a rerun of the range is safe (every write is idempotent).
    """
    windows = run_windows(context)
    if len(windows) == 1:
        only = one_window(windows[0])
        return dg.MaterializeResult(metadata=dict(only.metadata), check_results=list(only.checks))
    watch = Stopwatch()
    done: list[tuple[str, WindowResult]] = []
    for window in windows:
        result = one_window(window)
        failed = sorted(str(c.check_name) for c in result.checks if not c.passed and c.check_name in blocking)
        if failed:
            raise dg.Failure(
                description=(
                    f"{window}: blocking checks failed ({', '.join(failed)}); the range stops here, "
                    f"{len(done)} earlier window(s) were written"
                ),
                metadata={"window": window, "failed_checks": ", ".join(failed), "windows_done": len(done)},
            )
        context.log.info(
            "%s: window %s done (%s rows)",
            context.asset_key.to_user_string(),
            window,
            _plain(result.metadata.get("rows", 0)),
        )
        done.append((window, result))
    per_window = [{"window": w, **{k: _plain(v) for k, v in r.metadata.items()}} for w, r in done]
    first = done[0][1].metadata
    metadata: dict[str, Any] = {
        "rows": dg.MetadataValue.int(sum(int(_plain(r.metadata.get("rows", 0))) for _, r in done)),
        "windows": dg.MetadataValue.int(len(done)),
        "first_window": windows[0],
        "last_window": windows[-1],
        "duration_s": dg.MetadataValue.float(watch.seconds()),
        "peak_rss_mib": dg.MetadataValue.float(watch.peak_rss_mib()),
        "api_calls": dg.MetadataValue.int(sum(int(_plain(r.metadata.get("api_calls", 0))) for _, r in done)),
        "per_window": dg.MetadataValue.json(per_window),
    }
    if "simulated" in first:
        metadata["simulated"] = first["simulated"]
    return dg.MaterializeResult(metadata=metadata, check_results=_combined_checks(done))


def _combined_checks(done: Sequence[tuple[str, WindowResult]]) -> list[dg.AssetCheckResult]:
    by_name: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for window, result in done:
        for check in result.checks:
            by_name.setdefault(str(check.check_name), []).append((window, check))
    combined = []
    for name, results in by_name.items():
        failed = [w for w, c in results if not c.passed]
        combined.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not failed,
                severity=results[0][1].severity,
                metadata={"windows": len(results), "failed_windows": ", ".join(failed)},
            )
        )
    return combined
