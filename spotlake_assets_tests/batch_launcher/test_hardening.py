"""Issue 12's launcher hardening, against Stubber-backed Batch and CloudWatch Logs clients: runs whose job
fails or cannot start are failed within a sensor tick, whole vCPUs, the image pinned per run, job and log
stream tags, and the log tail in a failed run's message."""

from __future__ import annotations

import time
from typing import Any

import dagster as dg
import pytest
from botocore.stub import ANY, Stubber
from dagster._core.events import DagsterEventType
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.tags import MAX_RETRIES_TAG

from spotlake_assets.batch_launcher import (
    IMAGE_TAG,
    JOB_DEFINITION_TAG,
    LOG_STREAM_TAG,
    BatchLaunchError,
    BatchRunLauncher,
)
from spotlake_assets.batch_launcher.sensors import fail_batch_runs_that_cannot_start
from spotlake_assets_tests.batch_launcher.conftest import JOB_DEFINITION, create_run, launch_without_workspace
from spotlake_assets_tests.batch_launcher.test_launcher import JOB_ID, launch, stub_describe, submit_response

IMAGE_V1 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/spotlake-assets@sha256:" + "1" * 64
IMAGE_V2 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/spotlake-assets@sha256:" + "2" * 64
PULL_FAILURE = "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found"
MISCONFIGURED = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher "
    "than that can be met by the CE(s) attached to the job queue."
)


def revision(number: int, image: str) -> dict[str, Any]:
    return {
        "jobDefinitionName": JOB_DEFINITION,
        "jobDefinitionArn": f"arn:aws:batch:us-east-1:123456789012:job-definition/{JOB_DEFINITION}:{number}",
        "revision": number,
        "status": "ACTIVE",
        "type": "container",
        "containerProperties": {"image": image},
    }


def stub_revisions(stub: Stubber, *revisions: dict[str, Any]) -> None:
    stub.add_response(
        "describe_job_definitions",
        {"jobDefinitions": list(revisions)},
        {"jobDefinitionName": JOB_DEFINITION, "status": "ACTIVE"},
    )


def started_ms_ago(seconds: float) -> int:
    return int((time.time() - seconds) * 1000)


# --- whole vCPUs --------------------------------------------------------------------------------------------


