"""One full-scale 10-minute tick per provider, as a Batch run worker does it: a fresh process loads the
definitions and executes `<p>_window_job` (collectors → merged → delta → sinks) in process, against a temp
lake, with the simulated clouds answering after a seeded per-call latency (`SPOTLAKE_SIM_LATENCY_MS`,
default 150 ms median with a long tail).

Not timed: the day's workload and the previous window (run first, without latency, so the timed window is a
steady-state one with a previous snapshot). Printed per provider: wall seconds from the worker's start to
`<p>/latest` written (targets: ≤ 120 s for AWS), the CPU seconds of the worker process (user + system, all
threads and children) as vCPU-seconds (target ≤ 60), of which loading the definitions, peak RSS, SPS calls.

Then the cost of a tick per run-worker architecture: a Batch job reserves its vCPU (1 by default) for its
whole wall time, so a tick costs wall x vCPUs x the Spot price per vCPU-second. The prices are inputs, not
measurements (Spot prices move; pass the current ones): the defaults are assumptions, x86 $0.020 and Graviton
$0.017 per vCPU-hour (Graviton's list price per vCPU is about 15% below the same-generation x86 family's).
This machine is x86, so the arm64 figure also prints the break-even: how many times slower a Graviton vCPU
would have to run the worker's CPU-bound part before arm64 stopped being cheaper per tick.

    .venv/bin/python benchmarks/tick.py [--providers aws azure] [--latency-ms 150] [--scale 1.0]
        [--price-x86 0.020] [--price-arm64 0.017] [--job-vcpus 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

DAY = "2026-03-01"
PREVIOUS = "2026-03-01-00:00"
WINDOW = "2026-03-01-00:10"


def _child(provider: str, stage: str) -> None:
    """Runs in a fresh process: ``prepare`` (daily + previous window) or ``tick`` (the timed window)."""
    started = time.perf_counter()
    import dagster as dg

    import spotlake_assets.definitions as definitions

    defs = definitions.build_definitions()
    defs.get_repository_def()
    loaded_cpu = time.process_time()
    loaded_wall = time.perf_counter() - started
    instance = dg.DagsterInstance.ephemeral()
    if stage == "prepare":
        for job, partition in ((f"{provider}_daily_job", DAY), (f"{provider}_window_job", PREVIOUS)):
            result = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance)
            assert result.success, f"{job} {partition} failed"
        return
    run_started = time.time()
    result = defs.resolve_job_def(f"{provider}_window_job").execute_in_process(
        partition_key=WINDOW, instance=instance
    )
    assert result.success, f"{provider}_window_job {WINDOW} failed"
    events = {
        e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events() if e.asset_key
    }
    latest = instance.get_latest_materialization_event(dg.AssetKey([provider, "latest"]))
    assert latest is not None, f"latest/{provider} was not written"
    latest_at = latest.timestamp
    sps = events[f"{provider}/sps"].materialization.metadata
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "load_wall_s": loaded_wall,
                "load_cpu_s": loaded_cpu,
                "to_latest_s": loaded_wall + (latest_at - run_started),
                "run_wall_s": time.perf_counter() - started,
                "sps_calls": sps["api_calls"].value if "api_calls" in sps else -1,
                "peak_rss_mib": usage.ru_maxrss / 1024,
            }
        )
    )


def _run(provider: str, stage: str, environ: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, __file__, "--child", provider, stage],
        env=environ,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1]) if stage == "tick" else {}
    return {**figures, "vcpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", nargs="+", default=["aws", "azure"])
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--price-x86", type=float, default=0.020, help="Spot $ per vCPU-hour, x86_64")
    parser.add_argument("--price-arm64", type=float, default=0.017, help="Spot $ per vCPU-hour, Graviton")
    parser.add_argument("--job-vcpus", type=float, default=1.0, help="vCPUs a run worker reserves")
    parser.add_argument("--child", nargs=2, metavar=("PROVIDER", "STAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    for provider in args.providers:
        with tempfile.TemporaryDirectory() as home:
            environ = {
                **os.environ,
                "SPOTLAKE_ENV": "local",
                # The benchmark's fixed day must be one of the partitions.
                "SPOTLAKE_PARTITIONS_START": DAY,
                "SPOTLAKE_HOME": home,
                "SPOTLAKE_SCALE": str(args.scale),
                "SPOTLAKE_SIM_LATENCY_MS": "0",
                "DAGSTER_HOME": home,
            }
            # Sequential, never overlapping: each figure is one worker's alone.
            _run(provider, "prepare", environ)
            tick = _run(provider, "tick", {**environ, "SPOTLAKE_SIM_LATENCY_MS": str(args.latency_ms)})
        print(
            f"{provider} tick (scale {args.scale}, {args.latency_ms:.0f} ms median per call): "
            f"{tick['to_latest_s']:.1f} s to latest written, {tick['vcpu_s']:.1f} vCPU-s "
            f"(definitions {tick['load_cpu_s']:.2f} CPU-s), peak RSS {tick['peak_rss_mib']:.0f} MiB, "
            f"{tick['sps_calls']} SPS calls"
        )
        print(
            _cost_line(tick["to_latest_s"], tick["vcpu_s"], args.job_vcpus, args.price_x86, args.price_arm64)
        )


TICKS_PER_MONTH = 6 * 24 * 30


def _cost_line(wall_s: float, cpu_s: float, job_vcpus: float, price_x86: float, price_arm64: float) -> str:
    """Cost per tick and per month on each architecture, and the CPU slowdown at which they break even.

    A slower vCPU lengthens only the CPU-bound part of the tick: wall(s) = wall + (s - 1) x cpu. arm64 is
    cheaper while wall(s) x price_arm64 < wall x price_x86.
    """
    x86 = wall_s * job_vcpus * price_x86 / 3600
    arm = wall_s * job_vcpus * price_arm64 / 3600
    break_even = 1 + wall_s * (price_x86 / price_arm64 - 1) / cpu_s if cpu_s > 0 else float("inf")
    return (
        f"  cost per tick ({job_vcpus:g} vCPU reserved for the wall time): x86_64 ${x86:.5f} "
        f"(${x86 * TICKS_PER_MONTH:.2f}/month), arm64 ${arm:.5f} (${arm * TICKS_PER_MONTH:.2f}/month) "
        f"at equal speed; arm64 stays cheaper unless a Graviton vCPU runs this worker "
        f"{break_even:.1f}x slower"
    )


if __name__ == "__main__":
    main()
