"""Single-account assets (issue 14): thin wrappers of resource → pure transform → lake write → metadata.

`aws/instance_architectures` and `aws/amis` are keyed under aws/ (they describe AWS, not this mode) but live
here, so the aws/ and azure/ packages keep the same file set."""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from spotlake_assets.aws.constants import (
    IF_COLUMNS,
    KEY_COLUMNS,
    SPOT_PRICE_COLUMNS,
    SPS_COLUMNS,
    WORKLOAD_COLUMNS,
)
from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.models import AwsApiError, ConfigLimitExceeded, Throttled
from spotlake_assets.aws.resources import AwsApi
from spotlake_assets.aws_single import constants as c
from spotlake_assets.aws_single.budget import EXHAUSTED, REPEAT, ConfigurationLedger, configuration_id
from spotlake_assets.aws_single.launch import TIMEOUT_S, measure_launch, sweep
from spotlake_assets.aws_single.notify import Report, ReportNotifier, deliveries_metadata
from spotlake_assets.aws_single.resources import Ec2Lab
from spotlake_assets.domain import selection as sel
from spotlake_assets.domain.windows import (
    DAY_KEY_FORMAT,
    capacity_for_window,
    day_key_of_window,
    day_start,
    window_start,
)
from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.orchestration.partitions import (
    PARTITIONS_START,
    collection_partitions,
    workload_partitions,
)
from spotlake_assets.orchestration.provider import cannot_observe
from spotlake_assets.orchestration.reporting import run_metadata, skip_unobserved, unique_keys_check
from spotlake_assets.storage import keys
from spotlake_assets.storage.errors import LakeKeyNotFound
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LakeResource
from spotlake_assets.storage.state import Current, Swap, update

GROUP = c.PREFIX
SELECTION = dg.AssetKey([c.PREFIX, "selection"])
SPS = dg.AssetKey([c.PREFIX, "sps"])
IF = dg.AssetKey([c.PREFIX, "interruption_frequency"])
MERGED = dg.AssetKey([c.PREFIX, "merged"])
DAILY_SCORE = dg.AssetKey([c.PREFIX, "daily_score"])
LAUNCH_TIME = dg.AssetKey([c.PREFIX, "launch_time"])
LAUNCH_SWEEP = dg.AssetKey([c.PREFIX, "launch_sweep"])
ARCHITECTURES = dg.AssetKey([c.MAIN_PROVIDER, "instance_architectures"])
AMIS = dg.AssetKey([c.MAIN_PROVIDER, "amis"])

# The report of day D is built at 23:55 on D: a daily definition with end_offset=1 has D as its last
# partition then (the selection for D+1 uses `workload_partitions`, end_offset=2).
score_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START[:10], fmt=DAY_KEY_FORMAT, timezone="UTC", end_offset=1
)


def _previous_day(day: str) -> str:
    return (day_start(day) - timedelta(days=1)).strftime(DAY_KEY_FORMAT)


# --- AWS catalogue lookups ------------------------------------------------------------------------------


@dg.asset(
    key=ARCHITECTURES,
    group_name=GROUP,
    partitions_def=workload_partitions,
    kinds={"python", "parquet"},
    description=(
        "The architectures each instance type (and so each family) supports, from describe_instance_types "
        "ProcessorInfo.SupportedArchitectures, with vCPUs and memory (the launch collector's smallest size). "
        "Idempotent: deterministic key, overwritten whole."
    ),
)
def aws_instance_architectures(
    context: dg.AssetExecutionContext, aws_api: AwsApi, aws_ec2: Ec2Lab, lake: LakeResource
) -> dg.MaterializeResult:
    from spotlake_assets.aws_single.images import specs_frame

    watch = Stopwatch()
    regions = aws_api.regions()
    rows = {
        s.instance_type: (s.instance_type, s.architectures, s.vcpus, s.memory_mib)
        for region in regions
        for s in aws_ec2.instance_specs(region)
    }
    frame = specs_frame(list(rows.values()))
    key = c.architectures_key(context.partition_key)
    write_frame(lake, key, frame)
    families = frame.groupby("Family")["Architectures"].agg(
        lambda v: ",".join(sorted(set(",".join(v).split(","))))
    )
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(frame),
            api_calls=len(regions) + 1,
            simulated=aws_ec2.simulated,
            location=lake.location(key),
            families=len(families),
            arm64_families=int(families.str.contains("arm64").sum()),
        )
    )