def test_fractional_vcpus_are_rounded_up_and_said_so(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    request = launch(instance, launcher, tags={"batch/vcpu": "0.5"})
    assert request["containerOverrides"]["resourceRequirements"][0] == {"type": "VCPU", "value": "1"}
    events = instance.all_logs(request["run_id"], of_type=DagsterEventType.ENGINE_EVENT)
    launched = next(e for e in events if (e.message or "").endswith("Launching run in an AWS Batch job"))
    assert launched.dagster_event is not None
    note = launched.dagster_event.engine_event_data.metadata["vCPU note"]
    assert "rounded up to 1: AWS Batch on EC2 takes whole vCPUs" in str(note.value)


def test_a_fractional_default_is_refused(aws_env: None) -> None:
    with pytest.raises(dg.DagsterInvariantViolationError, match="whole vCPUs"):
        BatchRunLauncher(job_queue="q", job_definition="d", default_vcpu=0.5, region_name="us-east-1")
    assert BatchRunLauncher(
        job_queue="q", job_definition="d", default_vcpu=0.5, whole_vcpus=False, region_name="us-east-1"
    ).default_vcpu == pytest.approx(0.5)


# --- the image pinned per run ------------------------------------------------------------------------------


def test_the_run_is_submitted_with_the_revision_that_holds_its_image(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = create_run(instance, image=IMAGE_V1)
    client = launcher.batch.boto3_client
    with Stubber(client) as stub:
        # v2 was deployed after the run was planned with v1: the run keeps v1's revision.
        stub_revisions(stub, revision(8, IMAGE_V2), revision(7, IMAGE_V1), revision(3, IMAGE_V1))
        stub.add_response(
            "submit_job",
            submit_response(),
            {
                "jobName": ANY,
                "jobQueue": ANY,
                "jobDefinition": revision(7, IMAGE_V1)["jobDefinitionArn"],
                "containerOverrides": ANY,
                "retryStrategy": {"attempts": 1},
                "tags": ANY,
                "propagateTags": True,
            },
        )
        launch_without_workspace(instance, run.run_id)
        stub.assert_no_pending_responses()
    launched = instance.get_run_by_id(run.run_id)
    assert launched is not None
    assert launched.tags[JOB_DEFINITION_TAG].endswith(f"{JOB_DEFINITION}:7")
    assert launched.tags[IMAGE_TAG] == IMAGE_V1


def test_no_revision_with_the_image_fails_the_launch_before_submitting(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = create_run(instance, image=IMAGE_V1)
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_revisions(stub, revision(8, IMAGE_V2))
        with pytest.raises(BatchLaunchError, match="No ACTIVE revision"):
            launch_without_workspace(instance, run.run_id)
        stub.assert_no_pending_responses()  # and no SubmitJob was sent
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None and failed.status == DagsterRunStatus.FAILURE


# --- failing fast before the worker starts -----------------------------------------------------------------


def starting_run(instance: dg.DagsterInstance, launcher: BatchRunLauncher) -> str:
    run_id = str(launch(instance, launcher)["run_id"])
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == DagsterRunStatus.STARTING
    return run_id


def evaluate_sensor(instance: dg.DagsterInstance) -> str:
    result = fail_batch_runs_that_cannot_start(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    return result.skip_message or ""


def test_a_job_that_failed_before_starting_fails_its_run_at_the_next_tick(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = starting_run(instance, launcher)
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "FAILED", statusReason=PULL_FAILURE)  # the health check
        stub_describe(stub, "FAILED", statusReason=PULL_FAILURE)  # before failing: still not running?
        assert "failed 1" in evaluate_sensor(instance)
        stub.assert_no_pending_responses()  # no TerminateJob for a job that already ended
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == DagsterRunStatus.FAILURE
    failure = instance.all_logs(run_id, of_type=DagsterEventType.PIPELINE_FAILURE)[-1]
    assert "CannotPullContainerError" in (failure.message or "")
    # Image pulls fail transiently too: run retries still apply.
    assert MAX_RETRIES_TAG not in run.tags


def test_a_misconfigured_job_is_stopped_and_its_run_not_retried(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = starting_run(instance, launcher)
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "RUNNABLE", statusReason=MISCONFIGURED, createdAt=started_ms_ago(30))
        stub_describe(stub, "RUNNABLE", statusReason=MISCONFIGURED, createdAt=started_ms_ago(31))
        stub.add_response("terminate_job", {}, {"jobId": JOB_ID, "reason": ANY})
        evaluate_sensor(instance)
        stub.assert_no_pending_responses()
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == DagsterRunStatus.FAILURE
    assert run.tags[MAX_RETRIES_TAG] == "0"
    failure = instance.all_logs(run_id, of_type=DagsterEventType.PIPELINE_FAILURE)[-1]
    assert "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in (failure.message or "")


def test_a_job_waits_runnable_until_its_limit_then_fails_with_the_reason(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = starting_run(instance, launcher)
    capacity = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested"
    with Stubber(launcher.batch.boto3_client) as stub:
        # Scaling from zero takes minutes: within the limit the run keeps waiting.
        stub_describe(stub, "RUNNABLE", statusReason=capacity, createdAt=started_ms_ago(300))
        assert "failed 0" in evaluate_sensor(instance)
        waited = launcher.max_runnable_seconds + 60
        stub_describe(stub, "RUNNABLE", statusReason=capacity, createdAt=started_ms_ago(waited))
        stub_describe(stub, "RUNNABLE", statusReason=capacity, createdAt=started_ms_ago(waited))
        stub.add_response("terminate_job", {}, {"jobId": JOB_ID, "reason": ANY})
        assert "failed 1" in evaluate_sensor(instance)
        stub.assert_no_pending_responses()
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == DagsterRunStatus.FAILURE
    message = instance.all_logs(run_id, of_type=DagsterEventType.PIPELINE_FAILURE)[-1].message or ""
    assert "RUNNABLE for" in message and "INSUFFICIENT_INSTANCE_CAPACITY" in message
    assert MAX_RETRIES_TAG not in run.tags  # capacity may come back: retries stay on


def test_health_reports_a_stuck_job_as_failed(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "RUNNABLE", statusReason=MISCONFIGURED, createdAt=started_ms_ago(10))
        result = launcher.check_run_worker_health(run)
        stub_describe(stub, "STARTING", createdAt=started_ms_ago(launcher.max_runnable_seconds * 2))
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    assert result.status == WorkerStatus.FAILED
    assert "cannot be placed" in (result.msg or "")


def test_the_sensor_leaves_other_launchers_alone() -> None:
    with dg.instance_for_test() as instance:
        assert "not launched on AWS Batch" in evaluate_sensor(instance)


# --- tags and the log tail ----------------------------------------------------------------------------------


def test_a_failed_run_carries_its_log_stream_and_log_tail(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    stream = "run/default/0123456789abcdef"
    events = [{"timestamp": 1, "message": f"line {i}", "ingestionTime": 2} for i in range(3)]
    events.append({"timestamp": 3, "message": "MemoryError: cannot allocate", "ingestionTime": 4})
    with Stubber(launcher.batch.boto3_client) as batch, Stubber(launcher.log_tail.boto3_client) as logs:
        stub_describe(
            batch,
            "FAILED",
            statusReason="Essential container in task exited",
            container={"exitCode": 1, "logStreamName": stream},
        )
        logs.add_response(
            "get_log_events",
            {"events": events},
            {
                "logGroupName": "/spotlake/batch",
                "logStreamName": stream,
                "limit": launcher.log_tail_lines,
                "startFromHead": False,
            },
        )
        result = launcher.check_run_worker_health(run)
        logs.assert_no_pending_responses()
    assert result.status == WorkerStatus.FAILED
    message = result.msg or ""
    assert "Log tail:\nline 0\nline 1\nline 2\nMemoryError: cannot allocate" in message
    tagged = instance.get_run_by_id(run.run_id)
    assert tagged is not None and tagged.tags[LOG_STREAM_TAG] == f"/spotlake/batch/{stream}"


def test_an_unreadable_log_stream_still_gives_the_failure(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as batch, Stubber(launcher.log_tail.boto3_client) as logs:
        stub_describe(batch, "FAILED", statusReason="x", container={"exitCode": 2, "logStreamName": "s"})
        logs.add_client_error("get_log_events", "AccessDeniedException", "not allowed")
        result = launcher.check_run_worker_health(run)
    assert "Exit code: 2" in (result.msg or "")
    assert (result.msg or "").endswith("Log tail:\n(log tail unavailable: AccessDeniedException)")
