"""Tier 2: the Timestream sinks against stand-ins that validate API shapes.

- botocore `Stubber` (requests and answers validated against the real timestream-write model) for
  WriteRecords calls and `RejectedRecordsException` answers;
- an HTTP-layer fake (`fakes.FakeTimestreamService`) for endpoint discovery as boto3 does it;
- moto (`mock_aws`) for the whole client path, discovery included;
- the local sink, compared record for record with what the real client sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from spotlake_assets.sinks.records import AWS_MAPPING, RecordSet, build_records
from spotlake_assets.sinks.timestream import Boto3Timestream, LocalTimestream, TimestreamError, is_retryable
from spotlake_assets_tests.sinks.fakes import DISCOVERED, FakeTimestreamService

WINDOW = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)
VERSION = 177232380000000


def delta(rows: int, sps: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InstanceType": [f"m5.{i}xlarge" for i in range(rows)],
            "Region": ["us-east-1"] * rows,
            "AZ": ["use1-az1"] * rows,
            "SPS": np.full(rows, sps, dtype=np.int64),
            "T3": np.full(rows, 10, dtype=np.int64),
            "T2": np.full(rows, 15, dtype=np.int64),
            "IF": np.full(rows, 2.5),
            "OndemandPrice": np.full(rows, 0.192),
            "SpotPrice": np.round(np.linspace(0.01, 0.09, rows), 5),
            "Savings": np.full(rows, 60, dtype=np.int64),
            "Time": pd.Series([pd.Timestamp(WINDOW)] * rows, dtype="datetime64[ns, UTC]"),
            "Ceased": np.zeros(rows, dtype=bool),
        }
    )


def record_set(rows: int, sps: int = 3, version: int = VERSION) -> RecordSet:
    return build_records(delta(rows, sps), AWS_MAPPING, WINDOW, version)


def sink(**overrides: Any) -> Boto3Timestream:
    settings: dict[str, Any] = {
        "writers": 1,
        "rejected_backoff_s": 0.0,
        "max_attempts": 3,
        "retry_mode": "standard",
    }
    return Boto3Timestream(**{**settings, **overrides})


def write_params(records: RecordSet, start: int, stop: int, table: str = "aws") -> dict[str, Any]:
    return {
        "DatabaseName": "spotlake",
        "TableName": table,
        "CommonAttributes": dict(records.common),
        "Records": list(records.records[start:stop]),
    }


def canonical(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def ingested(total: int) -> dict[str, Any]:
    return {"RecordsIngested": {"Total": total, "MemoryStore": total, "MagneticStore": 0}}


# --- WriteRecords through Stubber ---------------------------------------------------------------------------


def test_writes_batches_of_at_most_100_with_the_common_attributes(boto_env: None) -> None:
    target = sink()
    records = record_set(250)
    with Stubber(target.client()) as stub:
        for start in (0, 100, 200):
            stop = min(start + 100, 250)
            stub.add_response("write_records", ingested(stop - start), write_params(records, start, stop))
        report = target.write(records)
        stub.assert_no_pending_responses()
    assert (report.records, report.ingested, report.calls, report.rejected) == (250, 250, 3, ())
    assert report.target == "spotlake.aws"


def test_table_names_come_from_configuration(boto_env: None) -> None:
    target = sink(database="spotlake-test", tables={"aws": "aws_v2"})
    records = record_set(2)
    with Stubber(target.client()) as stub:
        params = {**write_params(records, 0, 2, table="aws_v2"), "DatabaseName": "spotlake-test"}
        stub.add_response("write_records", ingested(2), params)
        assert target.write(records).target == "spotlake-test.aws_v2"


def rejected_error(stub: Stubber, rejected: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    stub.add_client_error(
        "write_records",
        service_error_code="RejectedRecordsException",
        service_message="One or more records have been rejected. See RejectedRecords for details.",
        http_status_code=419,
        modeled_fields={"Message": "rejected", "RejectedRecords": rejected},
        expected_params=expected,
    )


def test_rejections_are_reported_and_only_retryable_ones_resent(boto_env: None) -> None:
    target = sink()
    records = record_set(5)
    version_conflict = "A record with a higher or equal version already exists"
    with Stubber(target.client()) as stub:
        rejected_error(
            stub,
            [
                {"RecordIndex": 1, "Reason": version_conflict, "ExistingVersion": VERSION + 1},
                {"RecordIndex": 3, "Reason": "Internal service failure"},
                {"RecordIndex": 4, "Reason": "The record timestamp is outside the memory store retention"},
            ],
            write_params(records, 0, 5),
        )
        # Only record 3 (an unknown, possibly transient reason) is sent again, alone.
        resend = {**write_params(records, 0, 0), "Records": [records.records[3]]}
        stub.add_response("write_records", ingested(1), resend)
        report = target.write(records)
        stub.assert_no_pending_responses()
    assert (report.ingested, report.calls, report.resent) == (3, 2, 1)
    assert [(r.index, r.existing_version, r.attempts) for r in report.rejected] == [
        (1, VERSION + 1, 1),
        (4, None, 1),
    ]
    assert report.rejected[0].reason == version_conflict
    assert report.rejected[0].record.startswith("InstanceType=m5.1xlarge, Region=us-east-1")
    assert report.reasons() == {
        version_conflict: 1,
        "The record timestamp is outside the memory store retention": 1,
    }


def test_retryable_rejections_are_resent_a_bounded_number_of_times(boto_env: None) -> None:
    target = sink(rejected_attempts=3)
    records = record_set(150)
    with Stubber(target.client()) as stub:
        # Batch 1 (records 0-99): record 7 is refused for an unknown reason on every attempt.
        rejected_error(
            stub, [{"RecordIndex": 7, "Reason": "Internal service failure"}], write_params(records, 0, 100)
        )
        for _ in range(2):
            rejected_error(
                stub,
                [{"RecordIndex": 0, "Reason": "Internal service failure"}],
                {**write_params(records, 0, 0), "Records": [records.records[7]]},
            )
        stub.add_response("write_records", ingested(50), write_params(records, 100, 150))
        report = target.write(records)
        # No fourth attempt: the Stubber would fail on an unexpected call.
        stub.assert_no_pending_responses()
    assert (report.ingested, report.calls, report.resent) == (149, 4, 2)
    (gave_up,) = report.rejected
    assert (gave_up.index, gave_up.attempts, gave_up.reason) == (7, 3, "Internal service failure")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ResourceNotFoundException", "ResourceNotFoundException: The table aws does not exist"),
        ("AccessDeniedException", "AccessDeniedException"),
        ("ThrottlingException", "ThrottlingException"),
    ],
)
def test_other_errors_fail_the_write_naming_the_target(boto_env: None, code: str, expected: str) -> None:
    target = sink()
    with Stubber(target.client()) as stub:
        stub.add_client_error(
            "write_records", service_error_code=code, service_message="The table aws does not exist"
        )
        with pytest.raises(TimestreamError, match=rf"spotlake\.aws in us-west-2 failed: {expected}"):
            target.write(record_set(3))


def test_a_protected_database_is_refused_before_any_client_exists(boto_env: None) -> None:
    target = Boto3Timestream(database="spotlake", protected_databases=["spotlake"])
    with pytest.raises(TimestreamError, match="'spotlake' is refused in this environment"):
        target.write(record_set(1))
    assert target._client is None


@pytest.mark.parametrize(
    ("reason", "existing", "retryable"),
    [
        ("Internal service failure", None, True),
        ("A record with a higher or equal version already exists", 12, False),
        ("Duplicate data with different measure values", None, False),
        ("The record timestamp is outside the time range of the data ingestion window", None, False),
        ("Dimension value exceeds the limit of 2048 bytes", None, False),
        ("Invalid measure value for BIGINT", None, False),
        ("anything at all", 3, False),
    ],
)
def test_retryable_reasons(reason: str, existing: int | None, retryable: bool) -> None:
    assert is_retryable(reason, existing) is retryable


# --- endpoint discovery, at the HTTP layer ------------------------------------------------------------------


def test_endpoint_discovery_as_boto3_does_it(boto_env: None) -> None:
    target = sink(writers=4)
    service = FakeTimestreamService()
    service.attach(target.client())
    records = record_set(950)
    report = target.write(records)
    assert report.ingested == 950 and report.calls == 10
    # One DescribeEndpoints, cached for every later call of every writer thread.
    assert service.discoveries == 1
    assert {url.split("/")[2] for url in service.write_urls} == {DISCOVERED}
    assert canonical(service.stored()) == canonical(records.effective())


def test_an_invalid_endpoint_is_rediscovered(boto_env: None) -> None:
    target = sink()
    service = FakeTimestreamService(invalid_endpoint_once=True)
    service.attach(target.client())
    report = target.write(record_set(3))
    assert report.ingested == 3 and not report.rejected
    assert service.discoveries == 2 and len(service.write_urls) == 2


def test_an_explicit_endpoint_skips_discovery(boto_env: None) -> None:
    target = sink(endpoint_url="https://timestream.example.test")
    service = FakeTimestreamService()
    service.attach(target.client())
    target.write(record_set(2))
    assert service.discoveries == 0 and service.write_urls[0].startswith("https://timestream.example.test")


def test_rejections_through_the_real_client_path(boto_env: None) -> None:
    target = sink()
    service = FakeTimestreamService(
        reject=lambda r: "Internal service failure" if "m5.2xlarge" in str(r) else None
    )
    service.attach(target.client())
    report = target.write(record_set(4))
    assert report.ingested == 3 and report.resent == 2 and report.calls == 3
    assert [r.index for r in report.rejected] == [2]


# --- moto ---------------------------------------------------------------------------------------------------


def test_moto_receives_exactly_the_built_records(boto_env: None) -> None:
    with mock_aws():
        admin = boto3.client("timestream-write", region_name="us-west-2")
        admin.create_database(DatabaseName="spotlake")
        admin.create_table(DatabaseName="spotlake", TableName="aws")
        records = record_set(230)
        report = sink(writers=3).write(records)
        from moto.timestreamwrite.models import timestreamwrite_backends

        table = timestreamwrite_backends["123456789012"]["us-west-2"].databases["spotlake"].tables["aws"]
        assert report.ingested == 230 and report.calls == 3
        assert canonical(table.records) == canonical(records.records)


# --- the local sink -----------------------------------------------------------------------------------------


def local(tmp_path: Path, **overrides: Any) -> LocalTimestream:
    return LocalTimestream(root=str(tmp_path), rejected_backoff_s=0.0, **overrides)


def test_the_local_sink_stores_exactly_what_the_client_sends(boto_env: None, tmp_path: Path) -> None:
    records = record_set(321)
    real = sink(writers=4)
    service = FakeTimestreamService()
    service.attach(real.client())
    real.write(records)
    mirror = local(tmp_path, writers=4)
    report = mirror.write(records)
    assert report.calls == 4 and report.ingested == 321
    assert canonical(mirror.stored("aws")) == canonical(service.sent) == canonical(records.effective())


def test_the_local_sink_upserts_like_timestream(tmp_path: Path) -> None:
    target = local(tmp_path)
    first = target.write(record_set(120))
    again = target.write(record_set(120))
    stored = target.stored("aws")
    assert len(stored) == 120 and first.ingested == again.ingested == 120 and not again.rejected
    # Other values under the same Version are refused, with the version held.
    conflict = target.write(record_set(120, sps=9))
    assert len(conflict.rejected) == 120 and conflict.rejected[0].existing_version == VERSION
    assert conflict.rejected[0].attempts == 1
    assert target.stored("aws") == stored
    # A higher Version (a deliberate revision) replaces them.
    revised = target.write(record_set(120, sps=9, version=VERSION + 1))
    assert not revised.rejected and len(target.stored("aws")) == 120
    assert all(
        {"Name": "SPS", "Value": "9", "Type": "BIGINT"} in r["MeasureValues"] for r in target.stored("aws")
    )


def test_the_local_sink_keeps_one_file_per_record_time(tmp_path: Path) -> None:
    target = local(tmp_path, database="spotlake-test", tables={"aws": "aws_copy"})
    target.write(record_set(3))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert files == ["timestream/spotlake-test/aws_copy/2026/03/01/00-10-00.jsonl"]
    assert target.stored("aws")[0]["Time"] == "1772323800000"
