"""The sensors that complete run monitoring on Batch.

- `fail_batch_runs_that_cannot_start`: run monitoring asks the launcher about started runs only, so a run
  whose job failed before its container started (image pull, misconfiguration) or waits RUNNABLE without
  capacity would only fail at the start timeout (20 minutes), then be retried. Every 30 s this sensor asks
  about starting runs and fails those that cannot start, with Batch's reason.
- `stop_orphaned_batch_jobs`: run monitoring fails a run that took longer than its start timeout to start
  but leaves the job behind it in the queue, where it would later start on Spot capacity for nothing. The
  same holds for runs failed by hand.
"""

from __future__ import annotations

import dagster as dg

from spotlake_assets.batch_launcher.launcher import JOB_ID_TAG, BatchRunLauncher

# Half of run monitoring's poll interval in infra/dagster.yaml: a job that cannot start fails its run within
# a minute.
START_CHECK_INTERVAL_S = 30


@dg.run_failure_sensor(
    name="stop_orphaned_batch_jobs",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Stops the AWS Batch job of a failed run (e.g. a start timeout) if it is still queued or running."
    ),
)
def stop_orphaned_batch_jobs(context: dg.RunFailureSensorContext) -> None:
    launcher = context.instance.run_launcher
    if not isinstance(launcher, BatchRunLauncher):
        # Local and test instances launch in-process: there is no Batch job to stop.
        return
    run = context.dagster_run
    reason = f"Dagster run {run.run_id} failed: {context.failure_event.message or 'no message'}"
    if launcher.stop_batch_job(run, reason=reason[:1024]):
        context.log.info("Stopped the Batch job of failed run %s", run.run_id)


@dg.sensor(
    name="fail_batch_runs_that_cannot_start",
    minimum_interval_seconds=START_CHECK_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails a starting run whose AWS Batch job failed or cannot start (misconfigured, or RUNNABLE beyond "
        "the launcher's max_runnable_seconds), with Batch's reason, instead of waiting for the start timeout."
    ),
)
def fail_batch_runs_that_cannot_start(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    launcher = context.instance.run_launcher
    if not isinstance(launcher, BatchRunLauncher):
        return dg.SkipReason("runs are not launched on AWS Batch here")
    starting = context.instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING]))
    failed = 0
    for run in starting:
        if JOB_ID_TAG not in run.tags:
            continue
        try:
            message = launcher.fail_run_that_cannot_start(run)
        except Exception:
            # One unreachable job must not stop the others being checked; the next tick tries again.
            context.log.exception("Could not check the Batch job of run %s", run.run_id)
            continue
        if message is not None:
            failed += 1
            context.log.warning("Failed run %s: %s", run.run_id, message)
    return dg.SkipReason(f"checked {len(starting)} starting run(s), failed {failed}")


batch_sensors = [fail_batch_runs_that_cannot_start, stop_orphaned_batch_jobs]
