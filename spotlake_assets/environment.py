"""The one environment resolver: `SPOTLAKE_ENV` picks a whole resource set.

- ``local`` (default): a lake directory under `SPOTLAKE_HOME` (default ``./.spotlake``), the simulated AWS
  and Azure (`SPOTLAKE_SCALE`, `SPOTLAKE_SEED`), simulated credentials, local sinks (Timestream records kept
  under the lake's ``timestream/``). No network, no account.
- ``test``: SpotLake's batch-test environment. Configuration and credentials are read from
  `SPOTLAKE_READ_BUCKET`; every write goes to `SPOTLAKE_WRITE_BUCKET` (writes to the read bucket are refused);
  Timestream database `spotlake-test` (production's `spotlake` is refused).
- ``prod``: the `SPOTLAKE_BUCKET` lake and the real AWS APIs; credentials from the lake CSV or, with
  `SPOTLAKE_CREDENTIALS_SECRET_ID`, from Secrets Manager; Timestream database `spotlake`.

`SPOTLAKE_TIMESTREAM_DATABASE` and `SPOTLAKE_TIMESTREAM_REGION` (default us-west-2) override the Timestream
target in `test` and `prod`.

Every `SPOTLAKE_*` variable is parsed once, by `spotlake_assets.settings.load_settings`, and a value that
cannot be used fails with an `InvalidSetting` naming the variable and its value (never a secret's value).
Every entry point (the definitions, the demo, `spotlake query`, each provider's resources) resolves through
it, so an unknown `SPOTLAKE_ENV` fails everywhere with the same message. This module assembles the shared
resources (lake, Timestream) with each provider's set (`ProviderSpec.resources` of every provider in
`providers.PROVIDERS`: `aws.environment`, `azure.environment`) and the alerts.

Bucket names only matter at run time: the S3 lake reads them as `dg.EnvVar`s, so loading the definitions never
needs cloud settings. A bucket variable that is set when the definitions load is still checked here, and
the lake checks it again (naming the variable) when it first connects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from spotlake_assets.aws_single.environment import aws_single_resources
from spotlake_assets.legacy.environment import legacy_resources
from spotlake_assets.orchestration.alerts import slack_resource
from spotlake_assets.providers import PROVIDERS
from spotlake_assets.settings import (
    CONFIG_BUCKET_VARIABLE,
    LAKE_BUCKET_VARIABLE,
    PROD_TIMESTREAM_DATABASE,
    TEST_TIMESTREAM_DATABASE,
    Settings,
    load_settings,
)
from spotlake_assets.sinks.timestream import Boto3Timestream, LocalTimestream
from spotlake_assets.storage.lake import LocalLake, S3Lake


def _local(settings: Settings) -> dict[str, Any]:
    lake_root = str(settings.home / "lake")
    return {"lake": LocalLake(root=lake_root), "timestream": LocalTimestream(root=lake_root)}


def _timestream(settings: Settings, database: str, protected: list[str]) -> Boto3Timestream:
    return Boto3Timestream(
        database=settings.timestream_database or database,
        region_name=settings.timestream_region,
        protected_databases=protected,
    )


def _test(settings: Settings) -> dict[str, Any]:
    return {
        "lake": S3Lake(
            region_name=settings.region,
            bucket=dg.EnvVar("SPOTLAKE_WRITE_BUCKET"),
            config_bucket=dg.EnvVar("SPOTLAKE_READ_BUCKET"),
            require_distinct_buckets=True,
            bucket_variable=LAKE_BUCKET_VARIABLE["test"],
            config_bucket_variable=CONFIG_BUCKET_VARIABLE["test"],
        ),
        "timestream": _timestream(settings, TEST_TIMESTREAM_DATABASE, [PROD_TIMESTREAM_DATABASE]),
    }


def _prod(settings: Settings) -> dict[str, Any]:
    return {
        "lake": S3Lake(
            region_name=settings.region,
            bucket=dg.EnvVar("SPOTLAKE_BUCKET"),
            bucket_variable=LAKE_BUCKET_VARIABLE["prod"],
        ),
        "timestream": _timestream(settings, PROD_TIMESTREAM_DATABASE, []),
    }


_SHARED_RESOURCES: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "local": _local,
    "test": _test,
    "prod": _prod,
}


def resources_for(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The whole resource set of the environment: lake, sinks, each provider's API and credentials, the
    single-account lab, the legacy archive, alerts."""
    env = os.environ if environ is None else environ
    settings = load_settings(env)
    resources = _SHARED_RESOURCES[settings.environment](settings)
    for provider in PROVIDERS:
        resources |= provider.resources(settings.environment, env)
    resources |= aws_single_resources(settings.environment, env)
    resources |= legacy_resources(settings)
    return {**resources, "slack": slack_resource(env)}
