"""Azure assets: the workload and collectors (thin wrappers of resource → pure transform → lake write →
metadata and checks), and the merge step the shared builder (`orchestration/provider.py`) turns into
`azure/merged`. `azure/definitions.py` puts them in the provider contract."""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from spotlake_assets.azure import frames
from spotlake_assets.azure.budget import EndpointBudget, InvalidRegistry, plan_exclusions
from spotlake_assets.azure.constants import (
    ENDPOINT_COLUMNS,
    IF_COLUMNS,
    KEY_COLUMNS,
    MIN_IF_COVERAGE,
    MIN_PRICE_COVERAGE,
    PROVIDER,
)
from spotlake_assets.azure.credentials import AzureCredentials
from spotlake_assets.azure.models import (
    AuthenticationFailed,
    Endpoint,
    MalformedResponse,
    PermanentError,
    PricePageFailed,
    SpsRequest,
    TransientError,
)
from spotlake_assets.azure.resources import AzureApi
from spotlake_assets.domain.windows import capacity_for_window, day_key_of_window, day_start, window_start
from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.orchestration.partitions import (
    collection_partitions,
    needs_daily_inputs,
    workload_partitions,
)
from spotlake_assets.orchestration.provider import (
    SAME_DAY,
    UNOBSERVABLE,
    Guard,
    MergeOutcome,
    MergeStep,
    MergeWindow,
    cannot_observe,
    empty_frame,
    permanent_failure,
)
from spotlake_assets.orchestration.reporting import (
    range_check,
    run_metadata,
    skip_unobserved,
    unique_keys_check,
    write_if_guarded,
)
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LakeResource

GROUP = PROVIDER
WORKLOAD = dg.AssetKey([PROVIDER, "workload"])
SPS = dg.AssetKey([PROVIDER, "sps"])
IF = dg.AssetKey([PROVIDER, "interruption_frequency"])
PRICE = dg.AssetKey([PROVIDER, "price"])
EXAMPLES = 20


def _day_moment(day: str) -> datetime:
    start = day_start(day)
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def _json(items: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.json(items)


@dg.asset(
    key=WORKLOAD,
    group_name=GROUP,
    partitions_def=workload_partitions,
    kinds={"ortools", "parquet"},
    description=(
        "The day's Spot Placement Score requests: the valid (region, size) universe from the Retail "
        "Prices API minus regions and sizes the SPS API has rejected, covered by requests of at most "
        "8 locations x 5 sizes (OR-Tools; lower bound and gap recorded; deterministic), and the SPS "
        "calling locations. Built at 23:55 UTC for the next day. Reproducible: the exclusions are the "
        "invalid values learned before the day starts, recorded create-only in sps_exclusions.json next "
        "to the workload on the first build and read back by every rebuild, so what the day's own SPS "
        "calls learn only reaches the next day's plan (a damaged record is moved aside and derived again "
        "by the same rule, named in metadata). Idempotent: deterministic keys, overwritten whole. The "
        "coverage check is blocking: a plan missing pairs would silently never score them."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "requests_cover_universe",
            asset=WORKLOAD,
            blocking=True,
            description="Every (tier, size, region) of the day's universe is in one planned request.",
        )
    ],
)
def azure_workload(
    context: dg.AssetExecutionContext,
    azure_api: AzureApi,
    azure_credentials: AzureCredentials,
    lake: LakeResource,
) -> dg.MaterializeResult:
    # Imported here, not at module level: loading the definitions must not pay for it.
    import pandas as pd

    from spotlake_assets.azure.collectors.prices import collect_prices
    from spotlake_assets.azure.workload import (
        plan_requests,
        planned_pairs,
        planned_universe,
        uncovered_pairs,
        workload_frame,
    )

    watch = Stopwatch()
    day = context.partition_key
    login = azure_credentials.load()
    prices = collect_prices(azure_api, _day_moment(day))
    exclusions = plan_exclusions(lake, day, InvalidRegistry(lake))
    for moved in exclusions.moved_aside:
        context.log.warning("moved aside: %s", moved)
    invalid = exclusions.values
    universe = planned_universe(prices.frame, invalid.regions, invalid.sizes)
    pairs = planned_pairs(universe)
    plan = plan_requests(pairs)
    locations = azure_api.sps_locations(login)
    frame = workload_frame(plan)
    write_frame(lake, keys.workload_universe_key(PROVIDER, day), universe, frame_type=frames.UNIVERSE)
    write_frame(
        lake,
        keys.sps_locations_key(PROVIDER, day),
        pd.DataFrame({"Location": locations}, columns=list(ENDPOINT_COLUMNS)),
    )
    key = keys.workload_key(PROVIDER, day)
    write_frame(lake, key, frame, frame_type=frames.WORKLOAD)
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
            exclusions_source=exclusions.source,
            excluded_regions=_json(sorted(invalid.regions)),
            excluded_sizes=_json(sorted(invalid.sizes)),
            moved_aside=_json(list(exclusions.moved_aside)),
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
# Guards of published data stop the run; coverage may be partial but then names every gap explicitly.
SPS_CHECK_SPECS = [
    dg.AssetCheckSpec(
        "scores_in_range", asset=SPS, blocking=True, description="Every score is 1..3 (High/Medium/Low)."
    ),
    dg.AssetCheckSpec(
        "unique_keys", asset=SPS, blocking=True, description="One row per (tier, size, region, zone)."
    ),
    dg.AssetCheckSpec(
        "covers_workload",
        asset=SPS,
        description=(
            "Every request of the day's workload (its planned (region, size) pairs) was answered this "
            "window. Not blocking: when the budget runs out the window still publishes what it has, "
            "and the uncovered requests and their pairs are named here and in metadata."
        ),
    ),
]


