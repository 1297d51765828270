"""Timestream sinks: one interface, the real service through boto3, and a local stand-in.

Both send a window's `RecordSet` the same way: batches of at most 100 records, several writers in parallel,
and per-record rejections handled without recursion. A rejected record is retried only when its reason can
pass (an unknown, possibly transient reason), at most ``rejected_attempts`` times in all; every other
rejection (a version conflict, a value past the memory store's retention, a limit) is reported once, with
its reason, in the `WriteReport`. Throttling and 5xx answers belong to botocore's retry mode.

Idempotency comes from the records themselves (`spotlake_assets.sinks.records.window_version`): a rerun
sends the same Version, so Timestream keeps one record per (dimensions, measure name, time).
"""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
from pydantic import PrivateAttr
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from spotlake_assets.sinks.records import Record, RecordSet, effective_record
from spotlake_assets.storage.botocore_config import client_config
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets.storage.locks import file_lock

if TYPE_CHECKING:
    # Type stubs only (dev dependency): never imported at run time.
    from mypy_boto3_timestream_write import TimestreamWriteClient
    from mypy_boto3_timestream_write.type_defs import RecordTypeDef

log = logging.getLogger(__name__)


class _ResendRejected(Exception):
    """Some records of a batch were refused for a reason a resend can cure."""


# Rejection reasons that no resend can cure (docs/data-contracts.md#timestream-records; the API's
# RejectedRecord documentation): a version conflict, a time outside the memory store's retention, a value past
# a limit or of the wrong shape.
_PERMANENT_REASON_WORDS = (
    "version",
    "retention",
    "memory store",
    "magnetic store",
    "time range",
    "limit",
    "exceed",
    "duplicate",
    "invalid",
    "schema",
)


class TimestreamError(RuntimeError):
    """A write failed as a whole (missing table, access denied, persistent throttling, a refused target)."""


@dataclass(frozen=True)
class Rejection:
    """One record Timestream refused for good, with where it sits in the window's record set."""

    index: int
    record: str
    reason: str
    existing_version: int | None
    attempts: int

    def as_metadata(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "record": self.record,
            "reason": self.reason,
            "existing_version": self.existing_version,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class WriteReport:
    target: str
    records: int
    ingested: int
    calls: int
    resent: int
    rejected: tuple[Rejection, ...]

    def reasons(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejected).most_common())


@dataclass(frozen=True)
class _Refusal:
    """A rejected record as a WriteRecords call reports it: its index within that call's records."""

    index: int
    reason: str
    existing_version: int | None


@dataclass(frozen=True)
class _Answer:
    ingested: int
    refused: tuple[_Refusal, ...] = ()


def is_retryable(reason: str, existing_version: int | None) -> bool:
    """Whether resending a rejected record can succeed: only for reasons outside the documented permanent
    ones (an unknown reason may be transient)."""
    if existing_version is not None:
        return False
    text = reason.lower()
    return not any(word in text for word in _PERMANENT_REASON_WORDS)


