"""Every `SPOTLAKE_*` setting, parsed once: `load_settings` checks each variable and fails with an
`InvalidSetting` naming the variable and its value (never a secret's value).

- ``SPOTLAKE_ENV``: ``local`` (default), ``test`` or ``prod``; anything else is an `UnknownEnvironment`;
- ``SPOTLAKE_HOME``, ``SPOTLAKE_SCALE``, ``SPOTLAKE_SEED``: the local lake and the simulated clouds;
  ``SPOTLAKE_SIM_LATENCY_MS``: the simulated clouds' median per-call latency (default 0, none);
- ``SPOTLAKE_PARTITIONS_START``: the first day (``YYYY-MM-DD``) of every partitioned asset; in ``local``
  `LOCAL_PARTITIONS_LOOKBACK_DAYS` before today, in ``test`` and ``prod`` `PRODUCTION_PARTITIONS_START`;
- bucket variables (`SPOTLAKE_BUCKET`, `SPOTLAKE_READ_BUCKET`, `SPOTLAKE_WRITE_BUCKET`), Timestream
  (`SPOTLAKE_TIMESTREAM_DATABASE`, `SPOTLAKE_TIMESTREAM_REGION`), the credential secret, the Azure variables
  (`SPOTLAKE_AZURE_AUTH_REGION`); every AWS client's region is `AWS_REGION` (default us-west-2) unless its
  own override is set;
  and the alert ones (`SPOTLAKE_SLACK_WEBHOOK_URL`, `SPOTLAKE_SLACK_BOT_TOKEN`, `SPOTLAKE_SLACK_CHANNEL`,
  `SPOTLAKE_UI_URL`); the single-account report's channels (`SPOTLAKE_REPORT_*`, `REPORT_VARIABLES`).

Kept apart from `spotlake_assets.environment` (which builds the resource sets of every provider) so the
layers below the entry points (a provider's resources, the alerts resource, `spotlake query`) can read the
settings without importing the providers: imports only go downward (see `[tool.importlinter]`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from spotlake_assets.storage.lake import bucket_name_problem

ENVIRONMENTS = ("local", "test", "prod")
PROD_TIMESTREAM_DATABASE = "spotlake"
TEST_TIMESTREAM_DATABASE = "spotlake-test"
DEFAULT_HOME = ".spotlake"
DEFAULT_SEED = 7
DEFAULT_SCALE = 1.0
# Production's partitions start when SpotLake Assets started collecting: fixed, so a deployment never loses
# (or invents) partitions when it restarts on another day.
PRODUCTION_PARTITIONS_START = "2026-01-01"
# A laptop starts a few days back: enough for the demo's day and a backfill, without the UI reading
# "0% of 48,000 partitions" for months nobody collected.
LOCAL_PARTITIONS_LOOKBACK_DAYS = 3
# Only where neither AWS_REGION nor AWS_DEFAULT_REGION is set (a laptop): production's job definitions set
# AWS_REGION from Terraform's `region`, and every AWS client follows it unless its own override is set.
DEFAULT_REGION = "us-west-2"
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
    # One region for every AWS client (AWS_REGION, then AWS_DEFAULT_REGION), overridable per service.
    region: str
    # The region named in the environment, None when it fell back to the default (readers that can find a
    # bucket's region themselves, such as pyarrow's S3 filesystem, should not be pinned to the default).
    region_from_environment: str | None
    # An S3-compatible endpoint (MinIO, moto): AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, as boto3 does.
    s3_endpoint_url: str | None
    timestream_region: str
    azure_auth_region: str
    azure_auth: str
    azure_auth_table: str
    azure_auth_item: str
    slack_webhook_set: bool
    ui_url: str | None
    # Median latency of each simulated cloud call, in ms (a long tail above it); 0 waits not at all.
    sim_latency_ms: float = 0.0
    # The first day of every partitioned asset, YYYY-MM-DD (see `partitions_start`).
    partitions_start: str = PRODUCTION_PARTITIONS_START
    # A Slack bot token (SPOTLAKE_SLACK_BOT_TOKEN, a secret read as an EnvVar) and the channel it posts to.
    slack_bot_token_set: bool = False
    slack_channel: str | None = None
    # The single-account report's SPOTLAKE_REPORT_* variables that are set (values are read as EnvVars).
    report_variables: tuple[str, ...] = ()

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


def _latency_ms(environ: Mapping[str, str]) -> float:
    raw = environ.get("SPOTLAKE_SIM_LATENCY_MS")
    if raw is None or not raw.strip():
        return 0.0
    try:
        latency = float(raw.strip())
    except ValueError:
        latency = math.nan
    # A median in milliseconds: finite, non-negative, and below a minute (a typo would stall every call).
    if not 0.0 <= latency <= 60_000.0:
        raise InvalidSetting(
            "SPOTLAKE_SIM_LATENCY_MS",
            f"SPOTLAKE_SIM_LATENCY_MS={raw!r} is not a number of milliseconds in [0, 60000] (the median"
            " latency of each simulated cloud call)",
        )
    return latency


def partitions_start(environment: str, environ: Mapping[str, str], today: date | None = None) -> str:
    """`SPOTLAKE_PARTITIONS_START` (a UTC day, YYYY-MM-DD, not after today); unset: production's fixed
    start in ``test``/``prod``, `LOCAL_PARTITIONS_LOOKBACK_DAYS` before today in ``local``."""
    today = today or datetime.now(UTC).date()
    raw = environ.get("SPOTLAKE_PARTITIONS_START", "")
    if not raw.strip():
        if environment == "local":
            return (today - timedelta(days=LOCAL_PARTITIONS_LOOKBACK_DAYS)).isoformat()
        return PRODUCTION_PARTITIONS_START
    try:
        day = datetime.strptime(raw.strip(), "%Y-%m-%d").date()
    except ValueError:
        day = None
    if day is None or day > today:
        raise InvalidSetting(
            "SPOTLAKE_PARTITIONS_START",
            f"SPOTLAKE_PARTITIONS_START={raw!r} is not a UTC day (YYYY-MM-DD) on or before today "
            f"({today.isoformat()}): the first day of every partitioned asset",
        )
    return day.isoformat()


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


REPORT_VARIABLES = (
    "SPOTLAKE_REPORT_MAIL_FROM",
    "SPOTLAKE_REPORT_MAIL_TO",
    "SPOTLAKE_REPORT_SMTP_HOST",
    "SPOTLAKE_REPORT_SMTP_PORT",
    "SPOTLAKE_REPORT_SMTP_USER",
    "SPOTLAKE_REPORT_SMTP_PASSWORD",
    "SPOTLAKE_REPORT_SES_REGION",
    "SPOTLAKE_REPORT_SLACK_WEBHOOK_URL",
)


def _report_variables(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The single-account report channels (aws_single/environment.py): which variables are set; the port
    and the SES region are checked here, secrets never echoed."""
    port = _optional(environ, "SPOTLAKE_REPORT_SMTP_PORT")
    if port is not None and not (_INTEGER.fullmatch(port) and 1 <= int(port) <= 65535):
        raise InvalidSetting(
            "SPOTLAKE_REPORT_SMTP_PORT", f"SPOTLAKE_REPORT_SMTP_PORT={port!r} is not a TCP port (1-65535)"
        )
    _matching(environ, "SPOTLAKE_REPORT_SES_REGION", _REGION, "an AWS region (e.g. eu-west-1)")
    return tuple(v for v in REPORT_VARIABLES if _optional(environ, v) is not None)


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