def _uncovered_detail(
    uncovered: dict[int, str], requests: tuple[SpsRequest, ...]
) -> tuple[int, dict[str, object]]:
    """Planned pairs of the uncovered requests, and the first few requests named with their pairs."""
    by_id = {r.request_id: r for r in requests}
    pairs = sum(by_id[rid].pairs for rid in uncovered if rid in by_id)
    named: dict[str, object] = {
        str(rid): {
            "why": why,
            "regions": list(by_id[rid].regions) if rid in by_id else [],
            "sizes": list(by_id[rid].sizes) if rid in by_id else [],
        }
        for rid, why in list(uncovered.items())[:EXAMPLES]
    }
    return pairs, named


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
        "Every answer is validated before it is stored (an unknown score or zone label, a 4xx other than "
        "throttling fail at once, never retried nor checkpointed); unscored statuses and other rows left "
        "out are counted by reason in `dropped`. Idempotent and resumable: finished batches are "
        "checkpointed under keys derived from what they cover (a digest of the partition, desired count "
        "and requests), never their position; damaged checkpoints or state files are moved aside "
        "(`moved_aside`) and redone. scores_in_range and unique_keys are blocking; covers_workload is not "
        "(partial coverage is explicit)."
    ),
    check_specs=SPS_CHECK_SPECS,
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
    from spotlake_assets.azure.collectors.sps import RetryPolicy, collect_sps
    from spotlake_assets.azure.workload import requests_from_frame

    watch = Stopwatch()
    pk = context.partition_key
    if cannot_observe(azure_api, pk, context):
        yield from skip_unobserved(context, SPS, SPS_CHECKS, UNOBSERVABLE)
        return
    day = day_key_of_window(pk)
    with needs_daily_inputs(PROVIDER, day):
        requests = requests_from_frame(read_frame(lake, keys.workload_key(PROVIDER, day), frames.WORKLOAD))
        universe = read_frame(lake, keys.workload_universe_key(PROVIDER, day), frames.UNIVERSE)
        endpoints_frame = read_frame(lake, keys.sps_locations_key(PROVIDER, day), ENDPOINT_COLUMNS)
    locations = endpoints_frame["Location"].tolist()
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
            description=f"Azure refused the login ({azure_credentials.describe()}): {exc}",
            allow_retries=False,
        ) from exc
    except (PermanentError, MalformedResponse) as exc:
        raise permanent_failure(exc, f"azure/sps {pk}") from exc
    key = keys.sps_key(PROVIDER, pk, count)
    guards = [
        range_check(result.frame, "Score", 1, 3, "scores_in_range"),
        unique_keys_check(result.frame, KEY_COLUMNS),
    ]
    written = write_if_guarded(context, lake, key, result.frame, guards, frames.SPS)
    for moved in result.moved_aside:
        context.log.warning("moved aside: %s", moved)
    if result.dropped:
        context.log.info("%s: answers left out, by reason: %s", pk, result.dropped)
    left = budget.view(endpoints, azure_api.now(window_start(pk)))
    if result.uncovered:
        context.log.warning(
            "%s: %s of %s requests not covered (%s)",
            pk,
            len(result.uncovered),
            len(requests),
            "budget exhausted" if result.budget_exhausted else "errors",
        )
    uncovered_pairs, uncovered = _uncovered_detail(result.uncovered, requests)
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
            written=written,
            unscored=result.unscored,
            dropped=dg.MetadataValue.json(result.dropped),
            moved_aside=_json(result.moved_aside),
            quarantined=dg.MetadataValue.json(result.quarantined),
            learned_invalid_regions=dg.MetadataValue.json(result.learned_regions),
            learned_invalid_sizes=dg.MetadataValue.json(result.learned_sizes),
            uncovered_requests=len(result.uncovered),
            uncovered_pairs=uncovered_pairs,
            uncovered=dg.MetadataValue.json(uncovered),
            budget_exhausted=result.budget_exhausted,
            budget_endpoints=left.endpoints,
            budget_calls_left=left.calls_left,
            budget_used=left.calls_made,
            budget_quarantined=len(left.quarantined),
            credential_source=azure_credentials.describe(),
        ),
        check_results=[
            *guards,
            dg.AssetCheckResult(
                check_name="covers_workload",
                passed=not result.uncovered,
                metadata={
                    "requests": len(requests),
                    "planned_pairs": sum(r.pairs for r in requests),
                    "uncovered_requests": len(result.uncovered),
                    "uncovered_pairs": uncovered_pairs,
                    "uncovered": dg.MetadataValue.json(uncovered),
                },
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
        "(azure-mgmt-resourcegraph, paged by skip token): 0-5→3.0 … 20+→1.0, SKU spelling kept (the tier is "
        "recognised case-insensitively; the merge matches sizes case-insensitively). Rows left out are "
        "counted by reason in `dropped`; an unknown bucket or a 4xx fails at once. Idempotent: "
        "deterministic key, overwritten whole. unique_keys is blocking."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "unique_keys", asset=IF, blocking=True, description="One eviction rate per (size, region)."
        )
    ],
    output_required=False,
)
def azure_interruption_frequency(
    context: dg.AssetExecutionContext,
    azure_api: AzureApi,
    azure_credentials: AzureCredentials,
    lake: LakeResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    from spotlake_assets.azure.collectors.interruption_frequency import collect_interruption_frequency

    watch = Stopwatch()
    pk = context.partition_key
    if cannot_observe(azure_api, pk, context):
        yield from skip_unobserved(context, IF, ["unique_keys"], UNOBSERVABLE)
        return
    try:
        result = collect_interruption_frequency(azure_api, azure_credentials.load(), window_start(pk))
    except AuthenticationFailed as exc:
        raise dg.Failure(
            description=f"Azure refused the login ({azure_credentials.describe()}): {exc}",
            allow_retries=False,
        ) from exc
    except (PermanentError, MalformedResponse) as exc:
        raise permanent_failure(exc, f"azure/interruption_frequency {pk}") from exc
    except TransientError as exc:
        # Resource Graph kept failing after the client's own retries: a later attempt may succeed.
        context.log.warning("%s: %s; retrying the step", pk, exc)
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=60) from exc
    key = keys.interruption_frequency_key(PROVIDER, pk)
    guards = [unique_keys_check(result.frame, ("InstanceTier", "InstanceType", "Region"))]
    written = write_if_guarded(context, lake, key, result.frame, guards, frames.INTERRUPTION_FREQUENCY)
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls,
            simulated=azure_api.simulated,
            location=lake.location(key),
            written=written,
            dropped=dg.MetadataValue.json(result.dropped),
        ),
        check_results=guards,
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
    check_specs=[
        dg.AssetCheckSpec(
            "all_regions_priced",
            asset=PRICE,
            description="Every region of the workload has spot prices from the Retail Prices API.",
        )
    ],
    output_required=False,
)
def azure_price(
    context: dg.AssetExecutionContext, azure_api: AzureApi, lake: LakeResource
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    from spotlake_assets.azure.collectors.prices import collect_prices

    watch = Stopwatch()
    pk = context.partition_key
    if cannot_observe(azure_api, pk, context):
        yield from skip_unobserved(context, PRICE, ["all_regions_priced"], UNOBSERVABLE)
        return
    universe_key = keys.workload_universe_key(PROVIDER, day_key_of_window(pk))
    with needs_daily_inputs(PROVIDER, day_key_of_window(pk)):
        regions = sorted(set(read_frame(lake, universe_key, frames.UNIVERSE)["Region"]))
    try:
        result = collect_prices(azure_api, window_start(pk), regions)
    except PricePageFailed as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={"url": exc.url, "reason": exc.reason},
            allow_retries=not exc.permanent,
        ) from exc
    except MalformedResponse as exc:
        raise permanent_failure(exc, f"azure/price {pk}") from exc
    key = keys.spot_price_key(PROVIDER, pk)
    write_frame(lake, key, result.frame, frame_type=frames.PRICE)
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


