"""Runs on AWS Batch: the run launcher (`BatchRunLauncher`), its thin Batch client and the sensor that stops
the Batch jobs of runs Dagster failed. The instance `dagster.yaml` names this module::

    run_launcher:
      module: spotlake_assets.batch_launcher
      class: BatchRunLauncher
"""

from spotlake_assets.batch_launcher.client import BatchClient, BatchJob, BatchJobStatus, LogTail, RetryPolicy
from spotlake_assets.batch_launcher.launcher import (
    IMAGE_TAG,
    JOB_CLASS_TAG,
    JOB_DEFINITION_TAG,
    JOB_ID_TAG,
    JOB_NAME_TAG,
    JOB_QUEUE_TAG,
    LOG_STREAM_TAG,
    MEMORY_TAG,
    VCPU_TAG,
    BatchLaunchError,
    BatchRunLauncher,
    JobClass,
)

__all__ = [
    "IMAGE_TAG",
    "JOB_CLASS_TAG",
    "JOB_DEFINITION_TAG",
    "JOB_ID_TAG",
    "JOB_NAME_TAG",
    "JOB_QUEUE_TAG",
    "LOG_STREAM_TAG",
    "MEMORY_TAG",
    "VCPU_TAG",
    "BatchClient",
    "BatchJob",
    "BatchJobStatus",
    "BatchLaunchError",
    "BatchRunLauncher",
    "JobClass",
    "LogTail",
    "RetryPolicy",
]
