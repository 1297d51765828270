"""AWS assets: the workload and collectors (thin wrappers of resource → pure transform → lake write →
metadata and checks), and the merge step the shared builder (`orchestration/provider.py`) turns into
`aws/merged`. `aws/definitions.py` puts them in the provider contract."""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.

from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg

from spotlake_assets.aws import frames
from spotlake_assets.aws.budget import CredentialLedger
from spotlake_assets.aws.constants import (
    IF_COLUMNS,
    KEY_COLUMNS,
    ONDEMAND_COLUMNS,
    PROVIDER,
    SPOT_PRICE_COLUMNS,
)
from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.models import AvailabilityZone, AwsApiError, DownloadFailed, SpsQuery
from spotlake_assets.aws.resources import AwsApi
from spotlake_assets.domain.validation import MalformedResponse
from spotlake_assets.domain.windows import capacity_for_window, day_key_of_window, window_start
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
    note_replay,
    permanent_failure,
)
from spotlake_assets.orchestration.reporting import (
    range_check,
    regions_check,
    run_metadata,
    skip_unobserved,
    unique_keys_check,
    write_if_guarded,
)
from spotlake_assets.storage import keys
from spotlake_assets.storage.errors import LakeKeyNotFound
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LakeResource

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd

    from spotlake_assets.aws.workload import PlanCoverage

GROUP = PROVIDER
WORKLOAD = dg.AssetKey([PROVIDER, "workload"])
SPS = dg.AssetKey([PROVIDER, "sps"])
IF = dg.AssetKey([PROVIDER, "interruption_frequency"])
SPOT_PRICE = dg.AssetKey([PROVIDER, "spot_price"])
ONDEMAND = dg.AssetKey([PROVIDER, "ondemand_price"])
ZONE_COLUMNS = ("Region", "ZoneName", "ZoneId")


def zones_frame(zones: tuple[AvailabilityZone, ...]) -> "pd.DataFrame":
    import pandas as pd

    rows = [(z.region, z.name, z.zone_id) for z in zones]
    return pd.DataFrame(rows, columns=list(ZONE_COLUMNS)).sort_values("ZoneId", ignore_index=True)


def zones_from_frame(frame: "pd.DataFrame") -> tuple[AvailabilityZone, ...]:
    return tuple(AvailabilityZone(r, n, i) for r, n, i in frame[list(ZONE_COLUMNS)].itertuples(index=False))


def _day_zones(lake: LakeResource, day: str) -> "pd.DataFrame | None":
    try:
        return read_frame(lake, keys.zones_key(PROVIDER, day), frames.ZONES)
    except LakeKeyNotFound:
        return None


def _zones_by_region(zones: "pd.DataFrame | None") -> dict[str, list[str]]:
    if zones is None:
        return {}
    return {str(r): sorted(map(str, g)) for r, g in zones.groupby("Region")["ZoneId"]}


def _coverage_check(name: str, coverage: "PlanCoverage") -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=coverage.missing == 0,
        metadata={
            "planned_type_az": coverage.planned,
            "scored_type_az": coverage.scored,
            "missing_type_az": coverage.missing,
            "missing_sample": dg.MetadataValue.json(list(coverage.sample)),
        },
    )


def _day_queries(lake: LakeResource, day: str) -> tuple[SpsQuery, ...]:
    from spotlake_assets.aws.workload import queries_from_frame

    with needs_daily_inputs(PROVIDER, day):
        return queries_from_frame(read_frame(lake, keys.workload_key(PROVIDER, day), frames.WORKLOAD))