class TimestreamSink(dg.ConfigurableResource, ABC):  # type: ignore[type-arg]
    """Writes a window's records to ``database``. ``tables`` renames a provider's table (e.g. to keep a
    test run out of the production tables); by default a record set goes to its mapping's table name."""

    database: str = "spotlake"
    tables: dict[str, str] = {}
    writers: int = 8
    rejected_attempts: int = 3
    rejected_backoff_s: float = 1.0

    @property
    @abstractmethod
    def local(self) -> bool:
        """True when records stay on this machine instead of reaching Timestream."""

    @abstractmethod
    def _write_batch(self, table: str, common: Mapping[str, Any], records: Sequence[Record]) -> _Answer:
        """One WriteRecords call; rejections come back in the answer, any other failure raises."""

    def table_name(self, table: str) -> str:
        return self.tables.get(table, table)

    def target(self, table: str) -> str:
        return f"{self.database}.{self.table_name(table)}"

    def _check_target(self, table: str) -> None:
        """Refuse a write before anything is sent; the default accepts every target."""

    def write(self, records: RecordSet) -> WriteReport:
        """Send every record of ``records`` (batches of ≤ 100 in parallel) and report what happened."""
        if self.writers < 1 or self.rejected_attempts < 1:
            raise ValueError("writers and rejected_attempts must be at least 1")
        table = self.table_name(records.table)
        self._check_target(table)
        batches = list(records.batches())

        def send(batch: tuple[int, Sequence[Record]]) -> tuple[int, int, int, list[Rejection]]:
            return self._send(table, records, *batch)

        # The first batch goes alone: it makes the client discover (and cache) its endpoint once, instead of
        # every writer thread racing to DescribeEndpoints, and a target that refuses everything fails once.
        outcomes = [send(batches[0])] if batches else []
        executor = ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="timestream")
        try:
            outcomes.extend(executor.map(send, batches[1:]))
        except BaseException:
            # Fail fast: the rest of the window is resent by the rerun anyway (same Version).
            executor.shutdown(wait=True, cancel_futures=True)
            raise
        executor.shutdown(wait=True)
        rejected = tuple(sorted((r for _, _, _, rs in outcomes for r in rs), key=lambda r: r.index))
        report = WriteReport(
            target=self.target(records.table),
            records=len(records),
            ingested=sum(o[0] for o in outcomes),
            calls=sum(o[1] for o in outcomes),
            resent=sum(o[2] for o in outcomes),
            rejected=rejected,
        )
        log.info(
            "%s: %d records in %d calls, %d ingested, %d resent, %d rejected",
            report.target,
            report.records,
            report.calls,
            report.ingested,
            report.resent,
            len(report.rejected),
        )
        return report

    def _send(
        self, table: str, records: RecordSet, offset: int, batch: Sequence[Record]
    ) -> tuple[int, int, int, list[Rejection]]:
        """One batch with bounded resends of its retryable rejections: (ingested, calls, resent, rejected)."""
        pending = list(range(len(batch)))
        ingested = calls = resent = 0
        final: list[Rejection] = []
        retrying = Retrying(
            retry=retry_if_exception_type(_ResendRejected),
            stop=stop_after_attempt(self.rejected_attempts),
            wait=wait_exponential(multiplier=self.rejected_backoff_s),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                answer = self._write_batch(table, records.common, [batch[i] for i in pending])
                calls += 1
                ingested += answer.ingested
                again: list[int] = []
                for refusal in answer.refused:
                    position = pending[refusal.index]
                    if number < self.rejected_attempts and is_retryable(
                        refusal.reason, refusal.existing_version
                    ):
                        again.append(position)
                        continue
                    index = offset + position
                    label = records.labels[index] if index < len(records.labels) else f"record {index}"
                    final.append(Rejection(index, label, refusal.reason, refusal.existing_version, number))
                if again:
                    resent += len(again)
                    log.warning(
                        "%s.%s: resending %d records rejected for a retryable reason (attempt %d of %d)",
                        self.database,
                        table,
                        len(again),
                        number + 1,
                        self.rejected_attempts,
                    )
                    pending = sorted(again)
                    # The last attempt never gets here: its retryable refusals are final above.
                    raise _ResendRejected()
        return ingested, calls, resent, final


class Boto3Timestream(TimestreamSink):
    """Timestream LiveAnalytics through boto3's ``timestream-write`` client.

    The client discovers its ingestion endpoint the way boto3 does (``DescribeEndpoints`` on first use,
    cached, refreshed on ``InvalidEndpointException``) unless ``endpoint_url`` is set, which botocore treats
    as an explicit endpoint with no discovery. Throttling and server errors are retried by botocore's
    ``retry_mode``; whatever persists fails the write with `TimestreamError`. ``protected_databases`` lists
    databases this environment must never write to (the `test` environment protects production's).
    """

    region_name: str = "us-west-2"
    endpoint_url: str | None = None
    max_attempts: int = 8
    retry_mode: str = "adaptive"
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    protected_databases: list[str] = []

    _client: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def local(self) -> bool:
        return False

    def client(self) -> TimestreamWriteClient:
        """The cached client; tests attach a Stubber or ``before-send`` handlers to it."""
        # Imported here, not at module level: loading the definitions must not pay for it.
        import boto3

        with self._lock:
            if self._client is None:
                config = client_config(
                    retry_mode=self.retry_mode,
                    max_attempts=self.max_attempts,
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    # One connection per parallel writer, so writers never queue for the pool.
                    max_pool_connections=max(10, self.writers),
                )
                self._client = boto3.session.Session().client(
                    "timestream-write",
                    region_name=self.region_name,
                    endpoint_url=self.endpoint_url,
                    config=config,
                )
            return cast("TimestreamWriteClient", self._client)

    def _check_target(self, table: str) -> None:
        if self.database in self.protected_databases:
            raise TimestreamError(
                f"writing to Timestream database {self.database!r} is refused in this environment "
                f"(protected: {', '.join(self.protected_databases)}); configure its own database"
            )

    def _write_batch(self, table: str, common: Mapping[str, Any], records: Sequence[Record]) -> _Answer:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        try:
            answer = client.write_records(
                DatabaseName=self.database,
                TableName=table,
                CommonAttributes=cast("RecordTypeDef", dict(common)),
                Records=cast("list[RecordTypeDef]", list(records)),
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            if code == "RejectedRecordsException":
                raw = cast(list[dict[str, Any]], exc.response.get("RejectedRecords", []))
                refused = tuple(
                    _Refusal(
                        int(r["RecordIndex"]),
                        str(r.get("Reason", "no reason given")),
                        None if r.get("ExistingVersion") is None else int(r["ExistingVersion"]),
                    )
                    for r in raw
                )
                # Records not listed were written: WriteRecords is not all-or-nothing.
                return _Answer(ingested=len(records) - len(refused), refused=refused)
            raise TimestreamError(
                f"WriteRecords to {self.database}.{table} in {self.region_name} failed: {code}: "
                f"{str(error.get('Message', '')).strip()}"
            ) from exc
        except BotoCoreError as exc:
            raise TimestreamError(
                f"WriteRecords to {self.database}.{table} in {self.region_name} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return _Answer(ingested=int(answer.get("RecordsIngested", {}).get("Total", len(records))))


def _record_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    dims = tuple(sorted((d["Name"], d["Value"]) for d in record.get("Dimensions", [])))
    return (str(record["Time"]), str(record.get("MeasureName", "")), dims)


def _record_values(record: Mapping[str, Any]) -> tuple[Any, ...]:
    values = tuple(sorted((m["Name"], m["Value"], m.get("Type")) for m in record.get("MeasureValues", [])))
    return (record.get("MeasureValueType"), record.get("MeasureValue"), values)


def _time_of(record: Mapping[str, Any]) -> datetime:
    unit = record.get("TimeUnit", "MILLISECONDS")
    per_second = {"MILLISECONDS": 1_000, "SECONDS": 1, "MICROSECONDS": 1_000_000, "NANOSECONDS": 10**9}[unit]
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(record["Time"]) / per_second)


class LocalTimestream(TimestreamSink):
    """A Timestream table on disk: exactly the records that would have been sent, as Timestream would keep
    them (the common attributes applied, one record per dimensions + measure name + time, a record replaced
    only by a higher Version, an equal-or-lower Version with other values rejected like the service does).

    Records live as JSON lines under ``<root>/timestream/<database>/<table>/YYYY/MM/DD/HH-MM-SS.jsonl``, one
    file per record time, sorted, rewritten atomically once per `write` under a file lock.
    """

    root: str

    _state_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _state: dict[tuple[str, str], dict[tuple[Any, ...], Record]] = PrivateAttr(default_factory=dict)

    @property
    def local(self) -> bool:
        return True

    def _file_key(self, table: str, moment: datetime) -> str:
        return f"timestream/{self.database}/{table}/{moment.strftime('%Y/%m/%d/%H-%M-%S')}.jsonl"

    def _lake(self) -> LocalLake:
        return LocalLake(root=self.root)

    def _load(self, file_key: str) -> dict[tuple[Any, ...], Record]:
        path = Path(self._lake().location(file_key))
        if not path.exists():
            return {}
        stored = (json.loads(line) for line in path.read_text().splitlines() if line)
        return {_record_key(record): record for record in stored}

    def write(self, records: RecordSet) -> WriteReport:
        table = self.table_name(records.table)
        files = sorted({self._file_key(table, _time_of(r)) for r in records.effective()})
        with file_lock(Path(self.root) / "timestream" / ".lock"):
            self._state = {(table, key): self._load(key) for key in files}
            try:
                report = super().write(records)
                lake = self._lake()
                for (_, key), stored in sorted(self._state.items()):
                    lines = [
                        json.dumps(stored[k], sort_keys=True, separators=(",", ":")) for k in sorted(stored)
                    ]
                    lake.write_bytes(key, ("\n".join(lines) + "\n").encode())
            finally:
                self._state = {}
        return report

    def _write_batch(self, table: str, common: Mapping[str, Any], records: Sequence[Record]) -> _Answer:
        refused: list[_Refusal] = []
        with self._state_lock:
            for index, record in enumerate(records):
                stored = effective_record(common, record)
                file_state = self._state[(table, self._file_key(table, _time_of(stored)))]
                key = _record_key(stored)
                held = file_state.get(key)
                version = int(stored.get("Version", 1))
                if held is None or version > int(held.get("Version", 1)):
                    file_state[key] = stored
                elif _record_values(held) != _record_values(stored):
                    refused.append(
                        _Refusal(
                            index,
                            "A record with the same dimensions, time and measure name already exists with "
                            "other values and an equal or higher version",
                            int(held.get("Version", 1)),
                        )
                    )
        return _Answer(ingested=len(records) - len(refused), refused=tuple(refused))

    def stored(self, table: str) -> list[Record]:
        """Every record held for ``table`` (the provider table name, before renaming), in file order."""
        lake = self._lake()
        out: list[Record] = []
        for key in lake.list_keys(f"timestream/{self.database}/{self.table_name(table)}/"):
            text = lake.read_bytes(key).decode()
            out.extend(json.loads(line) for line in text.splitlines() if line)
        return out
