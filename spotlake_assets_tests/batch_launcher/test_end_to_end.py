"""End to end against moto's AWS Batch (a loopback server with `use_docker: False`): a real run of a real job
goes through the launcher, the submitted job's command runs here as a subprocess with the job's environment,
and the run succeeds in the same instance. Then a run worker dies under a Spot reclaim: run monitoring fails
the run with the reclaim named, run retries relaunch it from failure, and the retry succeeds.

moto marks a job SUCCEEDED the moment it is submitted, so the "container" here is the subprocess, and the
reclaim is written into moto's job record the way Batch reports it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RETRY_NUMBER_TAG
from dagster._core.test_utils import instance_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import (
    consume_new_runs_for_automatic_reexecution,
)
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from moto.batch.models import batch_backends
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from spotlake_assets.batch_launcher import JOB_ID_TAG
from spotlake_assets.definitions import build_definitions
from spotlake_assets_tests.infra.conftest import INFRA, REPO
from spotlake_assets_tests.infra.test_image import entry_command

if TYPE_CHECKING:
    from mypy_boto3_batch.type_defs import JobDetailTypeDef

REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE = "spotlake-runs"
JOB_DEFINITION = "spotlake-run-worker"
LOCATION = "spotlake_assets"
JOB = "aws_daily_job"
RECLAIM = "Host EC2 (instance i-0fedcba9876543210) terminated."
INSTANCE_CONFIG = yaml.safe_load((INFRA / "dagster.yaml").read_text())


@pytest.fixture
def moto_batch(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    previous = dict(default_user_config.get("batch", {}))
    _moto_config(url, {"batch": {"use_docker": False}})
    try:
        yield url
    finally:
        _moto_config(url, {"batch": previous})
        server.stop()


def _moto_config(url: str, config: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{url}/moto-api/config", data=json.dumps(config).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        assert response.status == 201


def create_batch_resources(url: str, job_environment: dict[str, str]) -> None:
    """The queue and the run-worker job definition, as infra/batch.tf declares them (one attempt)."""
    iam = boto3.client("iam", region_name=REGION, endpoint_url=url)
    batch = boto3.client("batch", region_name=REGION, endpoint_url=url)
    role = iam.create_role(RoleName="spotlake-batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName="spotlake-runs-spot", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        retryStrategy={"attempts": 1},
        containerProperties={
            "image": "spotlake-assets:test",
            "command": ["dagster", "--version"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "environment": [{"name": k, "value": v} for k, v in job_environment.items()],
        },
    )


def submitted_job(url: str, job_id: str) -> JobDetailTypeDef:
    batch = boto3.client("batch", region_name=REGION, endpoint_url=url)
    (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
    return job


def container_process(job: JobDetailTypeDef, dagster_home: str) -> tuple[list[str], dict[str, str]]:
    """The job's command and the environment its container would get (job definition + overrides), plus
    what any image provides (PATH, HOME) — nothing else of this test process leaks in."""
    environment = {e["name"]: e["value"] for e in job["container"]["environment"]}
    environment.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        HOME=os.environ.get("HOME", "/tmp"),
        DAGSTER_HOME=dagster_home,
    )
    return list(job["container"]["command"]), environment


def run_container(job: JobDetailTypeDef, dagster_home: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command, environment = container_process(job, dagster_home)
    return subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=300)


def reclaim_in_moto(job_id: str) -> None:
    """Batch's record of a Spot interruption: FAILED, no exit code, the host named in the reason."""
    job = batch_backends[ACCOUNT][REGION]._jobs[job_id]
    job.status = "FAILED"
    job.exit_code = None
    job.job_stopped_reason = RECLAIM
    for attempt in job.attempts:
        attempt["statusReason"] = RECLAIM


def create_and_submit(
    instance: dg.DagsterInstance, context: WorkspaceProcessContext, partition: str
) -> dg.DagsterRun:
    request_context = context.create_request_context()
    location = request_context.get_code_location(LOCATION)
    (repository,) = location.get_repositories().values()
    remote_job = repository.get_full_job(JOB)
    run = instance.create_run_for_job(
        job_def=build_definitions().resolve_job_def(JOB),
        tags={"dagster/partition": partition},
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
    )
    instance.submit_run(run.run_id, request_context)
    dequeue(context)
    launched = instance.get_run_by_id(run.run_id)
    assert launched is not None
    return launched


def dequeue(context: WorkspaceProcessContext) -> None:
    """One pass of the queued run coordinator daemon: the production instance queues every run."""
    with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
        list(daemon.run_iteration(context))


