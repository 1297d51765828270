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
target in `test` and `prod`. The Azure variables (`SPOTLAKE_AZURE_AUTH`, `SPOTLAKE_AZURE_AUTH_TABLE`,
`SPOTLAKE_AZURE_AUTH_ITEM`) and the alert ones (`SPOTLAKE_SLACK_WEBHOOK_URL`, `SPOTLAKE_UI_URL`) are parsed
here too.

Every `SPOTLAKE_*` variable is parsed once, by `load_settings`, and a value that cannot be used fails with an
`InvalidSetting` naming the variable and its value (never a secret's value). Every entry point (the
definitions, the demo, `spotlake query`, each provider's resources) resolves through this module, so an
unknown `SPOTLAKE_ENV` fails everywhere with the same message.

Bucket names only matter at run time: the S3 lake reads them as `dg.EnvVar`s, so loading the definitions never
needs cloud settings. A bucket variable that is set when the definitions load is still checked here, and
the lake checks it again (naming the variable) when it first connects.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.resources import Boto3AwsApi
from spotlake_assets.lake.resources import LocalLake, S3Lake, bucket_name_problem
from spotlake_assets.sinks.timestream import Boto3Timestream, LocalTimestream

ENVIRONMENTS = ("local", "test", "prod")
PROD_TIMESTREAM_DATABASE = "spotlake"
TEST_TIMESTREAM_DATABASE = "spotlake-test"
DEFAULT_HOME = ".spotlake"
DEFAULT_SEED = 7
DEFAULT_SCALE = 1.0
DEFAULT_TIMESTREAM_REGION = "us-west-2"
AZURE_AUTH_SOURCES = ("dynamodb", "env")
DEFAULT_AZURE_AUTH_TABLE = "AzureAuth"
DEFAULT_AZURE_AUTH_ITEM = "login_auth_az_true"
# The variable holding the lake's bucket in each cloud environment (named in errors about that bucket).
LAKE_BUCKET_VARIABLE = {"test": "SPOTLAKE_WRITE_BUCKET", "prod": "SPOTLAKE_BUCKET"}
CONFIG_BUCKET_VARIABLE = {"test": "SPOTLAKE_READ_BUCKET", "prod": "SPOTLAKE_BUCKET"}

_INTEGER = re.compile(r"[+-]?[0-9]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
# Timestream database and DynamoDB table names share this alphabet (3-256 and 3-255 characters).
_AWS_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
# A Secrets Manager name or ARN: letters, digits and /_+=.@- (plus ':' in an ARN), never whitespace.
_SECRET_ID = re.compile(r"[A-Za-z0-9/_+=.@:-]{1,2048}")
# A DynamoDB key value: anything without surrounding whitespace.
_ITEM_ID = re.compile(r"\S(.*\S)?")


class InvalidSetting(ValueError):
    """An environment variable whose value cannot be used. The message names the variable and the value
    (never the value of a secret) and says what is expected."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


class UnknownEnvironment(InvalidSetting):
    """`SPOTLAKE_ENV` names no environment."""


@dataclass(frozen=True)
class Settings:
    """Every `SPOTLAKE_*` value the platform reads, parsed and checked (see `load_settings`)."""

    environment: str
    home: Path
    seed: int
    scale: float
    # Bucket names when they are set at load time; the S3 lake reads them at run time either way.
    bucket: str | None
    read_bucket: str | None
    write_bucket: str | None
    credentials_secret_id: str | None
    timestream_database: str | None
    timestream_region: str
    azure_auth: str
    azure_auth_table: str
    azure_auth_item: str
    slack_webhook_set: bool
    ui_url: str | None

    @property
    def lake_variable(self) -> str:
        """The variable that says where this environment's lake is."""
        return LAKE_BUCKET_VARIABLE.get(self.environment, "SPOTLAKE_HOME")

    def lake_location(self) -> str:
        """The lake's directory (``local``) or ``s3://bucket``; `InvalidSetting` when its bucket is unset."""
        if self.environment == "local":
            return str(self.home / "lake")
        bucket = self.write_bucket if self.environment == "test" else self.bucket
        if bucket is None:
            raise InvalidSetting(
                self.lake_variable,
                f"SPOTLAKE_ENV={self.environment} keeps its lake in {self.lake_variable}, which is not set",
            )
        return f"s3://{bucket}"


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def environment_name(environ: Mapping[str, str] | None = None) -> str:
    """`SPOTLAKE_ENV` (default ``local``); `UnknownEnvironment` for anything else."""
    raw = _environ(environ).get("SPOTLAKE_ENV", "local")
    name = raw.strip().lower()
    if name not in ENVIRONMENTS:
        raise UnknownEnvironment(
            "SPOTLAKE_ENV",
            f"SPOTLAKE_ENV={raw!r} is not one of {', '.join(ENVIRONMENTS)} (unknown environment)",
        )
    return name


def spotlake_home(environ: Mapping[str, str] | None = None) -> Path:
    """`SPOTLAKE_HOME` (default ``./.spotlake``) as an absolute path; it may not exist yet."""
    raw = _environ(environ).get("SPOTLAKE_HOME", DEFAULT_HOME)
    # An empty value would resolve to the working directory and scatter the lake there.
    if not raw.strip():
        raise InvalidSetting(
            "SPOTLAKE_HOME",
            f"SPOTLAKE_HOME={raw!r} is empty: unset it (default ./{DEFAULT_HOME}) or name a directory",
        )
    home = Path(raw).expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise InvalidSetting("SPOTLAKE_HOME", f"SPOTLAKE_HOME={raw!r} is a file, not a directory")
    return home


def _scale(environ: Mapping[str, str]) -> float:
    raw = environ.get("SPOTLAKE_SCALE")
    if raw is None:
        return DEFAULT_SCALE
    try:
        scale = float(raw.strip())
    except ValueError:
        scale = math.nan
    # The simulated catalogues keep a fraction of the instance types / VM sizes: (0, 1] (NaN fails too).
    if not 0.0 < scale <= 1.0:
        raise InvalidSetting(
            "SPOTLAKE_SCALE",
            f"SPOTLAKE_SCALE={raw!r} is not a number in (0, 1] (the fraction of simulated instance types)",
        )
    return scale


def _seed(environ: Mapping[str, str]) -> int:
    raw = environ.get("SPOTLAKE_SEED")
    if raw is None:
        return DEFAULT_SEED
    if not _INTEGER.fullmatch(raw.strip()):
        raise InvalidSetting("SPOTLAKE_SEED", f"SPOTLAKE_SEED={raw!r} is not an integer")
    return int(raw.strip())


def _bucket(environ: Mapping[str, str], variable: str) -> str | None:
    raw = environ.get(variable)
    if raw is None:
        return None
    problem = bucket_name_problem(raw)
    if problem:
        raise InvalidSetting(variable, f"{variable}={raw!r} is not an S3 bucket name: {problem}")
    return raw


def _matching(
    environ: Mapping[str, str], variable: str, pattern: re.Pattern[str], expected: str
) -> str | None:
    raw = environ.get(variable)
    if raw is None:
        return None
    if not pattern.fullmatch(raw):
        raise InvalidSetting(variable, f"{variable}={raw!r} is not {expected}")
    return raw


def _optional(environ: Mapping[str, str], variable: str) -> str | None:
    """A value whose empty form means "not set" (deployment templates pass optional values as empty)."""
    raw = environ.get(variable, "")
    return raw if raw.strip() else None


def _choice(environ: Mapping[str, str], variable: str, choices: tuple[str, ...]) -> str:
    raw = environ.get(variable, choices[0])
    value = raw.strip().lower()
    if value not in choices:
        raise InvalidSetting(variable, f"{variable}={raw!r} is not one of {', '.join(choices)}")
    return value


def _slack_webhook_set(environ: Mapping[str, str]) -> bool:
    raw = _optional(environ, "SPOTLAKE_SLACK_WEBHOOK_URL")
    if raw is None:
        return False
    if not raw.startswith("https://"):
        # The URL is a credential: say what is wrong without echoing it.
        raise InvalidSetting(
            "SPOTLAKE_SLACK_WEBHOOK_URL",
            "SPOTLAKE_SLACK_WEBHOOK_URL is not an https:// URL (its value is a secret and is not shown)",
        )
    return True


def _ui_url(environ: Mapping[str, str]) -> str | None:
    raw = _optional(environ, "SPOTLAKE_UI_URL")
    if raw is not None and not raw.startswith(("http://", "https://")):
        raise InvalidSetting("SPOTLAKE_UI_URL", f"SPOTLAKE_UI_URL={raw!r} is not an http:// or https:// URL")
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse and check every `SPOTLAKE_*` variable (a set but unusable value fails even where the chosen
    environment does not use it: it is a mistake either way). `SPOTLAKE_ENV` is checked first."""
    env = _environ(environ)
    name = environment_name(env)
    read_bucket = _bucket(env, "SPOTLAKE_READ_BUCKET")
    write_bucket = _bucket(env, "SPOTLAKE_WRITE_BUCKET")
    if name == "test" and read_bucket is not None and read_bucket == write_bucket:
        raise InvalidSetting(
            "SPOTLAKE_WRITE_BUCKET",
            f"SPOTLAKE_READ_BUCKET and SPOTLAKE_WRITE_BUCKET are both {read_bucket!r}: the test environment "
            "must write to a bucket other than the one it reads configuration from",
        )
    secret_id = _optional(env, "SPOTLAKE_CREDENTIALS_SECRET_ID")
    if secret_id is not None and not _SECRET_ID.fullmatch(secret_id):
        raise InvalidSetting(
            "SPOTLAKE_CREDENTIALS_SECRET_ID",
            f"SPOTLAKE_CREDENTIALS_SECRET_ID={secret_id!r} is not a Secrets Manager secret name or ARN",
        )
    aws_name = "a name of 3-255 letters, digits, '_', '-' or '.'"
    region = "an AWS region (e.g. us-west-2)"
    return Settings(
        environment=name,
        home=spotlake_home(env),
        seed=_seed(env),
        scale=_scale(env),
        bucket=_bucket(env, "SPOTLAKE_BUCKET"),
        read_bucket=read_bucket,
        write_bucket=write_bucket,
        credentials_secret_id=secret_id,
        timestream_database=_matching(env, "SPOTLAKE_TIMESTREAM_DATABASE", _AWS_NAME, aws_name),
        timestream_region=_matching(env, "SPOTLAKE_TIMESTREAM_REGION", _REGION, region)
        or DEFAULT_TIMESTREAM_REGION,
        azure_auth=_choice(env, "SPOTLAKE_AZURE_AUTH", AZURE_AUTH_SOURCES),
        azure_auth_table=_matching(env, "SPOTLAKE_AZURE_AUTH_TABLE", _AWS_NAME, aws_name)
        or DEFAULT_AZURE_AUTH_TABLE,
        azure_auth_item=_matching(env, "SPOTLAKE_AZURE_AUTH_ITEM", _ITEM_ID, "a non-empty item id")
        or DEFAULT_AZURE_AUTH_ITEM,
        slack_webhook_set=_slack_webhook_set(env),
        ui_url=_ui_url(env),
    )


def _local(settings: Settings) -> dict[str, Any]:
    from spotlake_assets.aws.simulation import SimulatedAwsApi

    lake_root = str(settings.home / "lake")
    return {
        "lake": LocalLake(root=lake_root),
        "aws_api": SimulatedAwsApi(seed=settings.seed, scale=settings.scale),
        "aws_credentials": AwsCredentialPool(source="simulated", seed=settings.seed),
        "timestream": LocalTimestream(root=lake_root),
    }


def _timestream(settings: Settings, database: str, protected: list[str]) -> Boto3Timestream:
    return Boto3Timestream(
        database=settings.timestream_database or database,
        region_name=settings.timestream_region,
        protected_databases=protected,
    )


def _test(settings: Settings) -> dict[str, Any]:
    return {
        "lake": S3Lake(
            bucket=dg.EnvVar("SPOTLAKE_WRITE_BUCKET"),
            config_bucket=dg.EnvVar("SPOTLAKE_READ_BUCKET"),
            require_distinct_buckets=True,
            bucket_variable=LAKE_BUCKET_VARIABLE["test"],
            config_bucket_variable=CONFIG_BUCKET_VARIABLE["test"],
        ),
        "aws_api": Boto3AwsApi(),
        "aws_credentials": AwsCredentialPool(source="lake_csv"),
        "timestream": _timestream(settings, TEST_TIMESTREAM_DATABASE, [PROD_TIMESTREAM_DATABASE]),
    }


def _prod(settings: Settings) -> dict[str, Any]:
    secret_id = settings.credentials_secret_id
    credentials = (
        AwsCredentialPool(source="secrets_manager", secret_id=secret_id)
        if secret_id
        else AwsCredentialPool(source="lake_csv")
    )
    return {
        "lake": S3Lake(bucket=dg.EnvVar("SPOTLAKE_BUCKET"), bucket_variable=LAKE_BUCKET_VARIABLE["prod"]),
        "aws_api": Boto3AwsApi(),
        "aws_credentials": credentials,
        "timestream": _timestream(settings, PROD_TIMESTREAM_DATABASE, []),
    }


_RESOURCE_SETS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "local": _local,
    "test": _test,
    "prod": _prod,
}


def resources_for(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The whole resource set of the environment: lake, sinks, each provider's API and credentials, alerts."""
    from spotlake_assets.azure.resources import azure_resources
    from spotlake_assets.core.alerts import slack_resource

    env = _environ(environ)
    settings = load_settings(env)
    return {
        **_RESOURCE_SETS[settings.environment](settings),
        **azure_resources(settings.environment, env),
        "slack": slack_resource(env),
    }
