"""`BatchRunLauncher`: every Dagster run becomes one AWS Batch job (on Spot capacity in production).

Modelled on dagster-aws's `EcsRunLauncher`. The job runs ``dagster api execute_run <args>`` in the same image
as the code location; the job definition (Terraform, `infra/`) supplies the image, roles, log configuration
and the environment the instance config refers to with ``{env: NAME}``, so no secret is ever part of the
submitted command.

Failure handling is Dagster's, not Batch's: every job is submitted with one attempt (a second container would
find its run already started, exit 0 and leave the run hanging), run monitoring calls
`check_run_worker_health` and marks a reclaimed or crashed run failed, and run retries re-execute it from
failure. Run monitoring does not stop the Batch job of a run it failed for a start timeout: the
`stop_orphaned_batch_jobs` sensor (`sensors.py`) does, through `stop_batch_job`.

Job classes: a run goes to the default job queue and definition unless its run tag ``spotlake/job_class``
(`JOB_CLASS_TAG`, set on a job's tags) or the launcher's ``job_class_by_job`` names another class of
``job_classes``: its own queue, job definition (another compute environment: larger hosts with a scratch
volume, `infra/batch_large.tf`) and default vCPU/memory. An unknown class fails the launch, never falls back.

Resources per run (first match wins): run tags ``batch/vcpu`` / ``batch/memory`` (MiB); the largest value of
those keys among the `op_tags` of the steps the run executes; the launcher's defaults. Jobs on EC2 capacity
take whole vCPUs: a fractional request is rounded up, and the launch event says so.

The image is pinned per run: the code server records its image on every run it plans
(``DAGSTER_CONTAINER_IMAGE``), and the launcher submits the ACTIVE job-definition revision that holds that
image, so a deploy between planning and launching never runs newer code than the run was planned with.

Failing fast: run monitoring only asks `check_run_worker_health` about started runs, and a run whose job never
starts would wait for the start timeout. The `fail_batch_runs_that_cannot_start` sensor (`sensors.py`) asks
about starting runs every 30 s: a FAILED job, a job Batch calls misconfigured, or one RUNNABLE beyond
``max_runnable_seconds`` fails its run with Batch's reason and the tail of its log stream.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Self

import dagster as dg
from dagster import _check as check
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import EngineEventData, JobFailureData, RunFailureReason
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import (
    BACKFILL_ID_TAG,
    MAX_RETRIES_TAG,
    PARENT_RUN_ID_TAG,
    PARTITION_NAME_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_ID_TAG,
    RUN_WORKER_ID_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
)
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from spotlake_assets.batch_launcher.client import BatchClient, BatchJob, BatchJobStatus, LogTail

if TYPE_CHECKING:
    from mypy_boto3_batch.type_defs import ContainerOverridesTypeDef, KeyValuePairTypeDef

logger = logging.getLogger(__name__)

# Run tags the launcher writes.
JOB_ID_TAG: Final = "batch/job_id"
JOB_QUEUE_TAG: Final = "batch/job_queue"
JOB_NAME_TAG: Final = "batch/job_name"
JOB_DEFINITION_TAG: Final = "batch/job_definition"  # the revision submitted (ARN when resolved)
IMAGE_TAG: Final = "batch/image"  # the code location's image the revision was chosen for
LOG_STREAM_TAG: Final = "batch/log_stream"  # "<log group>/<stream>", once the container has started
# Run (or op) tags the launcher reads.
VCPU_TAG: Final = "batch/vcpu"
MEMORY_TAG: Final = "batch/memory"
# Which job class (queue + job definition) runs the run; absent: `job_class_by_job`, then the default class.
JOB_CLASS_TAG: Final = "spotlake/job_class"
DEFAULT_JOB_CLASS: Final = "default"

# Batch hands the container overrides to ECS, whose limit is 8,192 characters of JSON (SubmitJob's own 30 KiB
# is not the binding one: a job between the two is accepted, then fails before starting). Batch adds its own
# variables (AWS_BATCH_JOB_ID, AWS_BATCH_JQ_NAME, ...) to the environment it passes: keep a margin for them.
ECS_OVERRIDES_LIMIT_CHARS: Final = 8192
CONTAINER_OVERRIDES_LIMIT_CHARS: Final = ECS_OVERRIDES_LIMIT_CHARS - 512
# Batch tags: at most 50 per resource, keys ≤ 128 and values ≤ 256 characters from this set.
MAX_TAGS: Final = 50
_TAG_UNSAFE = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
_JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Environment passed in the overrides is visible to anyone who can describe the job: values of variables
# named like these must come from the job definition's `secrets` (Secrets Manager) instead.
_SECRET_LIKE_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|ACCESS_KEY|SECRET(?!_ID$|_ARN$|_NAME$)")

DEFAULT_PROPAGATED_TAGS: Final = (
    PARTITION_NAME_TAG,
    BACKFILL_ID_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
    RETRY_NUMBER_TAG,
    PARENT_RUN_ID_TAG,
    ROOT_RUN_ID_TAG,
)


class BatchLaunchError(DagsterInvariantViolationError):
    """A run cannot be turned into a valid SubmitJob request."""


@dataclass(frozen=True)
class JobClass:
    """Where a class of runs goes: a job queue, a job definition and the resources a run gets by default."""

    name: str
    job_queue: str
    job_definition: str
    default_vcpu: float
    default_memory_mib: int


def _sanitize_tag(text: str, limit: int) -> str:
    return _TAG_UNSAFE.sub("_", text)[:limit]


def _format_vcpu(vcpu: float) -> str:
    return f"{vcpu:g}"


def _overrides_size(overrides: ContainerOverridesTypeDef) -> int:
    # Characters of the compact JSON, as the SDK serialises the request.
    return len(json.dumps(overrides, separators=(",", ":")))


def _parse_vcpu(value: str, source: str) -> float:
    try:
        vcpu = float(value)
    except ValueError:
        raise BatchLaunchError(f"{source} {VCPU_TAG}={value!r} is not a number of vCPUs") from None
    if not math.isfinite(vcpu) or vcpu <= 0:
        raise BatchLaunchError(f"{source} {VCPU_TAG}={value!r} must be a positive number of vCPUs")
    return vcpu


def _parse_memory(value: str, source: str) -> int:
    try:
        memory = int(value)
    except ValueError:
        raise BatchLaunchError(f"{source} {MEMORY_TAG}={value!r} is not a whole number of MiB") from None
    if memory <= 0:
        raise BatchLaunchError(f"{source} {MEMORY_TAG}={value!r} must be a positive number of MiB")
    return memory


class BatchRunLauncher(RunLauncher[dg.DagsterInstance], ConfigurableClass):
    """Launches each run as one AWS Batch job. Configure it in the instance ``dagster.yaml``::

    run_launcher:
      module: spotlake_assets.batch_launcher
      class: BatchRunLauncher
      config:
        job_queue: {env: SPOTLAKE_BATCH_JOB_QUEUE}
        job_definition: {env: SPOTLAKE_BATCH_JOB_DEFINITION}
    """

    def __init__(
        self,
        job_queue: str,
        job_definition: str,
        inst_data: ConfigurableClassData | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        env_vars: Sequence[str] | None = None,
        default_vcpu: float = 1.0,
        default_memory_mib: int = 2048,
        job_tags: Mapping[str, str] | None = None,
        propagate_tags: Sequence[str] | None = None,
        job_timeout_seconds: int | None = None,
        log_group: str = "/aws/batch/job",
        max_runnable_seconds: int = 900,
        log_tail_lines: int = 30,
        whole_vcpus: bool = True,
        batch_client: BatchClient | None = None,
        log_tail: LogTail | None = None,
        job_classes: Mapping[str, Mapping[str, Any]] | None = None,
        job_class_by_job: Mapping[str, str] | None = None,
    ) -> None:
        self._inst_data = inst_data
        self.job_queue = check.str_param(job_queue, "job_queue")
        self.job_definition = check.str_param(job_definition, "job_definition")
        self.env_vars = tuple(env_vars or ())
        for entry in self.env_vars:
            name = entry.split("=", 1)[0]
            if _SECRET_LIKE_NAME.search(name.upper()):
                raise DagsterInvariantViolationError(
                    f"env_vars entry {name!r} looks like a secret: values passed at submit time are visible "
                    "in the Batch job description. Give it to the job definition's `secrets` instead."
                )
        self.whole_vcpus = whole_vcpus
        self.default_vcpu = _parse_vcpu(str(default_vcpu), "default_vcpu")
        if whole_vcpus and not self.default_vcpu.is_integer():
            raise DagsterInvariantViolationError(
                f"default_vcpu={default_vcpu!r}: AWS Batch jobs on EC2 take whole vCPUs "
                "(set whole_vcpus: false only for a Fargate job definition)"
            )
        self.default_memory_mib = _parse_memory(str(default_memory_mib), "default_memory_mib")
        self.job_tags = dict(job_tags or {})
        self.propagate_tags = tuple(DEFAULT_PROPAGATED_TAGS if propagate_tags is None else propagate_tags)
        if job_timeout_seconds is not None and job_timeout_seconds < 60:
            raise DagsterInvariantViolationError("job_timeout_seconds must be at least 60 (a Batch minimum)")
        self.job_timeout_seconds = job_timeout_seconds
        self.log_group = log_group
        if max_runnable_seconds < 60:
            raise DagsterInvariantViolationError("max_runnable_seconds must be at least 60")
        self.max_runnable_seconds = max_runnable_seconds
        self.log_tail_lines = max(0, log_tail_lines)
        self.batch = batch_client or BatchClient(region_name=region_name, endpoint_url=endpoint_url)
        # CloudWatch Logs is its own endpoint: a Batch endpoint_url (a VPC endpoint, moto) does not apply.
        self.log_tail = log_tail or LogTail(region_name=region_name)
        # (job definition name, image) -> revision ARN; revisions are immutable, so a hit stays valid.
        self._revision_cache: dict[tuple[str, str], str] = {}
        self.job_classes = {
            DEFAULT_JOB_CLASS: JobClass(
                DEFAULT_JOB_CLASS,
                self.job_queue,
                self.job_definition,
                self.default_vcpu,
                self.default_memory_mib,
            )
        }
        for name, spec in (job_classes or {}).items():
            if name == DEFAULT_JOB_CLASS:
                raise DagsterInvariantViolationError(
                    f"job_classes may not redefine {DEFAULT_JOB_CLASS!r}: it is job_queue/job_definition"
                )
            vcpu = _parse_vcpu(str(spec.get("default_vcpu", self.default_vcpu)), f"job_classes.{name}")
            if whole_vcpus and not vcpu.is_integer():
                raise DagsterInvariantViolationError(f"job_classes.{name}.default_vcpu: whole vCPUs on EC2")
            self.job_classes[name] = JobClass(
                name,
                check.str_param(spec.get("job_queue"), f"job_classes.{name}.job_queue"),
                check.str_param(spec.get("job_definition"), f"job_classes.{name}.job_definition"),
                vcpu,
                _parse_memory(str(spec.get("default_memory_mib", self.default_memory_mib)), name),
            )
        self.job_class_by_job = dict(job_class_by_job or {})
        unknown = sorted(set(self.job_class_by_job.values()) - set(self.job_classes))
        if unknown:
            raise DagsterInvariantViolationError(f"job_class_by_job names unknown job classes {unknown}")

    # --- ConfigurableClass -------------------------------------------------------------------------------

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, dg.Field]:
        return {
            "job_queue": dg.Field(dg.StringSource, description="Name or ARN of the Batch job queue."),
            "job_definition": dg.Field(
                dg.StringSource,
                description="Run-worker job definition: name, name:revision or ARN. It fixes the image.",
            ),
            "region_name": dg.Field(dg.StringSource, is_required=False),
            "endpoint_url": dg.Field(
                dg.StringSource, is_required=False, description="A VPC endpoint (or a local stand-in)."
            ),
            "env_vars": dg.Field(
                [dg.StringSource],
                is_required=False,
                description=(
                    "Non-secret variables passed to each job: NAME (value read from the launching process) "
                    "or NAME=VALUE. Secrets belong in the job definition."
                ),
            ),
            "default_vcpu": dg.Field(float, is_required=False, default_value=1.0),
            "default_memory_mib": dg.Field(int, is_required=False, default_value=2048),
            "job_tags": dg.Field(dict, is_required=False, description="Static tags on every Batch job."),
            "propagate_tags": dg.Field(
                [str],
                is_required=False,
                description="Run tags copied onto the Batch job (dagster/run_id and job name always are).",
            ),
            "job_timeout_seconds": dg.Field(
                dg.Noneable(int),
                is_required=False,
                default_value=None,
                description="Overrides the job definition's attempt timeout.",
            ),
            "log_group": dg.Field(
                dg.StringSource,
                is_required=False,
                default_value="/aws/batch/job",
                description="Where the job definition sends container logs (named in failure messages).",
            ),
            "max_runnable_seconds": dg.Field(
                int,
                is_required=False,
                default_value=900,
                description=(
                    "A run whose job waits RUNNABLE longer than this (no capacity) is failed with Batch's "
                    "reason; keep it below run monitoring's start timeout."
                ),
            ),
            "log_tail_lines": dg.Field(
                int,
                is_required=False,
                default_value=30,
                description="Lines of the job's log stream quoted in a failed run's message (0: none).",
            ),
            "whole_vcpus": dg.Field(
                bool,
                is_required=False,
                default_value=True,
                description="Round vCPU requests up to whole vCPUs (EC2 capacity); false for Fargate.",
            ),
            "job_classes": dg.Field(
                # Dagster's shorthand for Map(str, Shape(...)): a class name -> its settings.
                {
                    str: {
                        "job_queue": dg.Field(dg.StringSource),
                        "job_definition": dg.Field(dg.StringSource),
                        "default_vcpu": dg.Field(float, is_required=False),
                        "default_memory_mib": dg.Field(int, is_required=False),
                    }
                },
                is_required=False,
                description=(
                    "Other job classes by name: {job_queue, job_definition, default_vcpu, "
                    f"default_memory_mib}}. A run picks one with the {JOB_CLASS_TAG} tag or job_class_by_job."
                ),
            ),
            "job_class_by_job": dg.Field(
                {str: str},
                is_required=False,
                description="Dagster job name -> job class, for jobs that carry no job-class tag.",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data, **config_value)

    # --- launching ---------------------------------------------------------------------------------------

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        job_class = self.job_class_for_run(run)
        command = self.command_for_run(context)
        vcpu, memory, vcpu_note = self._resources_with_note(run, job_class)
        overrides = self._container_overrides(run, command, vcpu, memory)
        size = _overrides_size(overrides)
        if size > CONTAINER_OVERRIDES_LIMIT_CHARS:
            # The plain JSON carries the instance config; zlib+base64 usually shrinks it by 4-5x.
            command = self._compress(command)
            overrides = self._container_overrides(run, command, vcpu, memory)
            size = _overrides_size(overrides)
            if size > CONTAINER_OVERRIDES_LIMIT_CHARS:
                raise BatchLaunchError(
                    f"Run {run.run_id}: container overrides are {size} characters even compressed, over "
                    f"{CONTAINER_OVERRIDES_LIMIT_CHARS} (ECS takes at most {ECS_OVERRIDES_LIMIT_CHARS}, less "
                    "what Batch adds). Shrink the instance config or the env_vars passed to jobs."
                )

        image = self._image_of(context)
        job_definition = self.job_definition_for_image(image, job_class.job_definition)
        job_name = self.job_name_for_run(run)
        submitted = self.batch.submit_job(
            job_name=job_name,
            job_queue=job_class.job_queue,
            job_definition=job_definition,
            container_overrides=overrides,
            tags=self.batch_tags_for_run(run),
            timeout_seconds=self.job_timeout_seconds,
        )
        run_tags = {
            JOB_ID_TAG: submitted.job_id,
            JOB_QUEUE_TAG: job_class.job_queue,
            JOB_NAME_TAG: submitted.job_name,
            JOB_DEFINITION_TAG: job_definition,
            RUN_WORKER_ID_TAG: uuid.uuid4().hex[:6],
        }
        if image:
            run_tags[IMAGE_TAG] = image
        self._instance.add_run_tags(run.run_id, run_tags)
        event: dict[str, str | int] = {
            "Batch job id": submitted.job_id,
            "Batch job name": submitted.job_name,
            "Batch job queue": job_class.job_queue,
            "Batch job definition": job_definition,
            "job class": job_class.name,
            "image": image or "(the job definition's)",
            "vCPU": _format_vcpu(vcpu),
            "memory MiB": memory,
            "container overrides characters": size,
            "Run ID": run.run_id,
        }
        if vcpu_note:
            event["vCPU note"] = vcpu_note
        self._instance.report_engine_event(
            message="Launching run in an AWS Batch job",
            dagster_run=run,
            engine_event_data=EngineEventData(event),
            cls=self.__class__,
        )
        logger.info(
            "Run %s submitted as AWS Batch job %s on %s (%s)",
            run.run_id,
            submitted.job_id,
            job_class.job_queue,
            job_definition,
        )

    @staticmethod
    def _image_of(context: LaunchRunContext) -> str | None:
        origin = context.job_code_origin
        return origin.repository_origin.container_image if origin is not None else None

    def job_class_for_run(self, run: DagsterRun) -> JobClass:
        """The run's job class: its ``spotlake/job_class`` tag, else ``job_class_by_job``, else default."""
        name = run.tags.get(JOB_CLASS_TAG) or self.job_class_by_job.get(run.job_name, DEFAULT_JOB_CLASS)
        job_class = self.job_classes.get(name)
        if job_class is None:
            raise BatchLaunchError(
                f"Run {run.run_id} asks for job class {name!r} ({JOB_CLASS_TAG}), which this launcher does "
                f"not have (configured: {', '.join(sorted(self.job_classes))}). Add it to job_classes in the "
                "instance's run_launcher config (infra/dagster.yaml)."
            )
        return job_class

    def job_definition_for_image(self, image: str | None, job_definition: str | None = None) -> str:
        """The job definition to submit: the newest ACTIVE revision whose image is ``image``.

        Batch cannot override a job's image, so pinning the run to the code it was planned with means
        choosing the revision. A configured revision or ARN is taken as is; so is the bare name when the code
        location reports no image (local and test set-ups). No revision with the image is a deploy error
        (the job definition and the code server must come from the same Terraform apply), and the run fails
        with it rather than silently executing other code."""
        configured = job_definition or self.job_definition
        if image is None or configured.startswith("arn:") or ":" in configured:
            return configured
        cached = self._revision_cache.get((configured, image))
        if cached is not None:
            return cached
        revisions = self.batch.active_revisions(configured)
        for revision in revisions:  # newest first
            if revision.image == image:
                self._revision_cache[(configured, image)] = revision.arn
                return revision.arn
        images = ", ".join(f"{r.revision}: {r.image}" for r in revisions[:5]) or "none"
        raise BatchLaunchError(
            f"No ACTIVE revision of job definition {configured!r} runs image {image!r}, the image the code "
            f"location planned this run with (newest ACTIVE revisions: {images}). Deploy the job definition "
            "and the code server together (infra/, deregister_on_new_revision = false)."
        )

    def command_for_run(self, context: LaunchRunContext) -> list[str]:
        """``<python> -m dagster api execute_run <ExecuteRunArgs JSON>``: the instance travels as its config
        (with ``{env: NAME}`` references unresolved), never as resolved values."""
        run = context.dagster_run
        job_origin = check.not_none(context.job_code_origin, "the run has no code origin to execute")
        # Like the ECS launcher: the container context is not needed to execute the run, and only grows the
        # command towards the overrides limit.
        repository_origin = job_origin.repository_origin._replace(container_context={})
        args = ExecuteRunArgs(
            job_origin=job_origin._replace(repository_origin=repository_origin),
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            # A failed run exits non-zero, so the Batch console agrees with Dagster.
            set_exit_code_on_failure=True,
        )
        return list(args.get_command_args())

    @staticmethod
    def _compress(command: Sequence[str]) -> list[str]:
        *prefix, payload = command
        packed = base64.b64encode(zlib.compress(payload.encode(), 9)).decode()
        return [*prefix, "--compressed-input-json", packed]

    def resources_for_run(self, run: DagsterRun) -> tuple[float, int]:
        """(vCPU, memory MiB) for the run's job: run tags, else the largest op tag among executed steps,
        else the defaults; vCPUs rounded up to whole ones when ``whole_vcpus``."""
        vcpu, memory, _ = self._resources_with_note(run, self.job_class_for_run(run))
        return vcpu, memory

    def _resources_with_note(self, run: DagsterRun, job_class: JobClass) -> tuple[float, int, str]:
        step_tags = self._executed_step_tags(run)
        vcpu_tag = run.tags.get(VCPU_TAG)
        if vcpu_tag is not None:
            vcpu, source = _parse_vcpu(vcpu_tag, "run tag"), f"run tag {VCPU_TAG}={vcpu_tag}"
        else:
            op_vcpus = [_parse_vcpu(t[VCPU_TAG], "op tag") for t in step_tags if VCPU_TAG in t]
            vcpu = max(op_vcpus, default=job_class.default_vcpu)
            source = f"op tag {VCPU_TAG}={_format_vcpu(vcpu)}"
        note = ""
        if self.whole_vcpus and not vcpu.is_integer():
            # EC2 jobs are placed by whole vCPUs: Batch refuses a fraction (the job would never start).
            rounded = float(math.ceil(vcpu))
            note = f"{source} rounded up to {_format_vcpu(rounded)}: AWS Batch on EC2 takes whole vCPUs"
            logger.info("Run %s: %s", run.run_id, note)
            vcpu = rounded
        memory_tag = run.tags.get(MEMORY_TAG)
        if memory_tag is not None:
            memory = _parse_memory(memory_tag, "run tag")
        else:
            op_memories = [_parse_memory(t[MEMORY_TAG], "op tag") for t in step_tags if MEMORY_TAG in t]
            memory = max(op_memories, default=job_class.default_memory_mib)
        return vcpu, memory, note

    def _executed_step_tags(self, run: DagsterRun) -> list[Mapping[str, str]]:
        if not run.execution_plan_snapshot_id:
            return []
        plan = self._instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        to_execute = set(plan.step_keys_to_execute)
        return [step.tags for step in plan.steps if step.key in to_execute and step.tags]

    def _environment(self, run: DagsterRun) -> list[KeyValuePairTypeDef]:
        env: dict[str, str] = {}
        for entry in self.env_vars:
            name, sep, value = entry.partition("=")
            if sep:
                env[name] = value
            elif name in os.environ:
                env[name] = os.environ[name]
            else:
                logger.warning(
                    "env_vars names %s, which is not set here: the job definition's value applies", name
                )
        env["DAGSTER_RUN_JOB_NAME"] = run.job_name
        return [{"name": k, "value": v} for k, v in env.items()]

    def _container_overrides(
        self, run: DagsterRun, command: Sequence[str], vcpu: float, memory: int
    ) -> ContainerOverridesTypeDef:
        return {
            "command": list(command),
            "environment": self._environment(run),
            "resourceRequirements": [
                {"type": "VCPU", "value": _format_vcpu(vcpu)},
                {"type": "MEMORY", "value": str(memory)},
            ],
        }

    @staticmethod
    def job_name_for_run(run: DagsterRun) -> str:
        # Batch job names: ≤ 128 of [A-Za-z0-9_-], starting with a letter or digit.
        stem = _JOB_NAME_UNSAFE.sub("-", f"dagster-{run.job_name}")[:118]
        return f"{stem}-{run.run_id[:8]}"

    def batch_tags_for_run(self, run: DagsterRun) -> dict[str, str]:
        tags: dict[str, str] = {}
        candidates = [
            *self.job_tags.items(),
            *((k, run.tags[k]) for k in self.propagate_tags if k in run.tags),
            # Last, so neither configuration nor run tags can overwrite them.
            ("dagster/run_id", run.run_id),
            ("dagster/job_name", run.job_name),
        ]
        for key, value in candidates:
            if key.lower().startswith("aws:"):
                continue  # reserved by AWS
            tags[_sanitize_tag(str(key), 128)] = _sanitize_tag(str(value), 256)
        if len(tags) > MAX_TAGS:
            # Keep the identifying tags, drop the overflow deterministically.
            keep = ["dagster/run_id", "dagster/job_name"]
            rest = [k for k in sorted(tags) if k not in keep][: MAX_TAGS - len(keep)]
            tags = {k: tags[k] for k in [*keep, *rest]}
        return tags

    # --- termination and health --------------------------------------------------------------------------

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        job_id = run.tags.get(JOB_ID_TAG)
        if not job_id:
            return False
        job = self.batch.describe_job(job_id)
        if job is None or job.status.is_terminal:
            return False
        self.batch.terminate_job(job_id, reason=f"Dagster run {run_id} was terminated")
        if not job.status.container_started:
            # No container ever ran, so no run worker will report the cancellation: record it here.
            self._instance.report_run_canceled(
                run, message=f"AWS Batch job {job_id} was cancelled while {job.status.value}."
            )
        return True

    def stop_batch_job(self, run: DagsterRun, reason: str) -> bool:
        """Stop the Batch job behind ``run`` if it is still queued or running (e.g. after run monitoring
        failed the run for a start timeout). Returns whether a job was stopped."""
        job_id = run.tags.get(JOB_ID_TAG)
        if not job_id:
            return False
        job = self.batch.describe_job(job_id)
        if job is None or job.status.is_terminal:
            return False
        self.batch.terminate_job(job_id, reason=reason)
        self._instance.report_engine_event(
            f"Stopped AWS Batch job {job_id} ({job.status.value}): {reason}",
            run,
            EngineEventData({"Batch job id": job_id, "Batch status": job.status.value}),
            cls=self.__class__,
        )
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """Map the Batch job to a worker status. API errors propagate on purpose: run monitoring logs them
        and checks again on its next pass, whereas any non-RUNNING answer here would fail the run.

        Before its container starts, a job counts as failed when Batch calls it misconfigured (it can never
        be placed) or when it has waited RUNNABLE longer than ``max_runnable_seconds``; the message carries
        Batch's reason. Dagster 1.13 ignores `CheckRunHealthResult.transient`; whether a failure is retried
        is decided by run retries (see `fail_run_that_cannot_start`)."""
        worker_id = run.tags.get(RUN_WORKER_ID_TAG)
        job_id = run.tags.get(JOB_ID_TAG)
        if not job_id:
            return CheckRunHealthResult(
                WorkerStatus.UNKNOWN, f"Run has no {JOB_ID_TAG} tag", run_worker_id=worker_id
            )
        job = self.batch.describe_job(job_id)
        if job is None:
            return CheckRunHealthResult(
                WorkerStatus.NOT_FOUND, f"AWS Batch has no job {job_id}", run_worker_id=worker_id
            )
        self._record_log_stream(run, job)
        if not job.status.is_terminal:
            stuck = self.why_stuck(job)
            if stuck is not None:
                logger.warning("Run %s cannot start: %s", run.run_id, stuck)
                return CheckRunHealthResult(WorkerStatus.FAILED, stuck, run_worker_id=worker_id)
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=worker_id)
        if job.status is BatchJobStatus.SUCCEEDED:
            current = self._instance.get_run_by_id(run.run_id)
            if current is not None and not current.is_finished:
                # The container exited 0 without finishing the run (e.g. it found the run already started):
                # nothing will ever finish it.
                return CheckRunHealthResult(
                    WorkerStatus.FAILED,
                    f"AWS Batch job {job_id} exited 0 but run {run.run_id} is still {current.status.value}.",
                    run_worker_id=worker_id,
                )
            return CheckRunHealthResult(WorkerStatus.SUCCESS, run_worker_id=worker_id)
        message = self.failure_message(job, with_log_tail=True)
        logger.warning("Run monitoring found run %s's Batch job failed: %s", run.run_id, message)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, message, transient=job.is_spot_reclaim, run_worker_id=worker_id
        )

    def why_stuck(self, job: BatchJob, now_ms: int | None = None) -> str | None:
        """Why a job that has not started never will (in time), or None while it may still start."""
        if job.status.container_started:
            return None
        if job.is_misconfigured:
            return (
                f"AWS Batch job {job.job_id} ({job.job_name}) cannot be placed: {job.status_reason}. "
                "It would wait in the queue forever."
            )
        if job.status is BatchJobStatus.RUNNABLE and job.created_at_ms is not None:
            waited_s = ((now_ms if now_ms is not None else time.time() * 1000) - job.created_at_ms) / 1000
            if waited_s > self.max_runnable_seconds:
                return (
                    f"AWS Batch job {job.job_id} ({job.job_name}) has been RUNNABLE for {waited_s:.0f} s, "
                    f"over max_runnable_seconds={self.max_runnable_seconds}: "
                    f"{job.status_reason or 'no reason given (no Spot capacity placed it)'}."
                )
        return None

    def fail_run_that_cannot_start(self, run: DagsterRun) -> str | None:
        """For a run still STARTING (run monitoring only checks started ones): if its job failed or cannot
        start, stop the job, fail the run with the reason and return the message; otherwise None.

        A misconfigured job (its queue can never place it) would fail the same way on every retry, so its
        run is marked not to be retried (``dagster/max_retries=0``); capacity waits and failed containers
        stay retryable."""
        health = self.check_run_worker_health(run)
        if health.status is not WorkerStatus.FAILED:
            return None
        current = self._instance.get_run_by_id(run.run_id)
        if current is None or current.status is not DagsterRunStatus.STARTING:
            return None  # it started (or ended) meanwhile: run monitoring owns it now
        job_id = run.tags[JOB_ID_TAG]
        job = self.batch.describe_job(job_id)
        if job is not None and not job.status.is_terminal:
            self.batch.terminate_job(job_id, reason=f"Dagster run {run.run_id} cannot start")
        if job is not None and job.is_misconfigured:
            self._instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})
            current = self._instance.get_run_by_id(run.run_id) or current
        message = f"Run failed before starting: {health.msg}"
        self._instance.report_run_failed(
            current,
            message,
            JobFailureData(error=None, failure_reason=RunFailureReason.START_TIMEOUT),
        )
        return message

    def _record_log_stream(self, run: DagsterRun, job: BatchJob) -> None:
        # The stream exists once the container started; a tag makes it one click from the run.
        if job.log_stream_name and LOG_STREAM_TAG not in run.tags:
            self._instance.add_run_tags(
                run.run_id, {LOG_STREAM_TAG: f"{self.log_group}/{job.log_stream_name}"}
            )

    def failure_message(self, job: BatchJob, with_log_tail: bool = False) -> str:
        parts = []
        instance_id = job.spot_reclaimed_instance
        if instance_id is not None:
            parts.append(
                f"Spot capacity reclaimed: the host EC2 instance {instance_id or '(unnamed)'} was terminated "
                "under the run worker."
            )
        parts.append(f"AWS Batch job {job.job_id} ({job.job_name}) {job.status.value}.")
        parts.append(f"Status reason: {job.status_reason or 'none given'}.")
        parts.append(f"Exit code: {'none' if job.exit_code is None else job.exit_code}.")
        if job.container_reason:
            parts.append(f"Container reason: {job.container_reason}.")
        if job.log_stream_name:
            parts.append(f"Log stream: {self.log_group}/{job.log_stream_name}.")
        else:
            parts.append("Log stream: none (the container never started).")
        message = " ".join(parts)
        if with_log_tail and job.log_stream_name and self.log_tail_lines:
            lines = self.log_tail.tail(self.log_group, job.log_stream_name, self.log_tail_lines)
            if lines:
                message += "\nLog tail:\n" + "\n".join(lines)
        return message

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        job_id = run.tags.get(JOB_ID_TAG)
        if not job_id:
            return None
        job = self.batch.describe_job(job_id)
        if job is None:
            return f"AWS Batch has no job {job_id}."
        if job.status is BatchJobStatus.FAILED:
            return self.failure_message(job, with_log_tail=bool(include_container_logs))
        reason = f": {job.status_reason}" if job.status_reason else ""
        return f"AWS Batch job {job_id} is {job.status.value}{reason}."
