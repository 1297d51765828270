"""Tier 2: the SPS collector against a scripted API: budget, quarantine, learning, retries, checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime

from spotlake_assets.azure.budget import EndpointBudget, InvalidRegistry
from spotlake_assets.azure.collectors.sps import NO_BUDGET, RetryPolicy, collect_sps
from spotlake_assets.azure.models import Endpoint, SpsRequest
from spotlake_assets.lake.resources import LocalLake
from spotlake_assets_tests.azure.fakes import LOGIN, ScriptedAzureApi

PK = "2026-03-01-00:10"
START = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)
ENDPOINTS = [Endpoint(s, loc) for s in LOGIN.subscriptions for loc in ("eastus", "westus")]
NAMES = {"eastus": "US East", "westeurope": "EU West", "jioindiacentral": "IN Central Jio"}


def requests(n: int, per_batch: int = 2) -> list[SpsRequest]:
    return [
        SpsRequest(i, ("eastus", "westeurope"), (f"Standard_D{2 * (i + 1)}s_v5",), 2, i // per_batch)
        for i in range(n)
    ]


def collect(  # type: ignore[no-untyped-def]
    api: ScriptedAzureApi,
    lake: LocalLake,
    reqs: list[SpsRequest],
    sleeps: list[float] | None = None,
    pk: str = PK,
):
    waits = [] if sleeps is None else sleeps
    return collect_sps(
        api,
        lake,
        LOGIN,
        reqs,
        ENDPOINTS,
        pk,
        START,
        50,
        NAMES,
        policy=RetryPolicy(attempts=3, max_wait_s=5.0, backoff_s=0.5),
        workers=2,
        sleep=waits.append,
    )


def test_scores_become_rows_with_t2_t3_of_the_window(local_lake: LocalLake) -> None:
    result = collect(ScriptedAzureApi(), local_lake, requests(3))
    assert len(result.frame) == 6 and result.api_calls == 3 and not result.uncovered
    first = result.frame.iloc[0].to_dict()
    assert first == {
        "DesiredCount": 50,
        "Region": "eastus",
        "RegionName": "US East",
        "InstanceTier": "Standard",
        "InstanceType": "D2s_v5",
        "AvailabilityZone": "1",
        "Score": 3,
        "T3": 50,
        "T2": 50,
    }


def test_busy_endpoint_is_quarantined_and_the_request_moves_on(local_lake: LocalLake) -> None:
    api = ScriptedAzureApi(busy=["eastus"])
    result = collect(api, local_lake, requests(4))
    assert not result.uncovered and len(result.frame) == 8
    assert sorted(result.quarantined) == sorted(e.label for e in ENDPOINTS if e.location == "eastus")
    # Once quarantined, an endpoint is not called again (the state is persisted for other runs too).
    calls_to_busy = [c for c in api.calls if c[0].location == "eastus"]
    assert len(calls_to_busy) == 2
    view = EndpointBudget(local_lake).view(ENDPOINTS, START)
    assert len(view.quarantined) == 2


def test_invalid_values_are_learned_persisted_and_dropped(local_lake: LocalLake) -> None:
    api = ScriptedAzureApi(invalid_regions=["jioindiacentral"], invalid_sizes=["Standard_D4s_v5"])
    reqs = [
        SpsRequest(0, ("eastus", "jioindiacentral"), ("Standard_D2s_v5", "Standard_D4s_v5"), 4, 0),
        SpsRequest(1, ("jioindiacentral",), ("Standard_D8s_v5",), 1, 1),
    ]
    result = collect(api, local_lake, reqs)
    assert result.learned_regions == ["jioindiacentral"] and result.learned_sizes == ["Standard_D4s_v5"]
    assert set(zip(result.frame["Region"], result.frame["InstanceType"], strict=True)) == {
        ("eastus", "D2s_v5")
    }
    assert not result.uncovered
    known = InvalidRegistry(local_lake).load()
    assert set(known.regions) == {"jioindiacentral"} and set(known.sizes) == {"Standard_D4s_v5"}
    # A later run filters them before calling at all.
    again = ScriptedAzureApi()
    later = SpsRequest(0, ("eastus", "jioindiacentral"), ("Standard_D4s_v5", "Standard_D2s_v5"), 2, 0)
    collect(again, local_lake, [later], pk="2026-03-01-00:20")
    assert again.calls[0][1:] == (("eastus",), ("Standard_D2s_v5",))


def test_throttling_waits_retry_after_and_gives_up_after_bounded_attempts(local_lake: LocalLake) -> None:
    waits: list[float] = []
    result = collect(ScriptedAzureApi(throttle_first=1, transient_first=1), local_lake, requests(1), waits)
    assert not result.uncovered and result.throttle_retries == 1 and result.transient_retries == 1
    assert waits == [2.5, 1.0]  # Retry-After, then the back-off of the second retry
    stormy = ScriptedAzureApi(throttle_first=100, retry_after_s=60)
    failed = collect(stormy, LocalLake(root=str(local_lake.root) + "-2"), requests(1), waits := [])
    assert list(failed.uncovered) == [0] and "gave up after 3 attempts" in failed.uncovered[0]
    assert waits == [5.0, 5.0]  # Retry-After capped by max_wait_s


def test_budget_exhaustion_stops_cleanly_naming_what_was_not_covered(local_lake: LocalLake) -> None:
    budget = EndpointBudget(local_lake)
    # Other windows already spent all but 5 slots of this hour.
    budget.reserve(ENDPOINTS, 9 * len(ENDPOINTS) - 5, START)
    api = ScriptedAzureApi()
    result = collect(api, local_lake, requests(8))
    assert result.budget_exhausted and len(api.calls) == 5
    assert len(result.frame) == 10  # what was collected is kept
    assert len(result.uncovered) == 3
    assert set(result.uncovered.values()) == {NO_BUDGET}


def test_a_rerun_resumes_from_checkpoints_without_calls(local_lake: LocalLake) -> None:
    first = collect(ScriptedAzureApi(), local_lake, requests(5))
    again_api = ScriptedAzureApi()
    again = collect(again_api, local_lake, requests(5))
    assert again_api.calls == [] and again.batches_resumed == again.batches == 3
    assert again.frame.equals(first.frame)
