"""The one provider contract (`ProviderSpec`) and its one builder (`build_provider`); see
docs/adding-a-provider.md.

A provider supplies what is its own: the API resource (interface, SDK implementation, simulation), the
workload and collector assets, how a window's inputs are read and merged (`MergeStep`, returning the one
`domain.merge.MergeResult`), its key and feature columns, its Timestream mapping and its resources per
environment. `build_provider` turns that into everything that is the same for every provider: the `merged`
asset with its shared guards, delta and the sinks, the four jobs, the schedules, the lake sensor and the
freshness check (with its sensor), all named `<p>_…` / `[<p>, …]` so a new provider gets the
names the UI, the README and the sensors expect.

Collectors stay Dagster assets written by the provider: their resources, configs, checks and metadata
differ (credential pools, budgets, checkpoints), so a generic collector spec would be a second, weaker
asset decorator. What they share is here: `cannot_observe`/`skip_unobserved`, `permanent_failure`,
`write_if_guarded` (in `reporting`), `SAME_DAY`.
"""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from spotlake_assets.domain.validation import MalformedResponse
from spotlake_assets.domain.windows import (
    capacity_for_window,
    day_key_of_window,
    observable_now,
    window_start,
)
from spotlake_assets.orchestration.automation import (
    MERGE_CHAIN_TAG,
    build_provider_automation,
    input_fingerprint,
    mark_merge_chain_run,
    record_merge_inputs,
)
from spotlake_assets.orchestration.freshness import build_delta_freshness
from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.orchestration.partitions import collection_partitions, workload_partitions
from spotlake_assets.orchestration.pipeline import ChangeSpec, build_change_assets, read_previous_merged
from spotlake_assets.orchestration.plots import score_distribution
from spotlake_assets.orchestration.reporting import (
    MERGE_CHAIN_BACKFILL_POLICY,
    WindowResult,
    materialize_windows,
    range_check,
    run_metadata,
    skip_unobserved,
    unique_keys_check,
    write_if_guarded,
)
from spotlake_assets.storage.errors import LakeKeyNotFound
from spotlake_assets.storage.frame_types import FrameType, with_column_schemas
from spotlake_assets.storage.frames import read_frame
from spotlake_assets.storage.keys import merged_key
from spotlake_assets.storage.lake import LakeResource

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd

    from spotlake_assets.domain.merge import MergeResult
    from spotlake_assets.sinks.records import TimestreamMapping

# With the contract, what a provider's own assets use: partitions, metadata, guards, the unobservable skip.
__all__ = [
    "SAME_DAY",
    "UNOBSERVABLE",
    "Guard",
    "MergeConfig",
    "MergeOutcome",
    "MergeStep",
    "MergeWindow",
    "ProviderApi",
    "ProviderDefinitions",
    "ProviderResources",
    "ProviderSpec",
    "Stopwatch",
    "build_provider",
    "cannot_observe",
    "collection_partitions",
    "empty_frame",
    "note_replay",
    "permanent_failure",
    "range_check",
    "run_metadata",
    "skip_unobserved",
    "unique_keys_check",
    "workload_partitions",
    "write_if_guarded",
]

# The window job runs one window per run on purpose (its collectors take one window); the single-run
# backfill policy is for ranges of the merge chain alone. Dagster warns at every load that the job mixes
# policies and uses one window per run, which is what it should do.
warnings.filterwarnings(
    "ignore", message=r"Asset job \w+_window_job materializes assets with varying BackfillPolicies"
)

# A window-partitioned asset reading a daily one reads the day the window is in.
SAME_DAY = dg.TimeWindowPartitionMapping()
UNOBSERVABLE = (
    "this API only answers for the present, so a past window cannot be observed; nothing is stored for it"
    " (a backfill of merged/delta rebuilds from what the lake already holds)"
)

# `<p>_resources(environment, environ)`: the provider's resources of one `SPOTLAKE_ENV`.
ProviderResources = Callable[[str, Mapping[str, str]], dict[str, Any]]


class ProviderApi(Protocol):
    """What the shared assets read from a provider's API resource."""

    @property
    def simulated(self) -> bool:
        """Labels every asset's metadata: True when answers come from a simulation."""
        ...

    @property
    def observes_past(self) -> bool:
        """Whether a window that is over can still be asked about (simulations replay their past)."""
        ...


def cannot_observe(
    api: ProviderApi, partition_key: str, context: dg.AssetExecutionContext | None = None
) -> bool:
    """A "now"-only API asked about a past window (a backfill): its collector skips it with
    `reporting.skip_unobserved` rather than store today's answer under an old key. With ``context``, a
    past window that is collected anyway (a simulation replays its past) says so (`note_replay`)."""
    if observable_now(partition_key, datetime.now(UTC)):
        return False
    if not api.observes_past:
        return True
    if context is not None:
        note_replay(context, api, partition_key)
    return False