@dg.asset(
    key=WORKLOAD,
    group_name=GROUP,
    partitions_def=workload_partitions,
    kinds={"ortools", "parquet"},
    description=(
        "The day's SPS query workload: per instance type, its regions packed into queries of at most 10 AZs "
        "(proven-optimal where the solver proves it; status and gap recorded), 50 queries per credential "
        "group. Built at 23:55 UTC for the next day. Idempotent: deterministic keys, overwritten whole."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "queries_cover_offerings",
            asset=WORKLOAD,
            description="Every offered (type, AZ) pool of the catalogue is in one SPS query of the day.",
        )
    ],
)
def aws_workload(
    context: dg.AssetExecutionContext, aws_api: AwsApi, lake: LakeResource
) -> dg.MaterializeResult:
    from spotlake_assets.aws.collectors.catalogue import collect_catalogue
    from spotlake_assets.aws.workload import plan_workload, workload_frame

    watch = Stopwatch()
    catalogue = collect_catalogue(aws_api)
    plan = plan_workload(catalogue.offerings)
    frame = workload_frame(plan)
    key = keys.workload_key(PROVIDER, context.partition_key)
    write_frame(
        lake,
        keys.zones_key(PROVIDER, context.partition_key),
        zones_frame(catalogue.zones),
        frame_type=frames.ZONES,
    )
    write_frame(lake, key, frame, frame_type=frames.WORKLOAD)
    offered = len({(o.instance_type, o.zone_id) for o in catalogue.offerings})
    covered = int(frame["AZWeight"].sum())
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(frame),
            api_calls=catalogue.api_calls,
            simulated=aws_api.simulated,
            location=lake.location(key),
            queries=len(plan.queries),
            credential_groups=plan.groups,
            lower_bound=plan.lower_bound,
            optimality_gap=float(plan.optimality_gap),
            solve_seconds=float(plan.solve_seconds),
            status=dg.MetadataValue.json(dict(plan.status_counts)),
            instance_types=plan.instance_types,
            failed_regions=dg.MetadataValue.json(catalogue.failed_regions),
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="queries_cover_offerings",
                passed=covered == offered and not catalogue.failed_regions,
                metadata={"offered_type_az": offered, "covered_type_az": covered},
            )
        ],
    )


class SpsConfig(dg.Config):
    workers: int = 16
    throttle_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 20.0
    # Step retries for failures that can pass (throttling): checkpoints make them cheap.
    step_retries: int = 2
    step_retry_wait_s: float = 60.0


SPS_CHECKS = ("scores_in_range", "unique_keys", "covers_workload")
# Checks that guard what is published: a failure stops merged, delta and the sinks in the same run.
SPS_BLOCKING = frozenset({"scores_in_range", "unique_keys"})
SPS_CHECK_DESCRIPTIONS = {
    "scores_in_range": "Every SPS score is 1..10; blocking: the raw object is not written otherwise.",
    "unique_keys": "One row per (InstanceType, Region, AZ); blocking: the raw object is not written else.",
    "covers_workload": "Every pool of the day's workload got a score this window (WARN: gaps are named).",
}


@dg.asset(
    key=SPS,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(WORKLOAD, partition_mapping=SAME_DAY)],
    kinds={"python", "parquet"},
    description=(
        "Spot Placement Scores of the window at its target capacity (a pure function of the partition key, "
        "cycling 1,5,…,50), one get_spot_placement_scores call per workload query. Idempotent and resumable: "
        "each credential group is checkpointed under a deterministic key and never queried twice; the raw "
        "file is written once every group is in."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            name, asset=SPS, blocking=name in SPS_BLOCKING, description=SPS_CHECK_DESCRIPTIONS[name]
        )
        for name in SPS_CHECKS
    ],
    output_required=False,
    pool="aws_sps",
)
def aws_sps(
    context: dg.AssetExecutionContext,
    config: SpsConfig,
    aws_api: AwsApi,
    aws_credentials: AwsCredentialPool,
    lake: LakeResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    from spotlake_assets.aws.collectors.sps import SpsCollectionIncomplete, ThrottlePolicy, collect_sps
    from spotlake_assets.aws.workload import plan_coverage

    watch = Stopwatch()
    pk = context.partition_key
    if cannot_observe(aws_api, pk, context):
        yield from skip_unobserved(context, SPS, SPS_CHECKS, UNOBSERVABLE)
        return
    day = day_key_of_window(pk)
    queries = _day_queries(lake, day)
    ledger = CredentialLedger(lake, day, aws_credentials.load(lake))
    throttle = ThrottlePolicy(config.throttle_attempts, config.backoff_initial_s, config.backoff_max_s)
    capacity = capacity_for_window(pk)
    try:
        result = collect_sps(
            aws_api,
            lake,
            ledger,
            queries,
            pk,
            window_start(pk),
            capacity,
            workers=config.workers,
            throttle=throttle,
        )
    except MalformedResponse as exc:
        raise permanent_failure(exc) from exc
    except SpsCollectionIncomplete as exc:
        _report_moved_aside(context, exc.collection.checkpoints_moved_aside, ledger.moved_aside)
        if exc.collection.only_transient_failures:
            # Exponential back-off between step attempts: 1, 2, 4 times the configured wait.
            wait = config.step_retry_wait_s * 2**context.retry_number
            raise dg.RetryRequested(config.step_retries, wait) from exc
        raise dg.Failure(
            description=str(exc), metadata={"uncovered_groups": len(exc.collection.uncovered)}
        ) from exc
    _report_moved_aside(context, result.checkpoints_moved_aside, ledger.moved_aside)
    key = keys.sps_key(PROVIDER, pk, capacity)
    guards = [
        range_check(result.frame, "SPS", 1, 10, "scores_in_range"),
        unique_keys_check(result.frame, KEY_COLUMNS),
    ]
    # The raw file is what the lake sensor and every merge read: it is written only when the guards pass.
    written = write_if_guarded(context, lake, key, result.frame, guards, frames.SPS)
    coverage = plan_coverage(queries, result.frame, _zones_by_region(_day_zones(lake, day)))
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls,
            simulated=aws_api.simulated,
            location=lake.location(key),
            written=written,
            target_capacity=capacity,
            queries=len(queries),
            credential_groups=result.groups,
            groups_resumed=result.groups_resumed,
            credentials_used=result.credentials_used,
            credential_rotations=result.rotations,
            throttle_retries=result.throttle_retries,
            credential_source=aws_credentials.describe(),
            checkpoints_moved_aside=dg.MetadataValue.json(list(result.checkpoints_moved_aside)),
            ledger_moved_aside=dg.MetadataValue.json(ledger.moved_aside),
        ),
        check_results=[*guards, _coverage_check("covers_workload", coverage)],
    )


