"""One run over a range of windows (a single-run backfill of the merge chain): each window in order, one
materialization of the range, and a blocking failure that stops the range at its window."""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.
import dagster as dg

from spotlake_assets.orchestration.partitions import collection_partitions
from spotlake_assets.orchestration.reporting import (
    MERGE_CHAIN_BACKFILL_POLICY,
    WindowResult,
    materialize_windows,
)

RANGE = ["2026-03-01-00:00", "2026-03-01-00:10", "2026-03-01-00:20"]
RANGE_TAGS = {"dagster/asset_partition_range_start": RANGE[0], "dagster/asset_partition_range_end": RANGE[-1]}


def _windowed_asset(seen: list[str], bad: str | None = None) -> dg.AssetsDefinition:
    @dg.asset(
        key=["gcp", "merged"],
        partitions_def=collection_partitions,
        backfill_policy=MERGE_CHAIN_BACKFILL_POLICY,
        check_specs=[dg.AssetCheckSpec("unique_keys", asset=["gcp", "merged"], blocking=True)],
    )
    def windowed(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        def one_window(pk: str) -> WindowResult:
            seen.append(pk)
            check = dg.AssetCheckResult(check_name="unique_keys", passed=pk != bad)
            return WindowResult(metadata={"rows": 10, "api_calls": 1, "simulated": True}, checks=[check])

        return materialize_windows(context, one_window, blocking={"unique_keys"})

    return windowed


def test_a_range_is_one_materialization_of_every_window_in_order() -> None:
    seen: list[str] = []
    result = dg.materialize([_windowed_asset(seen)], tags=RANGE_TAGS)
    assert result.success and seen == RANGE
    events = result.get_asset_materialization_events()
    assert sorted(str(e.partition) for e in events) == RANGE
    metadata = events[0].materialization.metadata
    assert (
        metadata["windows"].value == 3 and metadata["rows"].value == 30 and metadata["api_calls"].value == 3
    )
    per_window: list[dict[str, object]] = metadata["per_window"].value  # type: ignore[assignment]
    assert [w["window"] for w in per_window] == RANGE
    (check,) = result.get_asset_check_evaluations()
    assert check.passed


def test_a_failed_blocking_check_stops_the_range_at_that_window() -> None:
    seen: list[str] = []
    result = dg.materialize([_windowed_asset(seen, bad=RANGE[1])], tags=RANGE_TAGS, raise_on_error=False)
    assert not result.success and seen == RANGE[:2]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "2026-03-01-00:10: blocking checks failed (unique_keys)" in str(failure.step_failure_data.error)
