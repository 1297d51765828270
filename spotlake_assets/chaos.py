"""Fault injection: kill -9 a demo at a random moment, rerun it, and compare with an uninterrupted reference.

The reusable half of `make chaos` (``scripts/chaos.py`` prints the table) and of the tests that kill real
demos: start the demo in its own process group on a home configured like `make demo`'s (the local
``dagster.yaml``, pools included), kill the group, rerun, then measure what a kill must never cause:

- lake objects lost or extra, and rows that differ (Parquet compared by rows, JSON by parsed content,
  Timestream JSON lines by record; ``quarantine/`` and hidden files ignored);
- duplicated Timestream records: one series point (time, measure, key dimensions) stored twice;
- SPS configurations (instance type, regions, capacity) spent on two different credentials, counted from
  every answered call of the simulated AWS (the demo runs under `instrumented_demo`, which logs them);
- runs left active and pool slots still held in the instance, temp files left in the lake;
- reruns that did not finish within the timeout ("blocked").

Run as ``python -m spotlake_assets.chaos <demo arguments>`` it is the instrumented demo itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCAL_INSTANCE_CONFIG = ROOT / "infra" / "local" / "dagster.yaml"
SPS_LOG_ENV = "SPOTLAKE_CHAOS_SPS_LOG"
# ops/: run telemetry (ops/collector_stats: durations and run counts of the day), not collected data; the
# demo rebuilds it after its windows, and a rerun rightly counts more runs.
IGNORED_PREFIXES = ("quarantine/", "ops/")
# The SPS credential ledger: which pool index serves which (capacity, group) depends on which group's thread
# asked first, even without a kill, so two homes legitimately differ. It is checked by its invariants
# (`ledger_violations`) instead of against the reference.
ORDER_DEPENDENT_PREFIXES = ("state/aws/credential_map/",)
# Timestream dimensions that are values, not part of a series' identity (AWS puts the on-demand price and
# the Ceased flag among the dimensions): the same series point under two of them is a duplicate.
VALUE_DIMENSIONS = frozenset({"OndemandPrice", "Ceased"})


# --- running demos ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoSpec:
    day: str = "2026-03-01"
    windows: int = 1
    scale: float = 0.02
    seed: int = 7

    def argv(self) -> list[str]:
        return ["--day", self.day, "--windows", str(self.windows)]


@dataclass(frozen=True)
class DemoRun:
    returncode: int | None  # None: still running at the timeout (killed, counted as blocked)
    wall_s: float
    output: str

    @property
    def blocked(self) -> bool:
        return self.returncode is None


def dagster_home_of(home: Path) -> Path:
    return home / "dagster_home"


def prepare_home(home: Path) -> None:
    """A fresh home configured like `make demo`'s: the local instance config copied into DAGSTER_HOME."""
    dagster_home = dagster_home_of(home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(LOCAL_INSTANCE_CONFIG, dagster_home / "dagster.yaml")


def demo_env(home: Path, spec: DemoSpec, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SPOTLAKE_ENV", "DAGSTER_HOME"}}
    env.update(
        SPOTLAKE_HOME=str(home),
        DAGSTER_HOME=str(dagster_home_of(home)),
        SPOTLAKE_SCALE=str(spec.scale),
        SPOTLAKE_SEED=str(spec.seed),
        PYTHONUNBUFFERED="1",
    )
    env[SPS_LOG_ENV] = str(home / "sps_calls.jsonl")
    env.update(extra or {})
    return env


def start_demo(
    home: Path, spec: DemoSpec, log_name: str, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The instrumented demo in its own process group (so a kill reaches everything it started)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / log_name).open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "spotlake_assets.chaos", *spec.argv()],
            cwd=ROOT,
            env=demo_env(home, spec, extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def finish(
    process: subprocess.Popen[bytes], home: Path, log_name: str, started: float, timeout_s: float
) -> DemoRun:
    try:
        returncode: int | None = process.wait(timeout=max(0.0, started + timeout_s - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_group(process)
        returncode = None
    return DemoRun(returncode, time.monotonic() - started, (home / log_name).read_text(errors="replace"))


def run_demo(home: Path, spec: DemoSpec, timeout_s: float, log_name: str = "demo.log") -> DemoRun:
    started = time.monotonic()
    return finish(start_demo(home, spec, log_name), home, log_name, started, timeout_s)


def _index_db(home: Path) -> Path:
    return dagster_home_of(home) / "history" / "runs" / "index.db"


def held_slots(home: Path) -> list[tuple[str, str, str]]:
    """(pool, run id, step) of every claimed pool slot, read-only from the instance's SQLite (never creating
    it: a reader that initialised the storage would race the demo doing the same)."""
    path = _index_db(home)
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)) as db:
            rows = db.execute(
                "SELECT concurrency_key, run_id, step_key FROM concurrency_slots WHERE run_id IS NOT NULL"
            ).fetchall()
    except sqlite3.Error:
        return []  # not created yet, or busy: look again
    return [(str(pool), str(run_id), str(step)) for pool, run_id, step in rows]


def kill_while_holding_a_slot(
    process: subprocess.Popen[bytes], home: Path, timeout_s: float, pool: str | None = None
) -> tuple[str, str, str] | None:
    """Kill the demo's group the moment one of its runs holds a slot of ``pool`` (any pool if None);
    returns that claim, or None if the demo ended (or the timeout passed) first."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        claims = [claim for claim in held_slots(home) if pool is None or claim[0] == pool]
        if claims:
            kill_group(process)
            return claims[0]
        time.sleep(0.005)
    kill_group(process)
    return None


@dataclass(frozen=True)
class InstanceState:
    active_runs: int
    held_slots: int


def instance_state(home: Path) -> InstanceState:
    """Runs still active (not started, starting, started, canceling) and pool slots or pending steps held."""
    import dagster as dg

    from spotlake_assets.orchestration.run_health import ACTIVE_STATUSES

    with dg.DagsterInstance.from_config(str(dagster_home_of(home))) as instance:
        active = instance.get_run_records(
            filters=dg.RunsFilter(statuses=[*ACTIVE_STATUSES, dg.DagsterRunStatus.CANCELING])
        )
        storage = instance.event_log_storage
        infos = storage.get_concurrency_infos(sorted(storage.get_concurrency_keys()))
        claimed = sum(len(info.claimed_slots) + len(info.pending_steps) for info in infos.values())
    return InstanceState(len(active), claimed)


# --- comparing lakes --------------------------------------------------------------------------------------
def _rows(frame: Any) -> Counter[tuple[str, ...]]:
    header = tuple(str(c) for c in frame.columns)
    rows: Counter[tuple[str, ...]] = Counter(
        header + row for row in frame.astype(str).itertuples(index=False)
    )
    return rows


def _json_units(value: Any) -> Counter[str]:
    """A JSON document as comparable units: list items, or top-level entries, or the whole value."""
    if isinstance(value, list):
        return Counter(json.dumps(item, sort_keys=True) for item in value)
    if isinstance(value, dict):
        return Counter(json.dumps({k: v}, sort_keys=True) for k, v in value.items())
    return Counter([json.dumps(value, sort_keys=True)])


def lake_keys(lake: Path) -> list[str]:
    if not lake.is_dir():
        return []
    keys = (p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file())
    return sorted(
        k
        for k in keys
        if not any(part.startswith(".") for part in k.split("/")) and not k.startswith(IGNORED_PREFIXES)
    )


def object_units(path: Path) -> Counter[Any]:
    """One object as a multiset of comparable units (rows, records, entries), independent of encoding."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return Counter(_rows(pq.read_table(io.BytesIO(data)).to_pandas()))
    if path.suffix == ".jsonl":
        return Counter(
            json.dumps(json.loads(line), sort_keys=True) for line in data.splitlines() if line.strip()
        )
    if path.suffix == ".json":
        return _json_units(json.loads(data))
    return Counter([data])


def snapshot_lake(lake: Path) -> dict[str, Counter[Any]]:
    return {key: object_units(lake / key) for key in lake_keys(lake)}


@dataclass(frozen=True)
class LakeDiff:
    lost: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    # key → rows (units) in one object and not the other, counted both ways
    differing: Mapping[str, int] = field(default_factory=dict)

    @property
    def differing_rows(self) -> int:
        return sum(self.differing.values())

    def describe(self, limit: int = 8) -> list[str]:
        lines = [f"lost {key}" for key in self.lost[:limit]]
        lines += [f"extra {key}" for key in self.extra[:limit]]
        lines += [f"{rows} rows differ in {key}" for key, rows in sorted(self.differing.items())[:limit]]
        return lines


def compare_lakes(
    reference: Mapping[str, Counter[Any]], other: Mapping[str, Counter[Any]], skip: tuple[str, ...] = ()
) -> LakeDiff:
    """Objects and rows of ``other`` against ``reference``; keys under a ``skip`` prefix must only exist in
    both."""
    differing = {}
    for key in sorted(set(reference) & set(other)):
        if key.startswith(skip):
            continue
        a, b = reference[key], other[key]
        if a != b:
            differing[key] = sum((a - b).values()) + sum((b - a).values())
    return LakeDiff(
        lost=tuple(sorted(set(reference) - set(other))),
        extra=tuple(sorted(set(other) - set(reference))),
        differing=differing,
    )


def timestream_duplicates(lake: Path) -> int:
    """Records beyond the first for one series point: same table, time, measure and key dimensions."""
    points: Counter[tuple[Any, ...]] = Counter()
    root = lake / "timestream"
    for path in sorted(root.rglob("*.jsonl")) if root.is_dir() else []:
        table = path.relative_to(root).parts[:2]
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            dims = tuple(
                sorted(
                    (d["Name"], d["Value"])
                    for d in record.get("Dimensions", [])
                    if d["Name"] not in VALUE_DIMENSIONS
                )
            )
            points[(table, str(record["Time"]), str(record.get("MeasureName", "")), dims)] += 1
    return sum(count - 1 for count in points.values())


def ledger_violations(lake: Path) -> int:
    """Broken invariants of the SPS credential ledgers: a credential serving two (capacity, group) slots of
    a day, or serving one after it was retired as exhausted (both would spend quota twice)."""
    violations = 0
    root = lake / "state" / "aws" / "credential_map"
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        ledger = json.loads(path.read_text())
        assigned = list(ledger["assignments"].values())
        violations += len(assigned) - len(set(assigned))
        violations += len(set(assigned) & set(ledger["retired"]))
    return violations


def temp_files(lake: Path) -> list[str]:
    return sorted(str(p) for p in lake.rglob(".*.tmp")) if lake.is_dir() else []


# --- SPS calls (the simulated AWS, instrumented) ----------------------------------------------------------
Configuration = tuple[str, tuple[str, ...], int]


def read_sps_log(path: Path) -> list[tuple[str, Configuration]]:
    """(credential, configuration) of every answered SPS call; a line cut by a kill is skipped."""
    calls = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
            calls.append(
                (str(entry["credential"]), (entry["type"], tuple(entry["regions"]), int(entry["capacity"])))
            )
        except (ValueError, KeyError, TypeError):
            continue
    return calls


def spent_on_two_credentials(calls: Sequence[tuple[str, Configuration]]) -> int:
    """Configurations answered on more than one credential: quota paid twice for the same question."""
    credentials: dict[Configuration, set[str]] = {}
    for credential, configuration in calls:
        credentials.setdefault(configuration, set()).add(credential)
    return sum(1 for used in credentials.values() if len(used) > 1)


@contextlib.contextmanager
def _logging_sps_calls(path: str) -> Iterator[None]:
    from spotlake_assets.aws.simulation import SimulatedAwsApi

    original = SimulatedAwsApi.spot_placement_scores
    # O_APPEND: each line is one write() that survives a SIGKILL of the writer right after it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def logged(
        self: SimulatedAwsApi,
        credential: Any,
        instance_type: str,
        regions: Sequence[str],
        capacity: int,
        window_start: datetime,
    ) -> Any:
        answer = original(self, credential, instance_type, regions, capacity, window_start)
        entry = {
            "credential": credential.access_key_id,
            "type": instance_type,
            "regions": sorted(set(regions)),
            "capacity": capacity,
            "window": window_start.isoformat(),
        }
        os.write(fd, (json.dumps(entry) + "\n").encode())
        return answer

    SimulatedAwsApi.spot_placement_scores = logged  # type: ignore[method-assign]
    try:
        yield
    finally:
        SimulatedAwsApi.spot_placement_scores = original  # type: ignore[method-assign]
        os.close(fd)


def instrumented_demo(argv: Sequence[str]) -> None:
    """The demo, with every answered simulated SPS call appended to ``$SPOTLAKE_CHAOS_SPS_LOG``."""
    from spotlake_assets import demo

    path = os.environ.get(SPS_LOG_ENV)
    with _logging_sps_calls(path) if path else contextlib.nullcontext():
        demo.main(list(argv))


# --- trials -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    snapshot: Mapping[str, Counter[Any]]
    wall_s: float
    sps_calls: int


@dataclass(frozen=True)
class TrialResult:
    trial: int
    kill_at_s: float
    interrupted: bool  # the demo was still running when killed
    rerun_rc: int | None
    lost: int = 0
    extra: int = 0
    differing_rows: int = 0
    timestream_dups: int = 0
    sps_twice: int = 0
    extra_sps_calls: int = 0  # repeated on the same credential: free under the quota rule, reported only
    ledger: int = 0
    runs_left: int = 0
    slots_held: int = 0
    temp_left: int = 0
    details: tuple[str, ...] = ()

    @property
    def blocked(self) -> int:
        return int(self.rerun_rc is None)

    @property
    def rerun_failed(self) -> int:
        return int(self.rerun_rc not in (0, None))

    @property
    def failures(self) -> int:
        return (
            self.lost
            + self.extra
            + self.differing_rows
            + self.timestream_dups
            + self.sps_twice
            + self.ledger
            + self.runs_left
            + self.slots_held
            + self.temp_left
            + self.blocked
            + self.rerun_failed
        )


def run_reference(workdir: Path, spec: DemoSpec, timeout_s: float) -> Reference:
    home = workdir / "reference"
    prepare_home(home)
    run = run_demo(home, spec, timeout_s)
    if run.returncode != 0:
        raise RuntimeError(f"the reference demo failed (rc={run.returncode}):\n{run.output[-3000:]}")
    return Reference(snapshot_lake(home / "lake"), run.wall_s, len(read_sps_log(home / "sps_calls.jsonl")))


# Kill moments are drawn over this share of the reference's wall time: a later rerun of the same demo is a
# little faster (warm caches), so a kill drawn near the reference's end would often land after the demo.
KILL_HORIZON_SHARE = 0.8


def kill_moments(seed: int, trials: int, horizon_s: float) -> list[float]:
    """Seeded kill times in [0, horizon_s): start-up included (a kill can land anywhere)."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.0, horizon_s), 2) for _ in range(trials)]


def run_trial(
    index: int,
    kill: float | Callable[[subprocess.Popen[bytes], Path], bool],
    reference: Reference,
    workdir: Path,
    spec: DemoSpec,
    timeout_s: float,
) -> TrialResult:
    """One trial on a fresh home: start, kill (at ``kill`` seconds, or when the ``kill`` callable says it
    did), rerun to completion, measure against ``reference``."""
    home = workdir / f"trial-{index:03d}"
    prepare_home(home)
    started = time.monotonic()
    process = start_demo(home, spec, "killed.log")
    if callable(kill):
        interrupted = kill(process, home)
    else:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=kill)
        interrupted = process.poll() is None
    kill_group(process)
    kill_at = time.monotonic() - started
    rerun = run_demo(home, spec, timeout_s, "rerun.log")
    lake = home / "lake"
    diff = compare_lakes(reference.snapshot, snapshot_lake(lake), skip=ORDER_DEPENDENT_PREFIXES)
    calls = read_sps_log(home / "sps_calls.jsonl")
    state = instance_state(home)
    details = list(diff.describe())
    if rerun.returncode not in (0, None):
        details.append("rerun failed: " + " | ".join(rerun.output.strip().splitlines()[-3:]))
    if rerun.blocked:
        blocked_on = [line for line in rerun.output.splitlines() if "blocked" in line.lower()]
        details.append("rerun blocked: " + (blocked_on[-1].strip()[-160:] if blocked_on else "(no output)"))
    return TrialResult(
        trial=index,
        kill_at_s=round(kill_at, 2),
        interrupted=interrupted,
        rerun_rc=rerun.returncode,
        lost=len(diff.lost),
        extra=len(diff.extra),
        differing_rows=diff.differing_rows,
        timestream_dups=timestream_duplicates(lake),
        sps_twice=spent_on_two_credentials(calls),
        ledger=ledger_violations(lake),
        extra_sps_calls=len(calls) - reference.sps_calls,
        runs_left=state.active_runs,
        slots_held=state.held_slots,
        temp_left=len(temp_files(lake)),
        details=tuple(details),
    )


COLUMNS = (
    ("trial", "trial"),
    ("kill_s", "kill_at_s"),
    ("killed", "interrupted"),
    ("rerun", "rerun_rc"),
    ("lost", "lost"),
    ("extra", "extra"),
    ("rows", "differing_rows"),
    ("ts_dup", "timestream_dups"),
    ("sps_x2", "sps_twice"),
    ("ledger", "ledger"),
    ("active", "runs_left"),
    ("slots", "slots_held"),
    ("tmp", "temp_left"),
    ("blocked", "blocked"),
    ("+calls", "extra_sps_calls"),
    ("result", ""),
)


def _cell(result: TrialResult, attribute: str) -> str:
    if not attribute:
        return "ok" if result.failures == 0 else "FAIL"
    value = getattr(result, attribute)
    if attribute == "rerun_rc":
        return "timeout" if value is None else str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_table(results: Sequence[TrialResult]) -> list[str]:
    """The per-trial table, then a totals line (``+calls`` is informational: same-credential repeats)."""
    rows = [[title for title, _ in COLUMNS]]
    rows += [[_cell(r, attribute) for _, attribute in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    for result in results:
        lines += [f"  trial {result.trial}: {detail}" for detail in result.details]
    totals = {
        "lost": sum(r.lost for r in results),
        "extra": sum(r.extra for r in results),
        "differing rows": sum(r.differing_rows for r in results),
        "timestream duplicates": sum(r.timestream_dups for r in results),
        "sps spent twice": sum(r.sps_twice for r in results),
        "ledger violations": sum(r.ledger for r in results),
        "runs left": sum(r.runs_left for r in results),
        "slots held": sum(r.slots_held for r in results),
        "temp files": sum(r.temp_left for r in results),
        "blocked": sum(r.blocked for r in results),
        "reruns failed": sum(r.rerun_failed for r in results),
    }
    clean = sum(1 for r in results if r.failures == 0)
    killed = sum(1 for r in results if r.interrupted)
    lines.append(
        f"totals: {clean}/{len(results)} identical ({killed} killed mid-run); "
        + ", ".join(f"{name} {value}" for name, value in totals.items())
        + f"; extra same-credential SPS calls {sum(r.extra_sps_calls for r in results)}"
    )
    return lines


if __name__ == "__main__":
    instrumented_demo(sys.argv[1:])
