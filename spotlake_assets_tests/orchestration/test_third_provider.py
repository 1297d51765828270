"""Proof of the provider contract: a third provider ("gcp", a toy) written from the contract alone.

It imports only the contract and builder (`orchestration/provider.py`, which also exports the helpers a
provider's assets use), the domain, storage and the local Timestream sink, never `aws/` or `azure/`. This
one file is everything the provider needed: its fake API (``simulated=True``), a workload, two collectors,
a merge returning the one `MergeResult` shape, and its spec. The builder gives it merged, delta, history,
Timestream, latest and history_daily, the four jobs, the schedules, the lake sensor and the freshness
check; the test runs the daily job, then two consecutive windows through `gcp_window_job` on a temp lake.
"""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.

import ast
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from spotlake_assets.domain.merge import MergeResult
from spotlake_assets.domain.windows import capacity_for_window, day_key_of_window, window_start
from spotlake_assets.orchestration.provider import (
    SAME_DAY,
    MergeOutcome,
    MergeStep,
    MergeWindow,
    ProviderSpec,
    Stopwatch,
    build_provider,
    collection_partitions,
    empty_frame,
    run_metadata,
    workload_partitions,
)
from spotlake_assets.sinks.timestream import LocalTimestream
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LakeResource, LocalLake

PROVIDER = "gcp"
KEY_COLUMNS = ("InstanceType", "Region")
FEATURE_COLUMNS = ("Score", "SpotPrice")
SPS_COLUMNS = ("InstanceType", "Region", "Score", "DesiredCount")
PRICE_COLUMNS = ("InstanceType", "Region", "SpotPrice")
WORKLOAD_COLUMNS = ("InstanceType", "Region")
TYPES = ("c3-highcpu-8", "e2-small", "n2-standard-4")
REGIONS = ("europe-west4", "us-central1")
DROPPED_UNPLANNED = "price: (InstanceType, Region) without a score"
DAY = "2026-03-01"
WINDOWS = ("2026-03-01-00:00", "2026-03-01-00:10")


# --- the provider: API, workload, collectors, merge ---------------------------------------------------------


class FakeGcpApi(dg.ConfigurableResource):
    """A deterministic stand-in for the cloud. From minute 10 of the hour e2-small in us-central1 scores 1
    instead of 3 and c3-highcpu-8 leaves europe-west4, so the second window has one change and one ceased
    pool; a price for a pair nobody plans (t2a-standard-1) is always listed and must be dropped."""

    @property
    def simulated(self) -> bool:
        return True

    @property
    def observes_past(self) -> bool:
        return True

    def offerings(self, moment: datetime) -> list[tuple[str, str]]:
        later = moment.minute >= 10
        return [
            (t, r)
            for t in TYPES
            for r in REGIONS
            if not (later and (t, r) == ("c3-highcpu-8", "europe-west4"))
        ]

    def score(self, instance_type: str, region: str, moment: datetime) -> int:
        if (instance_type, region) == ("e2-small", "us-central1"):
            return 1 if moment.minute >= 10 else 3
        return 2

    def prices(self, moment: datetime) -> list[tuple[str, str, float]]:
        listed = [(t, r, 0.01 * (1 + TYPES.index(t))) for t, r in self.offerings(moment)]
        return [*listed, ("t2a-standard-1", "us-central1", 0.005)]


WORKLOAD = dg.AssetKey([PROVIDER, "workload"])
SPS = dg.AssetKey([PROVIDER, "sps"])
PRICE = dg.AssetKey([PROVIDER, "price"])


@dg.asset(
    key=WORKLOAD, group_name=PROVIDER, partitions_def=workload_partitions, description="Pairs to score."
)
def gcp_workload(
    context: dg.AssetExecutionContext, gcp_api: FakeGcpApi, lake: LakeResource
) -> dg.MaterializeResult:
    watch = Stopwatch()
    pairs = gcp_api.offerings(datetime.fromisoformat(f"{context.partition_key}T00:00:00+00:00"))
    frame = pd.DataFrame(pairs, columns=list(WORKLOAD_COLUMNS))
    key = keys.workload_key(PROVIDER, context.partition_key)
    write_frame(lake, key, frame)
    return dg.MaterializeResult(
        metadata=run_metadata(watch, rows=len(frame), api_calls=1, simulated=gcp_api.simulated, location=key)
    )


