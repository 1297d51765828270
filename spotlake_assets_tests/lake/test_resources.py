"""The lake resources: atomic and conditional writes on a directory and on S3 (moto)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from spotlake_assets.lake.errors import LakeKeyNotFound, PreconditionFailed, ReadOnlyLocation
from spotlake_assets.lake.resources import LakeResource, LocalLake, S3Lake


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
    for call in (
        lambda: lake.client().put_object(Bucket="spotlake-read", Key="x", Body=b"evil"),
        lambda: lake.client().delete_object(Bucket="spotlake-read", Key="config/aws/credentials.csv"),
        lambda: lake.client().copy_object(
            Bucket="spotlake-read",
            Key="y",
            CopySource={"Bucket": "spotlake-write", "Key": "rawdata/x.parquet"},
        ),
    ):
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
