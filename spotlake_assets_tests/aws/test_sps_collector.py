"""The SPS collector: credential reuse and rotation, checkpoints, bounded throttling, clean failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spotlake_assets.aws.collectors.sps import (
    SpsCollectionIncomplete,
    ThrottlePolicy,
    collect_sps,
    scores_to_frame,
)
from spotlake_assets.aws.credentials import CredentialLedger
from spotlake_assets.aws.models import Credential, MalformedResponse, SpsQuery, SpsScore
from spotlake_assets.lake.keys import sps_checkpoint_prefix
from spotlake_assets.lake.resources import LocalLake
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


def pool(n: int) -> list[Credential]:
    return [Credential(i, f"FAKEKEY{i:013d}", f"fake-secret-{i}") for i in range(n)]


def collect(api: ScriptedAwsApi, lake: LocalLake, creds: list[Credential], capacity: int = 5):  # type: ignore[no-untyped-def]
    ledger = CredentialLedger(lake, "2026-03-01", creds)
    return collect_sps(api, lake, ledger, QUERIES, WINDOW, START, capacity, workers=3, throttle=FAST)


@pytest.mark.parametrize(("score", "t3", "t2"), [(1, 0, 0), (2, 0, 10), (3, 10, 0), (10, 10, 0)])
def test_t2_t3_columns(score: int, t3: int, t2: int) -> None:
    frame = scores_to_frame([SpsScore("m5.large", "us-east-1", "use1-az6", score)], 10)
    assert frame.loc[0, ["SPS", "TargetCapacity", "T3", "T2"]].tolist() == [score, 10, t3, t2]


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
    assert creds[0].access_key_id not in {k for k, _ in api.calls[1:]}


def test_exhausted_pool_keeps_finished_groups_and_names_the_rest(local_lake: LocalLake) -> None:
    creds = pool(3)
    api = ScriptedAwsApi(exhausted_keys=[creds[1].access_key_id, creds[2].access_key_id])
    with pytest.raises(
        SpsCollectionIncomplete, match=r"2 of 3 credential groups uncovered: 1 \(.*\), 2"
    ) as info:
        collect(api, local_lake, creds)
    assert sorted(info.value.collection.uncovered) == [1, 2]
    assert local_lake.list_keys(sps_checkpoint_prefix("aws", WINDOW))[0].endswith("group_00000.parquet")
    assert len(local_lake.list_keys(sps_checkpoint_prefix("aws", WINDOW))) == 1


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
    assert not any(k.endswith("group_00001.parquet") for k in local_lake.list_keys("state/"))
