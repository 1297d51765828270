"""Where the Azure service principal comes from: SpotLake's `AzureAuth` DynamoDB table, environment variables,
or obviously fake values for the simulated Azure. The secret never reaches a log, a message or metadata."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import dagster as dg

from spotlake_assets.azure.models import AzureLogin
from spotlake_assets.storage.botocore_config import client_config

log = logging.getLogger(__name__)

# SpotLake's layout: item {"id": <item id>, "data": {tenant_id, client_id, client_secret, subscriptions}}
# where subscriptions is one comma-separated string.
AUTH_FIELDS = ("tenant_id", "client_id", "client_secret", "subscriptions")


class AzureCredentialError(ValueError):
    """The Azure login could not be read or is incomplete (the message never contains the secret)."""


def parse_subscriptions(value: str, source: str) -> tuple[str, ...]:
    """Comma-separated subscription ids → a tuple without blanks or repeats (order kept)."""
    subscriptions = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    if not subscriptions:
        raise AzureCredentialError(f"{source}: no subscription ids")
    return subscriptions


def login_from_mapping(data: Mapping[str, Any], source: str) -> AzureLogin:
    """An `AzureLogin` from SpotLake's AzureAuth ``data`` map (or the same fields from anywhere else)."""
    missing = [name for name in AUTH_FIELDS if not isinstance(data.get(name), str) or not data[name].strip()]
    if missing:
        raise AzureCredentialError(f"{source}: missing or empty fields {missing}")
    return AzureLogin(
        tenant_id=data["tenant_id"].strip(),
        client_id=data["client_id"].strip(),
        client_secret=data["client_secret"].strip(),
        subscriptions=parse_subscriptions(data["subscriptions"], source),
    )


def simulated_login(subscriptions: int, seed: int) -> AzureLogin:
    """Fake values for the simulated Azure: UUID-shaped, prefixed so nobody mistakes them for real ones."""
    if subscriptions < 1:
        raise AzureCredentialError(
            f"the simulated login needs at least one subscription, got {subscriptions}"
        )
    return AzureLogin(
        tenant_id=f"00000000-5140-0000-0000-{seed:012d}",
        client_id=f"00000000-5140-0001-0000-{seed:012d}",
        client_secret="simulated-secret-not-a-real-one",
        subscriptions=tuple(f"5140{seed % 10000:04d}-0000-0000-0000-{i:012d}" for i in range(subscriptions)),
    )


class AzureCredentials(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The Azure login of SPS and Resource Graph calls.

    ``dynamodb``: SpotLake's `AzureAuth` table (item ``item_id``, attribute ``data``).
    ``environment``: fields set from `dg.EnvVar`s (tenant, client id, secret, comma-separated subscriptions).
    ``simulated``: fake values for the simulated Azure (the SDK-backed API would be refused by Azure).
    """

    source: Literal["dynamodb", "environment", "simulated"] = "dynamodb"
    table: str = "AzureAuth"
    item_id: str = "login_auth_az_true"
    region_name: str = "us-east-1"
    endpoint_url: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    subscriptions: str | None = None
    simulated_subscriptions: int = 8
    seed: int = 7

    def describe(self) -> str:
        """Safe to log and to put in metadata."""
        if self.source == "dynamodb":
            return f"dynamodb:{self.table}/{self.item_id}"
        if self.source == "environment":
            return "environment"
        return f"simulated:{self.simulated_subscriptions} subscriptions"

    def load(self) -> AzureLogin:
        if self.source == "simulated":
            return simulated_login(self.simulated_subscriptions, self.seed)
        if self.source == "environment":
            return login_from_mapping(
                {
                    "tenant_id": self.tenant_id,
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "subscriptions": self.subscriptions,
                },
                "environment",
            )
        return self._from_dynamodb()

    def _from_dynamodb(self) -> AzureLogin:
        # Imported here, not at module level: loading the definitions must not pay for it.
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        source = self.describe()
        table = (
            boto3.session.Session()
            .resource(
                "dynamodb",
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                config=client_config(),
            )
            .Table(self.table)
        )
        try:
            answer = table.get_item(Key={"id": self.item_id})
        except (ClientError, BotoCoreError) as exc:
            raise AzureCredentialError(f"{source}: cannot read the item: {type(exc).__name__}") from exc
        item = answer.get("Item")
        if not isinstance(item, dict):
            raise AzureCredentialError(f"{source}: no such item")
        data = item.get("data")
        if not isinstance(data, dict):
            raise AzureCredentialError(f"{source}: the item has no 'data' map")
        login = login_from_mapping(data, source)
        log.info("azure login read from %s: %s", source, login.label)
        return login