def wait_until_started(instance: dg.DagsterInstance, run_id: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.status != DagsterRunStatus.STARTING:
            return
        assert process.poll() is None, process.stdout.read() if process.stdout else "worker exited"
        time.sleep(0.02)
    raise AssertionError("the run worker never reported the run started")


def test_a_real_run_on_batch_then_a_reclaimed_run_is_retried_from_failure(
    moto_batch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the job definition gives every container (in production: SPOTLAKE_ENV=prod, buckets, ...).
    job_environment = {
        "SPOTLAKE_ENV": "local",
        "SPOTLAKE_HOME": str(tmp_path / "spotlake"),
        "SPOTLAKE_SCALE": "0.02",
        # The worker must see the partitions the code location planned with (2026-11-20 is a fixed past day).
        "SPOTLAKE_PARTITIONS_START": "2026-01-01",
    }
    for name, value in job_environment.items():
        monkeypatch.setenv(name, value)  # the in-process code location loads the same way
    create_batch_resources(moto_batch, job_environment)
    module_name = entry_command()[entry_command().index("--module-name") + 1]
    overrides = {
        "run_launcher": {
            "module": "spotlake_assets.batch_launcher",
            "class": "BatchRunLauncher",
            "config": {
                "job_queue": QUEUE,
                "job_definition": JOB_DEFINITION,
                "region_name": REGION,
                "endpoint_url": moto_batch,
            },
        },
        # The production instance's queueing, concurrency, monitoring and retry settings.
        "run_coordinator": INSTANCE_CONFIG["run_coordinator"],
        "concurrency": INSTANCE_CONFIG["concurrency"],
        "run_monitoring": INSTANCE_CONFIG["run_monitoring"],
        "run_retries": INSTANCE_CONFIG["run_retries"],
    }
    workdir = tmp_path / "container"
    workdir.mkdir()
    logger = logging.getLogger("test_end_to_end")

    with (
        instance_for_test(overrides=overrides) as instance,
        WorkspaceProcessContext(
            instance,
            InProcessWorkspaceLoadTarget(
                InProcessCodeLocationOrigin(
                    LoadableTargetOrigin(
                        executable_path=sys.executable, module_name=module_name, working_directory=str(REPO)
                    ),
                    location_name=LOCATION,
                )
            ),
        ) as context,
    ):
        home = instance.root_directory

        # 1. A real run through the launcher, executed from the submitted job's command.
        run = create_and_submit(instance, context, "2026-11-20")
        job = submitted_job(moto_batch, run.tags[JOB_ID_TAG])
        assert job["jobQueue"].endswith(f"job-queue/{QUEUE}")
        assert job["tags"]["dagster/run_id"] == run.run_id
        assert run.status == DagsterRunStatus.STARTING
        result = run_container(job, home, workdir)
        assert result.returncode == 0, result.stderr[-4000:]
        done = instance.get_run_by_id(run.run_id)
        assert done is not None and done.status == DagsterRunStatus.SUCCESS
        materialized = instance.get_latest_materialization_event(dg.AssetKey(["aws", "workload"]))
        assert materialized is not None and materialized.run_id == run.run_id

        # 2. A worker that dies with its host: killed as soon as it has started the run.
        victim = create_and_submit(instance, context, "2026-11-21")
        victim_job_id = victim.tags[JOB_ID_TAG]
        command, environment = container_process(submitted_job(moto_batch, victim_job_id), home)
        process = subprocess.Popen(
            command,
            env=environment,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            wait_until_started(instance, victim.run_id, process)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=60)
        started = instance.get_run_by_id(victim.run_id)
        assert started is not None and started.status == DagsterRunStatus.STARTED, "the worker finished first"
        reclaim_in_moto(victim_job_id)

        # 3. Run monitoring (one daemon iteration) sees the reclaim and fails the run.
        list(execute_run_monitoring_iteration(context, logger))
        failed_record = instance.get_run_record_by_id(victim.run_id)
        assert failed_record is not None and failed_record.dagster_run.status == DagsterRunStatus.FAILURE
        failure = instance.all_logs(victim.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "Spot capacity reclaimed" in (failure[-1].message or "")
        assert "i-0fedcba9876543210" in (failure[-1].message or "")

        # 4. Run retries (one daemon pass) relaunch it from failure as a new Batch job.
        list(consume_new_runs_for_automatic_reexecution(context, [failed_record], logger))
        dequeue(context)
        (retry,) = [r for r in instance.get_runs() if r.tags.get(PARENT_RUN_ID_TAG) == victim.run_id]
        assert retry.tags[RETRY_NUMBER_TAG] == "1"
        assert retry.tags[JOB_ID_TAG] != victim_job_id
        retry_job = submitted_job(moto_batch, retry.tags[JOB_ID_TAG])
        result = run_container(retry_job, home, workdir)
        assert result.returncode == 0, result.stderr[-4000:]
        retried = instance.get_run_by_id(retry.run_id)
        assert retried is not None and retried.status == DagsterRunStatus.SUCCESS
        partition_event = instance.get_latest_materialization_event(dg.AssetKey(["aws", "workload"]))
        assert partition_event is not None and partition_event.run_id == retry.run_id