def _slack_bot(environ: Mapping[str, str]) -> tuple[bool, str | None]:
    """Whether a bot token is set (its value is never read here) and its channel, which it needs."""
    token_set = _optional(environ, "SPOTLAKE_SLACK_BOT_TOKEN") is not None
    channel = _optional(environ, "SPOTLAKE_SLACK_CHANNEL")
    if token_set and channel is None:
        raise InvalidSetting(
            "SPOTLAKE_SLACK_CHANNEL", "SPOTLAKE_SLACK_BOT_TOKEN is set but SPOTLAKE_SLACK_CHANNEL is not"
        )
    return token_set, channel


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
    named_region = _matching(env, "AWS_REGION", _REGION, region) or _matching(
        env, "AWS_DEFAULT_REGION", _REGION, region
    )
    aws_region = named_region or DEFAULT_REGION
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
        region=aws_region,
        region_from_environment=named_region,
        s3_endpoint_url=_optional(env, "AWS_ENDPOINT_URL_S3") or _optional(env, "AWS_ENDPOINT_URL"),
        timestream_region=_matching(env, "SPOTLAKE_TIMESTREAM_REGION", _REGION, region) or aws_region,
        azure_auth_region=_matching(env, "SPOTLAKE_AZURE_AUTH_REGION", _REGION, region) or aws_region,
        azure_auth=_choice(env, "SPOTLAKE_AZURE_AUTH", AZURE_AUTH_SOURCES),
        azure_auth_table=_matching(env, "SPOTLAKE_AZURE_AUTH_TABLE", _AWS_NAME, aws_name)
        or DEFAULT_AZURE_AUTH_TABLE,
        azure_auth_item=_matching(env, "SPOTLAKE_AZURE_AUTH_ITEM", _ITEM_ID, "a non-empty item id")
        or DEFAULT_AZURE_AUTH_ITEM,
        slack_webhook_set=_slack_webhook_set(env),
        ui_url=_ui_url(env),
        sim_latency_ms=_latency_ms(env),
        partitions_start=partitions_start(name, env),
        slack_bot_token_set=_slack_bot(env)[0],
        slack_channel=_slack_bot(env)[1],
        report_variables=_report_variables(env),
    )