@dg.asset(
    key=AMIS,
    group_name=GROUP,
    partitions_def=workload_partitions,
    kinds={"python", "parquet"},
    description=(
        "Per region and architecture, the current Amazon Linux 2023 AMI id from the public SSM parameters "
        "(/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{x86_64,arm64}); no pasted "
        "constants. A region that fails is listed in metadata. Idempotent: deterministic key, overwritten."
    ),
)
def aws_amis(
    context: dg.AssetExecutionContext, aws_api: AwsApi, aws_ec2: Ec2Lab, lake: LakeResource
) -> dg.MaterializeResult:
    # Imported here, not at module level: loading the definitions must not pay for it.
    import pandas as pd

    watch = Stopwatch()
    rows: list[tuple[str, str, str]] = []
    failed: dict[str, str] = {}
    for region in aws_api.regions():
        for architecture in c.ARCHITECTURES:
            try:
                rows.append((region, architecture, aws_ec2.latest_ami(region, architecture)))
            except Exception as exc:
                failed[f"{region}/{architecture}"] = f"{type(exc).__name__}: {exc}"[:200]
    frame = pd.DataFrame(rows, columns=list(c.AMI_COLUMNS))
    key = c.amis_key(context.partition_key)
    write_frame(lake, key, frame)
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(frame),
            api_calls=len(rows) + len(failed) + 1,
            simulated=aws_ec2.simulated,
            location=lake.location(key),
            failed=dg.MetadataValue.json(failed),
        )
    )


# --- selection ------------------------------------------------------------------------------------------


class SelectionConfig(dg.Config):
    budget: int = sel.DEFAULT_BUDGET  # configurations per 24 h the account may spend
    top_k: int = sel.DEFAULT_TOP_K
    explore: int = sel.DEFAULT_EXPLORE
    fill: bool = True  # after top K and exploration, spend what is left on the next best types
    decay: float = sel.DEFAULT_DECAY
    lookback_days: int = sel.DEFAULT_LOOKBACK_DAYS
    seed: int = 7
    # Regions to follow (each type's queries cover these only, so it costs fewer configurations); [] = all.
    regions: list[str] = []


@dg.asset(
    key=SELECTION,
    group_name=GROUP,
    partitions_def=workload_partitions,
    kinds={"python", "parquet"},
    description=(
        "The instance types the account queries on the partition's day, within its SPS budget: top K by "
        "decayed change score (SPS/IF changes per type over the lake's history, ours and imported; decay "
        "per day of age), S seeded random picks for exploration, then the next best while budget remains; "
        "uniform prior without history. Built at 23:55 UTC for the next day. Idempotent: seeded by the "
        "day, the same inputs give the same set, overwritten whole."
    ),
)
def aws_single_selection(
    context: dg.AssetExecutionContext, config: SelectionConfig, aws_api: AwsApi, lake: LakeResource
) -> dg.MaterializeResult:
    import pandas as pd

    from spotlake_assets.aws.collectors.catalogue import collect_catalogue
    from spotlake_assets.aws.workload import WorkloadPlan, plan_workload, workload_frame
    from spotlake_assets.aws_single.history import read_changes
    from spotlake_assets.aws_single.report import markdown_table

    watch = Stopwatch()
    day = context.partition_key
    catalogue = collect_catalogue(aws_api)
    offerings = [o for o in catalogue.offerings if not config.regions or o.region in config.regions]
    plan = plan_workload(offerings)
    costs: dict[str, int] = {}
    for query in plan.queries:
        costs[query.instance_type] = costs.get(query.instance_type, 0) + 1
    as_of = day_start(day) - timedelta(days=1)
    changes, history_rows = read_changes(lake, as_of, config.lookback_days)
    scores = sel.decayed_scores(changes, as_of, sorted(costs), config.decay)
    selection = sel.select_types(
        dict(zip(scores["InstanceType"], scores["Score"], strict=True)),
        costs,
        budget=config.budget,
        top_k=config.top_k,
        explore=config.explore,
        seed=sel.day_seed(config.seed, day),
        fill=config.fill,
        observed=set(scores.loc[scores["Observed"], "InstanceType"]),
    )
    chosen = set(selection.types)
    queries = [q for q in plan.queries if q.instance_type in chosen]
    frame = sel.selection_frame(selection)
    write_frame(lake, c.selection_key(day), frame)
    # The chosen types' queries as a workload in the main pipeline's layout (renumbered, one group).
    workload = workload_frame(WorkloadPlan(tuple(queries), 1, 0, {}, 0.0, 0.0, len(chosen), 0))
    workload["QueryId"] = range(len(workload))
    workload["Group"] = 0
    write_frame(lake, keys.workload_key(c.PREFIX, day), workload)
    zones = pd.DataFrame(
        [(z.region, z.name, z.zone_id) for z in catalogue.zones], columns=["Region", "ZoneName", "ZoneId"]
    )
    write_frame(lake, keys.zones_key(c.PREFIX, day), zones)
    table = markdown_table(frame, c.SELECTION_COLUMNS[:4]) if len(frame) else "(nothing selected)"
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(frame),
            api_calls=catalogue.api_calls,
            simulated=aws_api.simulated,
            location=lake.location(c.selection_key(day)),
            budget=config.budget,
            configurations_planned=selection.spent,
            exploration_share=round(selection.share(sel.EXPLORE), 3),
            seed=selection.seed,
            history_rows=history_rows,
            types_with_history=int(scores["Observed"].sum()),
            prior="decayed history, unseen at the observed mean" if scores["Observed"].any() else "uniform",
            selection=dg.MetadataValue.md(table),
        )
    )


