"""Shared fixtures: a temporary lake and an S3 lake on moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from spotlake_assets.lake.resources import LocalLake, S3Lake


@pytest.fixture
def local_lake(tmp_path: Path) -> LocalLake:
    return LocalLake(root=str(tmp_path / "lake"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fake values: moto needs some credentials, and nothing here may reach a real account.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def moto_s3(aws_env: None) -> Iterator[None]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-west-2")
        for bucket in ("spotlake-read", "spotlake-write", "spotlake-prod"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield


@pytest.fixture
def s3_lake(moto_s3: None) -> S3Lake:
    return S3Lake(bucket="spotlake-prod", region_name="us-west-2")
