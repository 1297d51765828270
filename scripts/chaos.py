"""`make chaos`: kill -9 the demo at seeded random moments, rerun it, compare with an uninterrupted run.

Each trial starts the demo on a fresh SPOTLAKE_HOME (instance configured like `make demo`'s), kills its
process group at a random moment, reruns it to completion (a rerun still running at the timeout is
"blocked"), and compares the lake, the Timestream records, the SPS calls and the instance with the reference.
Prints one row per trial and a totals line; exits 1 if anything is non-zero. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from spotlake_assets.chaos import (
    KILL_HORIZON_SHARE,
    DemoSpec,
    TrialResult,
    format_table,
    kill_moments,
    run_reference,
    run_trial,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261122, help="seed of the kill moments")
    parser.add_argument("--scale", type=float, default=0.05, help="SPOTLAKE_SCALE of every demo")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--day", default="2026-03-01")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="rerun timeout in s (default: 4x reference)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep homes here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")

    spec = DemoSpec(day=args.day, windows=args.windows, scale=args.scale)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spotlake-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: {args.trials} trials, seed {args.seed}, scale {spec.scale}, {spec.windows} windows")
    print(f"homes under {workdir}")
    started = time.monotonic()
    reference = run_reference(workdir, spec, timeout_s=900.0)
    timeout = args.timeout or max(60.0, 4 * reference.wall_s)
    print(
        f"reference: {len(reference.snapshot)} objects, {reference.sps_calls} SPS calls, "
        f"{reference.wall_s:.1f}s; rerun timeout {timeout:.0f}s"
    )
    results: list[TrialResult] = []
    for index, kill_at in enumerate(
        kill_moments(args.seed, args.trials, KILL_HORIZON_SHARE * reference.wall_s), start=1
    ):
        result = run_trial(index, kill_at, reference, workdir, spec, timeout)
        results.append(result)
        verdict = "ok" if result.failures == 0 else f"FAIL ({result.failures})"
        rc = "timeout" if result.rerun_rc is None else result.rerun_rc
        print(f"  trial {index:>3}: killed at {result.kill_at_s:>6.2f}s, rerun rc={rc} -> {verdict}")
    print()
    print("\n".join(format_table(results)))
    print(f"wall time {time.monotonic() - started:.0f}s")
    failed = any(r.failures for r in results)
    if args.workdir is None and not failed:
        shutil.rmtree(workdir, ignore_errors=True)
    elif failed:
        print(f"homes kept for inspection under {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