def _report_moved_aside(
    context: dg.AssetExecutionContext, checkpoints: tuple[str, ...], ledger: list[str]
) -> None:
    for moved in checkpoints:
        context.log.warning("damaged SPS checkpoint moved aside, its group collected again: %s", moved)
    for moved in ledger:
        context.log.warning("damaged credential ledger moved aside and rebuilt: %s", moved)


@dg.asset(
    key=IF,
    group_name=GROUP,
    partitions_def=collection_partitions,
    kinds={"python", "parquet"},
    description=(
        "Interruption frequency per (region, instance type) from the Spot Instance Advisor JSON, read "
        "directly (no spotinfo binary): <5%→3.0 … >20%→1.0. Idempotent: deterministic key, overwritten whole."
    ),
    deps=[dg.AssetDep(WORKLOAD, partition_mapping=SAME_DAY)],
    check_specs=[
        dg.AssetCheckSpec(
            "unique_keys", asset=IF, blocking=True, description="One row per (Region, InstanceType)."
        ),
        dg.AssetCheckSpec(
            "covers_workload_regions",
            asset=IF,
            description="Every region of the day's workload is in the advisor document (else IF is -1).",
        ),
    ],
    output_required=False,
)
def aws_interruption_frequency(
    context: dg.AssetExecutionContext, aws_api: AwsApi, lake: LakeResource
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    from spotlake_assets.aws.collectors.interruption_frequency import (
        MalformedAdvisorDocument,
        collect_interruption_frequency,
    )

    watch = Stopwatch()
    pk = context.partition_key
    if cannot_observe(aws_api, pk, context):
        yield from skip_unobserved(context, IF, ["unique_keys", "covers_workload_regions"], UNOBSERVABLE)
        return
    try:
        result = collect_interruption_frequency(aws_api, window_start(pk))
    except MalformedResponse as exc:
        raise permanent_failure(exc) from exc
    except MalformedAdvisorDocument as exc:
        raise dg.Failure(description=f"spot advisor document: {exc}", allow_retries=False) from exc
    except DownloadFailed as exc:
        if exc.permanent:
            raise dg.Failure(
                description=f"spot advisor document unavailable: {exc}",
                metadata={"url": exc.url, "status": exc.status},
                allow_retries=False,
            ) from exc
        # Transient (5xx, 408/429, network) after the download's own back-off: a later attempt may pass.
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=60 * 2**context.retry_number) from exc
    except AwsApiError as exc:
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=60 * 2**context.retry_number) from exc
    key = keys.interruption_frequency_key(PROVIDER, pk)
    write_frame(lake, key, result.frame, frame_type=frames.INTERRUPTION_FREQUENCY)
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls,
            simulated=aws_api.simulated,
            location=lake.location(key),
            regions=int(result.frame["Region"].nunique()),
        ),
        check_results=[
            unique_keys_check(result.frame, ("Region", "InstanceType")),
            _regions_check(lake, day_key_of_window(pk), result.frame),
        ],
    )


