"""Azure assets: thin wrappers of resource → pure transform → lake write → metadata and checks."""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from spotlake_assets.azure.budget import EndpointBudget, InvalidRegistry
from spotlake_assets.azure.collectors.interruption_frequency import collect_interruption_frequency
from spotlake_assets.azure.collectors.prices import collect_prices, empty_price_frame
from spotlake_assets.azure.collectors.sps import RetryPolicy, collect_sps
from spotlake_assets.azure.constants import (
    ENDPOINT_COLUMNS,
    FEATURE_COLUMNS,
    IF_COLUMNS,
    KEY_COLUMNS,
    PROVIDER,
    SPS_COLUMNS,
    UNIVERSE_COLUMNS,
    WORKLOAD_COLUMNS,
)
from spotlake_assets.azure.credentials import AzureCredentials
from spotlake_assets.azure.merge import merge_snapshot
from spotlake_assets.azure.models import AuthenticationFailed, Endpoint, PricePageFailed, TransientError
from spotlake_assets.azure.resources import AzureApi
from spotlake_assets.azure.workload import (
    plan_requests,
    planned_pairs,
    planned_universe,
    requests_from_frame,
    uncovered_pairs,
    workload_frame,
)
from spotlake_assets.core.metrics import Stopwatch
from spotlake_assets.core.partitions import collection_partitions, workload_partitions
from spotlake_assets.core.pipeline import ProviderSpec, build_change_assets, read_previous_merged
from spotlake_assets.core.reporting import range_check, run_metadata, skip_unobserved, unique_keys_check
from spotlake_assets.core.windows import (
    capacity_for_window,
    day_key_of_window,
    day_start,
    observable_now,
    window_start,
)
from spotlake_assets.lake import keys
from spotlake_assets.lake.errors import LakeKeyNotFound
from spotlake_assets.lake.frames import read_frame, write_frame
from spotlake_assets.lake.resources import LakeResource

GROUP = PROVIDER
WORKLOAD = dg.AssetKey([PROVIDER, "workload"])
SPS = dg.AssetKey([PROVIDER, "sps"])
IF = dg.AssetKey([PROVIDER, "interruption_frequency"])
PRICE = dg.AssetKey([PROVIDER, "price"])
MERGED = dg.AssetKey([PROVIDER, "merged"])
SAME_DAY = dg.TimeWindowPartitionMapping()
UNOBSERVABLE = (
    "this Azure API only answers for the present, so a past window cannot be observed; nothing is stored"
    " for it (a backfill of merged/delta rebuilds from what the lake already holds)"
)
EXAMPLES = 20


def _day_moment(day: str) -> datetime:
    start = day_start(day)
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


@dg.asset(
    key=WORKLOAD,
    group_name=GROUP,
    partitions_def=workload_partitions,
    kinds={"ortools", "parquet"},
    description=(
        "The day's Spot Placement Score requests: the valid (region, size) universe from the Retail "
        "Prices API minus regions and sizes the SPS API has rejected (learned, persisted), covered by "
        "requests of at most 8 locations x 5 sizes (OR-Tools; lower bound and gap recorded; "
        "deterministic), and the SPS calling locations. Built at 23:55 UTC for the next day. "
        "Idempotent: deterministic keys, overwritten whole."
    ),
    check_specs=[dg.AssetCheckSpec("requests_cover_universe", asset=WORKLOAD)],
)
def azure_workload(
    context: dg.AssetExecutionContext,
    azure_api: AzureApi,
    azure_credentials: AzureCredentials,
    lake: LakeResource,
) -> dg.MaterializeResult:
    watch = Stopwatch()
    day = context.partition_key
    login = azure_credentials.load()
    prices = collect_prices(azure_api, _day_moment(day))
    invalid = InvalidRegistry(lake).load()
    universe = planned_universe(prices.frame, invalid.regions, invalid.sizes)
    pairs = planned_pairs(universe)
    plan = plan_requests(pairs)
    locations = azure_api.sps_locations(login)
    frame = workload_frame(plan)
    write_frame(lake, keys.workload_universe_key(PROVIDER, day), universe)
    write_frame(
        lake,
        keys.sps_locations_key(PROVIDER, day),
        pd.DataFrame({"Location": locations}, columns=list(ENDPOINT_COLUMNS)),
    )
    key = keys.workload_key(PROVIDER, day)
    write_frame(lake, key, frame)
    missing = uncovered_pairs(plan, pairs)
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(frame),
            api_calls=prices.api_calls + 1,
            simulated=azure_api.simulated,
            location=lake.location(key),
            requests=len(plan.requests),
            lower_bound=plan.lower_bound,
            heuristic_requests=plan.heuristic_requests,
            optimality_gap=float(plan.optimality_gap),
            solver_status=plan.status,
            solve_seconds=float(plan.solve_seconds),
            pairs=plan.pairs,
            regions=plan.regions,
            sizes=plan.sizes,
            batches=plan.batches,
            excluded_pairs=int((~universe["Planned"]).sum()),
            sps_locations=len(locations),
            subscriptions=len(login.subscriptions),
            credential_source=azure_credentials.describe(),
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="requests_cover_universe",
                passed=not missing,
                metadata={"planned_pairs": len(pairs), "uncovered": str(missing[:EXAMPLES])},
            )
        ],
    )


