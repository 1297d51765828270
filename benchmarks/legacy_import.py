"""Benchmark of the SpotLake history import (issue 15): rows/s and peak RSS for one synthetic full-scale day
and a reduced-scale month, and the resume after 10 kills at random points.

Data (labelled synthetic): `spotlake_assets.legacy.synthetic` months in SpotLake's zip layout (gzip CSVs,
gaps, one truncated file). Each import runs in its own process so its peak RSS is its own; rows/s is given
per wall second and per CPU second (the import is one thread: CPU seconds are what one core spends; wall time
on a shared machine is longer). The resume part kills the import with SIGKILL at random moments (after the
worker has started), retries, and compares every object of the lake with an uninterrupted import's.

Scale: the day is full scale (60k pools, as SpotLake's AWS snapshots). The month is reduced to a quarter of
that, 15k pools x 31 days (about 66M rows), so the run stays a few minutes. A snapshot costs a fixed part
(gunzip and CSV reader set-up, one small Parquet window file encoded and written, about 1.5 ms of CPU) plus
about 0.5 us per row, so rows/s falls with the snapshot's size: a quarter keeps the fixed part under a tenth
of the work, as at full scale, where a 2k-pool month would measure mostly that fixed part (0.7-0.85M rows/s
per core, where 15k pools give 1.7-2.0M and 60k about 2.1M). Pass several sizes to see the curve:
``--month-pools 2000 15000 60000``.

    .venv/bin/python benchmarks/legacy_import.py [--day-pools 60000] [--month-pools 15000 ...]
        [--month-days 31] [--kills 10] [--kill-days 4] [--skip-day] [--skip-month] [--skip-kills]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

MONTH = date(2024, 3, 1)


def worker(source: str, lake_root: str) -> None:
    """Import ``source`` into the local lake at ``lake_root``; print the figures as one JSON line."""
    from spotlake_assets.legacy.importer import import_month
    from spotlake_assets.legacy.layouts import AWS_LAYOUT
    from spotlake_assets.legacy.sources import LegacyArchive
    from spotlake_assets.storage.lake import LocalLake

    print("ready", flush=True)
    lake = LocalLake(root=lake_root)
    wall, cpu = time.perf_counter(), time.process_time()
    with LegacyArchive().open(source) as files:
        report = import_month(lake, files, AWS_LAYOUT, MONTH)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows = report.total("rows_in", imported_only=True)
    figures = {
        "rows": rows,
        "windows": report.total("windows_count", imported_only=True),
        "history_rows": report.total("history_rows", imported_only=True),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rows_per_wall_s": round(rows / wall),
        "rows_per_cpu_s": round(rows / cpu) if cpu else 0,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "skipped_files": len(report.all_skipped()),
        "gap_windows": sum(d.gap_windows for d in report.imported_days),
        "missing_days": len(report.missing_days),
    }
    print(json.dumps(figures), flush=True)


def _start(source: Path, lake: Path) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--worker", str(source), str(lake)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def run_worker(source: Path, lake: Path) -> dict[str, Any]:
    process = _start(source, lake)
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"import of {source} failed ({process.returncode})")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def lake_content(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def generate(target: Path, pools: int, days: int) -> Path:
    from spotlake_assets.legacy.synthetic import write_synthetic_month

    started = time.perf_counter()
    month = write_synthetic_month(target, "aws", MONTH, pools=pools, days=days, seed=15)
    print(
        f"  synthetic: {days} day(s) x {pools:,} pools, {month.files:,} files, {month.rows:,} rows, "
        f"{len(month.gaps)} gap windows, 1 truncated file ({time.perf_counter() - started:.1f} s)"
    )
    return month.location


def report(label: str, figures: dict[str, Any]) -> None:
    print(
        f"{label}: {figures['rows']:,} rows in {figures['windows']:,} windows -> {figures['history_rows']:,} "
        f"history rows; {figures['wall_s']} s wall, {figures['cpu_s']} s CPU; "
        f"{figures['rows_per_wall_s']:,} rows/s wall, {figures['rows_per_cpu_s']:,} rows/s per core (CPU); "
        f"peak RSS {figures['peak_rss_mib']} MiB; {figures['skipped_files']} file(s) skipped, "
        f"{figures['gap_windows']} gap windows in imported days, {figures['missing_days']} days without files"
    )


def kills(work: Path, pools: int, days: int, count: int, seed: int) -> None:
    source = generate(work / "kill-archive", pools, days)
    reference = run_worker(source, work / "kill-reference")
    expected = lake_content(work / "kill-reference")
    lake = work / "kill-resumed"
    rng = np.random.default_rng(seed)
    hit = 0
    for attempt in range(count):
        done = len(list((lake / "state/legacy/aws").rglob("??.json"))) if lake.exists() else 0
        remaining = reference["wall_s"] * max(days - done, 0.5) / days
        delay = float(rng.uniform(0.02, 0.6)) * remaining
        process = _start(source, lake)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            hit += 1
        process.wait()
        print(
            f"  attempt {attempt + 1}: SIGKILL after {delay:.2f} s ({done}/{days} days checkpointed before)"
        )
    final = run_worker(source, lake)
    same = lake_content(lake) == expected
    print(
        f"resume: {hit}/{count} attempts killed mid-import, then one retry finished "
        f"({final['windows']} windows left to import); lake equals the uninterrupted import: {same}"
    )
    if not same:
        raise SystemExit("resume produced a different lake")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("SOURCE", "LAKE"), help=argparse.SUPPRESS)
    parser.add_argument("--day-pools", type=int, default=60_000)
    parser.add_argument("--month-pools", type=int, nargs="+", default=[15_000])
    parser.add_argument("--month-days", type=int, default=31)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kill-days", type=int, default=4)
    parser.add_argument("--kill-pools", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--skip-day", action="store_true")
    parser.add_argument("--skip-month", action="store_true")
    parser.add_argument("--skip-kills", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    with tempfile.TemporaryDirectory(prefix="spotlake-legacy-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_day:
            print("full-scale day (synthetic):")
            report("  import", run_worker(generate(work / "day", args.day_pools, 1), work / "day-lake"))
        for pools in [] if args.skip_month else args.month_pools:
            print(f"reduced-scale month, {pools:,} pools (synthetic):")
            source = generate(work / f"month-{pools}", pools, args.month_days)
            report("  import", run_worker(source, work / f"month-lake-{pools}"))
            # Only one month's archive and lake on the scratch disk at a time.
            shutil.rmtree(work / f"month-{pools}", ignore_errors=True)
            shutil.rmtree(work / f"month-lake-{pools}", ignore_errors=True)
        if not args.skip_kills:
            print(f"kill and resume ({args.kills} SIGKILLs at random points):")
            kills(work, args.kill_pools, args.kill_days, args.kills, args.seed)


if __name__ == "__main__":
    main()
