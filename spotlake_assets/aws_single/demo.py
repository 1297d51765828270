"""`make demo MODE=single` (`python -m spotlake_assets.demo --mode single`): the single-account mode on the
simulated cloud, through the same Dagster instance as the full demo. Per day: the selection (within the
budget), architectures and AMIs; per window: SPS and IF of the selected types, merged, delta, history; then
the daily score and report, one simulated launch-time measurement and the sweep. Returns summary lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

from spotlake_assets.aws_single.constants import PREFIX
from spotlake_assets.domain.windows import day_key_of_window

Run = Callable[[Any, str], dict[str, dict[str, Any]]]


def _value(metadata: dict[str, Any], name: str, default: Any = "") -> Any:
    value = metadata.get(name)
    return default if value is None else getattr(value, "value", value)


def run_single_account(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    windows: Sequence[str],
    run: Run,
    say: Callable[[str], None],
) -> list[str]:
    """Run the mode's jobs; ``run`` executes one job for a partition (the demo's runner, which prints each
    asset's figures), ``say`` reports progress."""
    days = list(dict.fromkeys(day_key_of_window(w) for w in windows))
    selection: dict[str, dict[str, Any]] = {}
    for day in days:
        say(f"single account: selection, architectures and AMIs for {day}")
        selection = run(defs.resolve_job_def(f"{PREFIX}_daily_job"), day)
    spent: list[int] = []
    for key in windows:
        say(f"single account: window {key}")
        done = run(defs.resolve_job_def(f"{PREFIX}_window_job"), key)
        spent.append(int(_value(done.get(f"{PREFIX}/sps", {}), "configurations_spent", 0)))
    report: dict[str, dict[str, Any]] = {}
    for day in days:
        say(f"single account: daily score and report for {day}")
        report = run(defs.resolve_job_def(f"{PREFIX}_report_job"), day)
    say("single account: one launch-time measurement (simulated), then the sweep")
    launch = run(defs.resolve_job_def(f"{PREFIX}_launch_job"), windows[-1])
    defs.resolve_job_def(f"{PREFIX}_sweep_job").execute_in_process(instance=instance, tags=tags)
    chosen = _value(selection.get(f"{PREFIX}/selection", {}), "configurations_planned", 0)
    budget = _value(selection.get(f"{PREFIX}/selection", {}), "budget", 0)
    top = _value(report.get(f"{PREFIX}/daily_score", {}), "top_k", [])
    launched = _value(launch.get(f"{PREFIX}/launch_time", {}), "launch_times", "")
    return [
        "",
        "Single-account summary (SIMULATED)",
        f"  selection: {chosen} of {budget} configurations planned for {days[-1]}",
        f"  configurations spent per window: {spent} (repeats within 24 h are free)",
        f"  top K by change score: {', '.join(map(str, top)) or '(no changes yet)'}",
        f"  launch time:\n{launched}",
    ]