@dg.asset(
    key=SPS,
    group_name=PROVIDER,
    partitions_def=collection_partitions,
    deps=[dg.AssetDep(WORKLOAD, partition_mapping=SAME_DAY)],
    pool=f"{PROVIDER}_sps",
    description="Scores of the day's planned pairs still offered at the window start.",
)
def gcp_sps(
    context: dg.AssetExecutionContext, gcp_api: FakeGcpApi, lake: LakeResource
) -> dg.MaterializeResult:
    watch = Stopwatch()
    pk = context.partition_key
    moment, capacity = window_start(pk), capacity_for_window(pk)
    planned = read_frame(lake, keys.workload_key(PROVIDER, day_key_of_window(pk)), WORKLOAD_COLUMNS)
    offered = set(gcp_api.offerings(moment))
    rows = [
        (t, r, gcp_api.score(t, r, moment), capacity)
        for t, r in planned.itertuples(index=False)
        if (t, r) in offered
    ]
    frame = pd.DataFrame(rows, columns=list(SPS_COLUMNS))
    # The SPS object is what the lake sensor sees: its key carries the window's capacity.
    key = keys.sps_key(PROVIDER, pk, capacity)
    write_frame(lake, key, frame)
    return dg.MaterializeResult(
        metadata=run_metadata(watch, rows=len(frame), api_calls=len(rows), simulated=gcp_api.simulated)
    )


@dg.asset(key=PRICE, group_name=PROVIDER, partitions_def=collection_partitions, description="Spot prices.")
def gcp_price(
    context: dg.AssetExecutionContext, gcp_api: FakeGcpApi, lake: LakeResource
) -> dg.MaterializeResult:
    watch = Stopwatch()
    frame = pd.DataFrame(gcp_api.prices(window_start(context.partition_key)), columns=list(PRICE_COLUMNS))
    write_frame(lake, keys.spot_price_key(PROVIDER, context.partition_key), frame)
    return dg.MaterializeResult(
        metadata=run_metadata(watch, rows=len(frame), api_calls=1, simulated=gcp_api.simulated)
    )


def merge_snapshot(sps: pd.DataFrame, price: pd.DataFrame, time: datetime) -> MergeResult[None]:
    """Scores left-joined to prices (-1 when unpriced); a price of a pair without a score is dropped and
    counted. Key columns categorical, sorted by key, ``Time`` the window start."""
    scored = sps[list(KEY_COLUMNS)].apply(tuple, axis=1)
    priced = price[list(KEY_COLUMNS)].apply(tuple, axis=1)
    frame = sps.merge(price, on=list(KEY_COLUMNS), how="left").sort_values(
        list(KEY_COLUMNS), ignore_index=True
    )
    frame = frame.assign(
        InstanceType=frame["InstanceType"].astype("category"),
        Region=frame["Region"].astype("category"),
        Score=frame["Score"].astype("int64"),
        SpotPrice=frame["SpotPrice"].fillna(-1.0).astype("float64"),
        Time=pd.Timestamp(time).tz_convert("UTC"),
    )[[*KEY_COLUMNS, "Score", "SpotPrice", "Time"]]
    return MergeResult(
        frame, dropped={DROPPED_UNPLANNED: int((~priced.isin(set(scored))).sum())}, unjoined={}, detail=None
    )


def merge_window(window: MergeWindow) -> MergeOutcome:
    sps = read_frame(window.lake, keys.sps_key(PROVIDER, window.partition_key, window.capacity), SPS_COLUMNS)
    price = window.optional(
        keys.spot_price_key(PROVIDER, window.partition_key),
        empty_frame(PRICE_COLUMNS, frozenset({"SpotPrice"})),
    )
    return MergeOutcome(merge_snapshot(sps, price, window.time))


def gcp_resources(environment: str, environ: Mapping[str, str]) -> dict[str, Any]:
    return {"gcp_api": FakeGcpApi()}


