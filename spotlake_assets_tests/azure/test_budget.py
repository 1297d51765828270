"""Tier 2: the persisted SPS budget, quarantine and learned invalid values (conditional lake writes)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from spotlake_assets.azure.budget import BUDGET_KEY, EndpointBudget, InvalidRegistry
from spotlake_assets.azure.models import Endpoint
from spotlake_assets.lake.errors import CorruptLakeFile
from spotlake_assets.lake.resources import LocalLake

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


def test_concurrent_runs_never_overspend(tmp_path) -> None:  # type: ignore[no-untyped-def]
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


def test_corrupt_state_is_reported_not_reset(local_lake: LocalLake) -> None:
    local_lake.write_bytes(BUDGET_KEY, b'{"calls": {"sub-a|eastus": ["yesterday"]}}')
    with pytest.raises(CorruptLakeFile, match="bad timestamp"):
        EndpointBudget(local_lake).reserve(ENDPOINTS, 1, NOW)


def test_invalid_values_are_learned_once_and_kept(local_lake: LocalLake) -> None:
    registry = InvalidRegistry(local_lake)
    registry.learn(["jioindiacentral"], ["Standard_D2_v2_Promo"], NOW)
    registry.learn(["jioindiacentral"], [], NOW + timedelta(days=1))
    known = InvalidRegistry(local_lake).load()
    assert known.regions == {"jioindiacentral": NOW.isoformat()}
    assert set(known.sizes) == {"Standard_D2_v2_Promo"}
