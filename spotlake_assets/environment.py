"""The one environment resolver: `SPOTLAKE_ENV` picks a whole resource set.

- ``local`` (default): a lake directory under `SPOTLAKE_HOME` (default ``./.spotlake``), the simulated AWS
  (`SPOTLAKE_SCALE`, `SPOTLAKE_SEED`), simulated credentials, local sinks. No network, no account.
- ``test``: SpotLake's batch-test environment. Configuration and credentials are read from
  `SPOTLAKE_READ_BUCKET`; every write goes to `SPOTLAKE_WRITE_BUCKET` (writes to the read bucket are refused).
- ``prod``: the `SPOTLAKE_BUCKET` lake and the real AWS APIs; credentials from the lake CSV or, with
  `SPOTLAKE_CREDENTIALS_SECRET_ID`, from Secrets Manager.

Values that only matter at run time are `dg.EnvVar`s, so loading definitions never needs cloud settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.resources import Boto3AwsApi
from spotlake_assets.lake.resources import LocalLake, S3Lake

ENVIRONMENTS = ("local", "test", "prod")


class UnknownEnvironment(ValueError):
    pass


def spotlake_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("SPOTLAKE_HOME", ".spotlake")).resolve()


def _local(environ: Mapping[str, str]) -> dict[str, Any]:
    from spotlake_assets.aws.simulation import SimulatedAwsApi

    seed = int(environ.get("SPOTLAKE_SEED", "7"))
    return {
        "lake": LocalLake(root=str(spotlake_home(environ) / "lake")),
        "aws_api": SimulatedAwsApi(seed=seed, scale=float(environ.get("SPOTLAKE_SCALE", "1.0"))),
        "aws_credentials": AwsCredentialPool(source="simulated", seed=seed),
    }


def _test(environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        "lake": S3Lake(
            bucket=dg.EnvVar("SPOTLAKE_WRITE_BUCKET"),
            config_bucket=dg.EnvVar("SPOTLAKE_READ_BUCKET"),
            require_distinct_buckets=True,
        ),
        "aws_api": Boto3AwsApi(),
        "aws_credentials": AwsCredentialPool(source="lake_csv"),
    }


def _prod(environ: Mapping[str, str]) -> dict[str, Any]:
    secret_id = environ.get("SPOTLAKE_CREDENTIALS_SECRET_ID")
    credentials = (
        AwsCredentialPool(source="secrets_manager", secret_id=secret_id)
        if secret_id
        else AwsCredentialPool(source="lake_csv")
    )
    return {
        "lake": S3Lake(bucket=dg.EnvVar("SPOTLAKE_BUCKET")),
        "aws_api": Boto3AwsApi(),
        "aws_credentials": credentials,
    }


_RESOURCE_SETS: dict[str, Callable[[Mapping[str, str]], dict[str, Any]]] = {
    "local": _local,
    "test": _test,
    "prod": _prod,
}


def environment_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    name = env.get("SPOTLAKE_ENV", "local").strip().lower()
    if name not in _RESOURCE_SETS:
        raise UnknownEnvironment(f"SPOTLAKE_ENV={name!r} is not one of {', '.join(ENVIRONMENTS)}")
    return name


def resources_for(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    return _RESOURCE_SETS[environment_name(env)](env)
