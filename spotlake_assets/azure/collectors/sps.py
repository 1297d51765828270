"""Azure Spot Placement Scores for one window: every planned request at the window's desired count.

Each call first takes a slot from the persisted budget (`EndpointBudget`), so no (subscription, location)
makes 10 calls in 62 minutes, whatever runs in parallel. Per request:

- "maximum number of requests" → quarantine that endpoint, retry on another;
- 429 with Retry-After, timeouts and 5xx → bounded retries (each one a new slot), waiting as told;
- unknown locations or SKUs named in the error → learned (persisted), removed, the rest retried;
- no slot left anywhere → stop cleanly: what was collected is kept and every request not covered is named.

Requests run in batches of the workload; a finished batch is checkpointed (create-only) under a
deterministic key, so a retried or repeated run resumes without spending calls twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

import numpy as np
import pandas as pd

from spotlake_assets.azure.budget import EndpointBudget, InvalidRegistry
from spotlake_assets.azure.collectors.prices import split_sku
from spotlake_assets.azure.constants import PROVIDER, REGIONAL_ZONE, SCORES, SPS_COLUMNS
from spotlake_assets.azure.models import (
    AuthenticationFailed,
    AzureApiError,
    AzureLogin,
    Endpoint,
    InvalidRequestValues,
    MaxRequestsReached,
    PlacementScore,
    SpsRequest,
    Throttled,
    TransientError,
)
from spotlake_assets.azure.resources import AzureApi
from spotlake_assets.lake.errors import PreconditionFailed
from spotlake_assets.lake.frames import read_frame, write_frame
from spotlake_assets.lake.keys import sps_checkpoint_key
from spotlake_assets.lake.resources import LakeResource

log = logging.getLogger(__name__)

NO_BUDGET = "no (subscription, location) has SPS budget left"


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


@dataclass
class _BatchResult:
    frame: pd.DataFrame | None = None
    resumed: bool = False
    calls: int = 0
    throttles: int = 0
    transients: int = 0
    unscored: int = 0
    uncovered: dict[int, str] = field(default_factory=dict)


def scores_frame(
    scores: Sequence[PlacementScore], desired_count: int, region_names: Mapping[str, str]
) -> pd.DataFrame:
    """``SPS_COLUMNS`` from High/Medium/Low answers (others dropped), unique and sorted by key."""
    rows = []
    for s in scores:
        value = SCORES.get(s.score)
        parts = split_sku(s.sku)
        if value is None or parts is None:
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
    key = ["InstanceTier", "InstanceType", "Region", "AvailabilityZone"]
    # Two requests scoring one pair (never planned, but possible after a replan): the later answer wins.
    return frame.drop_duplicates(key, keep="last").sort_values(key, ignore_index=True)


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
        retries = 0
        while True:
            regions = self._filtered(request.regions, self.invalid_regions)
            sizes = self._filtered(request.sizes, self.invalid_sizes)
            if not regions or not sizes:
                return []  # every value was rejected as invalid: nothing left to score
            endpoint = self._slot(reserved)
            if endpoint is None:
                result.uncovered[request.request_id] = NO_BUDGET
                return []
            result.calls += 1
            try:
                return self.api.spot_placement_scores(
                    self.login, endpoint, regions, sizes, self.desired_count, self.window_start
                )
            except MaxRequestsReached as exc:
                log.info("quarantining %s: %s", endpoint.label, exc)
                with self._lock:
                    self.quarantined.add(endpoint.label)
                self.budget.quarantine(endpoint, self.now())
            except InvalidRequestValues as exc:
                if not (set(exc.regions) & set(regions) or set(exc.sizes) & set(sizes)):
                    result.uncovered[request.request_id] = f"rejected without naming a value it holds: {exc}"
                    return []
                log.info(
                    "request %s: learned invalid regions %s sizes %s",
                    request.request_id,
                    exc.regions,
                    exc.sizes,
                )
                self._learn(exc)
            except (Throttled, TransientError) as exc:
                retries += 1
                if isinstance(exc, Throttled):
                    result.throttles += 1
                    wait = exc.retry_after_s
                else:
                    result.transients += 1
                    wait = self.policy.backoff_s * 2 ** (retries - 1)
                if retries >= self.policy.attempts:
                    result.uncovered[request.request_id] = f"gave up after {retries} attempts: {exc}"
                    return []
                self.sleep(min(wait, self.policy.max_wait_s))
            except AuthenticationFailed:
                raise
            except AzureApiError as exc:
                result.uncovered[request.request_id] = str(exc)
                return []

    def batch(self, batch: int, requests: Sequence[SpsRequest]) -> _BatchResult:
        key = sps_checkpoint_key(PROVIDER, self.partition_key, batch)
        if self.lake.exists(key):
            return _BatchResult(frame=read_frame(self.lake, key, SPS_COLUMNS), resumed=True)
        result = _BatchResult()
        if self.out_of_budget.is_set():
            result.uncovered = {r.request_id: NO_BUDGET for r in requests}
            return result
        reserved = self.budget.reserve(self.endpoints, len(requests), self.now())
        if not reserved:
            self.out_of_budget.set()
        scores: list[PlacementScore] = []
        for request in requests:
            scores.extend(self.request(request, reserved, result))
        result.unscored = sum(1 for s in scores if s.score not in SCORES)
        result.frame = scores_frame(scores, self.desired_count, self.region_names)
        if result.uncovered:
            return result  # partial: kept for this run, not checkpointed, so a retry completes it
        try:
            write_frame(self.lake, key, result.frame, create_only=True)
        except PreconditionFailed:
            # A concurrent attempt finished this batch first: its checkpoint is the record.
            result.frame = read_frame(self.lake, key, SPS_COLUMNS)
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
    says which requests are ``uncovered`` and why. `AuthenticationFailed` propagates (nothing can succeed)."""
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
        results = list(pool.map(lambda item: collector.batch(*item), grouped))
    frames = [r.frame for r in results if r.frame is not None and len(r.frame)]
    key = ["InstanceTier", "InstanceType", "Region", "AvailabilityZone"]
    frame = (
        pd.concat(frames, ignore_index=True)
        .drop_duplicates(key, keep="last")
        .sort_values(key, ignore_index=True)
        if frames
        else scores_frame([], desired_count, region_names)
    )
    uncovered = {rid: why for r in results for rid, why in r.uncovered.items()}
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
    )
