"""Run health: a run whose worker process is gone must never block the living.

A run killed with SIGKILL (or a host that lost power) reports nothing: the run stays STARTED and keeps the
concurrency-pool slots and pending-step entries its steps claimed, so every later step of that pool waits
forever ("Step blocked by limit for pool aws_merge"). Marking the run CANCELED or FAILED does not help on its
own: Dagster frees the slots of a finished run only from the daemon, and only when
``run_monitoring.free_slots_after_run_end_seconds`` is set.

This module decides, from facts only, whether a run's worker is **provably dead on this host**, and then
marks the run failed (reason ``UNEXPECTED_TERMINATION``, so run retries relaunch runs that have a code
location origin) and frees its slots. Nothing is touched on a guess: a worker on another host, in a
container, or without a recorded pid is left to run monitoring.

How a worker is identified:

- Runs of `make demo` (``execute_in_process``) carry the tags of `this_process()`: host name, pid, Linux
  boot id and the process's start time in clock ticks since boot. A pid is only the same process if its
  start time matches, so pid reuse and reboots are recognised.
- Runs launched by ``dagster dev`` (DefaultRunLauncher) run in a subprocess of the code server, which
  records its pid in the run's ``RUN_START`` event. That pid is trusted only when the instance storage is
  SQLite (a local file: every writer of it runs on this host) and the run was not launched through a gRPC
  server on another host; a process holding that pid that started after the run started is a reuse.

Production (Postgres storage, runs on AWS Batch) never takes the second path: there, run monitoring asks
`BatchRunLauncher.check_run_worker_health`, fails runs whose container is gone, and the monitoring daemon
frees the slots of finished runs after ``free_slots_after_run_end_seconds`` (``infra/dagster.yaml``).

Used by `make demo` before it launches anything, and by the `dead_run_reaper` sensor in ``local``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.tags import GRPC_INFO_TAG

log = logging.getLogger(__name__)

HOST_TAG = "spotlake/worker-host"
PID_TAG = "spotlake/worker-pid"
BOOT_TAG = "spotlake/worker-boot"
START_TAG = "spotlake/worker-start-ticks"

# A pid whose process started this long after the run's RUN_START event is another process (pid reuse).
# Kernel and event timestamps come from different clocks; one second absorbs their rounding.
PID_REUSE_TOLERANCE_S = 1.0
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

ACTIVE_STATUSES = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)
FINISHED_STATUSES = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
)


# --- facts about processes on this host -------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessFacts:
    """A process that exists. ``start_ticks`` (since boot) and ``started_at`` (epoch seconds) are known on
    Linux only; elsewhere a process's existence is all we can tell, so it is never proven to be another."""

    start_ticks: int | None = None
    started_at: float | None = None
    zombie: bool = False


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    boot_id: str | None
    # Probed pids: a pid absent from the mapping does not exist.
    processes: Mapping[int, ProcessFacts] = field(default_factory=dict)
    # The instance's storage is a local SQLite file, so every worker that wrote to it ran on this host.
    storage_is_local: bool = False


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def boot_id() -> str | None:
    text = _read_text("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def _boot_time() -> float | None:
    for line in (_read_text("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def probe_process(pid: int) -> ProcessFacts | None:
    """The process ``pid`` if it exists (None if it does not)."""
    if pid <= 0:
        return None
    stat = _read_text(f"/proc/{pid}/stat")
    if stat is None:
        if Path("/proc/self/stat").exists():
            return None  # Linux: no /proc entry means no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # exists, owned by someone else
        return ProcessFacts()
    # The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, ticks = fields[0], int(fields[19])
    boot = _boot_time()
    started_at = boot + ticks / os.sysconf("SC_CLK_TCK") if boot is not None else None
    return ProcessFacts(start_ticks=ticks, started_at=started_at, zombie=state in {"Z", "X"})


# --- who ran a run ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    boot_id: str | None = None
    start_ticks: int | None = None

    def tags(self) -> dict[str, str]:
        tags = {HOST_TAG: self.host, PID_TAG: str(self.pid)}
        if self.boot_id:
            tags[BOOT_TAG] = self.boot_id
        if self.start_ticks is not None:
            tags[START_TAG] = str(self.start_ticks)
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> WorkerIdentity | None:
        host, pid = tags.get(HOST_TAG), tags.get(PID_TAG)
        if not host or not pid or not pid.isdigit():
            return None
        ticks = tags.get(START_TAG, "")
        return cls(host, int(pid), tags.get(BOOT_TAG) or None, int(ticks) if ticks.isdigit() else None)


def this_process() -> WorkerIdentity:
    """The identity `make demo` tags its runs with, so a later demo or the sensor can prove it dead."""
    pid = os.getpid()
    facts = probe_process(pid)
    return WorkerIdentity(socket.gethostname(), pid, boot_id(), facts.start_ticks if facts else None)


# --- the decision (pure) ----------------------------------------------------------------------------------
class Liveness(Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


class Action(Enum):
    KEEP = "keep"
    FAIL = "fail"  # an active run whose worker is dead: failed, slots freed
    CANCEL = "cancel"  # a CANCELING run whose worker is dead: canceled, slots freed
    FREE_SLOTS = "free_slots"  # a finished run still holding slots, worker dead: slots freed


@dataclass(frozen=True)
class RunView:
    """What the reaper knows about one run."""

    run_id: str
    job_name: str
    status: dg.DagsterRunStatus
    worker: WorkerIdentity | None = None  # from the run's tags
    start_pid: int | None = None  # the pid of its RUN_START event
    started_at: float | None = None  # when RUN_START was recorded
    grpc_host: str | None = None  # the code server a DefaultRunLauncher run was launched through
    holds_slots: bool = False  # claimed pool slots or pending steps


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str


def worker_liveness(run: RunView, host: HostFacts) -> tuple[Liveness, str]:
    """Whether the worker of ``run`` is alive, dead, or not something this host can tell, and why."""
    worker = run.worker
    if worker is not None:
        if worker.host != host.hostname:
            return Liveness.UNKNOWN, f"its worker ran on host {worker.host}"
        if worker.boot_id and host.boot_id and worker.boot_id != host.boot_id:
            return Liveness.DEAD, f"this host rebooted since its worker (pid {worker.pid}) started"
        return _pid_liveness(worker.pid, host, worker.start_ticks, None)
    if run.start_pid is None:
        return Liveness.UNKNOWN, "no worker pid is recorded"
    if not host.storage_is_local:
        return Liveness.UNKNOWN, "the instance storage is shared, so its worker may be on another host"
    if run.grpc_host is not None and run.grpc_host not in LOOPBACK_HOSTS:
        return Liveness.UNKNOWN, f"it was launched through the code server on {run.grpc_host}"
    return _pid_liveness(run.start_pid, host, None, run.started_at)


def _pid_liveness(
    pid: int, host: HostFacts, start_ticks: int | None, started_before: float | None
) -> tuple[Liveness, str]:
    process = host.processes.get(pid)
    if process is None:
        return Liveness.DEAD, f"its worker (pid {pid}) is gone"
    if process.zombie:
        return Liveness.DEAD, f"its worker (pid {pid}) has exited"
    if start_ticks is not None and process.start_ticks is not None and process.start_ticks != start_ticks:
        return Liveness.DEAD, f"its worker (pid {pid}) is gone; the pid now belongs to another process"
    if (
        started_before is not None
        and process.started_at is not None
        and process.started_at > started_before + PID_REUSE_TOLERANCE_S
    ):
        return Liveness.DEAD, f"its worker (pid {pid}) is gone; the pid now belongs to a newer process"
    return Liveness.ALIVE, f"its worker (pid {pid}) is running"


def judge(run: RunView, host: HostFacts) -> Verdict:
    """What to do with ``run``. Every action needs a worker proven dead on this host."""
    if run.status not in (*ACTIVE_STATUSES, dg.DagsterRunStatus.CANCELING) and not (
        run.status in FINISHED_STATUSES and run.holds_slots
    ):
        return Verdict(Action.KEEP, f"{run.status.value}: nothing held")
    liveness, why = worker_liveness(run, host)
    if liveness is not Liveness.DEAD:
        return Verdict(Action.KEEP, why)
    if run.status is dg.DagsterRunStatus.CANCELING:
        return Verdict(Action.CANCEL, why)
    if run.status in FINISHED_STATUSES:
        return Verdict(Action.FREE_SLOTS, why)
    return Verdict(Action.FAIL, why)


def pids_to_probe(runs: Iterable[RunView]) -> set[int]:
    pids = {run.worker.pid for run in runs if run.worker is not None}
    return pids | {run.start_pid for run in runs if run.worker is None and run.start_pid is not None}


# --- the instance side ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReapOutcome:
    run_id: str
    job_name: str
    partition: str | None
    action: Action
    reason: str
    freed_slots: int

    def describe(self) -> str:
        what = {
            Action.FAIL: "marked failed",
            Action.CANCEL: "marked canceled",
            Action.FREE_SLOTS: "already finished",
            Action.KEEP: "kept",
        }[self.action]
        partition = f"[{self.partition}]" if self.partition else ""
        return (
            f"run {self.run_id[:8]} {self.job_name}{partition} {what} ({self.reason}); "
            f"freed {self.freed_slots} pool slot(s)"
        )


def _held_by_run(instance: dg.DagsterInstance) -> dict[str, int]:
    """run id → pool slots claimed (pending steps count as holding nothing, but are cleared too)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    held: dict[str, int] = dict.fromkeys(storage.get_concurrency_run_ids(), 0)
    for info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).values():
        for slot in info.claimed_slots:
            held[slot.run_id] = held.get(slot.run_id, 0) + 1
    return held


def _grpc_host(tags: Mapping[str, str]) -> str | None:
    raw = tags.get(GRPC_INFO_TAG)
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return "unparseable"
    # A unix socket is on this host by construction.
    return "localhost" if info.get("socket") else str(info.get("host", "unknown"))


def _start_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None else None


def run_views(instance: dg.DagsterInstance) -> list[RunView]:
    """Every run that could hold something: active or canceling runs, and runs with slots or pending steps."""
    held = _held_by_run(instance)
    records = {
        record.dagster_run.run_id: record
        for record in instance.get_run_records(
            filters=dg.RunsFilter(statuses=[*ACTIVE_STATUSES, dg.DagsterRunStatus.CANCELING])
        )
    }
    missing = sorted(set(held) - set(records))
    if missing:
        for record in instance.get_run_records(filters=dg.RunsFilter(run_ids=missing)):
            records[record.dagster_run.run_id] = record
    views = []
    for run_id, record in sorted(records.items()):
        run = record.dagster_run
        worker = WorkerIdentity.from_tags(run.tags)
        views.append(
            RunView(
                run_id=run_id,
                job_name=run.job_name,
                status=run.status,
                worker=worker,
                start_pid=None if worker is not None else _start_pid(instance, run_id),
                started_at=record.start_time,
                grpc_host=_grpc_host(run.tags),
                holds_slots=run_id in held,
            )
        )
    return views


def host_facts(instance: dg.DagsterInstance, pids: Iterable[int]) -> HostFacts:
    # Imported here: the SQLite storage module pulls in alembic, mako and pygments (~0.35 CPU-s), which a
    # definitions load in a run worker should not pay.
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    return HostFacts(
        hostname=socket.gethostname(),
        boot_id=boot_id(),
        processes={pid: facts for pid in sorted(set(pids)) if (facts := probe_process(pid)) is not None},
        storage_is_local=isinstance(instance.run_storage, SqliteRunStorage),
    )


def reap_dead_runs(instance: dg.DagsterInstance) -> list[ReapOutcome]:
    """Fail (or cancel) every run whose worker is provably dead on this host and free its pool slots, and
    free the slots finished runs with a dead worker still hold. Returns what was done; live runs and runs
    this host cannot judge are left alone."""
    views = run_views(instance)
    if not views:
        return []
    host = host_facts(instance, pids_to_probe(views))
    claimed = _held_by_run(instance)
    outcomes: list[ReapOutcome] = []
    for view in views:
        verdict = judge(view, host)
        if verdict.action is Action.KEEP:
            continue
        run = instance.get_run_by_id(view.run_id)
        if run is None or run.status is not view.status:
            # Changed since we looked (its worker reported, or someone else reaped it): judge it next time.
            continue
        message = f"SpotLake run health: {verdict.reason}."
        if verdict.action is Action.FAIL:
            instance.report_run_failed(
                run,
                f"{message} Marked failed so its pool slots are freed and run retries can take over.",
                JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
            )
        elif verdict.action is Action.CANCEL:
            instance.report_run_canceled(run, f"{message} Cancellation completed on its behalf.")
        else:
            instance.report_engine_event(f"{message} Freeing the pool slots it still held.", run)
        if instance.event_log_storage.supports_global_concurrency_limits:
            # Also drops its pending steps and assigns the freed slots to the next steps waiting for them.
            instance.event_log_storage.free_concurrency_slots_for_run(view.run_id)
        freed = claimed.get(view.run_id, 0)
        outcome = ReapOutcome(
            view.run_id,
            view.job_name,
            run.tags.get("dagster/partition"),
            verdict.action,
            verdict.reason,
            freed,
        )
        log.warning("%s", outcome.describe())
        outcomes.append(outcome)
    return outcomes


def live_runs(instance: dg.DagsterInstance) -> Sequence[str]:
    """Runs still active or canceling (after reaping: their workers are alive or cannot be judged here)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[*ACTIVE_STATUSES, dg.DagsterRunStatus.CANCELING])
    )
    return [record.dagster_run.run_id for record in records]


def build_dead_run_sensor() -> dg.SensorDefinition:
    """The local recovery loop for `dagster dev`: every 30 s, reap runs whose worker is provably dead here.

    Harmless to run by default: it only acts on a worker proven dead on this host, it launches nothing, and
    a failed run is then retried by the instance's run retries (from failure) when it has a code location."""

    @dg.sensor(
        name="dead_run_reaper",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Fails runs whose worker process is provably dead on this host and frees their pool slots, "
            "so a killed run never blocks later runs (local only; production relies on run monitoring)."
        ),
    )
    def dead_run_reaper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        outcomes = reap_dead_runs(context.instance)
        for outcome in outcomes:
            context.log.warning("%s", outcome.describe())
        if not outcomes:
            return dg.SkipReason("no dead run")
        return dg.SkipReason("; ".join(outcome.describe() for outcome in outcomes))

    return dead_run_reaper
