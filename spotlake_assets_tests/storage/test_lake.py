"""The lake resources: atomic and conditional writes on a directory and on S3 (moto), and S3 failures
reported with the bucket, the key and the variable that named the bucket."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.s3.models import S3Backend

from spotlake_assets.storage.errors import (
    InvalidBucketName,
    LakeAccessDenied,
    LakeBucketNotFound,
    LakeKeyNotFound,
    PreconditionFailed,
    ReadOnlyLocation,
)
from spotlake_assets.storage.lake import LakeResource, LocalLake, S3Lake, bucket_name_problem


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, local_lake: LocalLake) -> LakeResource:
    if request.param == "local":
        return local_lake
    lake: LakeResource = request.getfixturevalue("s3_lake")
    return lake


def test_round_trip_and_listing(lake: LakeResource) -> None:
    lake.write_bytes("rawdata/aws/sps/2026/01/01/00-00_sps_1.parquet", b"one")
    lake.write_bytes("rawdata/aws/sps/2026/01/01/00-10_sps_5.parquet", b"two")
    lake.write_bytes("rawdata/aws/spot_if/2026/01/01/00-00_spot_if.parquet", b"three")
    assert lake.read_bytes("rawdata/aws/sps/2026/01/01/00-10_sps_5.parquet") == b"two"
    assert lake.list_keys("rawdata/aws/sps/") == [
        "rawdata/aws/sps/2026/01/01/00-00_sps_1.parquet",
        "rawdata/aws/sps/2026/01/01/00-10_sps_5.parquet",
    ]
    assert lake.list_keys("nothing/") == []


def test_missing_key_names_the_location(lake: LakeResource) -> None:
    with pytest.raises(LakeKeyNotFound, match=r"state/missing\.json"):
        lake.read_bytes("state/missing.json")
    assert lake.head("state/missing.json") is None


def test_create_only_refuses_a_second_writer(lake: LakeResource) -> None:
    lake.write_bytes("history/aws/w.parquet", b"first", create_only=True)
    with pytest.raises(PreconditionFailed, match="already exists"):
        lake.write_bytes("history/aws/w.parquet", b"second", create_only=True)
    assert lake.read_bytes("history/aws/w.parquet") == b"first"


def test_if_match_is_compare_and_swap(lake: LakeResource) -> None:
    first = lake.write_bytes("state/ledger.json", b"v1")
    head = lake.head("state/ledger.json")
    assert head is not None and head.etag == first.etag
    lake.write_bytes("state/ledger.json", b"v2", if_match=head.etag)
    with pytest.raises(PreconditionFailed, match="changed"):
        lake.write_bytes("state/ledger.json", b"v3", if_match=head.etag)
    assert lake.read_bytes("state/ledger.json") == b"v2"


def test_local_writes_leave_no_temporary_files(local_lake: LocalLake) -> None:
    local_lake.write_bytes("a/b.parquet", b"x")
    with pytest.raises(PreconditionFailed):
        local_lake.write_bytes("a/b.parquet", b"y", create_only=True)
    assert sorted(p.name for p in (Path(local_lake.root) / "a").iterdir()) == ["b.parquet"]


def test_local_keys_cannot_escape_the_lake(local_lake: LocalLake) -> None:
    with pytest.raises(ValueError, match="inside the lake"):
        local_lake.write_bytes("../outside", b"x")


def test_test_environment_cannot_write_to_the_read_bucket(moto_s3: None) -> None:
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.put_object(Bucket="spotlake-read", Key="config/aws/credentials.csv", Body=b"config")
    lake = S3Lake(bucket="spotlake-write", config_bucket="spotlake-read", require_distinct_buckets=True)
    assert lake.read_config_bytes("config/aws/credentials.csv") == b"config"
    lake.write_bytes("rawdata/x.parquet", b"data")
    assert s3.get_object(Bucket="spotlake-write", Key="rawdata/x.parquet")["Body"].read() == b"data"
    # Even the raw client the lake owns refuses to touch the read bucket.
    calls: list[Callable[[], object]] = [
        lambda: lake.client().put_object(Bucket="spotlake-read", Key="x", Body=b"evil"),
        lambda: lake.client().delete_object(Bucket="spotlake-read", Key="config/aws/credentials.csv"),
        lambda: lake.client().copy_object(
            Bucket="spotlake-read",
            Key="y",
            CopySource={"Bucket": "spotlake-write", "Key": "rawdata/x.parquet"},
        ),
    ]
    for call in calls:
        with pytest.raises(ReadOnlyLocation, match="spotlake-read"):
            call()
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="spotlake-read")["Contents"]] == [
        "config/aws/credentials.csv"
    ]


def test_test_environment_refuses_one_bucket_for_both(moto_s3: None) -> None:
    lake = S3Lake(bucket="spotlake-read", config_bucket="spotlake-read", require_distinct_buckets=True)
    with pytest.raises(ReadOnlyLocation, match="both"):
        lake.write_bytes("rawdata/x.parquet", b"data")


def test_move_aside_quarantines_a_damaged_object(lake: LakeResource) -> None:
    lake.write_bytes("state/aws/sps_checkpoints/x.parquet", b"")
    moved = lake.move_aside("state/aws/sps_checkpoints/x.parquet", "empty file")
    assert "quarantine/state/aws/sps_checkpoints/x.parquet." in moved
    assert not lake.exists("state/aws/sps_checkpoints/x.parquet")
    assert [k for k in lake.list_keys("quarantine/") if not k.endswith(".reason.txt")] == [
        moved.split("/", 3)[-1] if moved.startswith("s3://") else str(Path(moved).relative_to(_root(lake)))
    ]
    # The object is free again for a create-only rewrite.
    lake.write_bytes("state/aws/sps_checkpoints/x.parquet", b"good", create_only=True)
    assert lake.move_aside("state/absent.json", "gone") == ""


def _root(lake: LakeResource) -> Path:
    assert isinstance(lake, LocalLake)
    return Path(lake.root)


def test_sweep_removes_only_stale_temporary_files(local_lake: LocalLake) -> None:
    import os
    import time

    local_lake.write_bytes("state/a/b.parquet", b"x")
    folder = Path(local_lake.root) / "state" / "a"
    stale = folder / ".b.parquet.abc123.tmp"
    fresh = folder / ".b.parquet.def456.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"in flight")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert local_lake.sweep_temp_files("state/", older_than_s=600) == [str(stale)]
    assert fresh.exists() and (folder / "b.parquet").exists()


# --- S3 failures name the culprit ---------------------------------------------------------------------------


def test_a_missing_bucket_names_the_bucket_the_key_and_its_variable(moto_s3: None) -> None:
    lake = S3Lake(bucket="spotlake-typo", bucket_variable="SPOTLAKE_BUCKET")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("GetObject state/a.json", lambda: lake.read_bytes("state/a.json")),
        ("PutObject history/aws/x.parquet", lambda: lake.write_bytes("history/aws/x.parquet", b"x")),
        ("ListObjectsV2 rawdata/", lambda: lake.list_keys("rawdata/")),
        ("CopyObject state/b.json", lambda: lake.move_aside("state/b.json", "damaged")),
    ]
    for what, call in calls:
        with pytest.raises(LakeBucketNotFound) as caught:
            call()
        assert str(caught.value) == (
            f"bucket s3://spotlake-typo does not exist ({what}); the bucket name comes from SPOTLAKE_BUCKET"
        )


def test_the_read_bucket_is_named_with_its_own_variable(moto_s3: None) -> None:
    lake = S3Lake(
        bucket="spotlake-write",
        config_bucket="spotlake-absent",
        require_distinct_buckets=True,
        bucket_variable="SPOTLAKE_WRITE_BUCKET",
        config_bucket_variable="SPOTLAKE_READ_BUCKET",
    )
    with pytest.raises(LakeBucketNotFound, match=r"s3://spotlake-absent .*from SPOTLAKE_READ_BUCKET$"):
        lake.read_config_bytes("config/aws/credentials.csv")


def _stubbed(lake: S3Lake) -> Stubber:
    stubber = Stubber(lake.client())
    stubber.activate()
    return stubber


def test_access_denied_names_the_operation_the_object_and_the_variable(aws_env: None) -> None:
    lake = S3Lake(bucket="spotlake-prod", bucket_variable="SPOTLAKE_BUCKET")
    with _stubbed(lake) as stubber:
        stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(LakeAccessDenied) as caught:
            lake.read_bytes("latest_data/latest_aws.json")
        # HEAD has no body: S3 answers a bare 403.
        stubber.add_client_error("head_object", service_error_code="403", http_status_code=403)
        with pytest.raises(LakeAccessDenied, match=r"HeadObject on s3://spotlake-prod/state/x\.json"):
            lake.head("state/x.json")
    assert str(caught.value) == (
        "access denied: GetObject on s3://spotlake-prod/latest_data/latest_aws.json; the bucket name comes "
        "from SPOTLAKE_BUCKET; check the bucket name and that the run's IAM identity may GetObject there"
    )


def test_other_s3_failures_pass_through_unchanged(aws_env: None) -> None:
    from botocore.exceptions import ClientError

    lake = S3Lake(bucket="spotlake-prod")
    with _stubbed(lake) as stubber:
        stubber.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(ClientError, match="SlowDown"):
            lake.read_bytes("state/x.json")


@pytest.mark.parametrize(
    ("create_only", "if_match", "detail"),
    [(True, None, "the object already exists"), (False, "abc", "the object changed since it was read")],
)
def test_a_409_conditional_request_conflict_is_a_lost_conditional_write(
    aws_env: None, create_only: bool, if_match: str | None, detail: str
) -> None:
    # S3 answers 409 ConditionalRequestConflict when a concurrent conditional write to the key is in flight.
    lake = S3Lake(bucket="spotlake-prod")
    condition = {"IfNoneMatch": "*"} if create_only else {"IfMatch": f'"{if_match}"'}
    with _stubbed(lake) as stubber:
        stubber.add_client_error(
            "put_object",
            service_error_code="ConditionalRequestConflict",
            service_message="A conflicting conditional operation is currently in progress",
            http_status_code=409,
            expected_params={
                "Bucket": "spotlake-prod",
                "Key": "state/ledger.json",
                "Body": b"x",
                **condition,
            },
        )
        with pytest.raises(PreconditionFailed) as caught:
            lake.write_bytes("state/ledger.json", b"x", create_only=create_only, if_match=if_match)
        stubber.assert_no_pending_responses()
    assert str(caught.value) == f"conditional write to s3://spotlake-prod/state/ledger.json refused: {detail}"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("spotlake-prod", None),
        ("a.b-c", None),
        ("ab", "it has 2 characters (3 to 63 allowed)"),
        ("", "it has 0 characters (3 to 63 allowed)"),
        ("x" * 64, "it has 64 characters (3 to 63 allowed)"),
        ("Spotlake_Prod", "only lowercase letters, digits, '.' and '-' are allowed"),
        (" spotlake", "only lowercase letters, digits, '.' and '-' are allowed"),
        ("-spotlake", "it must begin and end with a letter or digit"),
        ("spot..lake", "it has two adjacent dots"),
        ("192.168.1.1", "it is formatted as an IP address"),
    ],
)
def test_bucket_name_rules(name: str, problem: str | None) -> None:
    assert bucket_name_problem(name) == problem


def test_a_bad_bucket_name_is_refused_before_any_request_naming_its_variable(aws_env: None) -> None:
    lake = S3Lake(bucket="Spotlake_Prod", bucket_variable="SPOTLAKE_BUCKET")
    with pytest.raises(InvalidBucketName) as caught:
        lake.read_bytes("state/x.json")
    assert str(caught.value) == (
        "SPOTLAKE_BUCKET='Spotlake_Prod' is not an S3 bucket name: only lowercase letters, digits, '.' "
        "and '-' are allowed"
    )


# --- the S3 server the race tests use -----------------------------------------------------------------------


def test_the_race_fixture_applies_each_conditional_write_atomically(
    s3_server_lake: S3Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process moto checks `If-None-Match` and then stores the object with no lock, so racing create-only
    writes can all win (the flaky races under `pytest -n 2`). Widening that gap makes the flake certain on
    in-process moto; the `s3_server_lake` server applies one request at a time, as S3 does."""
    store = S3Backend.put_object

    def slow_store(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return store(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_store)
    lakes = [S3Lake(bucket=s3_server_lake.bucket, endpoint_url=s3_server_lake.endpoint_url) for _ in range(4)]
    for lake in lakes:
        lake.client()  # build the clients first: the race is on the writes
    barrier = threading.Barrier(len(lakes))
    outcomes: list[str] = []

    def writer(i: int) -> None:
        barrier.wait()
        try:
            lakes[i].write_bytes("history/aws/race.parquet", str(i).encode(), create_only=True)
            outcomes.append(f"won:{i}")
        except PreconditionFailed:
            outcomes.append("lost")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(lakes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("lost") == 3
    assert s3_server_lake.read_bytes("history/aws/race.parquet") == winners[0].removeprefix("won:").encode()
