"""The one environment resolver: `SPOTLAKE_ENV` picks a whole resource set.

- ``local`` (default): a lake directory under `SPOTLAKE_HOME` (default ``./.spotlake``), the simulated AWS
  (`SPOTLAKE_SCALE`, `SPOTLAKE_SEED`), simulated credentials, local sinks (Timestream records kept under
  the lake's ``timestream/``). No network, no account.
- ``test``: SpotLake's batch-test environment. Configuration and credentials are read from
  `SPOTLAKE_READ_BUCKET`; every write goes to `SPOTLAKE_WRITE_BUCKET` (writes to the read bucket are refused);
  Timestream database `spotlake-test` (production's `spotlake` is refused).
- ``prod``: the `SPOTLAKE_BUCKET` lake and the real AWS APIs; credentials from the lake CSV or, with
  `SPOTLAKE_CREDENTIALS_SECRET_ID`, from Secrets Manager; Timestream database `spotlake`.

`SPOTLAKE_TIMESTREAM_DATABASE` and `SPOTLAKE_TIMESTREAM_REGION` (default us-west-2) override the Timestream
target in `test` and `prod`.

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
from spotlake_assets.sinks.timestream import Boto3Timestream, LocalTimestream

ENVIRONMENTS = ("local", "test", "prod")
PROD_TIMESTREAM_DATABASE = "spotlake"
TEST_TIMESTREAM_DATABASE = "spotlake-test"


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
        "timestream": LocalTimestream(root=str(spotlake_home(environ) / "lake")),
    }


def _timestream(environ: Mapping[str, str], database: str, protected: list[str]) -> Boto3Timestream:
    return Boto3Timestream(
        database=environ.get("SPOTLAKE_TIMESTREAM_DATABASE", database),
        region_name=environ.get("SPOTLAKE_TIMESTREAM_REGION", "us-west-2"),
        protected_databases=protected,
    )


def _test(environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        "lake": S3Lake(
            bucket=dg.EnvVar("SPOTLAKE_WRITE_BUCKET"),
            config_bucket=dg.EnvVar("SPOTLAKE_READ_BUCKET"),
            require_distinct_buckets=True,
        ),
        "aws_api": Boto3AwsApi(),
        "aws_credentials": AwsCredentialPool(source="lake_csv"),
        "timestream": _timestream(environ, TEST_TIMESTREAM_DATABASE, [PROD_TIMESTREAM_DATABASE]),
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
        "timestream": _timestream(environ, PROD_TIMESTREAM_DATABASE, []),
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
    """The whole resource set of the environment: lake, sinks, each provider's API and credentials, alerts."""
    from spotlake_assets.azure.resources import azure_resources
    from spotlake_assets.core.alerts import slack_resource

    env = os.environ if environ is None else environ
    name = environment_name(env)
    return {**_RESOURCE_SETS[name](env), **azure_resources(name, env), "slack": slack_resource(env)}
