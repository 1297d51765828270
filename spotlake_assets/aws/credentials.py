"""The SPS credential pool and its per-day ledger.

AWS allows each account 50 distinct Spot Placement Score configurations per rolling 24 hours. A query
repeated with the same account costs nothing, so the ledger maps every (capacity, group) of a day to one
credential: the eleven capacities of the cycle each get their own account, and every later window with the
same capacity reuses it. The ledger lives in the lake and is updated with conditional writes, so parallel
groups, concurrent runs and retried runs on other machines never hand one account to two configurations.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import boto3
import dagster as dg

from spotlake_assets.aws.constants import PROVIDER
from spotlake_assets.aws.models import Credential
from spotlake_assets.storage.botocore_config import client_config
from spotlake_assets.storage.errors import CorruptLakeFile
from spotlake_assets.storage.keys import credential_map_key
from spotlake_assets.storage.lake import LakeResource
from spotlake_assets.storage.state import Current, Swap, update

CSV_COLUMNS = ("AccessKeyId", "SecretAccessKey")
# A byte-order mark that Excel and Windows editors put before the header (decoded, it is U+FEFF).
_BOM = "\ufeff"

log = logging.getLogger(__name__)

R = TypeVar("R")


class CredentialPoolError(ValueError):
    """The credential pool could not be read or is malformed (the message never contains a secret)."""


class CredentialPoolExhausted(RuntimeError):
    """Every credential of the pool is assigned or used up for the day."""


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


@dataclass
class LedgerState:
    """Assignments of one day: ``"capacity:group"`` → pool index; ``retired``: indices found exhausted."""

    assignments: dict[str, int] = field(default_factory=dict)
    retired: list[int] = field(default_factory=list)

    def to_json(self) -> bytes:
        payload = {"assignments": self.assignments, "retired": sorted(set(self.retired))}
        return json.dumps(payload, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, location: str) -> LedgerState:
        try:
            payload = json.loads(data)
            assignments = {str(k): int(v) for k, v in payload["assignments"].items()}
            retired = [int(i) for i in payload["retired"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptLakeFile(location, f"credential ledger is not valid ({exc})") from exc
        return cls(assignments, retired)

    def next_free(self, pool_size: int) -> int | None:
        taken = set(self.assignments.values()) | set(self.retired)
        return next((i for i in range(pool_size) if i not in taken), None)


def _slot(capacity: int, group: int) -> str:
    return f"{capacity}:{group}"


class CredentialLedger:
    """The day's (capacity, group) → credential mapping, persisted in the lake with conditional writes
    (`spotlake_assets.storage.state`: another process that updated the ledger between our read and write
    makes us re-read and decide again)."""

    def __init__(self, lake: LakeResource, day_key: str, pool: list[Credential]) -> None:
        self._lake = lake
        self._key = credential_map_key(PROVIDER, day_key)
        self._pool = pool
        self._lock = threading.Lock()
        self.rotations = 0
        # "<ledger> → <where it went>: <why>" for every damaged ledger this object moved aside.
        self.moved_aside: list[str] = []

    def _set_aside(self, exc: CorruptLakeFile, moved: str) -> None:
        """Report a damaged ledger (empty, truncated, hand-edited) that was moved aside: the day's ledger
        starts again instead of failing every rerun until someone deletes it.

        Quota risk, accepted over a pipeline stuck for the rest of the day: the old assignments are lost,
        so a (capacity, group) may now get another credential than the one that already paid for its
        configurations, which spends them a second time there (the checkpoints do not record which
        credential answered, so they cannot rebuild the map), and a credential assigned to another slot
        before may get a second slot; AWS answers MaxConfigLimitExceeded once one goes over 50 and the
        ledger rotates. Nothing is published twice or wrongly: only quota is at stake, and only that day.
        """
        location = self._lake.location(self._key)
        log.warning(
            "credential ledger %s is damaged (%s); moved aside to %s and rebuilt: configurations already "
            "paid today may be paid again on other credentials",
            location,
            exc,
            moved or "(already moved by a concurrent run)",
        )
        if moved:
            self.moved_aside.append(f"{location} → {moved}: {exc}")

    def _change(self, decide: Callable[[LedgerState], R]) -> R:
        """Apply ``decide`` to the stored ledger (an empty one when there is none) by compare-and-swap; the
        ledger is written only when ``decide`` changed it."""

        def change(current: Current[LedgerState]) -> Swap[R]:
            state = current.value or LedgerState()
            before = state.to_json()
            result = decide(state)
            after = state.to_json()
            return Swap(after if after != before else None, result)

        return update(self._lake, self._key, LedgerState.from_json, change, on_damaged=self._set_aside).result

    def _assign(self, capacity: int, group: int, retire: int | None) -> Credential:
        def decide(state: LedgerState) -> Credential:
            slot = _slot(capacity, group)
            current = state.assignments.get(slot)
            if current is not None and current != retire and current not in state.retired:
                return self._pool[current]
            if retire is not None and retire not in state.retired:
                state.retired.append(retire)
                self.rotations += 1
            chosen = state.next_free(len(self._pool))
            if chosen is None:
                raise CredentialPoolExhausted(
                    f"all {len(self._pool)} credentials are assigned or exhausted for this day"
                )
            state.assignments[slot] = chosen
            return self._pool[chosen]

        return self._change(decide)

    def reserve(self, capacity: int, groups: Sequence[int]) -> None:
        """Assign credentials to every group without one, in group order and in one conditional write.
        Assigning them as threads happen to ask would make the day's ledger depend on thread timing, so the
        same window collected twice from scratch would map its groups to different accounts."""

        def decide(state: LedgerState) -> None:
            for group in sorted(groups):
                slot = _slot(capacity, group)
                if slot in state.assignments:
                    continue
                chosen = state.next_free(len(self._pool))
                if chosen is None:
                    break  # the groups left fail in credential_for, naming the exhausted pool
                state.assignments[slot] = chosen

        with self._lock:
            self._change(decide)

    def credential_for(self, capacity: int, group: int) -> Credential:
        """The credential of (capacity, group) today, assigning a free one the first time."""
        with self._lock:
            return self._assign(capacity, group, None)

    def rotate(self, capacity: int, group: int, exhausted: Credential) -> Credential:
        """Retire ``exhausted`` for the day and give (capacity, group) the next free credential."""
        with self._lock:
            return self._assign(capacity, group, exhausted.index)