# --- collection -----------------------------------------------------------------------------------------


class SingleSpsConfig(dg.Config):
    budget: int = sel.DEFAULT_BUDGET
    # 0: cycle capacities 1,5,…,50 as the main pipeline does (each capacity is another configuration);
    # any other value: that fixed target capacity (one configuration per query for the whole day).
    capacity: int = 1


@dg.asset(
    key=SPS,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(SELECTION, partition_mapping=dg.TimeWindowPartitionMapping())],
    kinds={"python", "parquet"},
    description=(
        "SPS of the selected types across their regions (one instance type per query), at a fixed or "
        "cycling capacity. Every configuration goes through the persisted per-day ledger first: never over "
        "the budget, never spent twice (a repeat within 24 h is free, as on AWS); when the budget is used "
        "up the collection stops cleanly with a note in metadata. Same raw layout as the main pipeline "
        "(rawdata/aws_single/sps/...). Idempotent: deterministic key, overwritten whole."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "unique_keys",
            asset=SPS,
            blocking=True,
            description="Each (InstanceType, Region, AZ) is scored once in the window (blocking).",
        )
    ],
    output_required=False,
    pool="aws_single_sps",
)
def aws_single_sps(
    context: dg.AssetExecutionContext,
    config: SingleSpsConfig,
    aws_api: AwsApi,
    aws_credentials: AwsCredentialPool,
    lake: LakeResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    import pandas as pd

    from spotlake_assets.aws.collectors.sps import scores_to_frame
    from spotlake_assets.aws.workload import queries_from_frame

    watch = Stopwatch()
    pk = context.partition_key
    if cannot_observe(aws_api, pk, context):
        yield from skip_unobserved(context, SPS, ["unique_keys"], "SPS cannot be asked about a past window")
        return
    day = day_key_of_window(pk)
    queries = queries_from_frame(read_frame(lake, keys.workload_key(c.PREFIX, day), WORKLOAD_COLUMNS))
    capacity = config.capacity or capacity_for_window(pk)
    ledger = ConfigurationLedger(lake, day, _previous_day(day), config.budget)
    window = int(window_start(pk).timestamp()) // 600
    credential = aws_credentials.load(lake)[0]
    frames: list[pd.DataFrame] = []
    spent = repeats = calls = 0
    note = "every selected query answered"
    for query in queries:
        verdict = ledger.admit(configuration_id(query.instance_type, query.regions, capacity), window)
        if verdict == EXHAUSTED:
            note = f"budget of {config.budget} configurations/24 h used up: stopped at {query.instance_type}"
            context.log.warning(note)
            break
        spent += verdict != REPEAT
        repeats += verdict == REPEAT
        calls += 1
        try:
            scores = aws_api.spot_placement_scores(
                credential, query.instance_type, query.regions, capacity, window_start(pk)
            )
        except ConfigLimitExceeded as exc:
            note = f"AWS refused the configuration (quota used outside this ledger?): {exc}"
            context.log.warning(note)
            break
        except Throttled as exc:
            raise dg.RetryRequested(max_retries=2, seconds_to_wait=30) from exc
        frames.append(scores_to_frame(scores, capacity))
    frame = pd.concat(frames, ignore_index=True) if frames else scores_to_frame([], capacity)
    key = keys.sps_key(c.PREFIX, pk, capacity)
    write_frame(lake, key, frame)
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(frame),
            api_calls=calls,
            simulated=aws_api.simulated,
            location=lake.location(key),
            target_capacity=capacity,
            configurations_spent=spent,
            configurations_repeated=repeats,
            budget=config.budget,
            budget_used=ledger.used(window),
            note=note,
        ),
        check_results=[unique_keys_check(frame, KEY_COLUMNS)],
    )