def merge_inputs(partition_key: str) -> list[str]:
    """What the Azure merge of a window reads besides its SPS object (the lake sensor waits for them)."""
    return [
        keys.interruption_frequency_key(PROVIDER, partition_key),
        keys.spot_price_key(PROVIDER, partition_key),
    ]


def merge_window(window: MergeWindow) -> MergeOutcome:
    """Read the window's inputs (price and IF may be overdue gaps) and merge them; the guard of what only
    Azure has: the joins did not collapse."""
    from spotlake_assets.azure.collectors.prices import empty_price_frame
    from spotlake_assets.azure.merge import merge_snapshot

    pk, count = window.partition_key, window.capacity
    sps = read_frame(window.lake, keys.sps_key(PROVIDER, pk, count), frames.SPS)
    price = window.optional(keys.spot_price_key(PROVIDER, pk), empty_price_frame(), frames.PRICE)
    rates = window.optional(
        keys.interruption_frequency_key(PROVIDER, pk),
        empty_frame(IF_COLUMNS, frozenset({"IF"})),
        frames.INTERRUPTION_FREQUENCY,
    )
    result = merge_snapshot(sps, price, rates, window.previous, window.time, count)
    detail, coverage = result.detail, result.detail.coverage
    collapsed = coverage.problems(
        MIN_PRICE_COVERAGE,
        MIN_IF_COVERAGE,
        price_present=keys.spot_price_key(PROVIDER, pk) not in window.missing,
        if_present=keys.interruption_frequency_key(PROVIDER, pk) not in window.missing,
    )
    join_coverage = dg.AssetCheckResult(
        check_name="join_coverage",
        passed=not collapsed,
        metadata={
            "problems": "; ".join(collapsed),
            "scored_pairs": coverage.scored_pairs,
            "scored_priced": coverage.scored_priced,
            "market_pairs": coverage.market_pairs,
            "market_rated": coverage.market_rated,
            "min_price_coverage": MIN_PRICE_COVERAGE,
            "min_if_coverage": MIN_IF_COVERAGE,
        },
    )
    return MergeOutcome(
        result,
        guards=[join_coverage],
        metadata={
            "sps_rows": detail.sps_rows,
            "carried_rows": detail.carried_rows,
            "regional_rows": detail.regional_rows,
            "unpriced_rows": detail.unpriced_rows,
            "price_coverage": float(coverage.price_fraction),
            "if_coverage": float(coverage.if_fraction),
            "respelled": dg.MetadataValue.json(detail.respelled),
        },
    )


