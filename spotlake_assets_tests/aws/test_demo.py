"""Tier 1: `make demo`'s AWS summary lines from materialization metadata."""

from __future__ import annotations

import dagster as dg

from spotlake_assets.aws.demo import LADDER_NOTE, aws_summary_lines
from spotlake_assets.domain.summary import Metadata

DAILY: dict[str, Metadata] = {
    "aws/workload": {
        "queries": dg.MetadataValue.int(7363),
        "lower_bound": dg.MetadataValue.int(7363),
        "credential_groups": dg.MetadataValue.int(148),
        "solve_seconds": dg.MetadataValue.float(0.1449),
    },
    "aws/ondemand_price": {"rows": dg.MetadataValue.int(21255)},
}
WINDOW: dict[str, Metadata] = {
    "aws/sps": {
        "target_capacity": 5,
        "rows": dg.MetadataValue.int(64394),
        "api_calls": dg.MetadataValue.int(7380),
        "groups_resumed": dg.MetadataValue.int(0),
        "credentials_used": dg.MetadataValue.int(152),
        "credential_rotations": dg.MetadataValue.int(4),
    },
    "aws/merged": {"rows": dg.MetadataValue.int(64394)},
    "aws/delta": {"changed_rows": dg.MetadataValue.int(60767), "removed_rows": dg.MetadataValue.int(0)},
}


def test_workload_window_rows_and_the_ladder_note() -> None:
    lines = aws_summary_lines(DAILY, [("2026-11-22-00:10", WINDOW)])
    assert lines[0] == (
        "  aws workload: 7363 SPS queries (lower bound 7363), 148 credential groups, solved in 0.14s"
    )
    assert lines[1] == "  on-demand prices: 21255 rows"
    header, row = lines[2].split(), lines[3].split()
    assert header[:3] == ["window", "capacity", "sps"]
    assert row == ["2026-11-22-00:10", "5", "64394", "64394", "60767", "0", "7380", "0", "152", "4"]
    assert lines[-1] == LADDER_NOTE


def test_a_window_whose_collectors_reported_nothing_still_prints() -> None:
    lines = aws_summary_lines({}, [("2026-11-22-00:20", {"aws/merged": {"rows": 3}})])
    assert lines[0].startswith("  aws workload: - SPS queries") and "solved in 0.00s" in lines[0]
    assert lines[3].split() == ["2026-11-22-00:20", "-", "-", "3", "-", "-", "-", "-", "-", "-"]