@dg.asset(
    key=IF,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(SELECTION, partition_mapping=dg.TimeWindowPartitionMapping())],
    kinds={"python", "parquet"},
    description=(
        "Interruption frequency of the selected types from the Spot Instance Advisor JSON (<5%→3.0 … "
        ">20%→1.0), the same parser as the main pipeline; costs no SPS budget. Idempotent: deterministic "
        "key, overwritten whole."
    ),
    output_required=False,
)
def aws_single_interruption_frequency(
    context: dg.AssetExecutionContext, aws_api: AwsApi, lake: LakeResource
) -> Iterator[dg.MaterializeResult | dg.AssetObservation | dg.AssetCheckResult]:
    from spotlake_assets.aws.collectors.interruption_frequency import collect_interruption_frequency

    watch = Stopwatch()
    pk = context.partition_key
    if cannot_observe(aws_api, pk, context):
        yield from skip_unobserved(context, IF, [], "the advisor publishes only its current view")
        return
    try:
        result = collect_interruption_frequency(aws_api, window_start(pk))
    except AwsApiError as exc:
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=60) from exc
    selected = read_frame(lake, c.selection_key(day_key_of_window(pk)), c.SELECTION_COLUMNS)["InstanceType"]
    frame = result.frame.loc[result.frame["InstanceType"].isin(set(selected))].reset_index(drop=True)
    key = keys.interruption_frequency_key(c.PREFIX, pk)
    write_frame(lake, key, frame)
    yield dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(frame),
            api_calls=result.api_calls,
            simulated=aws_api.simulated,
            location=lake.location(key),
        )
    )


def _collected_capacity(lake: LakeResource, pk: str) -> int:
    """The capacity the window's SPS object was collected at (its key names it): the merge follows whatever
    `aws_single/sps` was configured with. LakeKeyNotFound when the window has no SPS object."""
    probe = keys.sps_key(c.PREFIX, pk, 0)
    prefix = probe[: probe.rindex("_") + 1]
    found = sorted(lake.list_keys(prefix))
    if not found:
        raise LakeKeyNotFound(lake.location(prefix + "*.parquet"))
    return int(found[-1].removeprefix(prefix).removesuffix(".parquet"))


@dg.asset(
    key=MERGED,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[SPS, IF],
    pool=f"{c.PREFIX}_merge",
    kinds={"pandas", "parquet"},
    description=(
        "The window's merged snapshot of the selected types (the main pipeline's AWS merge: T2/T3 ladder "
        "carried from the previous window; no price collectors here, so prices are -1). Feeds the same "
        "delta and history sinks. Idempotent: a pure function of the lake's inputs, deterministic key."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "unique_keys",
            asset=MERGED,
            blocking=True,
            description="(InstanceType, Region, AZ) is unique in the snapshot delta and history publish.",
        )
    ],
)
def aws_single_merged(
    context: dg.AssetExecutionContext, aws_api: AwsApi, lake: LakeResource
) -> dg.MaterializeResult:
    import pandas as pd

    from spotlake_assets.aws.merge import merge_snapshot
    from spotlake_assets.orchestration.pipeline import read_previous_state

    watch = Stopwatch()
    pk = context.partition_key
    capacity = _collected_capacity(lake, pk)
    sps = read_frame(lake, keys.sps_key(c.PREFIX, pk, capacity), SPS_COLUMNS)
    try:
        interruption = read_frame(lake, keys.interruption_frequency_key(c.PREFIX, pk), IF_COLUMNS)
    except LakeKeyNotFound:
        interruption = pd.DataFrame({"Region": [], "InstanceType": [], "IF": pd.Series(dtype="float64")})
    empty_prices = pd.DataFrame({"InstanceType": [], "AZ": [], "SpotPrice": pd.Series(dtype="float64")})
    empty_ondemand = pd.DataFrame(
        {"Region": [], "InstanceType": [], "OndemandPrice": pd.Series(dtype="float64")}
    )
    previous = read_previous_state(lake, c.PREFIX, pk)
    result = merge_snapshot(
        sps=sps,
        interruption_frequency=interruption,
        spot_price=empty_prices[list(SPOT_PRICE_COLUMNS)],
        ondemand=empty_ondemand,
        zone_regions=dict(zip(sps["AZ"], sps["Region"], strict=True)),
        time=window_start(pk),
        previous=previous.frame,
        capacity=capacity,
    )
    key = keys.merged_key(c.PREFIX, pk)
    write_frame(lake, key, result.frame)
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(result.frame),
            api_calls=0,
            simulated=aws_api.simulated,
            location=lake.location(key),
            first_window=previous.frame is None,
        ),
        check_results=[unique_keys_check(result.frame, KEY_COLUMNS)],
    )


