"""Run health: the pure verdicts, then the reaper and its sensor on a real instance with a dead worker."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent

from spotlake_assets.orchestration.run_health import (
    Action,
    HostFacts,
    Liveness,
    ProcessFacts,
    RunView,
    WorkerIdentity,
    build_dead_run_sensor,
    judge,
    probe_process,
    reap_dead_runs,
    this_process,
    worker_liveness,
)

STARTED = dg.DagsterRunStatus.STARTED
HOST = HostFacts("here", "boot-1", {100: ProcessFacts(start_ticks=5_000, started_at=1_000.0)}, True)


def _tagged(pid: int = 100, host: str = "here", boot: str = "boot-1", ticks: int = 5_000) -> WorkerIdentity:
    return WorkerIdentity(host, pid, boot, ticks)


@pytest.mark.parametrize(
    ("worker", "expected"),
    [
        (_tagged(), Liveness.ALIVE),
        (_tagged(pid=101), Liveness.DEAD),  # no such process
        (_tagged(ticks=4_000), Liveness.DEAD),  # the pid now belongs to another process
        (_tagged(boot="boot-0"), Liveness.DEAD),  # the host rebooted since
        (_tagged(host="elsewhere", pid=101), Liveness.UNKNOWN),  # another host's pid proves nothing here
        (WorkerIdentity("here", 100), Liveness.ALIVE),  # no start time recorded: existence is all we know
    ],
)
def test_tagged_worker_liveness(worker: WorkerIdentity, expected: Liveness) -> None:
    run = RunView("r", "job", STARTED, worker=worker)
    assert worker_liveness(run, HOST)[0] is expected


@pytest.mark.parametrize(
    ("start_pid", "started_at", "grpc_host", "storage_is_local", "expected"),
    [
        (100, 1_000.5, None, True, Liveness.ALIVE),
        (101, 1_000.0, None, True, Liveness.DEAD),
        (100, 900.0, None, True, Liveness.DEAD),  # the process with that pid started after the run did
        (100, 1_000.0, "localhost", True, Liveness.ALIVE),
        (101, 1_000.0, "10.0.0.7", True, Liveness.UNKNOWN),  # launched through a remote code server
        (101, 1_000.0, None, False, Liveness.UNKNOWN),  # Postgres: the worker may be on any host
        (None, None, None, True, Liveness.UNKNOWN),  # not started: nothing recorded to check
    ],
)
def test_launched_worker_liveness(
    start_pid: int | None,
    started_at: float | None,
    grpc_host: str | None,
    storage_is_local: bool,
    expected: Liveness,
) -> None:
    host = HostFacts(HOST.hostname, HOST.boot_id, HOST.processes, storage_is_local)
    run = RunView("r", "job", STARTED, start_pid=start_pid, started_at=started_at, grpc_host=grpc_host)
    assert worker_liveness(run, host)[0] is expected


def test_zombie_worker_is_dead() -> None:
    host = HostFacts("here", None, {100: ProcessFacts(zombie=True)})
    assert worker_liveness(RunView("r", "j", STARTED, worker=WorkerIdentity("here", 100)), host)[0] is (
        Liveness.DEAD
    )


@pytest.mark.parametrize(
    ("status", "holds_slots", "pid", "expected"),
    [
        (dg.DagsterRunStatus.STARTED, True, 101, Action.FAIL),
        (dg.DagsterRunStatus.NOT_STARTED, False, 101, Action.FAIL),
        (dg.DagsterRunStatus.STARTED, True, 100, Action.KEEP),  # alive: never touched
        (dg.DagsterRunStatus.CANCELING, True, 101, Action.CANCEL),
        (dg.DagsterRunStatus.CANCELED, True, 101, Action.FREE_SLOTS),  # canceled by hand, slot kept
        (dg.DagsterRunStatus.FAILURE, True, 100, Action.KEEP),  # its live worker frees its own slots
        (dg.DagsterRunStatus.SUCCESS, False, 101, Action.KEEP),  # finished and holds nothing
        (dg.DagsterRunStatus.QUEUED, False, 101, Action.KEEP),  # no worker yet
    ],
)
def test_judge(status: dg.DagsterRunStatus, holds_slots: bool, pid: int, expected: Action) -> None:
    run = RunView("r", "job", status, worker=_tagged(pid=pid), holds_slots=holds_slots)
    assert judge(run, HOST).action is expected


def test_identity_round_trips_through_tags() -> None:
    me = this_process()
    assert me.pid == os.getpid() and me.host == socket.gethostname()
    assert WorkerIdentity.from_tags(me.tags()) == me
    assert WorkerIdentity.from_tags({"spotlake/worker-pid": "x"}) is None


@pytest.fixture
def dead_worker() -> WorkerIdentity:
    """The identity of a process that really ran on this host and is gone."""
    child = subprocess.Popen(["sleep", "30"])
    facts = probe_process(child.pid)
    assert facts is not None
    identity = WorkerIdentity(socket.gethostname(), child.pid, this_process().boot_id, facts.start_ticks)
    child.kill()
    child.wait()
    assert probe_process(child.pid) is None
    return identity


@dg.op(pool="aws_sps")
def _pooled() -> None:
    pass


@dg.job
def _pooled_job() -> None:
    _pooled()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        instance.event_log_storage.set_concurrency_slots("aws_sps", 1)
        yield instance


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str], pid: int, claims: bool = True) -> str:
    """A run as a SIGKILLed worker leaves it: STARTED, holding the pool's only slot (or waiting for it)."""
    run = instance.create_run_for_job(_pooled_job, tags=tags)
    start = DagsterEvent(dg.DagsterEventType.RUN_START.value, run.job_name, pid=pid)
    instance.report_dagster_event(start, run.run_id)
    claim = instance.event_log_storage.claim_concurrency_slot("aws_sps", run.run_id, "_pooled")
    assert claim.is_claimed is claims
    return run.run_id