class SpsConfig(dg.Config):
    workers: int = 8
    attempts: int = 4
    max_wait_s: float = 30.0
    backoff_s: float = 1.0


SPS_CHECKS = ("scores_in_range", "unique_keys", "covers_workload")


@dg.asset(
    key=SPS,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(WORKLOAD, partition_mapping=SAME_DAY)],
    kinds={"python", "parquet"},
    description=(
        "Spot Placement Scores (availabilityZones: true) of every planned request at the window's "
        "desired count (a pure function of the partition key, cycling 1,5,...,50); High/Medium/Low -> "
        "3/2/1. A persisted budget keeps every (subscription, location) below 10 calls per 62 minutes, "
        "with quarantine on 'maximum number of requests'; invalid regions and sizes are learned. When no "
        "endpoint has budget left it stops cleanly with what it collected and names what it did not. "
        "Idempotent and resumable: finished batches are checkpointed under deterministic keys."
    ),
    check_specs=[dg.AssetCheckSpec(name, asset=SPS) for name in SPS_CHECKS],
    output_required=False,
    pool="azure_sps",
)
def azure_sps(
    context: dg.AssetExecutionContext,
    config: SpsConfig,
    azure_api: AzureApi,
    azure_credentials: AzureCredentials,
    lake: LakeResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    watch = Stopwatch()
    pk = context.partition_key
    if not azure_api.observes_past and not observable_now(pk, datetime.now(UTC)):
        yield from skip_unobserved(context, SPS, SPS_CHECKS, UNOBSERVABLE)
        return
    day = day_key_of_window(pk)
    requests = requests_from_frame(read_frame(lake, keys.workload_key(PROVIDER, day), WORKLOAD_COLUMNS))
    universe = read_frame(lake, keys.workload_universe_key(PROVIDER, day), UNIVERSE_COLUMNS)
    locations = read_frame(lake, keys.sps_locations_key(PROVIDER, day), ENDPOINT_COLUMNS)["Location"].tolist()
    login = azure_credentials.load()
    endpoints = [Endpoint(s, loc) for s in login.subscriptions for loc in locations]
    budget = EndpointBudget(lake)
    count = capacity_for_window(pk)
    try:
        result = collect_sps(
            azure_api,
            lake,
            login,
            requests,
            endpoints,
            pk,
            window_start(pk),
            count,
            dict(zip(universe["Region"], universe["RegionName"], strict=True)),
            budget=budget,
            policy=RetryPolicy(config.attempts, config.max_wait_s, config.backoff_s),
            workers=config.workers,
        )
    except AuthenticationFailed as exc:
        raise dg.Failure(
            description=f"Azure refused the login ({azure_credentials.describe()}): {exc}"
        ) from exc
    key = keys.sps_key(PROVIDER, pk, count)
    write_frame(lake, key, result.frame)
    left = budget.view(endpoints, azure_api.now(window_start(pk)))
    if result.uncovered:
        context.log.warning(
            "%s: %s of %s requests not covered (%s)",
            pk,
            len(result.uncovered),
            len(requests),
            "budget exhausted" if result.budget_exhausted else "errors",
        )
    uncovered = {str(k): v for k, v in list(result.uncovered.items())[:EXAMPLES]}
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls,
            simulated=azure_api.simulated,
            location=lake.location(key),
            desired_count=count,
            requests=len(requests),
            batches=result.batches,
            batches_resumed=result.batches_resumed,
            throttle_retries=result.throttle_retries,
            transient_retries=result.transient_retries,
            unscored=result.unscored,
            quarantined=dg.MetadataValue.json(result.quarantined),
            learned_invalid_regions=dg.MetadataValue.json(result.learned_regions),
            learned_invalid_sizes=dg.MetadataValue.json(result.learned_sizes),
            uncovered_requests=len(result.uncovered),
            uncovered=dg.MetadataValue.json(uncovered),
            budget_exhausted=result.budget_exhausted,
            budget_endpoints=left.endpoints,
            budget_calls_left=left.calls_left,
            budget_used=left.calls_made,
            budget_quarantined=len(left.quarantined),
            credential_source=azure_credentials.describe(),
        ),
        check_results=[
            range_check(result.frame, "Score", 1, 3, "scores_in_range"),
            unique_keys_check(result.frame, KEY_COLUMNS),
            dg.AssetCheckResult(
                check_name="covers_workload",
                passed=not result.uncovered,
                metadata={"requests": len(requests), "uncovered": len(result.uncovered)},
            ),
        ],
    )


