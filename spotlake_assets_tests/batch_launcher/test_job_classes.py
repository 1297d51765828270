"""The second job class: a run goes to the large queue and job definition by its job's tag or by job name,
with the class's default resources; an unknown class fails the launch without submitting anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from botocore.stub import Stubber
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.test_utils import instance_for_test

from spotlake_assets.batch_launcher import JOB_CLASS_TAG, JOB_QUEUE_TAG, BatchLaunchError, BatchRunLauncher
from spotlake_assets_tests.batch_launcher import jobs
from spotlake_assets_tests.batch_launcher.conftest import (
    JOB_DEFINITION,
    QUEUE,
    create_run,
    launch_without_workspace,
    launcher_overrides,
)
from spotlake_assets_tests.batch_launcher.test_launcher import launch

LARGE = {
    "job_queue": "spotlake-large",
    "job_definition": "spotlake-large-worker",
    "default_vcpu": 4.0,
    "default_memory_mib": 16384,
}
INSTANCE_YAML = Path(__file__).resolve().parents[2] / "infra" / "dagster.yaml"


@pytest.fixture
def classed(aws_env: None) -> Iterator[tuple[dg.DagsterInstance, BatchRunLauncher]]:
    overrides = launcher_overrides(job_classes={"large": LARGE}, job_class_by_job={"plain_job": "large"})
    with instance_for_test(overrides=overrides) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, BatchRunLauncher)
        yield instance, launcher


def test_a_tagged_run_goes_to_its_class_with_the_class_defaults(
    classed: tuple[dg.DagsterInstance, BatchRunLauncher],
) -> None:
    instance, launcher = classed
    # tagged_job's heavier op asks for 4 vCPU / 8 GiB itself; a run tag overrides as usual.
    request = launch(instance, launcher, tags={JOB_CLASS_TAG: "large", "batch/memory": "30720"})
    assert (request["jobQueue"], request["jobDefinition"]) == ("spotlake-large", "spotlake-large-worker")
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "30720"},
    ]
    run = instance.get_run_by_id(request["run_id"])
    assert run is not None and run.tags[JOB_QUEUE_TAG] == "spotlake-large"


def test_a_job_mapped_to_a_class_takes_its_defaults_and_others_stay_default(
    classed: tuple[dg.DagsterInstance, BatchRunLauncher],
) -> None:
    instance, launcher = classed
    mapped = launch(instance, launcher, job=jobs.plain_job)
    assert mapped["jobQueue"] == "spotlake-large"
    assert mapped["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "16384"},
    ]
    default = launch(instance, launcher)
    assert (default["jobQueue"], default["jobDefinition"]) == (QUEUE, JOB_DEFINITION)


def test_an_unknown_class_fails_the_launch_without_submitting(
    classed: tuple[dg.DagsterInstance, BatchRunLauncher],
) -> None:
    instance, launcher = classed
    run = create_run(instance, tags={JOB_CLASS_TAG: "huge"})
    with Stubber(launcher.batch.boto3_client), pytest.raises(BatchLaunchError, match="job class 'huge'"):
        launch_without_workspace(instance, run.run_id)
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None and failed.status == DagsterRunStatus.FAILURE


def test_a_mapping_to_an_unknown_class_is_a_configuration_error(aws_env: None) -> None:
    with pytest.raises(Exception, match="unknown job classes"):
        BatchRunLauncher(job_queue=QUEUE, job_definition=JOB_DEFINITION, job_class_by_job={"j": "nope"})


def test_the_production_instance_config_has_the_large_class_the_import_jobs_ask_for() -> None:
    from spotlake_assets.legacy.assets import LARGE_JOB_CLASS, legacy_jobs

    config = yaml.safe_load(INSTANCE_YAML.read_text())["run_launcher"]["config"]
    large = config["job_classes"][LARGE_JOB_CLASS]
    assert large["job_queue"] == {"env": "SPOTLAKE_BATCH_LARGE_JOB_QUEUE"}
    assert large["job_definition"] == {"env": "SPOTLAKE_BATCH_LARGE_JOB_DEFINITION"}
    assert all(job.tags and job.tags[JOB_CLASS_TAG] == LARGE_JOB_CLASS for job in legacy_jobs)
