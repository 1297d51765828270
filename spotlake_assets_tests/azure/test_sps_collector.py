"""Tier 2: the SPS collector against a scripted API: budget, quarantine, learning, retries, checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spotlake_assets.azure.budget import BUDGET_KEY, EndpointBudget, InvalidRegistry
from spotlake_assets.azure.collectors.sps import (
    NO_BUDGET,
    RetryPolicy,
    SpsCollection,
    checkpoint_key,
    collect_sps,
)
from spotlake_assets.azure.models import Endpoint, MalformedResponse, PermanentError, SpsRequest
from spotlake_assets.storage.keys import sps_checkpoint_prefix
from spotlake_assets.storage.lake import LocalLake
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


def collect(
    api: ScriptedAzureApi,
    lake: LocalLake,
    reqs: list[SpsRequest],
    sleeps: list[float] | None = None,
    pk: str = PK,
) -> SpsCollection:
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


def test_sending_again_after_a_quarantine_neither_waits_nor_counts_as_a_retry(local_lake: LocalLake) -> None:
    waits: list[float] = []
    # Slots go to westus first (most left, then by name): both westus endpoints are busy, then the first
    # eastus call throttles. Two quarantines and a throttle stay within the 3 attempts.
    api = ScriptedAzureApi(busy=["westus"], throttle_first=3)
    result = collect(api, local_lake, requests(1), waits)
    assert [c[0].location for c in api.calls] == ["westus", "westus", "eastus", "eastus"]
    assert not result.uncovered and result.throttle_retries == 1 and len(result.quarantined) == 2
    assert waits == [2.5]  # only the throttled attempt waited


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


def test_checkpoints_are_keyed_by_what_they_cover_not_by_position(local_lake: LocalLake) -> None:
    collect(ScriptedAzureApi(), local_lake, requests(4))  # batches {D2,D4} and {D6,D8}
    # The plan is rebuilt: batch 0 now holds other requests, batch 1 is unchanged.
    rebuilt = [
        SpsRequest(0, ("eastus", "westeurope"), ("Standard_E2s_v5",), 2, 0),
        SpsRequest(1, ("eastus", "westeurope"), ("Standard_E4s_v5",), 2, 0),
        *(SpsRequest(i, r.regions, r.sizes, r.pairs, 1) for i, r in enumerate(requests(4)[2:], start=2)),
    ]
    api = ScriptedAzureApi()
    result = collect(api, local_lake, rebuilt)
    # Old batch 0 is not mistaken for new batch 0: its two requests are sent; batch 1 resumes.
    assert sorted(c[2][0] for c in api.calls) == ["Standard_E2s_v5", "Standard_E4s_v5"]
    assert result.batches_resumed == 1 and not result.uncovered
    assert set(result.frame["InstanceType"]) == {"E2s_v5", "E4s_v5", "D6s_v5", "D8s_v5"}
    # Same requests in another order, another batch number: the same key.
    shuffled = [SpsRequest(9, r.regions, r.sizes, r.pairs, 7) for r in reversed(rebuilt[:2])]
    assert checkpoint_key(PK, 50, shuffled) == checkpoint_key(PK, 50, rebuilt[:2])
    assert checkpoint_key(PK, 50, rebuilt[:2]) != checkpoint_key(PK, 45, rebuilt[:2])


@pytest.mark.parametrize("damage", [b"", b"PAR1 not really parquet"])
def test_a_damaged_checkpoint_is_moved_aside_and_collected_again(
    local_lake: LocalLake, damage: bytes
) -> None:
    first = collect(ScriptedAzureApi(), local_lake, requests(4))
    damaged = checkpoint_key(PK, 50, requests(4)[:2])
    local_lake.write_bytes(damaged, damage)
    api = ScriptedAzureApi()
    again = collect(api, local_lake, requests(4), pk=PK)
    assert len(api.calls) == 2 and again.batches_resumed == 1  # only the damaged batch is redone
    assert again.frame.equals(first.frame)
    assert len(again.moved_aside) == 1 and damaged in again.moved_aside[0]
    assert local_lake.list_keys("quarantine/" + sps_checkpoint_prefix("azure", PK))
    assert local_lake.exists(damaged)  # re-checkpointed


def test_a_damaged_budget_file_is_moved_aside_and_named(local_lake: LocalLake) -> None:
    local_lake.write_bytes(BUDGET_KEY, b"")
    result = collect(ScriptedAzureApi(), local_lake, requests(2))
    assert not result.uncovered and len(result.frame) == 4
    assert any(BUDGET_KEY in m for m in result.moved_aside)


@pytest.mark.parametrize(
    ("api", "field", "value"),
    [
        (ScriptedAzureApi(labels={"Standard_D2s_v5": "VeryHigh"}), "score", "VeryHigh"),
        (ScriptedAzureApi(zone="eastus-az7"), "availabilityZone", "eastus-az7"),
    ],
)
def test_an_unknown_label_fails_at_once_and_is_never_checkpointed(
    local_lake: LocalLake, api: ScriptedAzureApi, field: str, value: str
) -> None:
    sleeps: list[float] = []
    with pytest.raises(MalformedResponse) as raised:
        collect(api, local_lake, requests(1), sleeps)
    assert (raised.value.field, raised.value.value) == (field, value)
    assert "request 0" in raised.value.call and raised.value.row == "placementScores[0]"
    assert len(api.calls) == 1 and sleeps == []  # not retried
    assert local_lake.list_keys(sps_checkpoint_prefix("azure", PK)) == []


def test_a_malformed_batch_keeps_the_finished_batches_and_sends_no_more(local_lake: LocalLake) -> None:
    reqs = requests(6)  # batches 0, 1, 2 run one after the other; batch 1 answers an unknown label
    api = ScriptedAzureApi(labels={"Standard_D6s_v5": "VeryHigh"})
    sleeps: list[float] = []
    with pytest.raises(MalformedResponse, match="VeryHigh"):
        collect_sps(
            api, local_lake, LOGIN, reqs, ENDPOINTS, PK, START, 50, NAMES,
            policy=RetryPolicy(attempts=3, max_wait_s=5.0, backoff_s=0.5), workers=1, sleep=sleeps.append,
        )  # fmt: skip
    assert local_lake.list_keys(sps_checkpoint_prefix("azure", PK)) == [checkpoint_key(PK, 50, reqs[0:2])]
    # Unlike AWS, a permanent error stops the window: the later batch is not sent (it would spend budget).
    sent = [size for _, _, sizes in api.calls for size in sizes]
    assert sent == ["Standard_D2s_v5", "Standard_D4s_v5", "Standard_D6s_v5"]


def test_a_permanent_error_fails_at_once_without_retries_or_checkpoint(local_lake: LocalLake) -> None:
    api = ScriptedAzureApi(permanent=["Standard_D2s_v5"])
    waits: list[float] = []
    with pytest.raises(PermanentError, match="HTTP 404"):
        collect_sps(
            api,
            local_lake,
            LOGIN,
            requests(4),
            ENDPOINTS,
            PK,
            START,
            50,
            NAMES,
            policy=RetryPolicy(attempts=3, max_wait_s=5.0, backoff_s=0.5),
            workers=1,
            sleep=waits.append,
        )
    # One call for the failing request; with one worker the rest of the window is not sent at all.
    assert [c[2] for c in api.calls] == [("Standard_D2s_v5",)] and waits == []
    assert local_lake.list_keys(sps_checkpoint_prefix("azure", PK)) == []


def test_answers_left_out_are_counted_by_reason(local_lake: LocalLake) -> None:
    api = ScriptedAzureApi(labels={"Standard_D4s_v5": "RestrictedSkuNotAvailable"})
    reqs = [
        SpsRequest(0, ("eastus", "westeurope"), ("Standard_D2s_v5", "Standard_D4s_v5"), 4, 0),
        SpsRequest(1, ("eastus",), ("Promo_D8s_v5",), 1, 0),  # no Standard/Basic tier
    ]
    result = collect(api, local_lake, reqs)
    assert result.dropped == {"unscored:RestrictedSkuNotAvailable": 2, "sku_without_tier": 1}
    assert result.unscored == 2 and len(result.frame) == 2
