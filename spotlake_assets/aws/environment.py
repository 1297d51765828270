"""The AWS resource set of each environment (``aws_api``, ``aws_credentials``), for the one resolver
(`spotlake_assets.environment`).

``local``: the simulated AWS (`SPOTLAKE_SEED`, `SPOTLAKE_SCALE`) and simulated credentials. ``test``: boto3
and the credential CSV in the read bucket. ``prod``: boto3 and the credential CSV in the lake, or the same CSV
in Secrets Manager when `SPOTLAKE_CREDENTIALS_SECRET_ID` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.resources import Boto3AwsApi
from spotlake_assets.settings import load_settings


def aws_resources(environment: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The AWS resources of ``environment``, every value parsed by `spotlake_assets.settings.load_settings`
    (so a bad `SPOTLAKE_SCALE` fails here with the same `InvalidSetting` message as everywhere else)."""
    settings = load_settings({**environ, "SPOTLAKE_ENV": environment})
    if settings.environment == "local":
        # Imported here: the simulation (and its catalogue) is only loaded where it is used.
        from spotlake_assets.aws.simulation import SimulatedAwsApi

        return {
            "aws_api": SimulatedAwsApi(
                seed=settings.seed, scale=settings.scale, latency_ms=settings.sim_latency_ms
            ),
            "aws_credentials": AwsCredentialPool(source="simulated", seed=settings.seed),
        }
    secret_id = settings.credentials_secret_id
    # Only production may read the pool from Secrets Manager; `test` reads the CSV from its read bucket.
    if settings.environment == "prod" and secret_id:
        credentials = AwsCredentialPool(
            source="secrets_manager", secret_id=secret_id, region_name=settings.region
        )
    else:
        credentials = AwsCredentialPool(source="lake_csv", region_name=settings.region)
    return {"aws_api": Boto3AwsApi(region_name=settings.region), "aws_credentials": credentials}