MERGE = MergeStep(
    run=merge_window,
    inputs=merge_inputs,
    description=(
        "The window's merged Azure snapshot keyed by (InstanceTier, InstanceType, Region, AvailabilityZone) "
        "with T2/T3 history across desired counts joined on that key (never on DesiredCount); SPS rows "
        "without a price kept with -1 prices; prices at the precision the API returned. Names are matched "
        "case-insensitively, keeping the price list's / SPS's spelling. Vectorised. Idempotent: a pure "
        "function of the lake's inputs, written to a deterministic key. unique_keys, scores_in_range and "
        "join_coverage guard what is published: they are blocking, and a snapshot failing one is not "
        "written, so delta and sinks do not run on it. inputs_complete is not blocking: an overdue input "
        "is merged as an explicit -1 gap by design."
    ),
    score_column="Score",
    score_range=(1, 3),
    capacity_name="desired_count",
    guards=[
        Guard(
            "join_coverage",
            description=(
                f"Fails when the joins collapse: fewer than {MIN_PRICE_COVERAGE:.0%} of the scored "
                f"(tier, size, region) pairs found a price, or fewer than {MIN_IF_COVERAGE:.0%} of the "
                "priced or scored pairs found an eviction rate (e.g. 0 rows joined after a change of "
                "spelling). An input missing altogether is judged by inputs_complete instead."
            ),
        )
    ],
)
