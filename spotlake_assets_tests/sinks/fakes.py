"""A stand-in for the Timestream ingestion service at the HTTP layer of the real boto3 client.

`botocore.stub.Stubber` answers before the request exists, so it never exercises endpoint discovery or
botocore's retries; this fake answers in ``before-send`` instead: the client builds, signs and sends real
requests (DescribeEndpoints first, then WriteRecords to the discovered address), and parses real answers.
The table follows the service's documented rules: one record per (dimensions, measure name, time); a
higher Version replaces it; the same values are accepted as a no-op; other values with an equal or lower
Version are rejected with ``ExistingVersion``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

Record = dict[str, Any]
DISCOVERED = "ingest-cell2.timestream.us-west-2.amazonaws.com"


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _key(record: Record) -> tuple[Any, ...]:
    dims = tuple(sorted((d["Name"], d["Value"]) for d in record["Dimensions"]))
    return (record["Time"], record["MeasureName"], dims)


def _values(record: Record) -> tuple[Any, ...]:
    return tuple(sorted((m["Name"], m["Value"], m["Type"]) for m in record["MeasureValues"]))


class FakeTimestreamService:
    def __init__(
        self,
        address: str = DISCOVERED,
        reject: Callable[[Record], str | None] | None = None,
        invalid_endpoint_once: bool = False,
    ) -> None:
        self.address = address
        self.reject = reject
        self.invalid_endpoint_once = invalid_endpoint_once
        self.discoveries = 0
        self.write_urls: list[str] = []
        self.sent: list[Record] = []
        self.table: dict[tuple[Any, ...], Record] = {}
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.timestream-write", self.handle)

    def stored(self) -> list[Record]:
        return [self.table[k] for k in sorted(self.table)]

    @staticmethod
    def _answer(url: str, status: int, document: dict[str, Any]) -> AWSResponse:
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(url, status, headers, _RawBody(json.dumps(document).encode()))

    def handle(self, request: Any, **_: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        body = json.loads(request.body or b"{}")
        with self._lock:
            if target.endswith("DescribeEndpoints"):
                self.discoveries += 1
                return self._answer(
                    request.url, 200, {"Endpoints": [{"Address": self.address, "CachePeriodInMinutes": 1440}]}
                )
            if not target.endswith("WriteRecords"):
                return self._answer(request.url, 400, {"__type": "ValidationException", "Message": target})
            self.write_urls.append(request.url)
            if self.invalid_endpoint_once:
                self.invalid_endpoint_once = False
                return self._answer(
                    request.url, 421, {"__type": "InvalidEndpointException", "Message": "moved"}
                )
            return self._write(request.url, body)

    def _write(self, url: str, body: dict[str, Any]) -> AWSResponse:
        common = body.get("CommonAttributes", {})
        rejected: list[dict[str, Any]] = []
        for index, raw in enumerate(body["Records"]):
            record = {**common, **raw}
            self.sent.append(record)
            reason = self.reject(record) if self.reject else None
            if reason:
                rejected.append({"RecordIndex": index, "Reason": reason})
                continue
            key = _key(record)
            held = self.table.get(key)
            version = int(record.get("Version", 1))
            if held is None or version > int(held.get("Version", 1)):
                self.table[key] = record
            elif _values(held) != _values(record):
                rejected.append(
                    {
                        "RecordIndex": index,
                        "Reason": "A record with a higher or equal version already exists",
                        "ExistingVersion": int(held.get("Version", 1)),
                    }
                )
        if rejected:
            return self._answer(
                url,
                419,
                {
                    "__type": "RejectedRecordsException",
                    "Message": "One or more records have been rejected.",
                    "RejectedRecords": rejected,
                },
            )
        total = len(body["Records"])
        return self._answer(
            url, 200, {"RecordsIngested": {"Total": total, "MemoryStore": total, "MagneticStore": 0}}
        )