def _regions_check(lake: LakeResource, day: str, frame: "pd.DataFrame") -> dg.AssetCheckResult:
    """Every region of the day's workload must be in the advisor document: a missing one leaves IF -1 on
    all its pools. WARN, not blocking: -1 is an explicit gap in the published data, never a wrong value."""
    from spotlake_assets.aws.collectors.interruption_frequency import uncovered_regions

    zones = _day_zones(lake, day)
    if zones is None:
        return dg.AssetCheckResult(
            check_name="covers_workload_regions",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"reason": f"the day's zones ({keys.zones_key(PROVIDER, day)}) are not in the lake"},
        )
    expected = set(zones["Region"].astype(str))
    missing = uncovered_regions(frame, expected)
    return dg.AssetCheckResult(
        check_name="covers_workload_regions",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "workload_regions": len(expected),
            "missing_regions": dg.MetadataValue.json(missing),
        },
    )


@dg.asset(
    key=SPOT_PRICE,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(WORKLOAD, partition_mapping=SAME_DAY)],
    kinds={"python", "parquet"},
    description=(
        "Linux/UNIX spot prices in effect at the window start, every region (paginated), AZ names mapped to "
        "AZ ids. A region that still fails after retries is listed in metadata and fails the check. "
        "Idempotent: deterministic key, overwritten whole."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "all_regions_collected",
            asset=SPOT_PRICE,
            description="Every region of the day's zones answered the spot price history call.",
        )
    ],
)
def aws_spot_price(
    context: dg.AssetExecutionContext, aws_api: AwsApi, lake: LakeResource
) -> dg.MaterializeResult:
    from spotlake_assets.aws.collectors.spot_price import collect_spot_prices

    watch = Stopwatch()
    note_replay(context, aws_api, context.partition_key)
    day = day_key_of_window(context.partition_key)
    with needs_daily_inputs(PROVIDER, day, "the workload's zones"):
        zones = zones_from_frame(read_frame(lake, keys.zones_key(PROVIDER, day), frames.ZONES))
    result = collect_spot_prices(aws_api, zones, window_start(context.partition_key))
    key = keys.spot_price_key(PROVIDER, context.partition_key)
    write_frame(lake, key, result.frame, frame_type=frames.SPOT_PRICE)
    regions = len({z.region for z in zones})
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls,
            simulated=aws_api.simulated,
            location=lake.location(key),
            failed_regions=dg.MetadataValue.json(result.failed_regions),
        ),
        check_results=[regions_check(result.failed_regions, regions)],
    )


@dg.asset(
    key=ONDEMAND,
    group_name=GROUP,
    partitions_def=workload_partitions,
    kinds={"python", "parquet"},
    description=(
        "On-demand hourly prices (Linux, shared tenancy, no pre-installed software) from the Pricing API, "
        "daily. A failing region is listed and fails the check. Idempotent: deterministic key, overwritten."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "all_regions_collected",
            asset=ONDEMAND,
            description="Every region answered the Pricing API; a failing one is listed in metadata.",
        )
    ],
)
def aws_ondemand_price(
    context: dg.AssetExecutionContext, aws_api: AwsApi, lake: LakeResource
) -> dg.MaterializeResult:
    from spotlake_assets.aws.collectors.ondemand_price import collect_ondemand_prices

    watch = Stopwatch()
    regions = aws_api.regions()
    result = collect_ondemand_prices(aws_api, regions)
    key = keys.ondemand_price_key(PROVIDER, context.partition_key)
    write_frame(lake, key, result.frame, frame_type=frames.ONDEMAND_PRICE)
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=result.api_calls + 1,
            simulated=aws_api.simulated,
            location=lake.location(key),
            failed_regions=dg.MetadataValue.json(result.failed_regions),
        ),
        check_results=[regions_check(result.failed_regions, len(regions))],
    )