def note_replay(context: dg.AssetExecutionContext, api: ProviderApi, partition_key: str) -> None:
    """A collector of a past window that still answers: in the run log and in the materialization's
    ``replay`` metadata, whether that is the simulation replaying (deterministic from its seed, never an
    observation) or a real API's history (AWS spot price history). A window still open says nothing."""
    if observable_now(partition_key, datetime.now(UTC)):
        return
    if api.simulated:
        replay = "simulated: a past window replayed from the simulation's seed, not observed"
    else:
        replay = "history: a past window answered from the real API's history"
    context.log.warning("%s %s: %s", context.asset_key.to_user_string(), partition_key, replay)
    output = context.assets_def.get_output_name_for_asset_key(context.asset_key)
    context.add_output_metadata({"replay": replay}, output_name=output)


def permanent_failure(exc: Exception, what: str | None = None) -> dg.Failure:
    """A failure asking again cannot fix (a malformed answer, a 4xx): the cause on the first line, the
    offending call/field/value/row in metadata, and neither step nor run retries spent on it."""
    metadata: dict[str, str] = {"error": type(exc).__name__}
    if isinstance(exc, MalformedResponse):
        metadata |= {"call": exc.call, "field": exc.field, "value": repr(exc.value), "row": repr(exc.row)}
    description = str(exc) if what is None else f"{what}: {exc}"
    return dg.Failure(description=description, metadata=metadata, allow_retries=False)


def empty_frame(columns: Sequence[str], numeric: frozenset[str] = frozenset()) -> "pd.DataFrame":
    """An input that is not there, as a frame of the right columns and types (``numeric`` float64)."""
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype="float64" if c in numeric else object) for c in columns})


class MergeConfig(dg.Config):
    # Set by the lake sensor once a window's inputs are overdue: merge with explicit -1 gaps (and a failed
    # inputs_complete check) rather than hold every later window back.
    allow_missing_inputs: bool = False


@dataclass
class MergeWindow:
    """What the builder hands a provider's merge: the window, its previous snapshot, and how to read an
    input that may be overdue (``optional``, which records what was missing)."""

    lake: LakeResource
    partition_key: str
    capacity: int
    previous: "pd.DataFrame | None"
    allow_missing: bool
    log: logging.Logger
    missing: list[str] = field(default_factory=list)

    @property
    def day(self) -> str:
        return day_key_of_window(self.partition_key)

    @property
    def time(self) -> datetime:
        return window_start(self.partition_key)

    def optional(
        self, key: str, empty: "pd.DataFrame", frame_type: FrameType | None = None
    ) -> "pd.DataFrame":
        """``key`` read as ``frame_type`` (else with ``empty``'s columns); when it is absent and gaps are
        allowed, ``empty`` (the merge then writes -1 for what it would have given)."""
        try:
            return read_frame(self.lake, key, frame_type or tuple(map(str, empty.columns)))
        except LakeKeyNotFound:
            if not self.allow_missing:
                raise
            self.missing.append(key)
            return empty


@dataclass(frozen=True)
class MergeOutcome:
    """A provider's merge of one window: the one result shape, the provider's own guards (declared in
    `MergeStep.guards`) and its own metadata."""

    result: "MergeResult[Any]"
    guards: Sequence[dg.AssetCheckResult] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Guard:
    """A blocking check of the merged snapshot that only this provider has."""

    name: str
    description: str | None = None


@dataclass(frozen=True)
class MergeStep:
    # Reads the window's inputs from the lake and merges them (the pure merge lives in `<p>/merge.py`).
    run: Callable[[MergeWindow], MergeOutcome]
    # What a window's merge reads besides its SPS object: the lake sensor waits for these.
    inputs: Callable[[str], list[str]]
    description: str
    # The score column and its range; -1 (no score this window) is always allowed.
    score_column: str
    score_range: tuple[int, int]
    # Metadata name of the window's capacity (AWS "target_capacity", Azure "desired_count").
    capacity_name: str = "capacity"
    guards: Sequence[Guard] = ()
    # Daily assets (by name) the merge reads, for the day of the window.
    daily_inputs: Sequence[str] = ()


