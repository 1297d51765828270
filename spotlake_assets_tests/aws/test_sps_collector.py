"""The SPS collector: credential reuse and rotation, checkpoints, bounded throttling, clean failures."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from spotlake_assets.aws.budget import CredentialLedger
from spotlake_assets.aws.collectors.sps import (
    SpsCollection,
    SpsCollectionIncomplete,
    ThrottlePolicy,
    collect_sps,
    group_checkpoint_key,
    group_digest,
    scores_to_frame,
)
from spotlake_assets.aws.models import Credential, MalformedResponse, SpsQuery, SpsScore
from spotlake_assets.storage.frames import frame_to_parquet
from spotlake_assets.storage.keys import credential_map_key, sps_checkpoint_prefix
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.aws.fakes import ScriptedAwsApi

WINDOW = "2026-03-01-00:10"
START = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)
FAST = ThrottlePolicy(attempts=3, initial_s=0.001, max_s=0.002)
QUERIES = [
    SpsQuery(0, "m5.large", ("eu-west-1", "us-east-1"), 5, 0),
    SpsQuery(1, "c5.xlarge", ("eu-west-1", "us-east-1"), 5, 0),
    SpsQuery(2, "r5.large", ("us-east-1",), 3, 1),
    SpsQuery(3, "t3.micro", ("eu-west-1",), 2, 2),
]


def group_key(group: int, capacity: int = 5) -> str:
    queries = [q for q in QUERIES if q.group == group]
    return group_checkpoint_key(WINDOW, group, group_digest(queries, capacity))


def pool(n: int) -> list[Credential]:
    return [Credential(i, f"FAKEKEY{i:013d}", f"fake-secret-{i}") for i in range(n)]


def collect(
    api: ScriptedAwsApi, lake: LocalLake, creds: list[Credential], capacity: int = 5
) -> SpsCollection:
    ledger = CredentialLedger(lake, "2026-03-01", creds)
    return collect_sps(api, lake, ledger, QUERIES, WINDOW, START, capacity, workers=3, throttle=FAST)


@pytest.mark.parametrize(("score", "t3", "t2"), [(1, 0, 0), (2, 0, 10), (3, 10, 0), (10, 10, 0)])
def test_t2_t3_columns(score: int, t3: int, t2: int) -> None:
    frame = scores_to_frame([SpsScore("m5.large", "us-east-1", "use1-az6", score)], 10)
    assert frame[["SPS", "TargetCapacity", "T3", "T2"]].iloc[0].tolist() == [score, 10, t3, t2]


def test_collects_every_query_once_per_group_credential(local_lake: LocalLake) -> None:
    api = ScriptedAwsApi()
    result = collect(api, local_lake, pool(10))
    assert len(api.calls) == 4 == result.api_calls
    assert len(result.frame) == 5 + 5 + 3 + 2
    assert result.groups == 3 and result.credentials_used == 3
    # One credential per group: both queries of group 0 used the same key.
    group0 = {key for key, itype in api.calls if itype in {"m5.large", "c5.xlarge"}}
    assert len(group0) == 1
    assert not result.frame.duplicated(["InstanceType", "Region", "AZ"]).any()


def test_a_retried_run_resumes_from_checkpoints_without_querying(local_lake: LocalLake) -> None:
    first = collect(ScriptedAwsApi(), local_lake, pool(10))
    api = ScriptedAwsApi()
    again = collect(api, local_lake, pool(10))
    assert api.calls == [] and again.groups_resumed == 3
    assert again.frame.equals(first.frame)


def test_exhausted_credential_rotates_to_the_next(local_lake: LocalLake) -> None:
    creds = pool(10)
    api = ScriptedAwsApi(exhausted_keys=[creds[0].access_key_id])
    result = collect(api, local_lake, creds)
    assert result.rotations == 1
    assert len(result.frame) == 15
    # Groups run in parallel, so the exhausted key's one call is not necessarily the first one logged.
    assert [k for k, _ in api.calls].count(creds[0].access_key_id) == 1


def test_exhausted_pool_keeps_finished_groups_and_names_the_rest(local_lake: LocalLake) -> None:
    creds = pool(3)
    api = ScriptedAwsApi(exhausted_keys=[creds[1].access_key_id, creds[2].access_key_id])
    with pytest.raises(
        SpsCollectionIncomplete, match=r"2 of 3 credential groups uncovered: 1 \(.*\), 2"
    ) as info:
        collect(api, local_lake, creds)
    assert sorted(info.value.collection.uncovered) == [1, 2]
    assert local_lake.list_keys(sps_checkpoint_prefix("aws", WINDOW)) == [group_key(0)]


def test_throttling_is_retried_with_bounded_back_off(local_lake: LocalLake) -> None:
    api = ScriptedAwsApi(throttle_first_attempts=2)
    result = collect(api, local_lake, pool(10))
    assert result.throttle_retries == 8 and len(result.frame) == 15


def test_a_throttling_storm_stops_after_bounded_attempts(local_lake: LocalLake) -> None:
    api = ScriptedAwsApi(throttle_every_call=True)
    with pytest.raises(SpsCollectionIncomplete, match="3 of 3 credential groups uncovered") as info:
        collect(api, local_lake, pool(10))
    assert all("RequestLimitExceeded" in why for why in info.value.collection.uncovered.values())
    # Each group gives up on its first query after FAST.attempts tries.
    assert len(api.calls) == 3 * FAST.attempts


def test_a_malformed_answer_fails_without_checkpointing_that_group(local_lake: LocalLake) -> None:
    api = ScriptedAwsApi(malformed_type="r5.large")
    with pytest.raises(MalformedResponse, match=r"r5\.large"):
        collect(api, local_lake, pool(10))
    assert group_key(2) in local_lake.list_keys("state/")  # the sound groups are checkpointed
    assert group_key(1) not in local_lake.list_keys("state/")


# --- step retries only when every uncovered group can still pass --------------------------------------------


def _collection(uncovered: dict[int, str], transient: set[int]) -> SpsCollection:
    return SpsCollection(
        frame=scores_to_frame([], 5),
        capacity=5,
        api_calls=0,
        groups=3,
        groups_resumed=0,
        credentials_used=0,
        rotations=0,
        throttle_retries=0,
        uncovered=uncovered,
        transient_groups=frozenset(transient),
    )


@pytest.mark.parametrize(
    ("uncovered", "transient", "expected"),
    [
        pytest.param({0: "throttled", 2: "throttled"}, {0, 2}, True, id="all-transient"),
        pytest.param({0: "throttled", 2: "pool exhausted"}, {0}, False, id="mixed"),
        pytest.param({2: "pool exhausted"}, set(), False, id="none-transient"),
        pytest.param({}, set(), False, id="nothing-uncovered"),
    ],
)
def test_only_transient_failures(uncovered: dict[int, str], transient: set[int], expected: bool) -> None:
    assert _collection(uncovered, transient).only_transient_failures is expected


# --- checkpoints keyed by content, self-healing state -------------------------------------------------------


def test_a_rebuilt_workload_never_resumes_another_groups_checkpoint(local_lake: LocalLake) -> None:
    collect(ScriptedAwsApi(), local_lake, pool(10))
    # The day's workload is rebuilt: group 0 now holds other queries under the same group number.
    rebuilt = [SpsQuery(0, "m6i.large", ("us-east-1",), 3, 0), *QUERIES[2:]]
    api = ScriptedAwsApi()
    ledger = CredentialLedger(local_lake, "2026-03-01", pool(10))
    result = collect_sps(api, local_lake, ledger, rebuilt, WINDOW, START, 5, workers=3, throttle=FAST)
    assert api.calls == [(pool(10)[0].access_key_id, "m6i.large")]
    assert set(result.frame["InstanceType"]) == {"m6i.large", "r5.large", "t3.micro"}
    assert result.groups_resumed == 2


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(b"", id="zero-byte"),
        pytest.param(b"PAR1 cut short by a kill", id="corrupt"),
        pytest.param(frame_to_parquet(pd.DataFrame({"InstanceType": ["m5.large"]})), id="missing-columns"),
        pytest.param(
            frame_to_parquet(scores_to_frame([SpsScore("m5.large", "us-east-1", "use1-az6", 11)], 5)),
            id="score-out-of-range",
        ),
    ],
)
def test_a_damaged_checkpoint_is_moved_aside_and_collected_again(
    local_lake: LocalLake, damage: bytes
) -> None:
    reference = collect(ScriptedAwsApi(), LocalLake(root=local_lake.root + "-reference"), pool(10))
    local_lake.write_bytes(group_key(0), damage)
    api = ScriptedAwsApi()
    result = collect(api, local_lake, pool(10))
    assert sorted(itype for _, itype in api.calls) == ["c5.xlarge", "m5.large", "r5.large", "t3.micro"]
    assert result.frame.equals(reference.frame)
    (moved,) = result.checkpoints_moved_aside
    assert moved.startswith(local_lake.location(group_key(0)) + " → ") and "quarantine" in moved
    assert local_lake.list_keys("quarantine/")
    # The group is checkpointed again, soundly: the next run resumes it without a call.
    again = ScriptedAwsApi()
    assert collect(again, local_lake, pool(10)).groups_resumed == 3 and again.calls == []


@pytest.mark.parametrize("damage", [b"", b'{"assignments": {"5:0": "one"'], ids=["zero-byte", "corrupt"])
def test_a_damaged_ledger_is_moved_aside_and_rebuilt(local_lake: LocalLake, damage: bytes) -> None:
    local_lake.write_bytes(credential_map_key("aws", "2026-03-01"), damage)
    ledger = CredentialLedger(local_lake, "2026-03-01", pool(10))
    result = collect_sps(
        ScriptedAwsApi(), local_lake, ledger, QUERIES, WINDOW, START, 5, workers=3, throttle=FAST
    )
    assert len(result.frame) == 15
    (moved,) = ledger.moved_aside
    assert moved.startswith(local_lake.location(credential_map_key("aws", "2026-03-01")))
    assert "credential ledger is not valid" in moved
    rebuilt = json.loads(local_lake.read_bytes(credential_map_key("aws", "2026-03-01")))
    assert set(rebuilt["assignments"].values()) == {0, 1, 2}


class _SlowFirstGroupLedger(CredentialLedger):
    """Group 0's thread asks for its credential last, as a busy scheduler may arrange."""

    def credential_for(self, capacity: int, group: int) -> Credential:
        if group == 0:
            time.sleep(0.2)
        return super().credential_for(capacity, group)


def test_the_ledger_maps_groups_in_group_order_whatever_the_thread_timing(local_lake: LocalLake) -> None:
    ledger = _SlowFirstGroupLedger(local_lake, "2026-03-01", pool(10))
    collect_sps(ScriptedAwsApi(), local_lake, ledger, QUERIES, WINDOW, START, 5, workers=3, throttle=FAST)
    ledger_json = json.loads(local_lake.read_bytes(credential_map_key("aws", "2026-03-01")))
    assert ledger_json["assignments"] == {"5:0": 0, "5:1": 1, "5:2": 2}