# --- daily score and report ----------------------------------------------------------------------------


class DailyScoreConfig(dg.Config):
    top_k: int = 10
    decay: float = sel.DEFAULT_DECAY
    lookback_days: int = sel.DEFAULT_LOOKBACK_DAYS
    plot: bool = True


@dg.asset(
    key=DAILY_SCORE,
    group_name=GROUP,
    partitions_def=score_partitions,
    kinds={"python", "parquet"},
    description=(
        "Per instance type, the day's SPS/IF change counts and the decayed score, and the top K; sent as a "
        "report (markdown and a small plot) by e-mail (SMTP STARTTLS and/or SES) and/or Slack, each optional "
        "(EnvVars). Built at 23:55 UTC for the day. Idempotent: deterministic key, overwritten; a rerun "
        "sends the report again."
    ),
)
def aws_single_daily_score(
    context: dg.AssetExecutionContext,
    config: DailyScoreConfig,
    aws_api: AwsApi,
    lake: LakeResource,
    report_notifier: ReportNotifier,
) -> dg.MaterializeResult:
    from spotlake_assets.aws_single.history import read_changes
    from spotlake_assets.aws_single.report import report_markdown, top_k_png

    watch = Stopwatch()
    day = context.partition_key
    as_of = day_start(day)
    changes, history_rows = read_changes(lake, as_of, config.lookback_days)
    universe = sorted(set(changes["InstanceType"])) if len(changes) else []
    scores = sel.decayed_scores(changes, as_of, universe, config.decay)
    today = changes.loc[changes["Day"] == as_of.isoformat()].set_index("InstanceType")["Changes"]
    scores["ChangesToday"] = scores["InstanceType"].map(today).fillna(0).astype("int64")
    write_frame(lake, c.scores_key(day), scores)
    top = sel.top_k(scores, config.top_k)
    markdown = report_markdown(day, top, history_rows, aws_api.simulated)
    png = (
        top_k_png(top, f"Top {config.top_k} types by change score, {day}")
        if config.plot and len(top)
        else None
    )
    deliveries = report_notifier.deliver(Report(f"SpotLake single-account report {day}", markdown, png))
    metadata = run_metadata(
        watch,
        rows=len(scores),
        api_calls=0,
        simulated=aws_api.simulated,
        location=lake.location(c.scores_key(day)),
        report=dg.MetadataValue.md(markdown),
        deliveries=dg.MetadataValue.json(deliveries_metadata(deliveries)),
        top_k=dg.MetadataValue.json(top["InstanceType"].tolist()),
    )
    if png is not None:
        from spotlake_assets.orchestration.plots import image_markdown

        metadata["plot_top_k"] = dg.MetadataValue.md(image_markdown(png, "top K by change score"))
    return dg.MaterializeResult(metadata=metadata)


# --- launch time ----------------------------------------------------------------------------------------


class LaunchConfig(dg.Config):
    top_k: int = 1  # LAUNCH_TOP_K: (type, region) pairs measured per window
    instances: int = 1  # N per request
    smallest_size: bool = True  # measure the family's smallest size instead of the selected type
    instance_hour_cap: float = 2.0  # per UTC day, charged at the worst case (N x timeout) before requesting
    timeout_s: float = TIMEOUT_S
    poll_s: float = 3.0


def _charge_hours(lake: LakeResource, day: str, hours: float, cap: float) -> bool:
    """Reserve ``hours`` in the day's instance-hour ledger (compare-and-swap); False if over the cap."""

    def decode(data: bytes, _: str) -> float:
        return float(data.decode() or 0)

    def change(current: Current[float]) -> Swap[bool]:
        used = current.value or 0.0
        if used + hours > cap + 1e-9:
            return Swap(None, False)
        return Swap(f"{used + hours:.6f}".encode(), True)

    return update(lake, c.launch_hours_key(day), decode, change).result


