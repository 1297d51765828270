"""The Azure resource set of each environment (``azure_api``, ``azure_credentials``), for the one resolver
(`spotlake_assets.environment`).

Apart from `resources` because the simulation implements the interface `resources` defines: the module that
chooses between them sits above both, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from spotlake_assets.azure.credentials import AzureCredentials
from spotlake_assets.azure.resources import AzureSdkApi
from spotlake_assets.settings import load_settings


def azure_resources(environment: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The Azure resources (``azure_api``, ``azure_credentials``) of ``environment``.

    ``local``: the simulated Azure (`SPOTLAKE_SEED`, `SPOTLAKE_SCALE`) and simulated credentials. ``test`` and
    ``prod``: the SDK-backed API; credentials from SpotLake's `AzureAuth` DynamoDB table, or from environment
    variables when `SPOTLAKE_AZURE_AUTH=env` (secrets read as `dg.EnvVar`s at run time, never here).

    Every value is parsed by the one resolver (`spotlake_assets.settings.load_settings`), so a bad
    `SPOTLAKE_SCALE` or an unknown ``environment`` fails here with the same `InvalidSetting` message as
    everywhere else.
    """
    settings = load_settings({**environ, "SPOTLAKE_ENV": environment})
    if settings.environment == "local":
        # Imported here: the simulation (and its catalogue) is only loaded where it is used.
        from spotlake_assets.azure.simulation import SimulatedAzureApi

        return {
            "azure_api": SimulatedAzureApi(
                seed=settings.seed, scale=settings.scale, latency_ms=settings.sim_latency_ms
            ),
            "azure_credentials": AzureCredentials(source="simulated", seed=settings.seed),
        }
    if settings.azure_auth == "env":
        credentials = AzureCredentials(
            source="environment",
            tenant_id=dg.EnvVar("AZURE_TENANT_ID"),
            client_id=dg.EnvVar("AZURE_CLIENT_ID"),
            client_secret=dg.EnvVar("AZURE_CLIENT_SECRET"),
            subscriptions=dg.EnvVar("SPOTLAKE_AZURE_SUBSCRIPTIONS"),
        )
    else:
        credentials = AzureCredentials(
            source="dynamodb",
            table=settings.azure_auth_table,
            item_id=settings.azure_auth_item,
            region_name=settings.azure_auth_region,
        )
    return {"azure_api": AzureSdkApi(), "azure_credentials": credentials}