def merge_inputs(partition_key: str) -> list[str]:
    """What the merge of a window reads besides its SPS object (the lake sensor waits for them)."""
    day = day_key_of_window(partition_key)
    return [
        keys.interruption_frequency_key(PROVIDER, partition_key),
        keys.spot_price_key(PROVIDER, partition_key),
        keys.ondemand_price_key(PROVIDER, day),
        keys.zones_key(PROVIDER, day),
    ]


# Numeric columns of the optional inputs: an absent input is an empty frame of the right types.
NUMERIC_INPUT_COLUMNS = frozenset({"IF", "SpotPrice", "OndemandPrice"})


def merge_window(window: MergeWindow) -> MergeOutcome:
    """Read the window's inputs (IF, spot and on-demand prices may be overdue gaps) and merge them; the
    guard of what only AWS knows: every (type, AZ) pair the workload planned has a score."""
    from spotlake_assets.aws.merge import DROPPED_UNKNOWN_AZ, merge_snapshot
    from spotlake_assets.aws.workload import plan_coverage

    pk, day, capacity = window.partition_key, window.day, window.capacity
    lake = window.lake
    sps = read_frame(lake, keys.sps_key(PROVIDER, pk, capacity), frames.SPS)
    with needs_daily_inputs(PROVIDER, day, "the workload's zones"):
        zones = read_frame(lake, keys.zones_key(PROVIDER, day), frames.ZONES)
    result = merge_snapshot(
        sps=sps,
        interruption_frequency=window.optional(
            keys.interruption_frequency_key(PROVIDER, pk),
            empty_frame(IF_COLUMNS, NUMERIC_INPUT_COLUMNS),
            frames.INTERRUPTION_FREQUENCY,
        ),
        spot_price=window.optional(
            keys.spot_price_key(PROVIDER, pk),
            empty_frame(SPOT_PRICE_COLUMNS, NUMERIC_INPUT_COLUMNS),
            frames.SPOT_PRICE,
        ),
        ondemand=window.optional(
            keys.ondemand_price_key(PROVIDER, day),
            empty_frame(ONDEMAND_COLUMNS, NUMERIC_INPUT_COLUMNS),
            frames.ONDEMAND_PRICE,
        ),
        zone_regions=dict(zip(zones["ZoneId"], zones["Region"], strict=True)),
        time=window.time,
        previous=window.previous,
        capacity=capacity,
    )
    merged = result.frame
    if result.dropped[DROPPED_UNKNOWN_AZ]:
        window.log.warning(
            "%s: %s spot-price rows dropped, AZ ids not in the day's zones: %s",
            pk,
            result.dropped[DROPPED_UNKNOWN_AZ],
            ", ".join(result.detail.unknown_azs),
        )
    coverage = plan_coverage(
        _day_queries(lake, day), merged.loc[merged["SPS"] != -1], _zones_by_region(zones)
    )
    if coverage.missing:
        window.log.warning(
            "%s: %s of %s planned (type, AZ) pairs have no score: %s",
            pk,
            coverage.missing,
            coverage.planned,
            "; ".join(coverage.sample[:5]),
        )
    return MergeOutcome(
        result,
        guards=[_coverage_check("covers_workload", coverage)],
        metadata={"unknown_azs": dg.MetadataValue.json(list(result.detail.unknown_azs))},
    )


MERGE = MergeStep(
    run=merge_window,
    inputs=merge_inputs,
    description=(
        "The window's merged snapshot (InstanceType, Region, AZ, SPS, T3, T2, IF, OndemandPrice, SpotPrice, "
        "Savings, Time) with the T2/T3 capacity ladder carried from the previous window. Vectorised joins. "
        "Idempotent: a pure function of the lake's inputs, written to a deterministic key. unique_keys, "
        "scores_in_range and covers_workload guard what delta and the sinks publish: a failure stops them "
        "in the same run."
    ),
    score_column="SPS",
    score_range=(1, 10),
    capacity_name="target_capacity",
    guards=[
        Guard(
            "covers_workload",
            description="The merged snapshot holds a row for every pool of the day's workload.",
        )
    ],
    daily_inputs=("ondemand_price", "workload"),
)