@dataclass(frozen=True)
class ProviderSpec:
    """Everything that makes a provider; `build_provider` makes the rest."""

    # Lower-case letters only: the lake sensor's pattern is rawdata/[a-z]+/sps/ (domain/sensing.py).
    name: str
    # How descriptions name it ("AWS", "Azure").
    title: str
    # Unique in merged and delta; the history sort order and the default Timestream dimensions.
    key_columns: tuple[str, ...]
    # What makes a row changed (docs/data-contracts.md#delta).
    feature_columns: tuple[str, ...]
    # The API resource (`ProviderApi`): its `simulated` labels every shared asset's metadata.
    api_resource_key: str
    # Daily-partitioned assets, the first one the workload (`<p>_daily_job`).
    daily: Sequence[dg.AssetsDefinition]
    # The window's collectors, one of them `[<p>, "sps"]` (`<p>_collect_job`).
    collectors: Sequence[dg.AssetsDefinition]
    merge: MergeStep
    resources: ProviderResources
    # None: `sinks/records.default_mapping` (table <p>, measure <p>_values, keys as dimensions).
    timestream: "TimestreamMapping | None" = None
    # The declared frame of each frame asset, by the asset's name under the provider ("sps", "merged",
    # "delta", "history", ...; `<p>/frames.py`): reads and writes are checked against them, and each
    # asset publishes its columns as `dagster/column_schema`.
    frames: Mapping[str, FrameType] = field(default_factory=dict)

    @property
    def change(self) -> ChangeSpec:
        return ChangeSpec(
            self.name,
            self.key_columns,
            self.feature_columns,
            self.api_resource_key,
            self.timestream,
            merged_frame=self.frames.get("merged"),
            delta_frame=self.frames.get("delta"),
        )


@dataclass(frozen=True)
class ProviderDefinitions:
    """What `build_provider` makes of a spec; `definitions.py` adds every provider's to one code location."""

    spec: ProviderSpec
    assets: list[dg.AssetsDefinition]
    asset_checks: list[dg.AssetChecksDefinition]
    # What `dg.define_asset_job` returns; dagster exports no public name for it.
    jobs: list[UnresolvedAssetJobDefinition]
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]

    def definitions(self, resources: Mapping[str, Any] | None = None) -> dg.Definitions:
        """The provider alone, as a code location (tests, a provider's own tooling)."""
        return dg.Definitions(
            assets=self.assets,
            asset_checks=self.asset_checks,
            jobs=self.jobs,
            schedules=self.schedules,
            sensors=self.sensors,
            resources=dict(resources or {}),
            executor=dg.in_process_executor,
        )


def _simulated(context: dg.AssetExecutionContext, spec: ProviderSpec) -> bool:
    api: ProviderApi = getattr(context.resources, spec.api_resource_key)
    return bool(api.simulated)


