"""A thin typed client over the AWS Batch calls the run launcher needs, and the CloudWatch Logs tail it
puts in a failed run's message.

It turns Batch's JSON into frozen models (`BatchJob`, `SubmittedJob`), retries throttling with a bounded,
jittered back-off, and takes any boto3 Batch client (a Stubber-wrapped one in tests, one pointed at a VPC
endpoint or moto in other set-ups).

Retries are ours, not botocore's: the default boto3 client is built with botocore retries off, so the
number of attempts is the one configured here and visible in tests. `SubmitJob` is only retried when Batch
refused the request (throttling): after a timeout or a dropped connection the job may exist, and a second
submission would start a second run worker for the same Dagster run.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from spotlake_assets.storage.botocore_config import client_config

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    from mypy_boto3_batch.client import BatchClient as Boto3BatchClient
    from mypy_boto3_batch.type_defs import (
        ContainerOverridesTypeDef,
        JobDetailTypeDef,
        SubmitJobRequestTypeDef,
    )

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Error codes Batch (and the AWS front door) use when a request is refused for rate: nothing was done.
THROTTLING_CODES: Final = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded"}
)


def transient_transport_errors() -> tuple[type[Exception], ...]:
    """Transport failures after which a read or an idempotent call may simply be repeated (a function, not a
    constant: botocore is imported when a client is used, not when the definitions load)."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    return (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)


# Batch reports a Spot interruption (or any loss of the host) as e.g. "Host EC2 (instance i-0abc) terminated."
SPOT_RECLAIM_PATTERN: Final = re.compile(
    r"Host EC2 \(instance (?P<instance>[^)]*)\) terminated", re.IGNORECASE
)


class BatchJobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNABLE = "RUNNABLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (BatchJobStatus.SUCCEEDED, BatchJobStatus.FAILED)

    @property
    def container_started(self) -> bool:
        """Whether a container may exist (and so a run worker may be reporting to the instance)."""
        return self in (BatchJobStatus.STARTING, BatchJobStatus.RUNNING) or self.is_terminal


@dataclass(frozen=True)
class BatchAttempt:
    status_reason: str | None
    exit_code: int | None
    container_reason: str | None
    log_stream_name: str | None


@dataclass(frozen=True)
class BatchJob:
    """The part of `DescribeJobs` the launcher reasons about. The exit code, container reason and log stream
    are the last attempt's when the job-level fields are absent (Batch fills them inconsistently)."""

    job_id: str
    job_name: str
    job_queue: str
    status: BatchJobStatus
    status_reason: str | None
    exit_code: int | None
    container_reason: str | None
    log_stream_name: str | None
    attempts: tuple[BatchAttempt, ...]
    # Epoch milliseconds of the submission (how long a job has waited to start).
    created_at_ms: int | None = None
    job_definition: str | None = None

    @property
    def spot_reclaimed_instance(self) -> str | None:
        """The EC2 instance id whose termination (a Spot reclaim, typically) ended the job, if that is what
        ended it; ``""`` when Batch named no instance."""
        reasons = [self.status_reason, *(a.status_reason for a in self.attempts)]
        for reason in reasons:
            match = SPOT_RECLAIM_PATTERN.search(reason or "")
            if match:
                return match.group("instance")
        return None

    @property
    def is_spot_reclaim(self) -> bool:
        return self.spot_reclaimed_instance is not None

    @property
    def is_misconfigured(self) -> bool:
        """Batch's queue says the job can never be placed as configured (e.g. more vCPUs than the compute
        environment's maximum): ``MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - ...``."""
        return (self.status_reason or "").startswith("MISCONFIGURATION:")

    @classmethod
    def from_api(cls, detail: JobDetailTypeDef) -> BatchJob:
        attempts = tuple(
            BatchAttempt(
                status_reason=a.get("statusReason"),
                exit_code=a.get("container", {}).get("exitCode"),
                container_reason=a.get("container", {}).get("reason"),
                log_stream_name=a.get("container", {}).get("logStreamName"),
            )
            for a in detail.get("attempts", [])
        )
        last = attempts[-1] if attempts else BatchAttempt(None, None, None, None)
        container = detail.get("container", {})
        return cls(
            job_id=detail["jobId"],
            job_name=detail["jobName"],
            job_queue=detail["jobQueue"],
            status=BatchJobStatus(detail["status"]),
            status_reason=detail.get("statusReason"),
            exit_code=container.get("exitCode", last.exit_code),
            container_reason=container.get("reason", last.container_reason),
            log_stream_name=container.get("logStreamName", last.log_stream_name),
            attempts=attempts,
            created_at_ms=detail.get("createdAt"),
            job_definition=detail.get("jobDefinition"),
        )


