"""Azure Spot Placement Scores for one window: every planned request at the window's desired count.

Each call first takes a slot from the persisted budget (`EndpointBudget`), so no (subscription, location)
makes 10 calls in 62 minutes, whatever runs in parallel. Per request:

- "maximum number of requests" → quarantine that endpoint, retry on another;
- 429 with Retry-After, timeouts and 5xx → bounded retries with tenacity (each one a new slot), waiting as
  told (capped);
- unknown locations or SKUs named in the error → learned (persisted), removed, the rest retried;
- any other 4xx (`PermanentError`) or an answer breaking the contract (`MalformedResponse`: an unknown score
  or zone label…) → the asset fails at once, naming the cause; nothing of that batch is checkpointed and the
  other batches stop calling;
- no slot left anywhere → stop cleanly: what was collected is kept and every request not covered is named.

Every answer is validated (`checked_placement_score`) before it becomes a row, whatever `AzureApi` produced
it. Rows left out are counted per reason (``dropped``): documented unscored statuses
(``unscored:RestrictedSkuNotAvailable`` …), SKUs without a tier, duplicated answers.

Requests run in batches of the workload; a finished batch is checkpointed (create-only) under a key derived
from what it covers — a digest of the partition, the desired count and the batch's (locations, sizes) — never
from its position, so a rerun after the plan was rebuilt cannot resume another plan's batch. A damaged
checkpoint is moved aside (named in `moved_aside`) and that batch is collected again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

import numpy as np
import pandas as pd
import tenacity

from spotlake_assets.azure import frames
from spotlake_assets.azure.budget import EndpointBudget, InvalidRegistry
from spotlake_assets.azure.collectors.prices import split_sku
from spotlake_assets.azure.constants import PROVIDER, REGIONAL_ZONE, SCORES, SPS_COLUMNS
from spotlake_assets.azure.models import (
    AuthenticationFailed,
    AzureApiError,
    AzureLogin,
    Endpoint,
    InvalidRequestValues,
    MalformedResponse,
    MaxRequestsReached,
    PermanentError,
    PlacementScore,
    SpsRequest,
    Throttled,
    TransientError,
    checked_placement_score,
)
from spotlake_assets.azure.resources import AzureApi
from spotlake_assets.storage.errors import PreconditionFailed
from spotlake_assets.storage.frames import read_checkpoint, write_frame
from spotlake_assets.storage.keys import sps_checkpoint_key
from spotlake_assets.storage.lake import LakeResource

log = logging.getLogger(__name__)

NO_BUDGET = "no (subscription, location) has SPS budget left"
STOPPED = "not sent: another batch failed with a permanent error"
_KEY = ["InstanceTier", "InstanceType", "Region", "AvailabilityZone"]


class _SendAgain(Exception):
    """The request goes out again at once: its endpoint was quarantined, or it named invalid values that
    are now left out. Not a failure, so it does not count towards `RetryPolicy.attempts`."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # per request, for throttling and transient errors together
    max_wait_s: float = 30.0  # cap on Retry-After and on the back-off
    backoff_s: float = 1.0


@dataclass
class SpsCollection:
    frame: pd.DataFrame
    desired_count: int
    requests: int
    api_calls: int = 0
    batches: int = 0
    batches_resumed: int = 0
    throttle_retries: int = 0
    transient_retries: int = 0
    quarantined: list[str] = field(default_factory=list)
    learned_regions: list[str] = field(default_factory=list)
    learned_sizes: list[str] = field(default_factory=list)
    unscored: int = 0  # answers without a High/Medium/Low score (e.g. RestrictedSkuNotAvailable)
    uncovered: dict[int, str] = field(default_factory=dict)  # request id → why it was not collected
    budget_exhausted: bool = False
    dropped: dict[str, int] = field(default_factory=dict)  # answers of this run's calls left out, by reason
    moved_aside: list[str] = field(default_factory=list)  # damaged checkpoints and state files, named


@dataclass
class _BatchResult:
    frame: pd.DataFrame | None = None
    resumed: bool = False
    calls: int = 0
    throttles: int = 0
    transients: int = 0
    unscored: int = 0
    uncovered: dict[int, str] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    moved_aside: str = ""


