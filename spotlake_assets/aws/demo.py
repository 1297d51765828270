"""Lines for `make demo`'s AWS summary, from the metadata the AWS assets report (pure; no printing here).

The demo runs ``aws_daily_job`` for the day and ``aws_window_job`` per window, collects each run's
materialization metadata by asset key, and prints these lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spotlake_assets.domain.summary import Metadata, metadata_value

LADDER_NOTE = (
    "  (changed counts are high until the T2/T3 ladder has seen one whole capacity cycle of 11 windows;"
    " 'resumed' groups came from checkpoints, so a rerun spends no quota)"
)


def aws_summary_lines(
    daily: Mapping[str, Metadata], windows: Sequence[tuple[str, Mapping[str, Metadata]]]
) -> list[str]:
    """The workload and on-demand lines, then one line per window: capacity, rows, changes, quota."""
    workload, ondemand = daily.get("aws/workload", {}), daily.get("aws/ondemand_price", {})
    lines = [
        f"  aws workload: {metadata_value(workload, 'queries')} SPS queries (lower bound "
        f"{metadata_value(workload, 'lower_bound')}), {metadata_value(workload, 'credential_groups')} "
        f"credential groups, solved in {float(metadata_value(workload, 'solve_seconds', 0.0)):.2f}s",
        f"  on-demand prices: {metadata_value(ondemand, 'rows')} rows",
        "  window            capacity  sps rows  merged rows  changed  removed"
        "  queries  resumed  creds  rotations",
    ]
    for key, assets in windows:
        sps, merged, delta = (assets.get(f"aws/{n}", {}) for n in ("sps", "merged", "delta"))
        cells = [
            f"{metadata_value(sps, 'target_capacity'):>8}",
            f"{metadata_value(sps, 'rows'):>8}",
            f"{metadata_value(merged, 'rows'):>11}",
            f"{metadata_value(delta, 'changed_rows'):>7}",
            f"{metadata_value(delta, 'removed_rows'):>7}",
            f"{metadata_value(sps, 'api_calls'):>7}",
            f"{metadata_value(sps, 'groups_resumed'):>7}",
            f"{metadata_value(sps, 'credentials_used'):>5}",
            f"{metadata_value(sps, 'credential_rotations'):>9}",
        ]
        lines.append(f"  {key}  " + "  ".join(cells))
    lines.append(LADDER_NOTE)
    return lines
