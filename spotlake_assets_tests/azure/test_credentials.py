"""Tier 2: where the Azure login comes from (SpotLake's AzureAuth table on moto DynamoDB, environment
variables, simulated) and the resource set of every environment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import dagster as dg
import pytest
from moto import mock_aws

from spotlake_assets.azure.credentials import AzureCredentialError, AzureCredentials, parse_subscriptions
from spotlake_assets.azure.environment import azure_resources
from spotlake_assets.azure.resources import AzureSdkApi
from spotlake_assets.azure.simulation import SimulatedAzureApi

SECRET = "super-secret-value"


@pytest.fixture
def auth_table(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        table = dynamodb.create_table(
            TableName="AzureAuth",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield table


def test_login_from_spotlake_azureauth_item(auth_table: Any) -> None:
    auth_table.put_item(
        Item={
            "id": "login_auth_az_true",
            "data": {
                "tenant_id": "t-1",
                "client_id": "c-0042",
                "client_secret": SECRET,
                "subscriptions": "sub-1, sub-2,,sub-1",
            },
        }
    )
    login = AzureCredentials(source="dynamodb").load()
    assert (login.tenant_id, login.client_id, login.subscriptions) == ("t-1", "c-0042", ("sub-1", "sub-2"))
    assert SECRET not in repr(login) and SECRET not in login.label


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (None, "no such item"),
        ({"id": "login_auth_az_true", "other": 1}, "no 'data' map"),
        (
            {
                "id": "login_auth_az_true",
                "data": {"tenant_id": "t", "client_id": "c", "client_secret": SECRET, "subscriptions": " "},
            },
            "missing or empty fields",
        ),
        (
            {"id": "login_auth_az_true", "data": {"tenant_id": "t", "client_id": "c", "subscriptions": "s"}},
            r"missing or empty fields \['client_secret'\]",
        ),
    ],
)
def test_bad_items_are_named_without_the_secret(
    auth_table: Any, item: dict[str, Any] | None, message: str
) -> None:
    if item is not None:
        auth_table.put_item(Item=item)
    with pytest.raises(AzureCredentialError, match=message) as raised:
        AzureCredentials(source="dynamodb").load()
    assert SECRET not in str(raised.value)


def test_login_from_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AZURE_TENANT_ID": "t-9",
        "AZURE_CLIENT_ID": "c-9",
        "AZURE_CLIENT_SECRET": SECRET,
        "SPOTLAKE_AZURE_SUBSCRIPTIONS": "s1,s2,s3",
    }.items():
        monkeypatch.setenv(name, value)
    resources = azure_resources("prod", {"SPOTLAKE_AZURE_AUTH": "env"})

    @dg.asset
    def probe(azure_credentials: AzureCredentials) -> dg.MaterializeResult[None]:
        login = azure_credentials.load()
        return dg.MaterializeResult(metadata={"subs": len(login.subscriptions), "label": login.label})

    result = dg.materialize([probe], resources={"azure_credentials": resources["azure_credentials"]})
    metadata = result.asset_materializations_for_node("probe")[0].metadata
    assert metadata["subs"].value == 3 and SECRET not in str(metadata)


def test_parse_subscriptions_refuses_empty() -> None:
    with pytest.raises(AzureCredentialError, match="no subscription ids"):
        parse_subscriptions(" , ", "somewhere")


def test_resource_sets_per_environment() -> None:
    local = azure_resources("local", {"SPOTLAKE_SEED": "11", "SPOTLAKE_SCALE": "0.2"})
    assert isinstance(local["azure_api"], SimulatedAzureApi) and local["azure_api"].simulated
    assert (local["azure_api"].seed, local["azure_api"].scale) == (11, 0.2)
    assert local["azure_credentials"].source == "simulated"
    for env in ("test", "prod"):
        real = azure_resources(env, {})
        assert isinstance(real["azure_api"], AzureSdkApi) and not real["azure_api"].simulated
        assert real["azure_credentials"].source == "dynamodb"
        assert real["azure_credentials"].table == "AzureAuth"
    with pytest.raises(ValueError, match="unknown environment"):
        azure_resources("staging", {})