def checkpoint_key(partition_key: str, desired_count: int, requests: Sequence[SpsRequest]) -> str:
    """Where a batch's rows are checkpointed: named by what the batch covers (partition, desired count and
    the set of its requests' locations and sizes), so the same work always maps to the same key and a
    rebuilt plan whose batch N holds other requests can never resume from this one. Pure."""
    covered = sorted([sorted(r.regions), sorted(r.sizes)] for r in requests)
    document = {"partition": partition_key, "desired_count": desired_count, "requests": covered}
    digest = hashlib.sha256(json.dumps(document, separators=(",", ":")).encode()).hexdigest()[:24]
    return sps_checkpoint_key(PROVIDER, partition_key, "batch", digest)


def scores_frame(
    scores: Sequence[PlacementScore],
    desired_count: int,
    region_names: Mapping[str, str],
    dropped: Counter[str] | None = None,
) -> pd.DataFrame:
    """``SPS_COLUMNS`` from High/Medium/Low answers, unique and sorted by key. Answers left out are counted
    in ``dropped`` by reason: ``unscored:<status>`` (a documented status, not a score), ``sku_without_tier``,
    ``duplicate`` (one key answered twice: the later answer wins)."""
    counts: Counter[str] = Counter() if dropped is None else dropped
    rows = []
    for s in scores:
        value = SCORES.get(s.score)
        parts = split_sku(s.sku)
        if value is None:
            counts[f"unscored:{s.score}"] += 1
            continue
        if parts is None:
            counts["sku_without_tier"] += 1
            continue
        rows.append(
            (
                s.region,
                region_names.get(s.region, s.region),
                parts[0],
                parts[1],
                s.availability_zone or REGIONAL_ZONE,
                value,
            )
        )
    score = np.array([r[5] for r in rows], dtype=np.int64)
    frame = pd.DataFrame(
        {
            "DesiredCount": np.full(len(rows), desired_count, dtype=np.int64),
            "Region": pd.Series([r[0] for r in rows], dtype=object),
            "RegionName": pd.Series([r[1] for r in rows], dtype=object),
            "InstanceTier": pd.Series([r[2] for r in rows], dtype=object),
            "InstanceType": pd.Series([r[3] for r in rows], dtype=object),
            "AvailabilityZone": pd.Series([r[4] for r in rows], dtype=object),
            "Score": score,
            "T3": np.where(score == 3, desired_count, 0).astype(np.int64),
            "T2": np.where(score >= 2, desired_count, 0).astype(np.int64),
        },
        columns=list(SPS_COLUMNS),
    )
    # Two requests scoring one pair (never planned, but possible after a replan): the later answer wins.
    unique = frame.drop_duplicates(_KEY, keep="last")
    if len(unique) < len(frame):
        counts["duplicate"] += len(frame) - len(unique)
    return unique.sort_values(_KEY, ignore_index=True)


