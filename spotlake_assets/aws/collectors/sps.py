"""AWS Spot Placement Scores for one window: get → transform → frame, resumable per credential group.

Each group of ≤ 50 queries runs on the credential the ledger assigns to (capacity, group) for the day, so
no configuration is spent twice. A finished group is checkpointed in the lake under a key naming the window,
the group and a digest of what the group covers (its queries and the capacity), so a rebuilt workload that
reuses a group number with other queries never resumes from the old group's scores. A retried run (after a
failure or a Spot reclaim) reads those checkpoints and queries only what is left; a checkpoint that is
damaged or fails validation is moved aside and its group collected again. A group interrupted mid-way has no
checkpoint and is queried again from its start, on the same credential: AWS does not count a configuration
repeated on the same account within 24 hours as a new one, so that costs calls, not quota.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

import numpy as np
import pandas as pd
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from spotlake_assets.aws import frames
from spotlake_assets.aws.budget import CredentialLedger, CredentialPoolExhausted
from spotlake_assets.aws.constants import KEY_COLUMNS, PROVIDER, SPS_COLUMNS
from spotlake_assets.aws.models import ConfigLimitExceeded, Credential, SpsQuery, SpsScore, Throttled
from spotlake_assets.aws.resources import SPS_SCORE_RANGE, AwsApi
from spotlake_assets.storage.errors import PreconditionFailed
from spotlake_assets.storage.frames import read_checkpoint, read_frame, write_frame
from spotlake_assets.storage.keys import sps_checkpoint_key
from spotlake_assets.storage.lake import LakeResource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThrottlePolicy:
    """Bounded back-off for throttling that outlives the client's own retries."""

    attempts: int = 5
    initial_s: float = 0.5
    max_s: float = 20.0


@dataclass(frozen=True)
class GroupOutcome:
    group: int
    frame: pd.DataFrame | None
    api_calls: int = 0
    throttle_retries: int = 0
    credentials: frozenset[int] = frozenset()
    resumed: bool = False
    error: str | None = None
    # Throttling can pass; an exhausted pool cannot within the day.
    transient: bool = False
    # "<checkpoint> → <where it went>: <why>" when a damaged checkpoint of this group was moved aside.
    moved_aside: str = ""


@dataclass(frozen=True)
class SpsCollection:
    frame: pd.DataFrame
    capacity: int
    api_calls: int
    groups: int
    groups_resumed: int
    credentials_used: int
    rotations: int
    throttle_retries: int
    # group → reason, for groups that could not be collected (the run fails naming them).
    uncovered: dict[int, str] = field(default_factory=dict)
    transient_groups: frozenset[int] = frozenset()
    checkpoints_moved_aside: tuple[str, ...] = ()

    @property
    def only_transient_failures(self) -> bool:
        """Every uncovered group failed on throttling, so retrying the step later can complete it."""
        return bool(self.uncovered) and set(self.uncovered) <= self.transient_groups


class SpsCollectionIncomplete(RuntimeError):
    def __init__(self, collection: SpsCollection) -> None:
        groups = ", ".join(f"{g} ({why})" for g, why in sorted(collection.uncovered.items())[:20])
        more = len(collection.uncovered) - 20
        super().__init__(
            f"SPS collection incomplete: {len(collection.uncovered)} of {collection.groups} credential groups"
            f" uncovered: {groups}{f' and {more} more' if more > 0 else ''}. Finished groups are"
            " checkpointed; a retry resumes from them."
        )
        self.collection = collection


