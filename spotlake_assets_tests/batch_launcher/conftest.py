"""An instance whose run launcher is `BatchRunLauncher`, and helpers to build Batch API responses that the
botocore Stubber validates against the real service model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Unpack

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.test_utils import instance_for_test
from typing_extensions import TypedDict

from spotlake_assets.batch_launcher import BatchRunLauncher
from spotlake_assets_tests.batch_launcher import jobs

if TYPE_CHECKING:
    from mypy_boto3_batch.literals import JobStatusType
    from mypy_boto3_batch.type_defs import AttemptDetailTypeDef, ContainerDetailTypeDef, JobDetailTypeDef

QUEUE = "spotlake-runs"
JOB_DEFINITION = "spotlake-run-worker"
LAUNCHER_CONFIG: dict[str, Any] = {
    "job_queue": QUEUE,
    "job_definition": JOB_DEFINITION,
    "region_name": "us-east-1",
    "log_group": "/spotlake/batch",
}


def launcher_overrides(**config: Any) -> dict[str, Any]:
    return {
        "run_launcher": {
            "module": "spotlake_assets.batch_launcher",
            "class": "BatchRunLauncher",
            "config": {**LAUNCHER_CONFIG, **config},
        }
    }


@pytest.fixture
def instance(aws_env: None) -> Iterator[dg.DagsterInstance]:
    with instance_for_test(overrides=launcher_overrides()) as instance:
        yield instance


@pytest.fixture
def launcher(instance: dg.DagsterInstance) -> BatchRunLauncher:
    run_launcher = instance.run_launcher
    assert isinstance(run_launcher, BatchRunLauncher)
    return run_launcher


def create_run(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition = jobs.tagged_job,
    tags: dict[str, str] | None = None,
    image: str | None = None,
) -> DagsterRun:
    """A run of ``job``; ``image`` is what a code server started with DAGSTER_CONTAINER_IMAGE records."""
    origin = dg.reconstructable(job).get_python_origin()
    if image is not None:
        origin = origin._replace(repository_origin=origin.repository_origin._replace(container_image=image))
    return instance.create_run_for_job(job_def=job, job_code_origin=origin, tags=tags or {})


class JobDetailExtra(TypedDict, total=False, closed=True):
    """The optional job-detail fields the tests set; closed (no other keys), so it unpacks into a detail."""

    statusReason: str
    createdAt: int
    container: ContainerDetailTypeDef
    attempts: list[AttemptDetailTypeDef]


def launch_without_workspace(instance: dg.DagsterInstance, run_id: str) -> DagsterRun:
    """``instance.launch_run`` with no workspace: `BatchRunLauncher` never reads it."""
    # dagster annotates `workspace` as required, yet hands it to the launcher as the Optional
    # `LaunchRunContext.workspace`; these tests need no workspace (no code location), so they pass None.
    return instance.launch_run(run_id, workspace=None)  # type: ignore[arg-type]


def job_detail(job_id: str, status: JobStatusType, **extra: Unpack[JobDetailExtra]) -> JobDetailTypeDef:
    return {
        "jobName": f"dagster-job-{job_id[:8]}",
        "jobId": job_id,
        "jobQueue": f"arn:aws:batch:us-east-1:123456789012:job-queue/{QUEUE}",
        "status": status,
        "startedAt": 1_767_225_600_000,
        "jobDefinition": f"arn:aws:batch:us-east-1:123456789012:job-definition/{JOB_DEFINITION}:3",
        **extra,
    }
