"""Spot launch-time measurement and the sweep of leftovers.

`measure_launch` requests N Spot instances, polls every ``poll_s`` (3 s) until all pass their status checks
or ``timeout_s`` (10 min) passes, and records the readiness curve. Whatever happens — success, timeout, an
error, a KeyboardInterrupt/SystemExit of a run being stopped — its ``finally`` cancels the Spot requests and
terminates every instance they started. A run killed outright (SIGKILL, a lost host) cannot run ``finally``:
everything it created carries `LAUNCH_TAG`, and `sweep` terminates tagged leftovers older than the timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from spotlake_assets.aws_single.constants import LAUNCH_TAG
from spotlake_assets.aws_single.resources import Ec2Lab

log = logging.getLogger(__name__)

POLL_S = 3.0
TIMEOUT_S = 600.0


@dataclass
class Measurement:
    instance_type: str
    region: str
    image_id: str
    requested: int
    request_ids: list[str] = field(default_factory=list)
    instance_ids: set[str] = field(default_factory=set)
    curve: list[tuple[float, int]] = field(default_factory=list)  # (seconds since the request, ready)
    launch_time_s: float | None = None
    timed_out: bool = False
    error: str | None = None
    cleanup_errors: list[str] = field(default_factory=list)


def cleanup(lab: Ec2Lab, region: str, request_ids: Sequence[str], instance_ids: set[str]) -> list[str]:
    """Cancel the requests, then terminate every instance they started (asked again after the cancel, so an
    instance fulfilled in between is not missed). Each step is attempted even if another failed; the errors
    are returned (the sweep is the backstop)."""
    errors: list[str] = []
    try:
        lab.cancel_requests(region, list(request_ids))
    except Exception as exc:
        errors.append(f"cancel: {type(exc).__name__}: {exc}")
    try:
        instance_ids |= {r.instance_id for r in lab.spot_requests(region, list(request_ids)) if r.instance_id}
    except Exception as exc:
        errors.append(f"describe: {type(exc).__name__}: {exc}")
    try:
        if instance_ids:
            lab.tag_instances(region, sorted(instance_ids), {LAUNCH_TAG: "cleanup"})
        lab.terminate(region, sorted(instance_ids))
    except Exception as exc:
        errors.append(f"terminate: {type(exc).__name__}: {exc}")
    return errors


def request_and_poll(
    lab: Ec2Lab, m: Measurement, tags: Mapping[str, str], poll_s: float, timeout_s: float
) -> None:
    """The measurement proper, without cleanup (`measure_launch` wraps it): fills ``m`` as it goes, so the
    ids of everything created are known to whoever cleans up."""
    start = lab.now()
    m.request_ids.extend(lab.request_spot(m.region, m.instance_type, m.image_id, m.requested, tags))
    while True:
        elapsed = lab.now() - start
        fulfilled = {r.instance_id for r in lab.spot_requests(m.region, m.request_ids) if r.instance_id}
        new = sorted(fulfilled - m.instance_ids)
        if new:
            m.instance_ids.update(new)
            lab.tag_instances(m.region, new, tags)
        ready = len(lab.ready_instances(m.region, sorted(m.instance_ids)))
        m.curve.append((round(elapsed, 3), ready))
        if ready >= m.requested:
            m.launch_time_s = round(elapsed, 3)
            return
        if elapsed >= timeout_s:
            m.timed_out = True
            return
        lab.sleep(min(poll_s, max(timeout_s - elapsed, 0.0)) or poll_s)


def measure_launch(
    lab: Ec2Lab,
    instance_type: str,
    region: str,
    image_id: str,
    count: int,
    measurement_id: str,
    *,
    poll_s: float = POLL_S,
    timeout_s: float = TIMEOUT_S,
) -> Measurement:
    m = Measurement(instance_type, region, image_id, count)
    tags = {LAUNCH_TAG: measurement_id, "Name": f"spotlake-launch-time-{measurement_id}"}
    try:
        request_and_poll(lab, m, tags, poll_s, timeout_s)
    except Exception as exc:
        m.error = f"{type(exc).__name__}: {exc}"
        log.warning("launch-time %s %s failed: %s", instance_type, region, m.error)
    finally:
        # Also on KeyboardInterrupt/SystemExit (a stopped run): nothing may stay running.
        m.cleanup_errors = cleanup(lab, region, m.request_ids, m.instance_ids)
    return m


@dataclass(frozen=True)
class SweepReport:
    cancelled: tuple[str, ...]
    terminated: tuple[str, ...]
    regions: int


def sweep(
    lab: Ec2Lab, regions: Sequence[str], now: datetime, older_than: timedelta = timedelta(seconds=TIMEOUT_S)
) -> SweepReport:
    """Cancel tagged Spot requests and terminate tagged instances created before ``now - older_than``."""
    cutoff = now - older_than
    cancelled: list[str] = []
    terminated: list[str] = []
    for region in regions:
        found = lab.tagged(region, LAUNCH_TAG)
        stale_requests = [rid for rid, created, _ in found.requests if created <= cutoff]
        from_requests = {iid for rid, created, iid in found.requests if created <= cutoff and iid}
        stale_instances = {iid for iid, launched in found.instances if launched <= cutoff} | from_requests
        if stale_requests:
            lab.cancel_requests(region, stale_requests)
            cancelled.extend(stale_requests)
        if stale_instances:
            # An instance of a killed run may not carry the tag yet (runs tag instances once they see them);
            # the cleanup grant only covers tagged instances.
            if from_requests:
                lab.tag_instances(region, sorted(from_requests), {LAUNCH_TAG: "sweep"})
            lab.terminate(region, sorted(stale_instances))
            terminated.extend(sorted(stale_instances))
    return SweepReport(tuple(cancelled), tuple(terminated), len(regions))