def build_merged_asset(spec: ProviderSpec) -> dg.AssetsDefinition:
    """`[<p>, "merged"]`: the provider's merge of one window, guarded and written like every provider's."""
    provider, step = spec.name, spec.merge
    key = dg.AssetKey([provider, "merged"])
    daily = {a.key.path[-1]: a.key for a in spec.daily}
    guards = [
        dg.AssetCheckSpec(
            "unique_keys",
            asset=key,
            blocking=True,
            description=f"One row per pool ({', '.join(spec.key_columns)}); blocking: not written otherwise.",
        ),
        dg.AssetCheckSpec(
            "scores_in_range",
            asset=key,
            blocking=True,
            description=(
                f"{step.score_column} within {step.score_range[0]}..{step.score_range[1]} or -1 (no score"
                " this window); blocking: not written otherwise."
            ),
        ),
        *(
            dg.AssetCheckSpec(g.name, asset=key, blocking=True, description=g.description)
            for g in step.guards
        ),
        # Not blocking: an overdue input is merged as an explicit -1 gap by design.
        dg.AssetCheckSpec(
            "inputs_complete",
            asset=key,
            description="Every input of the window was in the lake (else merged with explicit -1 gaps).",
        ),
    ]
    low, high = step.score_range

    @dg.asset(
        key=key,
        group_name=provider,
        partitions_def=collection_partitions,
        deps=[
            *(a.key for a in spec.collectors),
            *(dg.AssetDep(daily[name], partition_mapping=SAME_DAY) for name in step.daily_inputs),
            # The T2/T3 ladder carries state from the previous window: backfills run in window order.
            dg.AssetDep(key, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
        ],
        kinds={"pandas", "parquet"},
        description=step.description,
        check_specs=guards,
        pool=f"{provider}_merge",
        # A backfill of N windows is one run that merges them oldest first (`reporting.materialize_windows`).
        backfill_policy=MERGE_CHAIN_BACKFILL_POLICY,
        required_resource_keys={"lake", spec.api_resource_key},
    )
    def merged(context: dg.AssetExecutionContext, config: MergeConfig) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake
        mark_merge_chain_run(context, provider)

        def one_window(pk: str) -> WindowResult:
            watch = Stopwatch()
            # Before anything is read: an input replaced during the merge is then a change for the sensor.
            fingerprint = input_fingerprint(lake, provider, pk, step.inputs)
            capacity = capacity_for_window(pk)
            # In a range, the window before was written by the previous iteration of this loop.
            previous = read_previous_merged(lake, provider, pk, spec.change.merged_required)
            window = MergeWindow(lake, pk, capacity, previous, config.allow_missing_inputs, context.log)
            outcome = step.run(window)
            result, missing = outcome.result, window.missing
            if missing:
                context.log.warning(
                    "%s merged with explicit -1 gaps; missing inputs: %s", pk, ", ".join(missing)
                )
            if result.dropped or result.unjoined:
                context.log.info(
                    "%s: rows dropped by reason %s; rows joined to no pool %s",
                    pk,
                    result.dropped,
                    result.unjoined,
                )
            checks = [
                unique_keys_check(result.frame, spec.key_columns),
                range_check(result.frame, step.score_column, low, high, "scores_in_range", allowed=(-1,)),
                *outcome.guards,
            ]
            written = write_if_guarded(
                context, lake, merged_key(provider, pk), result.frame, checks, spec.frames.get("merged")
            )
            if written:
                record_merge_inputs(lake, provider, pk, fingerprint)
            return WindowResult(
                metadata=run_metadata(
                    watch,
                    rows=len(result.frame),
                    api_calls=0,
                    simulated=_simulated(context, spec),
                    location=lake.location(merged_key(provider, pk)),
                    written=written,
                    first_window=previous is None,
                    missing_inputs=dg.MetadataValue.json(missing),
                    dropped_rows=dg.MetadataValue.json(dict(result.dropped)),
                    unjoined_rows=dg.MetadataValue.json(dict(result.unjoined)),
                    **{step.capacity_name: capacity},
                    **outcome.metadata,
                )
                # Drawn after the figures are taken: plotting is not counted in duration or peak RSS.
                | {
                    "plot_score_distribution": score_distribution(
                        result.frame[step.score_column], f"{provider}/merged {pk}", low, high
                    )
                },
                checks=[
                    *checks,
                    dg.AssetCheckResult(
                        check_name="inputs_complete",
                        passed=not missing,
                        metadata={"missing": ", ".join(missing)},
                    ),
                ],
            )

        blocking = {"unique_keys", "scores_in_range", *(g.name for g in step.guards)}
        return materialize_windows(context, one_window, blocking=blocking)

    return merged


def build_provider(spec: ProviderSpec, running: bool = False) -> ProviderDefinitions:
    """Every definition of a provider. ``running`` makes its schedules and sensors start RUNNING
    (prod/test) instead of STOPPED (local)."""
    provider, title = spec.name, spec.title
    merged = build_merged_asset(spec)
    change = build_change_assets(spec.change)
    assets = with_column_schemas(
        [*spec.daily, *spec.collectors, merged, *change],
        {dg.AssetKey([provider, name]): frame for name, frame in spec.frames.items()},
    )
    collectors = dg.AssetSelection.assets(*(a.key for a in spec.collectors))
    # The window-partitioned chain only: `<p>/history_daily` (daily) depends on it but cannot share a job.
    merge_chain = dg.AssetSelection.assets(
        merged.key, *(a.key for a in change if a.partitions_def == collection_partitions)
    )
    chain_tags = {MERGE_CHAIN_TAG: provider}
    daily_job = dg.define_asset_job(
        f"{provider}_daily_job",
        selection=dg.AssetSelection.assets(*(a.key for a in spec.daily)),
        partitions_def=workload_partitions,
        description=f"The next day's {title} workload and the other daily inputs, built at 23:55 UTC.",
    )
    collect_job = dg.define_asset_job(
        f"{provider}_collect_job",
        selection=collectors,
        partitions_def=collection_partitions,
        description=f"The {title} collectors of one window alone (backfills; the lake sensor merges).",
    )
    merge_job = dg.define_asset_job(
        f"{provider}_merge_job",
        selection=merge_chain,
        partitions_def=collection_partitions,
        tags=chain_tags,
        description=(
            f"{title} merge → delta → sinks of one window, from what the lake holds (the lake sensor runs"
            " it for a window whose merge is missing)."
        ),
    )
    window_job = dg.define_asset_job(
        f"{provider}_window_job",
        selection=collectors | merge_chain,
        partitions_def=collection_partitions,
        tags=chain_tags,
        description=(
            f"One 10-minute {title} window end to end: collectors → merged → delta → sinks (the window"
            " schedule runs it: one run, one Batch job, per provider per tick)."
        ),
    )
    schedules, sensors = build_provider_automation(
        provider,
        daily_job.name,
        window_job.name,
        merge_job.name,
        spec.merge.inputs,
        running,
    )
    freshness_check, freshness_sensor = build_delta_freshness(provider, running)
    return ProviderDefinitions(
        spec=spec,
        assets=assets,
        asset_checks=[freshness_check],
        jobs=[daily_job, collect_job, merge_job, window_job],
        schedules=schedules,
        sensors=[*sensors, freshness_sensor],
    )