@dg.asset(
    key=IF,
    group_name=GROUP,
    partitions_def=collection_partitions,
    kinds={"python", "parquet"},
    description=(
        "Interruption frequency per (tier, size, region) from Resource Graph spotresources eviction rates "
        "(azure-mgmt-resourcegraph, paged by skip token): 0-5→3.0 … 20+→1.0, SKU spelling kept. Idempotent: "
        "deterministic key, overwritten whole."
    ),
    check_specs=[dg.AssetCheckSpec("unique_keys", asset=IF)],
    output_required=False,
)
def azure_interruption_frequency(
    context: dg.AssetExecutionContext,
    azure_api: AzureApi,
    azure_credentials: AzureCredentials,
    lake: LakeResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    watch = Stopwatch()
    pk = context.partition_key
    if not azure_api.observes_past and not observable_now(pk, datetime.now(UTC)):
        yield from skip_unobserved(context, IF, ["unique_keys"], UNOBSERVABLE)
        return
    try:
        result = collect_interruption_frequency(azure_api, azure_credentials.load(), window_start(pk))
    except AuthenticationFailed as exc:
        raise dg.Failure(
            description=f"Azure refused the login ({azure_credentials.describe()}): {exc}"
        ) from exc
    except TransientError as exc:
        # Resource Graph kept failing after the client's own retries: a later attempt may succeed.
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=60) from exc
    key = keys.interruption_frequency_key(PROVIDER, pk)
    write_frame(lake, key, result.frame)
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls,
            simulated=azure_api.simulated,
            location=lake.location(key),
            dropped=dg.MetadataValue.json(result.dropped),
        ),
        check_results=[unique_keys_check(result.frame, ("InstanceTier", "InstanceType", "Region"))],
    )


@dg.asset(
    key=PRICE,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(WORKLOAD, partition_mapping=SAME_DAY)],
    kinds={"python", "parquet"},
    description=(
        "Linux Spot prices joined to their on-demand twin from the Retail Prices API, following NextPageLink "
        "(one chain per region of the day's universe, fetched concurrently); Windows, Low Priority and "
        "sovereign regions excluded. A page that keeps failing fails the asset with its URL. Idempotent: "
        "deterministic key, overwritten whole."
    ),
    check_specs=[dg.AssetCheckSpec("all_regions_priced", asset=PRICE)],
    output_required=False,
)
def azure_price(
    context: dg.AssetExecutionContext, azure_api: AzureApi, lake: LakeResource
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    watch = Stopwatch()
    pk = context.partition_key
    if not azure_api.observes_past and not observable_now(pk, datetime.now(UTC)):
        yield from skip_unobserved(context, PRICE, ["all_regions_priced"], UNOBSERVABLE)
        return
    universe_key = keys.workload_universe_key(PROVIDER, day_key_of_window(pk))
    regions = sorted(set(read_frame(lake, universe_key, UNIVERSE_COLUMNS)["Region"]))
    try:
        result = collect_prices(azure_api, window_start(pk), regions)
    except PricePageFailed as exc:
        raise dg.Failure(description=str(exc), metadata={"url": exc.url, "reason": exc.reason}) from exc
    key = keys.spot_price_key(PROVIDER, pk)
    write_frame(lake, key, result.frame)
    missing = sorted(set(regions) - set(result.frame["Region"]))
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls,
            simulated=azure_api.simulated,
            location=lake.location(key),
            items=result.items,
            dropped=dg.MetadataValue.json(result.dropped),
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="all_regions_priced",
                passed=not missing,
                metadata={"regions": len(regions), "without_prices": str(missing)},
            )
        ],
    )


