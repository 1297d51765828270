"""The lake sensor's pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spotlake_assets.domain.sensing import plan_merges, window_of_sps_key

KEYS = [
    "rawdata/aws/sps/2026/03/01/00-00_sps_1.parquet",
    "rawdata/aws/sps/2026/03/01/00-10_sps_5.parquet",
    "rawdata/aws/sps/2026/03/01/00-20_sps_10.parquet",
]
WAIT = timedelta(minutes=20)


@pytest.mark.parametrize(
    ("key", "window"),
    [
        ("rawdata/aws/sps/2026/03/01/00-10_sps_5.parquet", "2026-03-01-00:10"),
        ("rawdata/azure/sps/2026/12/31/23-50_sps_50.parquet", "2026-12-31-23:50"),
        ("rawdata/aws/sps/2026/03/01/00-10_sps_5.parquet.tmp", None),
        ("rawdata/aws/spot_if/2026/03/01/00-10_spot_if.parquet", None),
    ],
)
def test_window_of_sps_key(key: str, window: str | None) -> None:
    assert window_of_sps_key(key) == window


def test_complete_windows_all_become_requests_in_order() -> None:
    plan = plan_merges(KEYS, None, lambda w: [], datetime(2026, 3, 1, 0, 25, tzinfo=UTC), WAIT, 12)
    assert [r.partition_key for r in plan.requests] == [
        "2026-03-01-00:00",
        "2026-03-01-00:10",
        "2026-03-01-00:20",
    ]
    assert plan.cursor == KEYS[-1] and not any(r.with_gaps for r in plan.requests)


def test_a_window_waiting_for_inputs_holds_the_cursor() -> None:
    missing = {"2026-03-01-00:10": ["rawdata/aws/spot_if/2026/03/01/00-10_spot_if.parquet"]}
    now = datetime(2026, 3, 1, 0, 25, tzinfo=UTC)
    plan = plan_merges(KEYS, "before", lambda w: missing.get(w, []), now, WAIT, 12)
    assert [r.partition_key for r in plan.requests] == ["2026-03-01-00:00"]
    assert plan.cursor == KEYS[0]
    assert plan.waiting is not None and "2026-03-01-00:10 waits for rawdata/aws/spot_if" in plan.waiting


def test_an_overdue_window_merges_with_gaps_and_later_windows_follow() -> None:
    missing = {"2026-03-01-00:10": ["rawdata/aws/spot_if/2026/03/01/00-10_spot_if.parquet"]}
    now = datetime(2026, 3, 1, 0, 31, tzinfo=UTC)
    plan = plan_merges(KEYS, None, lambda w: missing.get(w, []), now, WAIT, 12)
    assert [(r.partition_key, r.with_gaps) for r in plan.requests] == [
        ("2026-03-01-00:00", False),
        ("2026-03-01-00:10", True),
        ("2026-03-01-00:20", False),
    ]


def test_requests_per_tick_are_bounded_and_the_rest_waits_for_the_next_tick() -> None:
    plan = plan_merges(KEYS, None, lambda w: [], datetime(2026, 3, 2, tzinfo=UTC), WAIT, 2)
    assert len(plan.requests) == 2 and plan.cursor == KEYS[1]


def test_other_objects_advance_the_cursor_without_requests() -> None:
    plan = plan_merges(
        ["rawdata/aws/sps/README"], None, lambda w: [], datetime(2026, 3, 2, tzinfo=UTC), WAIT, 2
    )
    assert plan.requests == () and plan.cursor == "rawdata/aws/sps/README"
