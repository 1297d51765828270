"""BatchRunLauncher through `instance_for_test`, with a Stubber-backed Batch walking real status sequences:
success, a normal failure, a Spot reclaim, a termination request."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Unpack

import dagster as dg
import pytest
from botocore.stub import ANY, Stubber
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_WORKER_ID_TAG
from dagster._core.test_utils import instance_for_test
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import deserialize_value

from spotlake_assets.batch_launcher import JOB_ID_TAG, JOB_QUEUE_TAG, BatchLaunchError, BatchRunLauncher
from spotlake_assets.batch_launcher.launcher import ECS_OVERRIDES_LIMIT_CHARS
from spotlake_assets.batch_launcher.sensors import stop_orphaned_batch_jobs
from spotlake_assets_tests.batch_launcher import jobs
from spotlake_assets_tests.batch_launcher.conftest import (
    JOB_DEFINITION,
    QUEUE,
    JobDetailExtra,
    create_run,
    job_detail,
    launch_without_workspace,
    launcher_overrides,
)

if TYPE_CHECKING:
    from mypy_boto3_batch.literals import JobStatusType

JOB_ID = "4c1b2a3d-0000-4000-8000-000000000001"
RECLAIM_REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."


def submit_response(job_id: str = JOB_ID) -> dict[str, Any]:
    return {"jobArn": f"arn:aws:batch:us-east-1:123456789012:job/{job_id}", "jobName": "n", "jobId": job_id}


def launch(instance: dg.DagsterInstance, launcher: BatchRunLauncher, **run_kwargs: Any) -> dict[str, Any]:
    """Launch a run against a stub that captures the SubmitJob request; returns it with the run id."""
    captured: dict[str, Any] = {}

    def capture(params: dict[str, Any], **_: Any) -> None:
        captured.update(params)

    client = launcher.batch.boto3_client
    client.meta.events.register("provide-client-params.batch.SubmitJob", capture)
    run = create_run(instance, **run_kwargs)
    with Stubber(client) as stub:
        stub.add_response("submit_job", submit_response(), {k: ANY for k in _submit_keys(launcher)})
        launch_without_workspace(instance, run.run_id)
        stub.assert_no_pending_responses()
    client.meta.events.unregister("provide-client-params.batch.SubmitJob", capture)
    captured["run_id"] = run.run_id
    return captured


def _submit_keys(launcher: BatchRunLauncher) -> list[str]:
    keys = [
        "jobName",
        "jobQueue",
        "jobDefinition",
        "containerOverrides",
        "retryStrategy",
        "tags",
        "propagateTags",
    ]
    return [*keys, "timeout"] if launcher.job_timeout_seconds is not None else keys


def stub_describe(stub: Stubber, status: JobStatusType, **extra: Unpack[JobDetailExtra]) -> None:
    stub.add_response("describe_jobs", {"jobs": [job_detail(JOB_ID, status, **extra)]}, {"jobs": [JOB_ID]})


def test_launch_submits_one_attempt_job_with_the_execute_run_command(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    request = launch(instance, launcher, tags={PARTITION_NAME_TAG: "2026-11-20", "team": "x"})
    run = instance.get_run_by_id(request["run_id"])
    assert run is not None

    assert request["jobQueue"] == QUEUE
    assert request["jobDefinition"] == JOB_DEFINITION
    assert request["retryStrategy"] == {"attempts": 1}
    assert request["jobName"].startswith("dagster-tagged_job-") and len(request["jobName"]) <= 128
    command = request["containerOverrides"]["command"]
    # The code location's entry point: the `dagster` CLI, as the image installs it.
    assert command[:3] == ["dagster", "api", "execute_run"]
    args = deserialize_value(command[3], ExecuteRunArgs)
    assert args.run_id == run.run_id
    assert args.set_exit_code_on_failure is True
    assert args.job_origin.repository_origin.container_context == {}
    # The heavier op's tags win: the job must fit the largest step it runs.
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "8192"},
    ]
    env = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    assert env == {"DAGSTER_RUN_JOB_NAME": "tagged_job"}
    # Identifying tags always, run tags only when allow-listed.
    assert request["tags"]["dagster/run_id"] == run.run_id
    assert request["tags"]["dagster/partition"] == "2026-11-20"
    assert "team" not in request["tags"]

    assert run.tags[JOB_ID_TAG] == JOB_ID
    assert run.tags[JOB_QUEUE_TAG] == QUEUE
    assert run.tags[RUN_WORKER_ID_TAG]
    events = instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
    assert any((e.message or "").endswith("Launching run in an AWS Batch job") for e in events)


def test_run_tags_override_op_tags_and_defaults_apply_without_either(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    tagged = launch(instance, launcher, tags={"batch/vcpu": "2", "batch/memory": "3072"})
    assert tagged["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "3072"},
    ]
    plain = launch(instance, launcher, job=jobs.plain_job)
    assert plain["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "2048"},
    ]


def test_a_bad_resource_tag_fails_the_launch_without_submitting(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = create_run(instance, tags={"batch/vcpu": "lots"})
    with Stubber(launcher.batch.boto3_client), pytest.raises(BatchLaunchError, match="not a number"):
        launch_without_workspace(instance, run.run_id)
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None and failed.status == DagsterRunStatus.FAILURE


def test_health_walks_a_successful_job(instance: dg.DagsterInstance, launcher: BatchRunLauncher) -> None:
    run_id = launch(instance, launcher)["run_id"]
    run = instance.get_run_by_id(run_id)
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as stub:
        unfinished: tuple[JobStatusType, ...] = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
        for status in unfinished:
            stub_describe(stub, status)
            assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        instance.report_run_failed(run)  # any finished state: the worker completed its run
        stub_describe(stub, "SUCCEEDED", container={"exitCode": 0})
        assert launcher.check_run_worker_health(run).status == WorkerStatus.SUCCESS


def test_a_job_that_exited_zero_without_finishing_its_run_is_a_failed_worker(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "SUCCEEDED", container={"exitCode": 0})
        result = launcher.check_run_worker_health(run)
    assert result.status == WorkerStatus.FAILED
    assert "exited 0" in (result.msg or "")


def test_a_normal_failure_reports_reason_exit_code_and_log_stream(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(
            stub,
            "FAILED",
            statusReason="Essential container in task exited",
            container={
                "exitCode": 137,
                "reason": "OutOfMemoryError: Container killed",
                "logStreamName": "w/d/1",
            },
        )
        result = launcher.check_run_worker_health(run)
    assert result.status == WorkerStatus.FAILED
    assert result.transient is False
    msg = result.msg or ""
    assert "Essential container in task exited" in msg
    assert "Exit code: 137" in msg
    assert "OutOfMemoryError" in msg
    assert "/spotlake/batch/w/d/1" in msg
    assert "Spot" not in msg


def test_a_spot_reclaim_is_recognised(instance: dg.DagsterInstance, launcher: BatchRunLauncher) -> None:
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(
            stub,
            "FAILED",
            statusReason=RECLAIM_REASON,
            attempts=[
                {"statusReason": RECLAIM_REASON, "container": {"logStreamName": "w/d/2", "reason": "x"}}
            ],
        )
        result = launcher.check_run_worker_health(run)
    assert result.status == WorkerStatus.FAILED
    assert result.transient is True
    msg = result.msg or ""
    assert msg.startswith("Spot capacity reclaimed")
    assert "i-0123456789abcdef0" in msg
    assert "Exit code: none" in msg
    assert "/spotlake/batch/w/d/2" in msg


def test_run_monitoring_fails_a_reclaimed_started_run(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = launch(instance, launcher)["run_id"]
    run = instance.get_run_by_id(run_id)
    assert run is not None
    # What the run worker reports when it starts, before the host disappears under it.
    instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.PIPELINE_START.value, job_name=run.job_name), run_id
    )
    record = instance.get_run_record_by_id(run_id)
    assert record is not None and record.dagster_run.status == DagsterRunStatus.STARTED
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "FAILED", statusReason=RECLAIM_REASON)
        # No workspace: it is read only to resume runs, and this instance does not resume them.
        monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
    failed = instance.get_run_by_id(run_id)
    assert failed is not None and failed.status == DagsterRunStatus.FAILURE
    failure = instance.all_logs(run_id, of_type=DagsterEventType.PIPELINE_FAILURE)
    assert "Spot capacity reclaimed" in (failure[-1].message or "")


def test_health_of_unknown_or_missing_jobs(instance: dg.DagsterInstance, launcher: BatchRunLauncher) -> None:
    untagged = create_run(instance)
    assert launcher.check_run_worker_health(untagged).status == WorkerStatus.UNKNOWN
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as stub:
        stub.add_response("describe_jobs", {"jobs": []}, {"jobs": [JOB_ID]})
        assert launcher.check_run_worker_health(run).status == WorkerStatus.NOT_FOUND


def test_terminate_a_running_job_stops_its_container(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = launch(instance, launcher)["run_id"]
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "RUNNING")
        stub.add_response(
            "terminate_job", {}, {"jobId": JOB_ID, "reason": f"Dagster run {run_id} was terminated"}
        )
        assert launcher.terminate(run_id) is True
        stub.assert_no_pending_responses()
    run = instance.get_run_by_id(run_id)
    # The worker inside the container reports the cancellation once it receives SIGTERM.
    assert run is not None and run.status == DagsterRunStatus.CANCELING


def test_terminate_a_queued_job_cancels_the_run_at_once(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = launch(instance, launcher)["run_id"]
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "RUNNABLE")
        stub.add_response("terminate_job", {}, {"jobId": JOB_ID, "reason": ANY})
        assert launcher.terminate(run_id) is True
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == DagsterRunStatus.CANCELED


def test_terminate_is_false_for_finished_jobs_and_runs(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = launch(instance, launcher)["run_id"]
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "FAILED", statusReason=RECLAIM_REASON)
        assert launcher.terminate(run_id) is False
        stub.assert_no_pending_responses()  # no TerminateJob was sent
    assert launcher.terminate("no-such-run") is False


def test_the_sensor_stops_the_job_of_a_run_failed_while_queued(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run_id = launch(instance, launcher)["run_id"]
    run = instance.get_run_by_id(run_id)
    assert run is not None
    failure = instance.report_run_failed(
        run, "Run timed out due to taking longer than 1200 seconds to start."
    )
    failed_run = instance.get_run_by_id(run_id)
    assert failed_run is not None
    context = dg.build_run_status_sensor_context(
        sensor_name="stop_orphaned_batch_jobs",
        dagster_instance=instance,
        dagster_run=failed_run,
        dagster_event=failure,
    ).for_run_failure()
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "RUNNABLE", statusReason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
        stub.add_response("terminate_job", {}, {"jobId": JOB_ID, "reason": ANY})
        stop_orphaned_batch_jobs(context)
        stub.assert_no_pending_responses()
        # A job that already ended is left alone.
        stub_describe(stub, "FAILED", statusReason=RECLAIM_REASON)
        stop_orphaned_batch_jobs(context)
        stub.assert_no_pending_responses()
    events = instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
    assert any("Stopped AWS Batch job" in (e.message or "") for e in events)


def test_debug_info_names_why_a_job_is_stuck(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    run = instance.get_run_by_id(launch(instance, launcher)["run_id"])
    assert run is not None
    with Stubber(launcher.batch.boto3_client) as stub:
        stub_describe(stub, "RUNNABLE", statusReason="MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
        info = launcher.get_run_worker_debug_info(run)
    assert info == f"AWS Batch job {JOB_ID} is RUNNABLE: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT."


def test_overrides_are_held_to_the_ecs_limit_not_submitjobs(aws_env: None) -> None:
    # Batch passes the overrides to ECS, which takes at most 8,192 characters: an override of ~10 KiB passes
    # SubmitJob's 30 KiB check and then fails before starting. Compressed, the command fits again.
    with instance_for_test(overrides=launcher_overrides(env_vars=["PADDING=" + "p" * 4_000])) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, BatchRunLauncher)
        request = launch(instance, launcher)
        command = request["containerOverrides"]["command"]
        assert command[:4] == ["dagster", "api", "execute_run", "--compressed-input-json"]
        size = len(json.dumps(request["containerOverrides"], separators=(",", ":")))
        assert size <= ECS_OVERRIDES_LIMIT_CHARS - 512
    with instance_for_test(overrides=launcher_overrides(env_vars=["PADDING=" + "p" * 9_000])) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, BatchRunLauncher)
        run = create_run(instance)
        with (
            Stubber(launcher.batch.boto3_client),
            pytest.raises(BatchLaunchError, match="ECS takes at most 8192"),
        ):
            launch_without_workspace(instance, run.run_id)


def test_the_command_carries_env_references_not_their_values(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTLAKE_TEST_QUEUE", "queue-value-that-must-not-leak")
    monkeypatch.setenv("SPOTLAKE_TEST_VISIBLE", "plain")
    overrides = launcher_overrides(
        job_queue={"env": "SPOTLAKE_TEST_QUEUE"}, env_vars=["SPOTLAKE_TEST_VISIBLE"]
    )
    with instance_for_test(overrides=overrides) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, BatchRunLauncher)
        request = launch(instance, launcher)
    assert request["jobQueue"] == "queue-value-that-must-not-leak"
    command = " ".join(request["containerOverrides"]["command"])
    assert "SPOTLAKE_TEST_QUEUE" in command
    assert "queue-value-that-must-not-leak" not in command
    env = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    assert env["SPOTLAKE_TEST_VISIBLE"] == "plain"


@pytest.mark.parametrize("name", ["DAGSTER_PG_PASSWORD", "SLACK_TOKEN", "AWS_SECRET_ACCESS_KEY", "MY_SECRET"])
def test_secret_like_env_vars_are_refused(aws_env: None, name: str) -> None:
    with (
        pytest.raises(dg.DagsterInvariantViolationError, match="looks like a secret"),
        instance_for_test(overrides=launcher_overrides(env_vars=[name])) as instance,
    ):
        _ = instance.run_launcher


def test_secret_ids_are_not_secrets(aws_env: None) -> None:
    with instance_for_test(
        overrides=launcher_overrides(env_vars=["SPOTLAKE_CREDENTIALS_SECRET_ID"])
    ) as instance:
        assert isinstance(instance.run_launcher, BatchRunLauncher)


def test_batch_tags_are_sanitised_and_capped(
    instance: dg.DagsterInstance, launcher: BatchRunLauncher
) -> None:
    launcher.job_tags = {f"k{i:02d}": "v" for i in range(60)} | {"aws:reserved": "x", "odd": "a*b"}
    run = create_run(instance)
    tags = launcher.batch_tags_for_run(run)
    assert len(tags) == 50
    assert tags["dagster/run_id"] == run.run_id
    assert "aws:reserved" not in tags
    assert all(len(k) <= 128 and len(v) <= 256 for k, v in tags.items())


def test_the_sensor_loads_running_and_ignores_other_launchers() -> None:
    defs = dg.Definitions(sensors=[stop_orphaned_batch_jobs])
    sensor = defs.resolve_sensor_def("stop_orphaned_batch_jobs")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with instance_for_test() as instance:  # the default launcher: nothing to stop, nothing called
        run = create_run(instance)
        failure = instance.report_run_failed(run, "boom")
        failed_run = instance.get_run_by_id(run.run_id)
        assert failed_run is not None
        context = dg.build_run_status_sensor_context(
            sensor_name="stop_orphaned_batch_jobs",
            dagster_instance=instance,
            dagster_run=failed_run,
            dagster_event=failure,
        ).for_run_failure()
        stop_orphaned_batch_jobs(context)
