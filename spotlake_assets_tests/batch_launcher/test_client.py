"""The thin Batch client: models parsed from Stubber-validated responses, and bounded retries."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from spotlake_assets.batch_launcher.client import BatchClient, BatchJob, BatchJobStatus, RetryPolicy
from spotlake_assets_tests.batch_launcher.conftest import job_detail

JOB_ID = "8a0e9f7c-0000-4000-8000-000000000002"


@pytest.fixture
def stubbed(aws_env: None) -> tuple[BatchClient, Stubber, list[float]]:
    sleeps: list[float] = []
    boto3_client = boto3.client("batch", region_name="us-east-1")
    client = BatchClient(
        boto3_client, retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01), sleep=sleeps.append
    )
    return client, Stubber(boto3_client), sleeps


def test_statuses_know_what_is_terminal_and_what_has_a_container() -> None:
    assert [s for s in BatchJobStatus if s.is_terminal] == [BatchJobStatus.SUCCEEDED, BatchJobStatus.FAILED]
    assert not BatchJobStatus.RUNNABLE.container_started
    assert BatchJobStatus.STARTING.container_started


@pytest.mark.parametrize(
    ("reason", "instance"),
    [
        ("Host EC2 (instance i-0123456789abcdef0) terminated.", "i-0123456789abcdef0"),
        ("host ec2 (instance i-1) terminated", "i-1"),
        ("Essential container in task exited", None),
        (None, None),
    ],
)
def test_spot_reclaim_is_read_from_the_status_reason(reason: str | None, instance: str | None) -> None:
    detail = job_detail(JOB_ID, "FAILED")
    if reason is not None:
        detail["statusReason"] = reason
    assert BatchJob.from_api(detail).spot_reclaimed_instance == instance


def test_a_reclaim_named_only_by_an_attempt_is_recognised() -> None:
    detail = job_detail(
        JOB_ID,
        "FAILED",
        attempts=[
            {"statusReason": "Host EC2 (instance i-9) terminated.", "container": {"logStreamName": "s"}}
        ],
    )
    job = BatchJob.from_api(detail)
    assert job.is_spot_reclaim
    assert job.log_stream_name == "s"  # from the last attempt when the job-level container has none


def test_describe_returns_none_for_an_unknown_job(stubbed: tuple[BatchClient, Stubber, list[float]]) -> None:
    client, stub, _ = stubbed
    with stub:
        stub.add_response("describe_jobs", {"jobs": []}, {"jobs": [JOB_ID]})
        assert client.describe_job(JOB_ID) is None


def test_throttling_is_retried_with_backoff_then_succeeds(
    stubbed: tuple[BatchClient, Stubber, list[float]],
) -> None:
    client, stub, sleeps = stubbed
    with stub:
        stub.add_client_error("describe_jobs", "TooManyRequestsException", http_status_code=429)
        stub.add_client_error("describe_jobs", "ThrottlingException", http_status_code=400)
        stub.add_response("describe_jobs", {"jobs": [job_detail(JOB_ID, "RUNNING")]}, {"jobs": [JOB_ID]})
        job = client.describe_job(JOB_ID)
    assert job is not None and job.status is BatchJobStatus.RUNNING
    assert len(sleeps) == 2 and all(0 <= s <= 20 for s in sleeps)


def test_retries_are_bounded(stubbed: tuple[BatchClient, Stubber, list[float]]) -> None:
    client, stub, sleeps = stubbed
    with stub:
        for _ in range(3):
            stub.add_client_error("terminate_job", "TooManyRequestsException", http_status_code=429)
        with pytest.raises(ClientError, match="TooManyRequestsException"):
            client.terminate_job(JOB_ID, "stop")
        stub.assert_no_pending_responses()
    assert len(sleeps) == 2


def test_submit_is_retried_on_throttling_only(stubbed: tuple[BatchClient, Stubber, list[float]]) -> None:
    client, stub, sleeps = stubbed
    expected = {
        "jobName": "j",
        "jobQueue": "q",
        "jobDefinition": "d",
        "containerOverrides": ANY,
        "retryStrategy": {"attempts": 1},
        "tags": {"a": "b"},
        "propagateTags": True,
        "timeout": {"attemptDurationSeconds": 3600},
    }
    ok = {"jobArn": "arn:aws:batch:us-east-1:1:job/x", "jobName": "j", "jobId": JOB_ID}
    with stub:
        stub.add_client_error("submit_job", "TooManyRequestsException", http_status_code=429)
        stub.add_response("submit_job", ok, expected)
        submitted = client.submit_job(
            job_name="j",
            job_queue="q",
            job_definition="d",
            container_overrides={"command": ["true"]},
            tags={"a": "b"},
            timeout_seconds=3600,
        )
        assert submitted.job_id == JOB_ID
        # A server error may have created the job: never submit twice.
        stub.add_client_error("submit_job", "ServerException", http_status_code=500)
        with pytest.raises(ClientError, match="ServerException"):
            client.submit_job(
                job_name="j", job_queue="q", job_definition="d", container_overrides={}, tags={}
            )
        stub.assert_no_pending_responses()
    assert len(sleeps) == 1


def test_retry_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_the_default_client_leaves_retries_to_the_policy(aws_env: None) -> None:
    client = BatchClient(region_name="eu-west-1", endpoint_url="http://127.0.0.1:1")
    config = client.boto3_client.meta.config
    # botocore-stubs declare Config's options only as __init__ parameters; botocore sets them as attributes.
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}  # type: ignore[attr-defined]
    assert client.boto3_client.meta.region_name == "eu-west-1"
    assert client.boto3_client.meta.endpoint_url == "http://127.0.0.1:1"