def _claimed(instance: dg.DagsterInstance) -> list[str]:
    info = instance.event_log_storage.get_concurrency_info("aws_sps")
    return [slot.run_id for slot in info.claimed_slots]


def test_reaper_fails_a_dead_run_and_frees_its_slot(
    instance: dg.DagsterInstance, dead_worker: WorkerIdentity
) -> None:
    run_id = _started_run(instance, dead_worker.tags(), dead_worker.pid)
    alive = _started_run(instance, this_process().tags(), os.getpid(), claims=False)  # blocked
    assert _claimed(instance) == [run_id]

    outcomes = reap_dead_runs(instance)

    assert [(o.run_id, o.action, o.freed_slots) for o in outcomes] == [(run_id, Action.FAIL, 1)]
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status is dg.DagsterRunStatus.FAILURE
    # Marked failed as an unexpected termination, so run retries relaunch it where it has an origin.
    assert run.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"
    live = instance.get_run_by_id(alive)
    assert live is not None and live.status is dg.DagsterRunStatus.STARTED
    # The freed slot went to the live run's waiting step.
    assert instance.event_log_storage.claim_concurrency_slot("aws_sps", alive, "_pooled").is_claimed
    assert reap_dead_runs(instance) == []


def test_reaper_frees_a_slot_kept_by_a_run_canceled_by_hand(
    instance: dg.DagsterInstance, dead_worker: WorkerIdentity
) -> None:
    run_id = _started_run(instance, dead_worker.tags(), dead_worker.pid)
    run = instance.get_run_by_id(run_id)
    assert run is not None
    instance.report_run_canceled(run)  # what an operator did: the slot stays claimed
    assert _claimed(instance) == [run_id]
    assert [o.action for o in reap_dead_runs(instance)] == [Action.FREE_SLOTS]
    assert _claimed(instance) == []


def test_reaper_uses_the_run_start_pid_of_a_launched_run(
    instance: dg.DagsterInstance, dead_worker: WorkerIdentity
) -> None:
    # A run launched by `dagster dev` has no SpotLake tags; its worker pid is in its RUN_START event.
    run_id = _started_run(instance, {}, dead_worker.pid)
    assert [o.run_id for o in reap_dead_runs(instance)] == [run_id]
    assert _claimed(instance) == []


def test_sensor_reaps_and_reports(instance: dg.DagsterInstance, dead_worker: WorkerIdentity) -> None:
    sensor = build_dead_run_sensor()
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    run_id = _started_run(instance, dead_worker.tags(), dead_worker.pid)
    result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert run_id[:8] in (result.skip_message or "") and "freed 1 pool slot" in (result.skip_message or "")
    quiet = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(quiet, dg.SkipReason) and quiet.skip_message == "no dead run"