@dg.asset(
    key=LAUNCH_TIME,
    group_name=GROUP,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(SELECTION, partition_mapping=dg.TimeWindowPartitionMapping()), AMIS, ARCHITECTURES],
    kinds={"python", "parquet"},
    description=(
        "OFF by default (no schedule runs it): for the top LAUNCH_TOP_K (type, region) pairs, request N Spot "
        "instances (smallest size of the family by default, the right Amazon Linux 2023 AMI), poll every 3 s "
        "until all are ready or 10 minutes pass, then ALWAYS cancel the requests and terminate the instances "
        "(also on error or a stopped run; everything is tagged for the sweep). A per-day instance-hour cap "
        "guards cost. Output: the readiness curve per request and the launch time per pair."
    ),
)
def aws_single_launch_time(
    context: dg.AssetExecutionContext, config: LaunchConfig, aws_ec2: Ec2Lab, lake: LakeResource
) -> dg.MaterializeResult:
    import pandas as pd

    from spotlake_assets.aws_single.images import AmiLookup, NoImage
    from spotlake_assets.aws_single.report import launch_pairs, markdown_table

    watch = Stopwatch()
    pk = context.partition_key
    day = day_key_of_window(pk)
    images = AmiLookup.load(lake, day)
    try:
        merged = read_frame(lake, keys.merged_key(c.PREFIX, pk))
    except LakeKeyNotFound:
        merged = pd.DataFrame(columns=["InstanceType", "Region", "SPS"])
    selection = read_frame(lake, c.selection_key(day), c.SELECTION_COLUMNS)
    pairs = launch_pairs(selection, merged, config.top_k)
    curves: list[tuple[str, str, str, float, int, int]] = []
    results: list[tuple[str, str, int, int, float, bool, str]] = []
    notes: list[str] = []
    for instance_type, region in pairs:
        launch_type = images.smallest_of_family(instance_type) if config.smallest_size else instance_type
        try:
            image = images.ami_for(region, launch_type)
        except NoImage as exc:
            notes.append(str(exc))
            continue
        if not _charge_hours(lake, day, config.instances * config.timeout_s / 3600, config.instance_hour_cap):
            notes.append(
                f"instance-hour cap {config.instance_hour_cap} h/day reached: {launch_type} {region} skipped"
            )
            continue
        m = measure_launch(
            aws_ec2,
            launch_type,
            region,
            image,
            config.instances,
            f"{pk}-{launch_type}-{region}",
            poll_s=config.poll_s,
            timeout_s=config.timeout_s,
        )
        if m.error or m.cleanup_errors:
            notes.append(f"{launch_type} {region}: {m.error or ''} {'; '.join(m.cleanup_errors)}".strip())
        requests = ",".join(m.request_ids)
        curves.extend((launch_type, region, requests, t, ready, m.requested) for t, ready in m.curve)
        ready = m.curve[-1][1] if m.curve else 0
        results.append((launch_type, region, m.requested, ready, m.launch_time_s or -1.0, m.timed_out, image))
    curve = pd.DataFrame(curves, columns=list(c.CURVE_COLUMNS))
    launch = pd.DataFrame(results, columns=list(c.LAUNCH_COLUMNS))
    write_frame(lake, c.launch_curve_key(pk), curve)
    write_frame(lake, c.launch_time_key(pk), launch)
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(launch),
            api_calls=len(curve) * 2,
            simulated=aws_ec2.simulated,
            location=lake.location(c.launch_time_key(pk)),
            launch_times=dg.MetadataValue.md(markdown_table(launch) if len(launch) else "(none)"),
            notes=dg.MetadataValue.json(notes),
        )
    )


@dg.asset(
    key=LAUNCH_SWEEP,
    group_name=GROUP,
    kinds={"python"},
    description=(
        "The backstop of the launch-time collector: cancels tagged Spot requests and terminates tagged "
        "instances older than the measurement timeout in every region (what a killed run left behind). "
        "Idempotent: terminating what is already gone is a no-op."
    ),
)
def aws_single_launch_sweep(aws_api: AwsApi, aws_ec2: Ec2Lab) -> dg.MaterializeResult:
    watch = Stopwatch()
    regions = aws_api.regions()
    report = sweep(aws_ec2, regions, datetime.now(UTC))
    return dg.MaterializeResult(
        metadata=run_metadata(
            watch,
            rows=len(report.terminated),
            api_calls=2 * len(regions),
            simulated=aws_ec2.simulated,
            cancelled=dg.MetadataValue.json(list(report.cancelled)),
            terminated=dg.MetadataValue.json(list(report.terminated)),
        )
    )