class _Collector:
    def __init__(
        self,
        api: AzureApi,
        lake: LakeResource,
        login: AzureLogin,
        endpoints: Sequence[Endpoint],
        budget: EndpointBudget,
        registry: InvalidRegistry,
        partition_key: str,
        window_start: datetime,
        desired_count: int,
        region_names: Mapping[str, str],
        policy: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self.api, self.lake, self.login, self.endpoints = api, lake, login, list(endpoints)
        self.budget, self.registry = budget, registry
        self.partition_key, self.window_start, self.desired_count = partition_key, window_start, desired_count
        self.region_names, self.policy, self.sleep = region_names, policy, sleep
        known = registry.load()
        self._lock = threading.Lock()
        self.invalid_regions: set[str] = set(known.regions)
        self.invalid_sizes: set[str] = set(known.sizes)
        self.learned_regions: set[str] = set()
        self.learned_sizes: set[str] = set()
        self.quarantined: set[str] = set()
        self.out_of_budget = threading.Event()
        # Set by a permanent failure: the run is going to fail, so no other batch spends budget meanwhile.
        self.stopped = threading.Event()

    def now(self) -> datetime:
        return self.api.now(self.window_start)

    def _slot(self, reserved: list[Endpoint]) -> Endpoint | None:
        if reserved:
            return reserved.pop(0)
        if self.out_of_budget.is_set():
            return None
        granted = self.budget.reserve(self.endpoints, 1, self.now())
        if not granted:
            self.out_of_budget.set()
            return None
        return granted[0]

    def _learn(self, error: InvalidRequestValues) -> None:
        with self._lock:
            self.invalid_regions.update(error.regions)
            self.invalid_sizes.update(error.sizes)
            self.learned_regions.update(error.regions)
            self.learned_sizes.update(error.sizes)
        self.registry.learn(error.regions, error.sizes, self.now())

    def _filtered(self, names: Sequence[str], invalid: set[str]) -> list[str]:
        with self._lock:
            return [n for n in names if n not in invalid]

    def request(
        self, request: SpsRequest, reserved: list[Endpoint], result: _BatchResult
    ) -> list[PlacementScore]:
        try:
            return self._request(request, reserved, result)
        except (AuthenticationFailed, PermanentError, MalformedResponse):
            self.stopped.set()
            raise

    def _request(
        self, request: SpsRequest, reserved: list[Endpoint], result: _BatchResult
    ) -> list[PlacementScore]:
        """One request, retried with tenacity: throttling (waiting its Retry-After) and transient errors
        (exponential back-off) count towards ``policy.attempts``, every wait capped at ``policy.max_wait_s``;
        a quarantined endpoint or learned invalid values send the request again at once, uncounted. Every
        attempt takes a new budget slot. Permanent errors and malformed answers are not retried."""
        failures = 0  # throttled or transient answers so far: the bounded retries

        def attempt() -> list[PlacementScore]:
            nonlocal failures
            try:
                return self._attempt(request, reserved, result)
            except Throttled:
                failures += 1
                result.throttles += 1
                raise
            except TransientError:
                failures += 1
                result.transients += 1
                raise

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, Throttled):
                return min(exc.retry_after_s, self.policy.max_wait_s)
            if isinstance(exc, TransientError):
                return min(self.policy.backoff_s * float(2 ** (failures - 1)), self.policy.max_wait_s)
            return 0.0  # another endpoint, or the request without what it learned is invalid: at once

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((Throttled, TransientError, _SendAgain)),
            stop=lambda _: failures >= self.policy.attempts,
            wait=wait,
            sleep=lambda seconds: self.sleep(seconds) if seconds > 0 else None,
            reraise=True,
        )
        try:
            scores: list[PlacementScore] = retrying(attempt)
        except (Throttled, TransientError) as exc:
            result.uncovered[request.request_id] = f"gave up after {failures} attempts: {exc}"
            return []
        return scores

    def _attempt(
        self, request: SpsRequest, reserved: list[Endpoint], result: _BatchResult
    ) -> list[PlacementScore]:
        """One call on a fresh slot. Returns the validated scores, or [] with the request named in
        ``result.uncovered`` when it cannot be collected; raises `_SendAgain` after quarantining the endpoint
        or learning invalid values, `Throttled` / `TransientError` to be retried, anything else to fail."""
        regions = self._filtered(request.regions, self.invalid_regions)
        sizes = self._filtered(request.sizes, self.invalid_sizes)
        if not regions or not sizes:
            return []  # every value was rejected as invalid: nothing left to score
        if self.stopped.is_set():
            result.uncovered[request.request_id] = STOPPED
            return []
        endpoint = self._slot(reserved)
        if endpoint is None:
            result.uncovered[request.request_id] = NO_BUDGET
            return []
        result.calls += 1
        try:
            answer = self.api.spot_placement_scores(
                self.login, endpoint, regions, sizes, self.desired_count, self.window_start
            )
        except MaxRequestsReached as exc:
            log.info("quarantining %s: %s", endpoint.label, exc)
            with self._lock:
                self.quarantined.add(endpoint.label)
            self.budget.quarantine(endpoint, self.now())
            raise _SendAgain() from exc
        except InvalidRequestValues as exc:
            if not (set(exc.regions) & set(regions) or set(exc.sizes) & set(sizes)):
                result.uncovered[request.request_id] = f"rejected without naming a value it holds: {exc}"
                return []
            log.info(
                "request %s: learned invalid regions %s sizes %s", request.request_id, exc.regions, exc.sizes
            )
            self._learn(exc)
            raise _SendAgain() from exc
        except (Throttled, TransientError, AuthenticationFailed, PermanentError, MalformedResponse):
            raise  # retried by `_request`, or (asking again gets the same answer) fails the asset
        except AzureApiError as exc:
            # Not classified as permanent or transient: this request is an explicit gap, not a retry.
            result.uncovered[request.request_id] = str(exc)
            return []
        # Whatever implementation answered, nothing unvalidated becomes a row or a checkpoint.
        call = f"SPS {endpoint.label} request {request.request_id}"
        return [
            checked_placement_score(
                s.sku, s.region, s.availability_zone, s.score, call=call, row=f"placementScores[{i}]"
            )
            for i, s in enumerate(answer)
        ]

    def batch(self, requests: Sequence[SpsRequest]) -> _BatchResult:
        key = checkpoint_key(self.partition_key, self.desired_count, requests)
        found = read_checkpoint(self.lake, key, frames.SPS)
        if found.frame is not None:
            return _BatchResult(frame=found.frame, resumed=True)
        result = _BatchResult(moved_aside=found.moved_aside)
        if self.out_of_budget.is_set() or self.stopped.is_set():
            why = STOPPED if self.stopped.is_set() else NO_BUDGET
            result.uncovered = {r.request_id: why for r in requests}
            return result
        reserved = self.budget.reserve(self.endpoints, len(requests), self.now())
        if not reserved:
            self.out_of_budget.set()
        scores: list[PlacementScore] = []
        for request in requests:
            scores.extend(self.request(request, reserved, result))
        result.unscored = sum(1 for s in scores if s.score not in SCORES)
        result.frame = scores_frame(scores, self.desired_count, self.region_names, result.dropped)
        if result.uncovered:
            return result  # partial: kept for this run, not checkpointed, so a retry completes it
        try:
            write_frame(self.lake, key, result.frame, create_only=True)
        except PreconditionFailed:
            # A concurrent attempt finished this batch first: its checkpoint is the record.
            theirs = read_checkpoint(self.lake, key, frames.SPS)
            if theirs.frame is not None:
                result.frame = theirs.frame
        return result