def group_digest(queries: Sequence[SpsQuery], capacity: int) -> str:
    """A stable digest of what a credential group covers: its (instance type, regions) queries and the
    capacity. Query ids and order are positions in the day's plan, not content, so they are left out."""
    content = sorted([q.instance_type, sorted(q.regions)] for q in queries)
    payload = json.dumps({"capacity": capacity, "queries": content}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def group_checkpoint_key(partition_key: str, group: int, digest: str) -> str:
    """Where a finished group's scores are checkpointed: the window, the group and its content digest."""
    return sps_checkpoint_key(PROVIDER, partition_key, f"group_{group:05d}", digest)


def checkpoint_problem(frame: pd.DataFrame, capacity: int) -> str | None:
    """Why a checkpoint read back cannot be trusted (None when it can): written by an older version that
    did not validate answers, or edited by hand. Its group is then collected again."""
    if frame[list(KEY_COLUMNS)].isna().any().any():
        return "null key values"
    low, high = SPS_SCORE_RANGE
    scores = pd.to_numeric(frame["SPS"], errors="coerce")
    outside = ~scores.between(low, high)
    if outside.any():
        return f"SPS outside {low}..{high}: {sorted(set(frame['SPS'][outside].tolist()))[:5]}"
    if not (pd.to_numeric(frame["TargetCapacity"], errors="coerce") == capacity).all():
        return f"TargetCapacity other than {capacity}"
    if frame.duplicated(list(KEY_COLUMNS)).any():
        return "duplicated (InstanceType, Region, AZ)"
    return None


def scores_to_frame(scores: Sequence[SpsScore], capacity: int) -> pd.DataFrame:
    """SpotLake's SPS rows: T3 = capacity if SPS ≥ 3, T2 = capacity if SPS == 2."""
    sps = np.fromiter((s.score for s in scores), dtype=np.int64, count=len(scores))
    frame = pd.DataFrame(
        {
            "InstanceType": [s.instance_type for s in scores],
            "Region": [s.region for s in scores],
            "AZ": [s.zone_id for s in scores],
            "SPS": sps,
            "TargetCapacity": np.full(len(scores), capacity, dtype=np.int64),
            "T3": np.where(sps >= 3, capacity, 0).astype(np.int64),
            "T2": np.where(sps == 2, capacity, 0).astype(np.int64),
        },
        columns=list(SPS_COLUMNS),
    )
    return frame


class _GroupRunner:
    def __init__(
        self,
        api: AwsApi,
        lake: LakeResource,
        ledger: CredentialLedger,
        partition_key: str,
        window_start: datetime,
        capacity: int,
        throttle: ThrottlePolicy,
    ) -> None:
        self.api, self.lake, self.ledger = api, lake, ledger
        self.partition_key, self.window_start, self.capacity = partition_key, window_start, capacity
        self.throttle = throttle

    def _resume(self, key: str) -> tuple[pd.DataFrame | None, str]:
        """The group's checkpoint if it is sound; otherwise None and what was moved aside."""
        checkpoint = read_checkpoint(self.lake, key, frames.SPS)
        if checkpoint.frame is None:
            return None, checkpoint.moved_aside
        problem = checkpoint_problem(checkpoint.frame, self.capacity)
        if problem is None:
            return checkpoint.frame, ""
        moved = self.lake.move_aside(key, problem)
        log.warning(
            "checkpoint %s fails validation (%s); moved aside to %s, collecting it again", key, problem, moved
        )
        return None, f"{self.lake.location(key)} → {moved}: {problem}"

    def run(self, group: int, queries: Sequence[SpsQuery]) -> GroupOutcome:
        key = group_checkpoint_key(self.partition_key, group, group_digest(queries, self.capacity))
        resumed, moved_aside = self._resume(key)
        if resumed is not None:
            return GroupOutcome(group, resumed, resumed=True)
        calls = retries = 0
        used: set[int] = set()
        scores: list[SpsScore] = []
        try:
            credential = self.ledger.credential_for(self.capacity, group)
            for query in queries:
                while True:
                    used.add(credential.index)
                    try:
                        result, spent, throttled = self._query(credential, query)
                    except ConfigLimitExceeded:
                        calls += 1
                        log.info("group %s: %s exhausted, rotating", group, credential.label)
                        credential = self.ledger.rotate(self.capacity, group, credential)
                        continue
                    calls += spent
                    retries += throttled
                    scores.extend(result)
                    break
        except CredentialPoolExhausted as exc:
            return GroupOutcome(
                group, None, calls, retries, frozenset(used), error=str(exc), moved_aside=moved_aside
            )
        except Throttled as exc:
            return GroupOutcome(
                group,
                None,
                calls,
                retries,
                frozenset(used),
                error=str(exc),
                transient=True,
                moved_aside=moved_aside,
            )
        frame = scores_to_frame(scores, self.capacity)
        try:
            write_frame(self.lake, key, frame, create_only=True)
        except PreconditionFailed:
            # A concurrent attempt finished this group first: its checkpoint is the record.
            frame = read_frame(self.lake, key, frames.SPS)
        return GroupOutcome(group, frame, calls, retries, frozenset(used), moved_aside=moved_aside)

    def _query(self, credential: Credential, query: SpsQuery) -> tuple[list[SpsScore], int, int]:
        attempts = 0
        retrying = Retrying(
            retry=retry_if_exception_type(Throttled),
            stop=stop_after_attempt(self.throttle.attempts),
            wait=wait_exponential_jitter(initial=self.throttle.initial_s, max=self.throttle.max_s),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                attempts += 1
                result = self.api.spot_placement_scores(
                    credential, query.instance_type, query.regions, self.capacity, self.window_start
                )
        return result, attempts, attempts - 1


def collect_sps(
    api: AwsApi,
    lake: LakeResource,
    ledger: CredentialLedger,
    queries: Sequence[SpsQuery],
    partition_key: str,
    window_start: datetime,
    capacity: int,
    *,
    workers: int = 8,
    throttle: ThrottlePolicy | None = None,
) -> SpsCollection:
    """Run every query of the workload for one window; raises `SpsCollectionIncomplete` naming uncovered
    groups (after every other group has finished and been checkpointed)."""
    runner = _GroupRunner(
        api, lake, ledger, partition_key, window_start, capacity, throttle or ThrottlePolicy()
    )
    ordered = sorted(queries, key=lambda q: (q.group, q.query_id))
    grouped = [(g, list(qs)) for g, qs in groupby(ordered, key=lambda q: q.group)]
    ledger.reserve(capacity, [g for g, _ in grouped])
    # Every group runs to the end (and checkpoints) before a failure is raised: `Executor.map` would cancel
    # the groups not yet started as soon as one raised, so a rerun would pay for them again.
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sps") as pool:
        futures = [pool.submit(runner.run, group, group_queries) for group, group_queries in grouped]
    outcomes = [future.result() for future in futures]
    frames = [o.frame for o in outcomes if o.frame is not None]
    frame = (pd.concat(frames, ignore_index=True) if frames else scores_to_frame([], capacity)).sort_values(
        ["InstanceType", "Region", "AZ"], ignore_index=True
    )
    collection = SpsCollection(
        frame=frame,
        capacity=capacity,
        api_calls=sum(o.api_calls for o in outcomes),
        groups=len(grouped),
        groups_resumed=sum(o.resumed for o in outcomes),
        credentials_used=len(set().union(*(o.credentials for o in outcomes))) if outcomes else 0,
        rotations=ledger.rotations,
        throttle_retries=sum(o.throttle_retries for o in outcomes),
        uncovered={o.group: o.error for o in outcomes if o.error is not None},
        transient_groups=frozenset(o.group for o in outcomes if o.transient),
        checkpoints_moved_aside=tuple(o.moved_aside for o in outcomes if o.moved_aside),
    )
    if collection.uncovered:
        raise SpsCollectionIncomplete(collection)
    return collection