@dataclass(frozen=True)
class JobDefinitionRevision:
    arn: str
    name: str
    revision: int
    image: str | None


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    job_name: str
    job_arn: str | None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential back-off."""

    max_attempts: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


def is_throttling(error: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in THROTTLING_CODES


def is_transient(error: BaseException) -> bool:
    return is_throttling(error) or isinstance(error, transient_transport_errors())


def default_boto3_client(region_name: str | None = None, endpoint_url: str | None = None) -> Boto3BatchClient:
    # total_max_attempts=1: botocore makes exactly one attempt; `BatchClient` owns the retry policy.
    import boto3

    config = client_config(retry_mode="standard", max_attempts=1, connect_timeout=10, read_timeout=30)
    return boto3.client("batch", region_name=region_name, endpoint_url=endpoint_url, config=config)


class BatchClient:
    """Typed access to SubmitJob, DescribeJobs and TerminateJob with bounded retries.

    ``boto3_client`` is injectable; without it a client is built for ``region_name`` / ``endpoint_url``
    (no network happens until the first call).
    """

    def __init__(
        self,
        boto3_client: Boto3BatchClient | None = None,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = boto3_client or default_boto3_client(region_name, endpoint_url)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    @property
    def boto3_client(self) -> Boto3BatchClient:
        return self._client

    def _call(self, operation: str, retry_on: Callable[[BaseException], bool], fn: Callable[[], T]) -> T:
        def log_retry(state: object) -> None:
            logger.warning("AWS Batch %s throttled or unreachable; retrying", operation)

        retrying = Retrying(
            stop=stop_after_attempt(self._retry.max_attempts),
            wait=wait_random_exponential(
                multiplier=self._retry.initial_backoff_s, max=self._retry.max_backoff_s
            ),
            retry=retry_if_exception(retry_on),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        return retrying(fn)

    def submit_job(
        self,
        *,
        job_name: str,
        job_queue: str,
        job_definition: str,
        container_overrides: ContainerOverridesTypeDef,
        tags: Mapping[str, str],
        timeout_seconds: int | None = None,
    ) -> SubmittedJob:
        request: SubmitJobRequestTypeDef = {
            "jobName": job_name,
            "jobQueue": job_queue,
            "jobDefinition": job_definition,
            "containerOverrides": container_overrides,
            # One attempt whatever the job definition says: Dagster owns retries. A second Batch attempt
            # would find the run already started, exit 0, and leave the Dagster run hanging.
            "retryStrategy": {"attempts": 1},
            "tags": dict(tags),
            # Tags reach the ECS task too, so costs can be split by Dagster job and run.
            "propagateTags": True,
        }
        if timeout_seconds is not None:
            request["timeout"] = {"attemptDurationSeconds": timeout_seconds}

        def submit() -> SubmittedJob:
            response = self._client.submit_job(**request)
            return SubmittedJob(response["jobId"], response["jobName"], response.get("jobArn"))

        # Only throttling: a refused submission created nothing, anything else might have created a job.
        return self._call("SubmitJob", is_throttling, submit)

    def describe_jobs(self, job_ids: Sequence[str]) -> dict[str, BatchJob]:
        def describe() -> dict[str, BatchJob]:
            response = self._client.describe_jobs(jobs=list(job_ids))
            return {d["jobId"]: BatchJob.from_api(d) for d in response["jobs"]}

        return self._call("DescribeJobs", is_transient, describe)

    def describe_job(self, job_id: str) -> BatchJob | None:
        """The job, or None when Batch does not know it (never submitted, or past Batch's retention)."""
        return self.describe_jobs([job_id]).get(job_id)

    def active_revisions(self, job_definition_name: str) -> list[JobDefinitionRevision]:
        """Every ACTIVE revision of the named job definition, newest first."""

        def describe() -> list[JobDefinitionRevision]:
            found: list[JobDefinitionRevision] = []
            pages = self._client.get_paginator("describe_job_definitions").paginate(
                jobDefinitionName=job_definition_name, status="ACTIVE"
            )
            for page in pages:
                for definition in page["jobDefinitions"]:
                    found.append(
                        JobDefinitionRevision(
                            arn=definition["jobDefinitionArn"],
                            name=definition["jobDefinitionName"],
                            revision=definition["revision"],
                            image=definition.get("containerProperties", {}).get("image"),
                        )
                    )
            return sorted(found, key=lambda d: d.revision, reverse=True)

        return self._call("DescribeJobDefinitions", is_transient, describe)

    def terminate_job(self, job_id: str, reason: str) -> None:
        """Stop the job: Batch cancels it if no container started yet, stops the container otherwise.
        Idempotent, so transport errors are retried too."""

        def terminate() -> None:
            self._client.terminate_job(jobId=job_id, reason=reason[:1024])

        self._call("TerminateJob", is_transient, terminate)


class LogTail:
    """The last lines of a run worker's CloudWatch Logs stream, for the message of a failed run.

    Best effort by design: a failure message must never fail for want of its log tail, so any error
    becomes a one-line note instead (the stream is still named in the message)."""

    def __init__(
        self,
        boto3_client: Any | None = None,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self._client = boto3_client
        self._region_name = region_name
        self._endpoint_url = endpoint_url

    @property
    def boto3_client(self) -> Any:
        import boto3

        if self._client is None:
            config = client_config(retry_mode="standard", max_attempts=3, connect_timeout=5, read_timeout=10)
            self._client = boto3.client(
                "logs", region_name=self._region_name, endpoint_url=self._endpoint_url, config=config
            )
        return self._client

    def tail(self, log_group: str, log_stream: str, lines: int, max_line_chars: int = 400) -> list[str]:
        from botocore.exceptions import ClientError

        if lines <= 0:
            return []
        unavailable: tuple[type[Exception], ...] = (ClientError, *transient_transport_errors())
        try:
            response = self.boto3_client.get_log_events(
                logGroupName=log_group, logStreamName=log_stream, limit=lines, startFromHead=False
            )
        except unavailable as exc:
            logger.warning("Cannot read log stream %s/%s: %s", log_group, log_stream, exc)
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
            return [f"(log tail unavailable: {code or type(exc).__name__})"]
        return [str(e.get("message", "")).rstrip()[:max_line_chars] for e in response.get("events", [])]
