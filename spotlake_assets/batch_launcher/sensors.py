"""The sensor that completes run monitoring on Batch: it stops the Batch job of a run that failed while its
job was still queued or running.

Run monitoring fails a run that took longer than its start timeout to start but leaves the job behind it in
the queue, where it would later start on Spot capacity for nothing. The same holds for runs failed by hand.
"""

from __future__ import annotations

import dagster as dg

from spotlake_assets.batch_launcher.launcher import BatchRunLauncher


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


batch_sensors = [stop_orphaned_batch_jobs]