class MergeConfig(dg.Config):
    # Set when a window's inputs are overdue: merge with explicit -1 gaps (and a failed inputs_complete
    # check) rather than hold every later window back.
    allow_missing_inputs: bool = False


def _optional(
    lake: LakeResource, key: str, empty: pd.DataFrame, allow: bool, missing: list[str]
) -> pd.DataFrame:
    try:
        return read_frame(lake, key, tuple(empty.columns))
    except LakeKeyNotFound:
        if not allow:
            raise
        missing.append(key)
        return empty


@dg.asset(
    key=MERGED,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[
        SPS,
        IF,
        PRICE,
        # The T2/T3 ladder carries state from the previous window: backfills run in window order.
        dg.AssetDep(MERGED, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
    ],
    kinds={"pandas", "parquet"},
    description=(
        "The window's merged Azure snapshot keyed by (InstanceTier, InstanceType, Region, AvailabilityZone) "
        "with T2/T3 history across desired counts joined on that key (never on DesiredCount); SPS rows "
        "without a price kept with -1 prices. Vectorised. Idempotent: a pure function of the lake's inputs, "
        "written to a deterministic key."
    ),
    check_specs=[
        dg.AssetCheckSpec("unique_keys", asset=MERGED),
        dg.AssetCheckSpec("scores_in_range", asset=MERGED),
        dg.AssetCheckSpec("inputs_complete", asset=MERGED),
    ],
    pool="azure_merge",
)
def azure_merged(
    context: dg.AssetExecutionContext, config: MergeConfig, azure_api: AzureApi, lake: LakeResource
) -> dg.MaterializeResult:
    watch = Stopwatch()
    pk = context.partition_key
    count = capacity_for_window(pk)
    missing: list[str] = []
    allow = config.allow_missing_inputs
    sps = read_frame(lake, keys.sps_key(PROVIDER, pk, count), SPS_COLUMNS)
    price = _optional(lake, keys.spot_price_key(PROVIDER, pk), empty_price_frame(), allow, missing)
    empty_if = pd.DataFrame({c: pd.Series(dtype="float64" if c == "IF" else object) for c in IF_COLUMNS})
    rates = _optional(lake, keys.interruption_frequency_key(PROVIDER, pk), empty_if, allow, missing)
    previous = read_previous_merged(lake, PROVIDER, pk)
    result = merge_snapshot(sps, price, rates, previous, window_start(pk), count)
    if missing:
        context.log.warning("%s merged with explicit -1 gaps; missing inputs: %s", pk, ", ".join(missing))
    key = keys.merged_key(PROVIDER, pk)
    write_frame(lake, key, result.frame)
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=0,
            simulated=azure_api.simulated,
            location=lake.location(key),
            desired_count=count,
            first_window=previous is None,
            sps_rows=result.sps_rows,
            carried_rows=result.carried_rows,
            regional_rows=result.regional_rows,
            unpriced_rows=result.unpriced_rows,
            missing_inputs=dg.MetadataValue.json(missing),
        ),
        check_results=[
            unique_keys_check(result.frame, KEY_COLUMNS),
            range_check(result.frame, "Score", 1, 3, "scores_in_range", allowed=(-1,)),
            dg.AssetCheckResult(
                check_name="inputs_complete", passed=not missing, metadata={"missing": ", ".join(missing)}
            ),
        ],
    )


change_assets = build_change_assets(
    ProviderSpec(PROVIDER, KEY_COLUMNS, FEATURE_COLUMNS, api_resource_key="azure_api")
)

azure_assets = [
    azure_workload,
    azure_sps,
    azure_interruption_frequency,
    azure_price,
    azure_merged,
    *change_assets,
]