GCP = ProviderSpec(
    name=PROVIDER,
    title="GCP",
    key_columns=KEY_COLUMNS,
    feature_columns=FEATURE_COLUMNS,
    api_resource_key="gcp_api",
    daily=(gcp_workload,),
    collectors=(gcp_sps, gcp_price),
    merge=MergeStep(
        run=merge_window,
        inputs=lambda pk: [keys.spot_price_key(PROVIDER, pk)],
        description="The toy's merged snapshot.",
        score_column="Score",
        score_range=(1, 3),
    ),
    resources=gcp_resources,
)


# --- the proof ----------------------------------------------------------------------------------------------


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key and e.asset_key.to_user_string() == asset
    ]
    materialization = event.materialization
    assert materialization is not None
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def _records(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted((root / "timestream").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line
    ]


def test_a_third_provider_from_the_contract_runs_workload_to_sinks(tmp_path: Path) -> None:
    built = build_provider(GCP)
    assert {j.name for j in built.jobs} == {
        "gcp_daily_job",
        "gcp_collect_job",
        "gcp_merge_job",
        "gcp_window_job",
    }
    assert {s.name for s in built.schedules} == {
        "gcp_workload_schedule",
        "gcp_window_schedule",
    }
    assert [s.name for s in built.sensors] == ["gcp_lake_sensor", "gcp_freshness_sensor"]
    root = str(tmp_path / "lake")
    lake = LocalLake(root=root)
    resources = {
        "lake": lake,
        "timestream": LocalTimestream(root=root),
        **GCP.resources("local", {}),
    }
    defs = built.definitions(resources)

    daily = defs.resolve_job_def("gcp_daily_job").execute_in_process(partition_key=DAY)
    assert daily.success and _materialized(daily) == {"gcp/workload"}

    window_job = defs.resolve_job_def("gcp_window_job")
    first = window_job.execute_in_process(partition_key=WINDOWS[0])
    assert first.success
    assert _materialized(first) == {
        "gcp/sps",
        "gcp/price",
        "gcp/merged",
        "gcp/delta",
        "gcp/history",
        "gcp/timestream",
        "gcp/latest",
    }
    merged = _metadata(first, "gcp/merged")
    assert merged["dropped_rows"] == {DROPPED_UNPLANNED: 1} and merged["first_window"] is True
    assert merged["simulated"] is True and merged["capacity"] == capacity_for_window(WINDOWS[0])
    assert len(read_frame(lake, keys.delta_key(PROVIDER, WINDOWS[0]))) == len(TYPES) * len(REGIONS)

    second = window_job.execute_in_process(partition_key=WINDOWS[1])
    assert second.success
    delta = read_frame(lake, keys.delta_key(PROVIDER, WINDOWS[1]))
    rows = {
        (str(t), str(r)): (int(s), bool(c))
        for t, r, s, c in delta[["InstanceType", "Region", "Score", "Ceased"]].itertuples(index=False)
    }
    # One score changed, one pool ceased (its features zeroed); nothing else is published.
    assert rows == {("c3-highcpu-8", "europe-west4"): (0, True), ("e2-small", "us-central1"): (1, False)}

    history = [read_frame(lake, keys.history_key(PROVIDER, w)) for w in WINDOWS]
    assert [len(h) for h in history] == [6, 2]
    pd.testing.assert_frame_equal(
        history[1].sort_values(list(KEY_COLUMNS), ignore_index=True)[["Score", "Ceased"]],
        delta.sort_values(list(KEY_COLUMNS), ignore_index=True)[["Score", "Ceased"]],
        check_dtype=False,
    )
    records = _records(tmp_path / "lake")
    assert len(records) == 6 + 2
    assert {r["MeasureName"] for r in records} == {"gcp_values"}
    latest = json.loads(lake.read_bytes(keys.latest_key(PROVIDER)))
    assert len(latest) == 5 and {row["Time"] for row in latest} == {"2026-03-01 00:10:00"}


def test_the_third_provider_imports_no_other_provider() -> None:
    tree = ast.parse(Path(__file__).read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    package = {m for m in imported if m.startswith("spotlake_assets.")}
    layers = {m.split(".")[1] for m in package}
    assert layers == {"domain", "storage", "sinks", "orchestration"}, package
    assert {m for m in package if m.startswith("spotlake_assets.orchestration.")} == {
        "spotlake_assets.orchestration.provider"
    }