def collect_sps(
    api: AzureApi,
    lake: LakeResource,
    login: AzureLogin,
    requests: Sequence[SpsRequest],
    endpoints: Sequence[Endpoint],
    partition_key: str,
    window_start: datetime,
    desired_count: int,
    region_names: Mapping[str, str],
    *,
    budget: EndpointBudget | None = None,
    registry: InvalidRegistry | None = None,
    policy: RetryPolicy | None = None,
    workers: int = 8,
    sleep: Callable[[float], None] = time.sleep,
) -> SpsCollection:
    """Every request of the window, batches in parallel. Never raises for budget exhaustion: the collection
    says which requests are ``uncovered`` and why. `AuthenticationFailed`, `PermanentError` and
    `MalformedResponse` propagate at once (asking again cannot help); the failing batch is not
    checkpointed."""
    collector = _Collector(
        api,
        lake,
        login,
        endpoints,
        budget or EndpointBudget(lake),
        registry or InvalidRegistry(lake),
        partition_key,
        window_start,
        desired_count,
        region_names,
        policy or RetryPolicy(),
        sleep,
    )
    ordered = sorted(requests, key=lambda r: (r.batch, r.request_id))
    grouped = [(b, list(rs)) for b, rs in groupby(ordered, key=lambda r: r.batch)]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="azure-sps") as pool:
        results = list(pool.map(lambda item: collector.batch(item[1]), grouped))
    dropped: Counter[str] = Counter()
    for r in results:
        dropped.update(r.dropped)
    frames = [r.frame for r in results if r.frame is not None and len(r.frame)]
    if frames:
        stacked = pd.concat(frames, ignore_index=True)
        frame = stacked.drop_duplicates(_KEY, keep="last").sort_values(_KEY, ignore_index=True)
        if len(frame) < len(stacked):
            dropped["duplicate_across_batches"] += len(stacked) - len(frame)
    else:
        frame = scores_frame([], desired_count, region_names)
    uncovered = {rid: why for r in results for rid, why in r.uncovered.items()}
    moved_aside = [r.moved_aside for r in results if r.moved_aside]
    moved_aside += collector.budget.moved_aside + collector.registry.moved_aside
    return SpsCollection(
        frame=frame,
        desired_count=desired_count,
        requests=len(requests),
        api_calls=sum(r.calls for r in results),
        batches=len(grouped),
        batches_resumed=sum(r.resumed for r in results),
        throttle_retries=sum(r.throttles for r in results),
        transient_retries=sum(r.transients for r in results),
        quarantined=sorted(collector.quarantined),
        learned_regions=sorted(collector.learned_regions),
        learned_sizes=sorted(collector.learned_sizes),
        unscored=sum(r.unscored for r in results),
        uncovered=dict(sorted(uncovered.items())),
        budget_exhausted=collector.out_of_budget.is_set(),
        dropped=dict(sorted(dropped.items())),
        moved_aside=moved_aside,
    )
