"""Tier 2: the persisted SPS budget, quarantine and learned invalid values (conditional lake writes)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spotlake_assets.azure.budget import (
    BUDGET_KEY,
    INVALID_KEY,
    EndpointBudget,
    InvalidRegistry,
    exclusions_key,
    plan_exclusions,
)
from spotlake_assets.azure.models import Endpoint
from spotlake_assets.storage.errors import CorruptLakeFile
from spotlake_assets.storage.lake import LocalLake

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENDPOINTS = [Endpoint(s, loc) for s in ("sub-a", "sub-b") for loc in ("eastus", "westus", "uksouth")]


def test_never_more_than_nine_calls_per_endpoint_in_62_minutes(local_lake: LocalLake) -> None:
    budget = EndpointBudget(local_lake)
    granted = budget.reserve(ENDPOINTS, 100, NOW)
    assert len(granted) == 9 * len(ENDPOINTS)
    assert set(Counter(granted).values()) == {9}
    assert budget.reserve(ENDPOINTS, 1, NOW + timedelta(minutes=61)) == []
    # 62 minutes after the calls, their slots are free again.
    assert len(budget.reserve(ENDPOINTS, 100, NOW + timedelta(minutes=62))) == 9 * len(ENDPOINTS)


def test_slots_are_spread_over_endpoints(local_lake: LocalLake) -> None:
    granted = EndpointBudget(local_lake).reserve(ENDPOINTS, 12, NOW)
    assert Counter(granted) == Counter({e: 2 for e in ENDPOINTS})


def test_quarantine_lasts_one_horizon_and_is_persisted(local_lake: LocalLake) -> None:
    budget = EndpointBudget(local_lake)
    sick = ENDPOINTS[0]
    budget.quarantine(sick, NOW)
    again = EndpointBudget(local_lake)  # another run reads the same state
    assert sick not in again.reserve(ENDPOINTS, 100, NOW + timedelta(minutes=30))
    view = again.view(ENDPOINTS, NOW + timedelta(minutes=30))
    assert view.quarantined == (sick.label,) and view.calls_left == 0
    assert again.reserve([sick], 1, NOW + timedelta(minutes=62)) == [sick]


def test_concurrent_runs_never_overspend(tmp_path: Path) -> None:
    # Separate budget objects (separate processes in production) share one state file through CAS writes.
    root = str(tmp_path / "lake")
    grants: list[Endpoint] = []
    lock = threading.Lock()

    def worker() -> None:
        budget = EndpointBudget(LocalLake(root=root))
        for _ in range(20):
            got = budget.reserve(ENDPOINTS, 2, NOW)
            with lock:
                grants.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(grants) == 9 * len(ENDPOINTS)
    assert max(Counter(grants).values()) == 9
    stored = json.loads(LocalLake(root=root).read_bytes(BUDGET_KEY))
    assert sum(len(v) for v in stored["calls"].values()) == 9 * len(ENDPOINTS)


@pytest.mark.parametrize(
    ("key", "damage"),
    [
        (BUDGET_KEY, b""),
        (BUDGET_KEY, b'{"calls": {"sub-a|eastus": ["yesterday"]}}'),
        (BUDGET_KEY, b"[1, 2]"),
        (INVALID_KEY, b'{"regions": {"x": '),
        (INVALID_KEY, b'{"regions": ["x"]}'),
    ],
)
def test_damaged_state_is_moved_aside_named_and_rebuilt(
    local_lake: LocalLake, key: str, damage: bytes
) -> None:
    local_lake.write_bytes(key, damage)
    budget, registry = EndpointBudget(local_lake), InvalidRegistry(local_lake)
    assert len(budget.reserve(ENDPOINTS, 3, NOW)) == 3  # every rerun used to fail here
    registry.learn(["jioindiacentral"], [], NOW)
    assert InvalidRegistry(local_lake).load().regions == {"jioindiacentral": NOW.isoformat()}
    moved = budget.moved_aside + registry.moved_aside
    assert len(moved) == 1 and key in moved[0] and "quarantine/" in moved[0]
    assert len(local_lake.list_keys(f"quarantine/{key}")) == 2  # the file and why it was moved


def test_a_state_file_is_written_only_after_its_content_validated(local_lake: LocalLake) -> None:
    registry = InvalidRegistry(local_lake)
    registry.learn(["jioindiacentral"], [], NOW)
    before = local_lake.read_bytes(INVALID_KEY)
    # A naive clock would store timestamps that no later run could compare: refused before writing.
    with pytest.raises(CorruptLakeFile, match="has no time zone"):
        registry.learn(["brazilus"], [], datetime(2026, 3, 1, 12, 0))
    assert local_lake.read_bytes(INVALID_KEY) == before


def test_invalid_values_are_learned_once_and_kept(local_lake: LocalLake) -> None:
    registry = InvalidRegistry(local_lake)
    registry.learn(["jioindiacentral"], ["Standard_D2_v2_Promo"], NOW)
    registry.learn(["jioindiacentral"], [], NOW + timedelta(days=1))
    known = InvalidRegistry(local_lake).load()
    assert known.regions == {"jioindiacentral": NOW.isoformat()}
    assert set(known.sizes) == {"Standard_D2_v2_Promo"}


def test_a_day_plans_without_what_was_learned_before_it_started_and_keeps_that_set(
    local_lake: LocalLake,
) -> None:
    registry = InvalidRegistry(local_lake)
    day = "2026-03-02"
    registry.learn(["jioindiacentral"], [], datetime(2026, 3, 1, 23, 50, tzinfo=UTC))
    registry.learn([], ["Standard_D2_v2_Promo"], datetime(2026, 3, 2, 0, 10, tzinfo=UTC))  # during the day
    first = plan_exclusions(local_lake, day, registry)
    assert (first.source, set(first.values.regions), first.values.sizes) == (
        "recorded",
        {"jioindiacentral"},
        {},
    )
    # The day's own calls learn more; a wiped registry learns anew: the day's set does not move.
    registry.learn(["brazilus"], [], datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    again = plan_exclusions(local_lake, day, InvalidRegistry(local_lake))
    assert (again.source, again.values) == ("reused", first.values)
    following = plan_exclusions(local_lake, "2026-03-03", registry)
    assert set(following.values.regions) == {"jioindiacentral", "brazilus"}
    assert set(following.values.sizes) == {"Standard_D2_v2_Promo"}
    # A damaged record is moved aside, named and derived again by the same rule.
    local_lake.write_bytes(exclusions_key(day), b"")
    healed = plan_exclusions(local_lake, day, registry)
    assert (healed.source, healed.values) == ("re-derived", first.values)
    assert len(healed.moved_aside) == 1 and exclusions_key(day) in healed.moved_aside[0]
