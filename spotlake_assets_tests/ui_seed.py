"""Seeds a Dagster home for the browser test: one day's workload and the collectors of some windows,
run through the real instance at $DAGSTER_HOME (python -m spotlake_assets_tests.ui_seed DAY WINDOW...)."""

from __future__ import annotations

import sys

import dagster as dg

from spotlake_assets.definitions import build_definitions


def main(day: str, windows: list[str]) -> None:
    defs = build_definitions()
    instance = dg.DagsterInstance.get()
    assert (
        defs.resolve_job_def("aws_daily_job").execute_in_process(partition_key=day, instance=instance).success
    )
    for window in windows:
        job = defs.resolve_job_def("aws_collect_job")
        assert job.execute_in_process(partition_key=window, instance=instance).success


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
