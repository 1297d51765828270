"""The SPS credential pool: where the accounts come from (simulated, the lake's CSV, Secrets Manager) and how
they are parsed. Which account spends which configuration each day is `spotlake_assets.aws.budget`."""

from __future__ import annotations

import csv
import io
import logging
from typing import Literal, TypeVar

import dagster as dg

from spotlake_assets.aws.models import Credential
from spotlake_assets.storage.botocore_config import client_config
from spotlake_assets.storage.lake import LakeResource

CSV_COLUMNS = ("AccessKeyId", "SecretAccessKey")
# A byte-order mark that Excel and Windows editors put before the header (decoded, it is U+FEFF).
_BOM = "\ufeff"

log = logging.getLogger(__name__)

R = TypeVar("R")


class CredentialPoolError(ValueError):
    """The credential pool could not be read or is malformed (the message never contains a secret)."""


def parse_credentials_csv(text: str, source: str) -> list[Credential]:
    """Parse SpotLake's credential CSV (header ``AccessKeyId,SecretAccessKey``; extra columns ignored; a
    leading byte-order mark accepted). Errors name ``source`` and the line, never a secret."""
    reader = csv.DictReader(io.StringIO(text.removeprefix(_BOM)))
    try:
        header = tuple(name.strip() for name in reader.fieldnames or ())
    except csv.Error as exc:
        raise CredentialPoolError(f"{source}: line 1 (header) is not valid CSV: {exc}") from None
    reader.fieldnames = list(header)
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise CredentialPoolError(
            f"{source}: line 1 (header) lacks columns {missing} (header: {list(header)})"
        )
    pool: list[Credential] = []
    seen: set[str] = set()
    try:
        for row in reader:
            # The reader's own count: blank lines and quoted line breaks make positions drift from rows.
            line_number = reader.line_num
            key_id = (row.get("AccessKeyId") or "").strip()
            secret = (row.get("SecretAccessKey") or "").strip()
            if not key_id or not secret:
                raise CredentialPoolError(
                    f"{source}: line {line_number} has an empty AccessKeyId or SecretAccessKey"
                )
            if key_id in seen:
                raise CredentialPoolError(f"{source}: line {line_number} repeats access key …{key_id[-4:]}")
            seen.add(key_id)
            pool.append(Credential(index=len(pool), access_key_id=key_id, secret_access_key=secret))
    except csv.Error as exc:
        # The csv module's messages quote no field values, so they cannot leak a secret.
        raise CredentialPoolError(f"{source}: line {reader.line_num} is not valid CSV: {exc}") from None
    if not pool:
        raise CredentialPoolError(f"{source}: the credential CSV has no credentials")
    return pool


class AwsCredentialPool(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the SPS credentials come from.

    ``lake_csv``: a CSV read from the lake's configuration location (in `test`, the read bucket).
    ``secrets_manager``: a Secrets Manager secret whose string is the same CSV.
    ``simulated``: obviously fake credentials for the simulated AWS (key ids start with
    `SIMULATED_KEY_PREFIX`; `Boto3AwsApi` refuses to sign with them).
    """

    source: Literal["lake_csv", "secrets_manager", "simulated"] = "lake_csv"
    lake_key: str = "config/aws/credentials.csv"
    secret_id: str | None = None
    region_name: str = "us-west-2"
    endpoint_url: str | None = None
    simulated_size: int = 2000
    seed: int = 7

    def describe(self) -> str:
        if self.source == "lake_csv":
            return f"lake:{self.lake_key}"
        if self.source == "secrets_manager":
            return f"secretsmanager:{self.secret_id}"
        return f"simulated:{self.simulated_size}"

    def load(self, lake: LakeResource) -> list[Credential]:
        # Imported here, not at module level: loading the definitions must not pay for it.
        import boto3

        if self.source == "simulated":
            # Imported here: the simulation (and its catalogue) is only loaded where it is used.
            from spotlake_assets.aws.simulation import simulated_credentials

            return simulated_credentials(self.simulated_size, self.seed)
        if self.source == "lake_csv":
            try:
                # utf-8-sig: spreadsheets save CSV with a byte-order mark before the header.
                text = lake.read_config_bytes(self.lake_key).decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise CredentialPoolError(
                    f"lake:{self.lake_key}: not UTF-8 text (byte {exc.start})"
                ) from None
            return parse_credentials_csv(text, f"lake:{self.lake_key}")
        if not self.secret_id:
            raise CredentialPoolError("credential source secrets_manager needs secret_id")
        client = boto3.session.Session().client(
            "secretsmanager",
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            config=client_config(),
        )
        secret = client.get_secret_value(SecretId=self.secret_id)
        text = secret.get("SecretString")
        if not text:
            raise CredentialPoolError(f"secretsmanager:{self.secret_id}: the secret has no SecretString")
        return parse_credentials_csv(str(text), f"secretsmanager:{self.secret_id}")
