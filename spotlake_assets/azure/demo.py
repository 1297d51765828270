"""Lines for `make demo`'s Azure summary, from the metadata the Azure assets report (pure; no printing here).

The demo runs ``azure_daily_job`` for the day and ``azure_window_job`` per window exactly as it runs the AWS
jobs, collects each run's materialization metadata by asset key, and prints these lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spotlake_assets.domain.summary import Metadata
from spotlake_assets.domain.summary import metadata_value as _value


def azure_summary_lines(
    daily: Mapping[str, Metadata], windows: Sequence[tuple[str, Mapping[str, Metadata]]]
) -> list[str]:
    """The workload line, then one line per window: desired count, rows, changes, calls and budget."""
    workload = daily.get("azure/workload", {})
    lines = [
        f"  azure workload: {_value(workload, 'requests')} SPS requests for {_value(workload, 'pairs')} "
        f"(region, size) pairs (lower bound {_value(workload, 'lower_bound')}, gap "
        f"{float(_value(workload, 'optimality_gap', 0.0)):.1%}), {_value(workload, 'sps_locations')} calling "
        f"locations x {_value(workload, 'subscriptions')} subscriptions, solved in "
        f"{float(_value(workload, 'solve_seconds', 0.0)):.2f}s",
        "  window            count  sps rows  merged rows  changed  removed  calls  resumed  budget used/left"
        "  quarantined  uncovered",
    ]
    for key, assets in windows:
        sps, merged, delta = (assets.get(f"azure/{n}", {}) for n in ("sps", "merged", "delta"))
        cells = [
            f"{_value(sps, 'desired_count'):>5}",
            f"{_value(sps, 'rows'):>8}",
            f"{_value(merged, 'rows'):>11}",
            f"{_value(delta, 'changed_rows'):>7}",
            f"{_value(delta, 'removed_rows'):>7}",
            f"{_value(sps, 'api_calls'):>5}",
            f"{_value(sps, 'batches_resumed'):>7}",
            f"{_value(sps, 'budget_used'):>7}/{_value(sps, 'budget_calls_left'):<7}",
            f"{_value(sps, 'budget_quarantined'):>11}",
            f"{_value(sps, 'uncovered_requests'):>9}",
        ]
        lines.append(f"  {key}  " + "  ".join(cells))
    return lines
